"""Production faults, decided and tested on real servers behind a TCP proxy the test cuts.

- PostgreSQL unreachable: webhooks answer 503, /readyz fails, nothing is acknowledged; when it
  returns the pool reconnects and the backlog feeder finishes what was interrupted, never acting twice.
- Redis unreachable: intake goes on; actions that need shared limits are denied with
  `coordination_unavailable` (never run without them); it recovers by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from remediator.model import AuditRecord, DecisionReason, Outcome, Verdict
from tests.support.faults import Daemon, Sender, all_settled, fault_daemon, settled
from tests.support.harness import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def daemon(
    tmp_path: Path, pg_dsn: str, pg_schema: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[Daemon]:
    async with fault_daemon(tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix,
                            engine={"alert_lease": "1s", "reconcile_interval": "1s"}) as started:
        yield started


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


# -- under load: every fault, load before, during and after (issue 12) -------------------------------
FAULT_SECONDS = 5.0
ACK_TIMEOUT = 2.0


async def _inject(daemon: Daemon, fault: str) -> None:
    """Hold the fault for FAULT_SECONDS while the load goes on."""
    if fault == "pg-refuse":
        await daemon.pg.cut("refuse")
    elif fault == "pg-stall":
        daemon.pg.stall()
    elif fault == "pg-slow":
        daemon.pg.slow(0.2)
    elif fault == "redis-refuse":
        await daemon.redis.cut("refuse")
    elif fault == "redis-stall":
        daemon.redis.stall()
    ends = time.monotonic() + FAULT_SECONDS
    while time.monotonic() < ends:
        if fault.startswith("pg-cut"):  # every transaction's COMMIT, lost before or after the server ran it
            daemon.pg.cut_at(b"COMMIT", after=fault == "pg-cut-after-commit")
        await asyncio.sleep(0.3)
    await daemon.pg.restore()
    await daemon.redis.restore()


@pytest.mark.parametrize("fault", ["pg-refuse", "pg-stall", "pg-cut-before-commit", "pg-cut-after-commit",
                                   "pg-slow", "redis-refuse", "redis-stall"])
async def test_under_load_every_acknowledged_alert_is_acted_on_exactly_once_after_a_fault(
    tmp_path: Path, pg_dsn: str, pg_schema: str, redis_url: str, redis_prefix: str, fault: str,
) -> None:
    """Alerts posted before, during and after the fault by a sender that retries 5xx, as Alertmanager
    does; default leases and reconcile interval. Once the fault ends, within 30 s: every acknowledged
    alert is stored once and processed, and its notification (one request each) ran exactly once,
    with exactly one audit record; no request is left open."""
    async with fault_daemon(tmp_path, pg_dsn, pg_schema, redis_url, redis_prefix,
                            store={"ack_timeout": f"{ACK_TIMEOUT}s"}) as daemon:
        sender = Sender(daemon, fault)
        sending = asyncio.create_task(sender.run())
        await asyncio.sleep(1.5)
        await _inject(daemon, fault)
        recovered = time.monotonic()
        await asyncio.sleep(1.5)
        sender.stop_new()
        await asyncio.wait_for(sending, 30)

        async def check() -> dict[str, int] | None:
            numbers = await settled(pg_dsn, pg_schema, daemon.receiver, sender.acked)
            return numbers if all_settled(numbers) else None

        try:
            numbers = await eventually(check, timeout=30, interval=0.25)
        finally:
            last = await settled(pg_dsn, pg_schema, daemon.receiver, sender.acked)
            print(f"\nfault={fault} sent={sender.sent} refused={sender.refused} slowest_answer="
                  f"{sender.slowest:.2f}s settle_after_recovery={time.monotonic() - recovered:.1f}s {last}")
        assert numbers["acknowledged"] == sender.sent and numbers["notified_twice"] == 0
        assert numbers["unknown"] == 0  # nothing was interrupted mid-action here
        # The acknowledgement path is bounded: an answer (200 or 503) within store.ack_timeout and a
        # little scheduling, never the store's own minutes.
        assert sender.slowest < ACK_TIMEOUT + 2
