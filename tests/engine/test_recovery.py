"""Recovery (issue 12): what a crash or a store outage interrupted is decided again, exactly once.

Two harnesses on one SQLite file are two replicas; closing a store is its process dying (its
liveness lock goes with it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest

from remediator.errors import ClaimLost, StoreUnavailable
from remediator.model import Alert, DecisionReason, Outcome, Verdict
from remediator.policy.plan import PlannedStep
from remediator.stores.base import Observation, RequestState
from remediator.stores.sqlite.store import SqliteStore
from tests.conftest import T0
from tests.support import builders
from tests.support.engine import Harness, HarnessFactory
from tests.support.harness import eventually

POLICIES = """
policies:
  - name: api-restart
    severity: P3
    match: {alertname: ApiDown}
    actions:
      - type: test.restart
        params: {service: erp-api}
"""
GUARDS = {"hold_severities": [], "flap": {"max": 6, "window": "30m"}}


def api_down(minute: int = 0, status: str = "firing") -> Alert:
    return builders.alert("ApiDown", fingerprint="fp-api", group="api", status=status,
                          starts_at=T0 + timedelta(minutes=minute))


async def claim_and_die(h: Harness) -> PlannedStep:
    """What kill -9 after the claim and before the action started leaves: the alert processed
    (or about to be replayed), its request claimed by a holder that is gone."""
    alert = api_down()
    store, now = h.deps.store, h.clock.now()
    await store.record_alerts([alert], now)
    [match] = h.deps.policies.match(alert)
    [correlation] = await store.correlate_many([Observation(alert, match.policy.severity, ("api-restart",))], now)
    assert correlation.incident is not None
    [planned] = h.engine.plan(match, correlation.incident)
    assert await store.claim_requests([planned.request], now) == [True]
    await store.mark_processed([alert.id], now)
    await store.close()
    return planned


async def test_a_claim_whose_holder_died_is_decided_by_a_survivor_exactly_once(make_harness: HarnessFactory) -> None:
    dying = await make_harness(POLICIES, holder="replica-dead", guardrails=GUARDS)
    planned = await claim_and_die(dying)
    survivors = [await make_harness(POLICIES, holder=f"replica-{n}", clock=dying.clock, action=dying.action,
                                    guardrails=GUARDS) for n in ("b", "c")]
    dying.clock.advance(timedelta(seconds=1))
    decided = [await s.engine.recovery.sweep() for s in survivors]
    assert decided == [1, 0], "exactly one survivor takes the released claim"
    assert dying.action.runs == ["erp-api"]  # it ran once, by replica-b
    store = survivors[0].deps.store
    records = [r for r in await store.list_audit() if r.request_id == planned.request.id]
    assert [(r.verdict, r.outcome) for r in records] == [(Verdict.ALLOW, Outcome.SUCCEEDED)]
    stored = await store.get_request(planned.request.id)
    assert stored is not None and (stored.state, stored.holder) == (RequestState.DONE, "replica-b")
    # Later sweeps, anywhere, find nothing more to do.
    dying.clock.advance(timedelta(seconds=10))
    assert [await s.engine.recovery.sweep() for s in survivors] == [0, 0]
    assert dying.action.runs == ["erp-api"]


async def test_a_restart_decides_what_the_previous_process_claimed(make_harness: HarnessFactory) -> None:
    """kill -9 of a single daemon between claim and start, then a restart (a new holder)."""
    dying = await make_harness(POLICIES, holder="daemon-run-1", guardrails=GUARDS)
    planned = await claim_and_die(dying)
    restarted = await make_harness(POLICIES, holder="daemon-run-2", clock=dying.clock, action=dying.action,
                                   guardrails=GUARDS)
    dying.clock.advance(timedelta(seconds=1))
    await restarted.engine.start()
    try:
        assert dying.action.runs == ["erp-api"]
        record = await restarted.deps.store.get_audit(planned.request.id)
        assert record is not None and record.outcome is Outcome.SUCCEEDED
    finally:
        await restarted.engine.stop()


async def reopen_as(kind: type[SqliteStore], h: Harness) -> SqliteStore:
    """The harness's store file, opened again through a store that misbehaves as `kind` says."""
    assert isinstance(h.deps.store, SqliteStore)
    store = kind(h.deps.store.path, holder="replica-a")
    await h.deps.store.close()
    await store.open()
    h.deps.store = store
    return store


class LivenessNotBackYet(SqliteStore):
    """The store refuses the first starts as PostgreSQL does while this replica's liveness session
    reconnects after an outage (`claim_lost` in issue 12)."""

    refusals = 1

    async def start_execution(self, request_id: str, now: datetime) -> None:
        if self.refusals:
            self.refusals -= 1
            raise ClaimLost(f"{self.holder}'s liveness session is being re-established")
        await super().start_execution(request_id, now)


async def test_a_claim_lost_while_the_store_came_back_is_decided_again(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=GUARDS)
    store = await reopen_as(LivenessNotBackYet, h)
    alert = api_down()
    await h.deliver(alert)
    # Refused at start: nothing ran, nothing is recorded, and the alert counts as processed.
    assert h.action.runs == [] and await store.list_audit() == [] and await store.count_unprocessed() == 0
    h.clock.advance(timedelta(seconds=1))
    assert await h.engine.recovery.sweep() == 1
    assert h.action.runs == ["erp-api"]
    [record] = await store.list_audit()
    assert (record.verdict, record.outcome) == (Verdict.ALLOW, Outcome.SUCCEEDED)
    h.clock.advance(timedelta(seconds=1))
    assert await h.engine.recovery.sweep() == 0 and h.action.runs == ["erp-api"]
    await store.close()


class StartAnswerLost(SqliteStore):
    """The start is committed, and then the connection drops before its answer arrives."""

    losses = 1

    async def start_execution(self, request_id: str, now: datetime) -> None:
        await super().start_execution(request_id, now)
        if self.losses:
            self.losses -= 1
            raise StoreUnavailable("connection was closed in the middle of operation")


async def test_a_start_whose_answer_was_lost_is_decided_again_not_left_running(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=GUARDS)
    store = await reopen_as(StartAnswerLost, h)
    await h.deliver(api_down())
    # Marked running in the store, never run, nothing recorded: the holder lives, so no reconcile
    # would ever touch it; only this process knows nothing ran.
    assert h.action.runs == [] and await store.list_audit() == []
    h.clock.advance(timedelta(seconds=1))
    assert await h.engine.recovery.sweep() == 1
    assert h.action.runs == ["erp-api"]
    [record] = await store.list_audit()
    assert (record.verdict, record.outcome) == (Verdict.ALLOW, Outcome.SUCCEEDED)
    stored = await store.get_request(record.request_id)
    assert stored is not None and stored.state is RequestState.DONE
    assert await h.engine.recovery.sweep() == 0
    await store.close()


async def test_the_flap_guard_counts_state_changes_not_firings(make_harness: HarnessFactory) -> None:
    """With `max: 6`: firing, resolved, firing... — the 7th state change (the 4th firing) and every
    later one is suppressed, and a replayed occurrence is not counted twice."""
    h = await make_harness(POLICIES, guardrails=GUARDS)
    for i in range(11):
        await h.deliver(api_down(i // 2 * 10, "resolved" if i % 2 else "firing"))
    records = list(reversed(await h.deps.store.list_audit()))
    assert [(r.verdict, r.decision_reason) for r in records] == \
        [(Verdict.ALLOW, DecisionReason.ALLOWED)] * 3 + [(Verdict.DENY, DecisionReason.FLAPPING)] * 3
    assert h.action.runs == ["erp-api"] * 3
    assert "changed state 7 times" in records[3].decision_detail
    # Processing the first occurrence again (a replay after a crash) counts nothing more.
    assert await h.engine.flap_count(api_down(0)) == 11


class SlowCommit(SqliteStore):
    """A store whose commits take longer than the acknowledgement may wait."""

    async def record_alerts(self, alerts: Sequence[Alert], lease_until: datetime) -> list[bool]:
        await asyncio.sleep(0.5)
        return await super().record_alerts(alerts, lease_until)


async def test_an_acknowledgement_is_bounded_and_a_late_write_is_still_queued(make_harness: HarnessFactory) -> None:
    """Past `store.ack_timeout` the sender is refused (503, it retries); the write goes on, and what
    it stored is queued as usual, so the retry is a duplicate and the alert is processed once."""
    h = await make_harness(POLICIES, guardrails=GUARDS, store={"ack_timeout": "100ms"})
    store = await reopen_as(SlowCommit, h)
    alert = api_down()
    with pytest.raises(StoreUnavailable, match=r"store\.ack_timeout"):
        await h.engine.record([alert])
    assert h.engine.queue.qsize() == 0
    await eventually(lambda: h.engine.queue.qsize() == 1)  # the write landed after the refusal
    assert h.engine.queue.get_nowait().id == alert.id
    assert await store.count_unprocessed() == 1  # stored once; the sender's retry is a duplicate
    await store.close()
