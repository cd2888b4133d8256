"""The daemon in-process on real PostgreSQL and Redis, each behind a `TcpProxy` a test breaks,
and a sender that behaves as Alertmanager does (a 5xx is retried until it is acknowledged)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import asyncpg
from aiohttp import ClientError, web
from aiohttp.test_utils import TestClient

from remediator.actions.base import ActionRegistry
from remediator.actions.notify import NotifyWebhook
from remediator.daemon.app import build_deps, build_listeners
from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.model import AuditRecord
from remediator.settings import Settings
from tests.support.daemon import serve_listeners
from tests.support.harness import (
    AM_HEADERS,
    Receiver,
    TouchAction,
    am_alert,
    am_body,
    notify_policy,
    with_address,
    write_policies,
)
from tests.support.proxy import TcpProxy

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


def touch_policy() -> dict[str, Any]:
    return {"name": "touch-each", "severity": "P3", "match": {"alertname": "Touchy"},
            "actions": [{"type": "test.touch", "params": {"name": "{labels.occurrence}"},
                         "guardrails": {"cooldown": "0s"}}]}


@asynccontextmanager
async def fault_daemon(tmp_path: Path, pg_dsn: str, pg_schema: str, redis_url: str, redis_prefix: str,
                       **sections: dict[str, Any]) -> AsyncIterator[Daemon]:
    """A daemon whose PostgreSQL and Redis are reached through proxies; `sections` override settings."""
    pg_address, redis_address = urlsplit(pg_dsn), urlsplit(redis_url)
    pg = TcpProxy(pg_address.hostname or "127.0.0.1", pg_address.port or 5432)
    redis = TcpProxy(redis_address.hostname or "127.0.0.1", redis_address.port or 6379)
    receiver = Receiver()
    base: dict[str, Any] = {
        "mode": "enforce",
        "policies_dir": str(write_policies(tmp_path / "policies", [
            notify_policy(), notify_policy("notify-touchy", "Touchy"), touch_policy()])),
        "store": {"url": with_address(pg_dsn, await pg.start()), "schema_name": pg_schema, "pool_min": 1,
                  "pool_max": 4, "connect_timeout": "1s", "command_timeout": "1s"},
        "coordination": {"url": with_address(redis_url, await redis.start()), "key_prefix": redis_prefix,
                         "timeout": "300ms"},
        "engine": {"workers": 2, "retry_attempts": 1},
        "alertmanager": {"bearer_tokens": ["am-secret"]},
        "notify": {"receiver": {"url": await receiver.start(), "timeout": "10s"}},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    settings = Settings.model_validate(base)
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


class Target(Protocol):
    """Where a sender posts: a daemon in-process, or daemon processes."""

    async def post(self, group: str, *occurrences: str, name: str = "Occurrence") -> tuple[int, dict[str, object]]: ...


@dataclass
class Sender:
    """Posts one new occurrence every `every` seconds, each in a group of its own, and retries
    whatever was not acknowledged (any answer but 200, or no answer) until it is."""

    daemon: Target
    prefix: str
    every: float = 0.05
    acked: set[str] = field(default_factory=set)
    refused: int = 0  # answers other than 200 (the sender retried each)
    slowest: float = 0.0  # the longest wait for an answer, in seconds
    _sent: int = 0
    _retry: list[str] = field(default_factory=list)
    _new: bool = True

    async def _send(self, occurrence: str) -> None:
        started = time.monotonic()
        try:
            status, _ = await self.daemon.post(f"g-{occurrence}", occurrence)
        except (ClientError, TimeoutError, ValueError):
            status = 0
        self.slowest = max(self.slowest, time.monotonic() - started)
        if status == 200:
            self.acked.add(occurrence)
        else:
            self.refused += 1
            self._retry.append(occurrence)

    async def run(self) -> None:
        sending: set[asyncio.Task[None]] = set()
        while self._new or self._retry or sending:
            if self._retry:
                occurrence = self._retry.pop(0)
            elif self._new:
                occurrence, self._sent = f"{self.prefix}-{self._sent}", self._sent + 1
            else:
                await asyncio.wait(sending)
                continue
            task = asyncio.create_task(self._send(occurrence))
            sending.add(task)
            task.add_done_callback(sending.discard)
            await asyncio.sleep(self.every)

    def stop_new(self) -> None:
        self._new = False

    @property
    def sent(self) -> int:
        return self._sent


async def settled(pg_dsn: str, schema: str, receiver: Receiver, acked: set[str]) -> dict[str, int]:
    """The invariants after a fault, read straight from PostgreSQL (not through the proxy)."""
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": schema})
    try:
        stored = {r["fingerprint"]: r["n"] for r in await conn.fetch(
            "SELECT fingerprint, count(*) AS n FROM alerts GROUP BY fingerprint")}
        unprocessed = await conn.fetchval("SELECT count(*) FROM alerts WHERE processed_at IS NULL")
        states = {r["state"]: r["n"] for r in await conn.fetch(
            "SELECT state, count(*) AS n FROM requests GROUP BY state")}
        audits = await conn.fetchval("SELECT count(*) FROM audit")
        escalated = await conn.fetchval("SELECT count(*) FROM timeline WHERE kind = 'escalated'")
    finally:
        await conn.close()
    return {
        "acknowledged": len(acked),
        "stored_once": sum(1 for o in acked if stored.get(o) == 1),
        "unprocessed": int(unprocessed),
        "open_requests": states.get("claimed", 0) + states.get("running", 0),
        "finished": states.get("done", 0),
        "unknown": states.get("unknown", 0),
        "escalated": int(escalated),
        "requests": sum(states.values()),
        "audit_records": int(audits),
        "notified_once": sum(1 for o in acked if receiver.received[o] == 1),
        "notified_twice": sum(1 for o in acked if receiver.received[o] > 1),
    }


def all_settled(numbers: dict[str, int]) -> bool:
    acked = numbers["acknowledged"]
    return (numbers["stored_once"] == acked and numbers["unprocessed"] == 0 and numbers["open_requests"] == 0
            and numbers["requests"] == acked and numbers["audit_records"] == numbers["requests"]
            and numbers["notified_once"] == acked)
