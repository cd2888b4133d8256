"""A daemon in this process: its two listeners on loopback ports, a real SQLite file, a fake clock.

`client` talks to the public webhook listener, `admin` to the admin listener (API, console,
metrics), as users' senders and people do; both share the one engine, as in `remediator serve`
with `intake.processes: 0`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.clock import FakeClock
from remediator.daemon.app import Listeners, build_deps, build_listeners
from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.settings import Settings
from remediator.web.bodies import SERVER_OPTIONS

NOTIFY_POLICY = """
name: pg-too-many-connections
severity: P2
match: {source: alertmanager, alertname: PostgresTooManyConnections}
actions:
  - type: notify.webhook
    params: {to: oncall, title: "{alert.name} on {labels.instance}", text: "{annotations.summary}"}
"""


@dataclass
class Daemon:
    client: TestClient[Any, Any]  # the public webhook listener
    admin: TestClient[Any, Any]  # the admin listener
    deps: Deps
    engine: Engine
    db: Path
    clock: FakeClock

    def count(self, table: str) -> int:
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def metric(self, name: str, **labels: str) -> float:
        value = self.deps.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


DaemonFactory = Callable[..., Any]


@pytest.fixture
async def start_daemon(make_settings: Callable[..., Settings], clock: FakeClock,
                       tmp_path: Path) -> AsyncIterator[DaemonFactory]:
    clients: list[TestClient[Any, Any]] = []

    async def start(policies: str = NOTIFY_POLICY, **overrides: Any) -> Daemon:
        settings = make_settings(**overrides)
        settings.policies_dir.mkdir(exist_ok=True)
        (settings.policies_dir / "policies.yaml").write_text(policies)
        listeners = build_listeners(settings, build_deps(settings, clock=clock))
        admin, public = await serve_listeners(listeners, clients)
        return Daemon(public, admin, listeners.deps, listeners.engine, settings.store.sqlite_path, clock)

    yield start
    for client in reversed(clients):
        await client.close()


async def serve_listeners(listeners: Listeners, started: list[TestClient[Any, Any]]) -> tuple[
        TestClient[Any, Any], TestClient[Any, Any]]:
    """The admin listener first (it opens what both share), then the public one; closed in reverse."""
    served = []
    for app in (listeners.admin, listeners.public):
        server = TestServer(app)
        await server.start_server(**SERVER_OPTIONS)  # as `remediator serve` serves them
        client: TestClient[Any, Any] = TestClient(server)
        await client.start_server()
        started.append(client)
        served.append(client)
    return served[0], served[1]
