"""The daemon's HTTP app on a test server: fake clock, real SQLite, test action, webhook sink.

Tokens (name: token → roles): alice and bob approve, victor only views, root is admin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from remediator.actions.base import ActionRegistry
from remediator.actions.notify import NotifyWebhook
from remediator.clock import FakeClock
from remediator.daemon.app import build_deps, build_listeners
from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.model import Alert
from remediator.settings import token_digest
from tests.conftest import T0
from tests.support.daemon import serve_listeners
from tests.support.engine import RestartService, WebhookSink, harness_settings

TOKENS = {"alice": ("alice-secret-token", ["approver"]), "bob": ("bob-secret-token", ["approver"]),
          "victor": ("victor-secret-token", ["viewer"]), "root": ("root-secret-token", ["admin"])}
API_TOKENS = [{"name": name, "sha256": token_digest(token), "roles": roles} for name, (token, roles) in TOKENS.items()]


@dataclass
class Daemon:
    """The app under test and what it is made of."""

    client: TestClient[Any, Any]  # the admin listener: API and console
    public: TestClient[Any, Any]  # the webhook listener
    deps: Deps
    engine: Engine
    clock: FakeClock
    action: RestartService
    sink: WebhookSink

    @staticmethod
    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[name][0]}"}

    async def deliver(self, *alerts: Alert) -> None:
        await self.deps.store.record_alerts(list(alerts), self.clock.now())
        for alert in alerts:
            await self.engine.process([alert])


DaemonFactory = Callable[..., Awaitable[Daemon]]


@pytest.fixture
async def make_daemon(tmp_path: Path, sink: WebhookSink) -> AsyncIterator[DaemonFactory]:
    started: list[TestClient[Any, Any]] = []

    async def make(policies: str, **overrides: Any) -> Daemon:
        overrides.setdefault("api", {"tokens": API_TOKENS})
        # Plain http like the test server, or the client would keep Secure cookies to itself.
        overrides.setdefault("public_url", "http://remediator.test")
        settings = harness_settings(tmp_path, sink.url, policies, **overrides)
        clock, action = FakeClock(T0), RestartService()
        deps = build_deps(settings, clock=clock, registry=ActionRegistry([NotifyWebhook(), action]))
        listeners = build_listeners(settings, deps)
        admin, public = await serve_listeners(listeners, started)
        return Daemon(admin, public, deps, listeners.engine, clock, action, sink)

    yield make
    for client in reversed(started):
        await client.close()
