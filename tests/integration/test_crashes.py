"""Crashes at every point of a request's life, and kill -9 at random moments (issue 12).

The daemon runs as users run it, in processes of its own; the crash points are those of the test
build (`tests/support/crashpoints.py`, chosen by CRASH_AT), which ends the process with no cleanup
the first time a notification request reaches the point. A plain daemon then starts on the same
store, and within 30 s: the alert is processed; a request that never started is decided and run
exactly once, with one audit record; one that had started ends `unknown`, escalated, never re-run.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediator.model import AuditRecord, Outcome
from remediator.settings import StoreSettings
from remediator.stores.base import RequestState, Store
from remediator.stores.postgres.store import PostgresStore
from remediator.stores.sqlite.store import SqliteStore
from tests.support.crashpoints import CRASHED, POINTS
from tests.support.daemons import DaemonProcess
from tests.support.faults import Sender, settled
from tests.support.harness import AM_HEADERS, Receiver, am_alert, am_body, eventually, notify_policy, write_policies

pytestmark = pytest.mark.integration
PATH = "/webhooks/alertmanager"
STARTED = {"run", "before-audit"}  # the action may have touched its target: unknown, never re-run


@dataclass
class Site:
    """One store (SQLite file or PostgreSQL schema), the daemon settings on it, an inspector."""

    folder: Path
    settings: dict[str, Any]
    receiver: Receiver
    store: Store

    def daemon(self, name: str, crash_at: str = "", text: str = "") -> DaemonProcess:
        if not crash_at:
            return DaemonProcess(name, self.settings, self.folder)
        return DaemonProcess(name, self.settings, self.folder, module="tests.support.crashpoints",
                             env={"CRASH_AT": crash_at, "CRASH_TEXT": text})

    @property
    def replicated(self) -> bool:
        return isinstance(self.store, PostgresStore)

    @property
    def name(self) -> str:
        return "postgres" if self.replicated else "sqlite"

    async def settled(self, point: str, within: float = 30) -> tuple[RequestState, Outcome, list[str]]:
        """The one audit record of the request of `occ-<point>` (waited for), its state, its events."""
        async def found() -> list[AuditRecord]:
            return [r for r in await self.store.list_audit(limit=1000) if r.params.get("text") == f"occ-{point}"]

        [record] = await eventually(found, timeout=within, interval=0.1)
        stored = await self.store.get_request(record.request_id)
        assert stored is not None
        return stored.state, record.outcome, [e.kind for e in await self.store.timeline(record.incident_id)]


@pytest.fixture(params=["sqlite", "postgres"])
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    receiver = Receiver()
    settings: dict[str, Any] = {
        "mode": "enforce",
        "policies_dir": str(write_policies(tmp_path / "policies", [notify_policy()])),
        "alertmanager": {"bearer_tokens": ["am-secret"]},
        "notify": {"receiver": {"url": await receiver.start(), "timeout": "10s"}},
        "engine": {"retry_attempts": 1},
        "intake": {"processes": 0},  # the crash points are the core's; one process starts faster
        "log": {"level": "warning"},
    }
    store: Store
    if request.param == "postgres":
        dsn, schema = request.getfixturevalue("pg_dsn"), request.getfixturevalue("pg_schema")
        settings["store"] = {"url": dsn, "schema_name": schema, "pool_min": 1, "pool_max": 4}
        settings["coordination"] = {"url": request.getfixturevalue("redis_url"),
                                    "key_prefix": request.getfixturevalue("redis_prefix")}
        store = PostgresStore(StoreSettings(url=dsn, schema_name=schema, pool_min=1, pool_max=2), holder="inspector")
    else:
        settings["store"] = {"url": f"sqlite:///{tmp_path / 'remediator.db'}"}
        store = SqliteStore(tmp_path / "remediator.db", holder="inspector", release_claims=False)
    await store.open()
    try:
        yield Site(tmp_path, settings, receiver, store)
    finally:
        await store.close()
        await receiver.close()


async def _post(daemon: DaemonProcess, occurrence: str) -> int:
    async with aiohttp.ClientSession() as http, http.post(
            daemon.url + PATH, data=am_body(f"g-{occurrence}", [am_alert("Occurrence", occurrence)]),
            headers=AM_HEADERS) as response:
        return response.status


async def test_a_crash_at_each_point_of_a_request_is_settled_exactly_once(site: Site) -> None:
    """One process per crash point, each crashing on its own occurrence. SQLite (one process by
    design): the next process to start (the last a plain daemon) settles what the previous one
    left, within 30 s of being ready. PostgreSQL: a replica that keeps running settles it within
    10 s of the crash, with the default 2-minute alert lease, before anything is restarted."""
    survivor = site.daemon("survivor") if site.replicated else None
    running = [survivor] if survivor is not None else []
    if survivor is not None:
        await survivor.start()
    try:
        left = ""
        for point in [*POINTS, ""]:
            daemon = site.daemon(f"crash-{point or 'none'}", crash_at=point, text=f"occ-{point}")
            if point or survivor is None:
                await daemon.start()
                running.append(daemon)
            if left:
                await _settled(site, left, time.monotonic(), "the next start")
            if not point:
                break
            assert await _post(daemon, f"occ-{point}") == 200  # acknowledged: stored before the crash
            assert daemon.process is not None
            assert await asyncio.to_thread(daemon.process.wait, 30) == CRASHED, daemon.log()
            assert f'"point": "{point}"' in daemon.log()
            running.remove(daemon)
            left = point
            if survivor is not None:
                await _settled(site, left, time.monotonic(), "the crash", within=10)
                left = ""
        assert await site.store.count_unprocessed() == 0
        assert len(await site.store.list_audit(limit=1000)) == len(POINTS)  # one record per request, no more
        assert sum(site.receiver.received.values()) == len(POINTS) - 1  # `run` crashed before notifying
    finally:
        await asyncio.gather(*(d.stop() for d in running))


async def _settled(site: Site, point: str, since: float, after: str, within: float = 30) -> None:
    state, outcome, events = await site.settled(point, within)
    notified = site.receiver.received[f"occ-{point}"]
    print(f"\n{site.name} crash point={point}: settled {time.monotonic() - since:.1f}s after {after}, "
          f"state={state} outcome={outcome} notified={notified}")
    if point in STARTED:  # unknown, escalated, never re-run
        assert (state, outcome) == (RequestState.UNKNOWN, Outcome.UNKNOWN) and "escalated" in events
        assert notified == (1 if point == "before-audit" else 0)
    else:  # decided again and run, exactly once
        assert (state, outcome) == (RequestState.DONE, Outcome.SUCCEEDED) and "escalated" not in events
        await eventually(lambda: site.receiver.received[f"occ-{point}"] == 1, timeout=5)


class Replicas:
    """Posts go round the live replicas (as Alertmanager's several targets would)."""

    def __init__(self, daemons: list[DaemonProcess]) -> None:
        self.daemons = daemons
        self.turn = 0
        self.http: aiohttp.ClientSession | None = None

    async def post(self, group: str, *occurrences: str, name: str = "Occurrence") -> tuple[int, dict[str, object]]:
        assert self.http is not None
        self.turn += 1
        daemon = self.daemons[self.turn % len(self.daemons)]
        body = am_body(group, [am_alert(name, o) for o in occurrences])
        async with self.http.post(daemon.url + PATH, data=body, headers=AM_HEADERS,
                                  timeout=aiohttp.ClientTimeout(total=10)) as response:
            return response.status, {}


async def test_kill_9_at_random_moments_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, pg_dsn: str, pg_schema: str, redis_url: str, redis_prefix: str,
) -> None:
    """Two replicas on PostgreSQL under load; one of them is killed with SIGKILL at random moments
    and started again. Replay a failure with CRASH_SEED=<the printed seed>."""
    seed = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1 << 32))
    print(f"\nkill -9 seed: CRASH_SEED={seed}")
    rng = random.Random(seed)
    receiver = Receiver()
    settings: dict[str, Any] = {
        "mode": "enforce",
        "policies_dir": str(write_policies(tmp_path / "policies", [notify_policy()])),
        "store": {"url": pg_dsn, "schema_name": pg_schema, "pool_min": 1, "pool_max": 4},
        "coordination": {"url": redis_url, "key_prefix": redis_prefix},
        "alertmanager": {"bearer_tokens": ["am-secret"]},
        "notify": {"receiver": {"url": await receiver.start(), "timeout": "10s"}},
        "engine": {"retry_attempts": 1},
        "log": {"level": "warning"},
    }
    daemons = [DaemonProcess(f"replica-{i}", settings, tmp_path) for i in range(2)]
    stopping = list(daemons)
    await asyncio.gather(*(d.start() for d in daemons))
    replicas = Replicas(daemons)
    try:
        async with aiohttp.ClientSession() as http:
            replicas.http = http
            sender = Sender(replicas, f"k{seed}", every=0.04)
            sending = asyncio.create_task(sender.run())
            kills = []
            for round_ in range(2):
                await asyncio.sleep(rng.uniform(0.3, 2.0))
                victim = rng.randrange(len(daemons))
                kills.append(victim)
                daemons[victim].kill()
                # Started again on fresh ports: the killed core's intake processes take a moment to
                # notice (they end on their parent's death) and hold its port meanwhile.
                daemons[victim] = DaemonProcess(f"replica-{victim}-{round_}", settings, tmp_path)
                stopping.append(daemons[victim])
                await daemons[victim].start()
            await asyncio.sleep(1.0)
            sender.stop_new()
            await asyncio.wait_for(sending, 60)
            recovered = time.monotonic()

            async def check() -> dict[str, int] | None:
                numbers = await settled(pg_dsn, pg_schema, receiver, sender.acked)
                done = numbers["open_requests"] == 0 and numbers["unprocessed"] == 0 and \
                    numbers["requests"] == numbers["acknowledged"] == numbers["audit_records"] and \
                    numbers["notified_once"] >= numbers["finished"]
                return numbers if done else None

            try:
                numbers = await eventually(check, timeout=30, interval=0.25)
            finally:
                print(f"kill -9 seed={seed} victims={kills} sent={sender.sent} refused={sender.refused} "
                      f"settle={time.monotonic() - recovered:.1f}s "
                      f"{await settled(pg_dsn, pg_schema, receiver, sender.acked)}")
        assert numbers["stored_once"] == numbers["acknowledged"] == sender.sent
        assert numbers["notified_twice"] == 0  # nothing ran twice
        # Every request finished, or (interrupted mid-action) is unknown and was escalated.
        assert numbers["finished"] + numbers["unknown"] == numbers["requests"]
        assert numbers["escalated"] >= numbers["unknown"]
    finally:
        await asyncio.gather(*(d.stop(10) for d in stopping))
        await receiver.close()

