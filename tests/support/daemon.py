"""A daemon in this process: the real app on a loopback port, a real SQLite file, a fake clock."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from remediator.clock import FakeClock
from remediator.daemon.app import build_app, build_deps
from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.settings import Settings
from remediator.web.keys import DEPS, ENGINE

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
    client: TestClient[Any, Any]
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
        deps = build_deps(settings, clock=clock)
        app = build_app(settings, deps)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Daemon(client, app[DEPS], app[ENGINE], settings.store.sqlite_path, clock)

    yield start
    for client in clients:
        await client.close()
