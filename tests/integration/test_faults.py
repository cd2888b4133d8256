"""Production faults, decided and tested on real servers behind a TCP proxy the test cuts.

- PostgreSQL unreachable: webhooks answer 503, /readyz fails, nothing is acknowledged; when it
  returns the pool reconnects and the backlog feeder finishes what was interrupted, never acting twice.
- Redis unreachable: intake goes on; actions that need shared limits are denied with
  `coordination_unavailable` (never run without them); it recovers by itself.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from remediator.actions.base import ActionRegistry
from remediator.actions.notify import NotifyWebhook
from remediator.daemon.app import build_deps, build_listeners
from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.model import AuditRecord, DecisionReason, Outcome, Verdict
from remediator.settings import Settings
from tests.support.daemon import serve_listeners
from tests.support.harness import (
    AM_HEADERS,
    Receiver,
    TouchAction,
    am_alert,
    am_body,
    eventually,
    notify_policy,
    with_address,
    write_policies,
)
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.integration
PATH = "/webhooks/alertmanager"


@dataclass
class Daemon:
    client: TestClient[web.Request, web.Application]  # the webhook listener
    admin: TestClient[web.Request, web.Application]
    deps: Deps
    engine: Engine
    pg: TcpProxy
    redis: TcpProxy
    receiver: Receiver
    touch: TouchAction

    async def post(self, group: str, *occurrences: str, name: str = "Occurrence") -> tuple[int, dict[str, object]]:
        body = am_body(group, [am_alert(name, o) for o in occurrences])
        response = await self.client.post(PATH, data=body, headers=AM_HEADERS)
        return response.status, await response.json()

    async def ready(self) -> tuple[int, dict[str, object]]:
        response = await self.admin.get("/readyz")
        return response.status, await response.json()

    async def audit(self, action: str) -> list[AuditRecord]:
        return [a for a in await self.deps.store.list_audit(limit=1000) if a.action == action]


@pytest.fixture
async def daemon(
    tmp_path: Path, pg_dsn: str, pg_schema: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[Daemon]:
    pg_address, redis_address = urlsplit(pg_dsn), urlsplit(redis_url)
    pg = TcpProxy(pg_address.hostname or "127.0.0.1", pg_address.port or 5432)
    redis = TcpProxy(redis_address.hostname or "127.0.0.1", redis_address.port or 6379)
    receiver = Receiver()
    touch_policy = {"name": "touch-each", "severity": "P3", "match": {"alertname": "Touchy"},
                    "actions": [{"type": "test.touch", "params": {"name": "{labels.occurrence}"},
                                 "guardrails": {"cooldown": "0s"}}]}
    settings = Settings.model_validate({
        "mode": "enforce",
        "policies_dir": str(write_policies(tmp_path / "policies", [
            notify_policy(), notify_policy("notify-touchy", "Touchy"), touch_policy])),
        "store": {"url": with_address(pg_dsn, await pg.start()), "schema_name": pg_schema, "pool_min": 1,
                  "pool_max": 4, "connect_timeout": "1s", "command_timeout": "1s"},
        "coordination": {"url": with_address(redis_url, await redis.start()), "key_prefix": redis_prefix,
                         "timeout": "300ms"},
        "engine": {"workers": 2, "alert_lease": "1s", "retry_attempts": 1, "reconcile_interval": "1s"},
        "alertmanager": {"bearer_tokens": ["am-secret"]},
        "notify": {"receiver": {"url": await receiver.start(), "timeout": "10s"}},
    })
    touch = TouchAction()
    deps = build_deps(settings, registry=ActionRegistry([NotifyWebhook(), touch]))
    listeners = build_listeners(settings, deps)
    started: list[TestClient[web.Request, web.Application]] = []
    admin, client = await serve_listeners(listeners, started)
    try:
        yield Daemon(client, admin, deps, listeners.engine, pg, redis, receiver, touch)
    finally:
        await pg.restore()
        await redis.restore()
        receiver.gate.set()
        for served in reversed(started):
            await served.close()
        await receiver.close()
        await pg.close()
        await redis.close()


async def test_postgres_down_answers_503_acknowledges_nothing_and_recovers_by_itself(daemon: Daemon) -> None:
    assert await daemon.post("g-1", "occ-1") == (200, {"accepted": 1, "duplicates": 0})
    await eventually(lambda: daemon.receiver.received["occ-1"] == 1)

    await daemon.pg.cut("refuse")
    status, body = await daemon.post("g-2", "occ-2")
    assert (status, body["error"]) == (503, "store_unavailable")
    status, ready = await daemon.ready()
    assert status == 503 and str(ready["checks"]["store"]).startswith("unavailable")  # type: ignore[index]

    await daemon.pg.restore()
    await eventually(lambda: _ready(daemon), timeout=15)
    # The sender retries: the alert was not stored before (not a duplicate now), and it is acted on once.
    assert await daemon.post("g-2", "occ-2") == (200, {"accepted": 1, "duplicates": 0})
    await eventually(lambda: daemon.receiver.received["occ-2"] == 1)
    assert daemon.receiver.received == {"occ-1": 1, "occ-2": 1}


async def test_postgres_lost_during_an_action_is_finished_by_the_backlog_without_acting_twice(
    daemon: Daemon,
) -> None:
    daemon.receiver.gate.clear()  # the notification hangs: the action is running
    assert (await daemon.post("g-3", "occ-3"))[0] == 200
    await eventually(daemon.receiver.entered.is_set)
    await daemon.pg.cut("refuse")
    daemon.receiver.gate.set()  # the action finishes while its outcome cannot be stored
    await eventually(lambda: bool(daemon.engine.executor.unrecorded))  # the audit record waits for the store
    await daemon.pg.restore()

    async def finished() -> bool:
        records = await daemon.audit("notify.webhook")
        return bool(records) and await daemon.deps.store.count_unprocessed() == 0

    await eventually(finished, timeout=20)
    records = await daemon.audit("notify.webhook")
    assert [(r.outcome, r.verdict) for r in records] == [(Outcome.SUCCEEDED, Verdict.ALLOW)]
    assert daemon.receiver.received == {"occ-3": 1}


async def test_a_silent_postgres_is_noticed_within_the_timeouts(daemon: Daemon) -> None:
    await daemon.pg.cut("blackhole")
    started = time.monotonic()
    status, body = await daemon.post("g-4", "occ-4")
    assert (status, body["error"]) == (503, "store_unavailable")
    assert time.monotonic() - started < 6  # connect 1s + statements 1s each, never a hang
    await daemon.pg.restore()
    await eventually(lambda: _ready(daemon), timeout=15)
    assert (await daemon.post("g-4", "occ-4"))[0] == 200
    await eventually(lambda: daemon.receiver.received["occ-4"] == 1)


@pytest.mark.parametrize("fault", ["refuse", "blackhole"])
async def test_redis_down_keeps_intake_and_denies_what_needs_shared_limits(daemon: Daemon, fault: str) -> None:
    await daemon.redis.cut(fault)  # type: ignore[arg-type]
    assert await daemon.post("g-5", "occ-5", name="Touchy") == (200, {"accepted": 1, "duplicates": 0})
    touch = await eventually(lambda: daemon.audit("test.touch"))
    assert [(r.verdict, r.decision_reason, r.outcome) for r in touch] == [
        (Verdict.DENY, DecisionReason.COORDINATION_UNAVAILABLE, Outcome.NOT_RUN)]
    # Notifications need no shared limits: the on-call engineer still hears about it.
    await eventually(lambda: daemon.receiver.received["occ-5"] == 1)
    assert daemon.touch.runs == {}
    status, ready = await daemon.ready()
    assert status == 200 and str(ready["checks"]["coordination"]).startswith("degraded")  # type: ignore[index]

    await daemon.redis.restore()
    assert (await daemon.post("g-6", "occ-6", name="Touchy"))[0] == 200
    async def audited() -> list[AuditRecord]:  # the record is written just after the run returns
        return [r for r in await daemon.audit("test.touch") if r.target == "touch:occ-6"]

    allowed = await eventually(audited, timeout=10)
    assert [(r.verdict, r.outcome) for r in allowed] == [(Verdict.ALLOW, Outcome.SUCCEEDED)]
    assert daemon.touch.runs["occ-6"] == 1
    assert await daemon.deps.coordination.held_leases(daemon.deps.clock.now()) == []


async def _ready(daemon: Daemon) -> bool:
    return (await daemon.ready())[0] == 200
