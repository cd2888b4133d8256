"""Store contract: approvals and votes. Written against the `Store` protocol, for every backend."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

from remediator.incidents.approvals import Refusal
from remediator.model import ApprovalStatus, AuditRecord, Choice, DecisionReason, Outcome, TimelineEvent, Verdict
from remediator.stores.base import Store, Timer
from tests.conftest import T0
from tests.support.builders import approval as make_approval
from tests.support.builders import vote


def _timer(name: str, due_in: timedelta = timedelta(0)) -> Timer:
    return Timer(name, "test", T0 + due_in, {"name": name})


async def test_an_approval_is_stored_once_with_its_events_and_timers(store: Store) -> None:
    approval = make_approval()
    event = TimelineEvent(approval.incident_id, T0, "approval_requested", "held")
    assert await store.create_approval(approval, [event], [_timer("expire", timedelta(minutes=30))])
    # A replica replaying the same hold: nothing at all is written a second time.
    assert not await store.create_approval(approval, [event], [_timer("other")])
    assert await store.get_approval(approval.id) == approval
    assert [e.kind for e in await store.timeline(approval.incident_id)] == ["approval_requested"]
    due = await store.claim_due_timers(T0 + timedelta(hours=1), T0 + timedelta(hours=2), 10)
    assert [t.id for t in due] == ["expire"]


async def test_unknown_approvals_are_none(store: Store) -> None:
    assert await store.get_approval("APR-NOPE") is None
    assert await store.record_vote("APR-NOPE", vote(make_approval(), "alice"), T0) is None
    assert await store.close_approval("APR-NOPE", [ApprovalStatus.PENDING], ApprovalStatus.EXPIRED, T0, "x") is None


async def test_listing_filters_and_orders_newest_first(store: Store) -> None:
    first = make_approval(alert_id="a1", created_at=T0)
    second = make_approval(alert_id="a2", created_at=T0 + timedelta(minutes=5), incident_id="INC-2026-00002")
    third = make_approval(alert_id="a3", created_at=T0 + timedelta(minutes=9))
    for approval in (first, second, third):
        await store.create_approval(approval)
    await store.close_approval(third.id, [ApprovalStatus.PENDING], ApprovalStatus.EXPIRED, T0, "expired")

    assert [a.id for a in await store.list_approvals()] == [third.id, second.id, first.id]
    assert [a.id for a in await store.list_approvals(ApprovalStatus.PENDING)] == [second.id, first.id]
    assert [a.id for a in await store.list_approvals(incident_id="INC-2026-00002")] == [second.id]
    window = await store.list_approvals(since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=9))
    assert [a.id for a in window] == [second.id]
    assert len(await store.list_approvals(limit=1)) == 1


async def test_two_approvers_approve_once_and_schedule_the_run_in_the_same_transaction(store: Store) -> None:
    approval = make_approval(required=2)
    await store.create_approval(approval)
    run = _timer("run")

    first = await store.record_vote(approval.id, vote(approval, "alice"), T0, [run])
    assert first is not None and first.refusal is None and not first.decided
    assert first.approval.status is ApprovalStatus.PENDING and first.approval.approvers == ("alice",)
    assert await store.claim_due_timers(T0, T0 + timedelta(minutes=1), 10) == []  # not approved yet

    second = await store.record_vote(approval.id, vote(approval, "bob", at=T0 + timedelta(minutes=2)),
                                     T0 + timedelta(minutes=2), [run])
    assert second is not None and second.decided
    stored = await store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.APPROVED
    assert stored.approvers == ("alice", "bob") and stored.decided_at == T0 + timedelta(minutes=2)
    assert [t.id for t in await store.claim_due_timers(T0 + timedelta(minutes=2), T0 + timedelta(hours=1), 10)] \
        == ["run"]
    kinds = [e.kind for e in await store.timeline(approval.incident_id)]
    assert kinds == ["approval_vote", "approval_vote", "approval_approved"]


async def test_refused_votes_change_nothing(store: Store) -> None:
    approval = make_approval(required=2)
    await store.create_approval(approval)
    await store.record_vote(approval.id, vote(approval, "alice"), T0)
    cases = [
        (vote(approval, "alice"), T0, Refusal.ALREADY_VOTED),
        (vote(approval, "bob", plan="0" * 64), T0, Refusal.STALE_PLAN),
        (vote(approval, "policy:api-redeploy"), T0, Refusal.REQUESTER),
        (vote(approval, "api-redeploy"), T0, Refusal.REQUESTER),
        (vote(approval, "bob"), approval.expires_at, Refusal.EXPIRED),
    ]
    for given, now, refusal in cases:
        effect = await store.record_vote(approval.id, given, now, [_timer("run")])
        assert effect is not None and effect.refusal is refusal, given
    stored = await store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING and stored.approvers == ("alice",)
    assert len(await store.timeline(approval.incident_id)) == 1  # alice's vote only
    assert await store.claim_due_timers(T0 + timedelta(days=1), T0 + timedelta(days=2), 10) == []


async def test_one_rejection_closes_it_and_later_votes_are_refused(store: Store) -> None:
    approval = make_approval(required=2)
    await store.create_approval(approval)
    rejected = await store.record_vote(approval.id, vote(approval, "carol", Choice.REJECT, reason="wrong target"), T0)
    assert rejected is not None and rejected.approval.status is ApprovalStatus.REJECTED
    late = await store.record_vote(approval.id, vote(approval, "alice"), T0)
    assert late is not None and late.refusal is Refusal.NOT_PENDING
    stored = await store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.REJECTED
    assert [(v.by, v.choice, v.reason) for v in stored.votes] == [("carol", Choice.REJECT, "wrong target")]


async def test_concurrent_votes_count_the_quorum_once(store: Store) -> None:
    approval = make_approval(required=2)
    await store.create_approval(approval)
    voters = ["alice", "alice", "bob", "carol"]
    effects = await asyncio.gather(*(store.record_vote(approval.id, vote(approval, who), T0, [_timer("run")])
                                     for who in voters))
    # Whatever order a backend serialises them in: two votes count, one of them decides, the
    # other two are refused (a repeat, or a vote after the decision).
    refused = [e.refusal for e in effects if e is not None and e.refusal is not None]
    assert len(refused) == 2 and set(refused) <= {Refusal.ALREADY_VOTED, Refusal.NOT_PENDING}
    assert sum(1 for e in effects if e is not None and e.decided) == 1
    stored = await store.get_approval(approval.id)
    assert stored is not None and len(stored.votes) == 2 and stored.status is ApprovalStatus.APPROVED


async def test_close_is_compare_and_set(store: Store) -> None:
    approval = make_approval()
    await store.create_approval(approval)
    later = T0 + timedelta(minutes=30)
    expired = await store.close_approval(approval.id, [ApprovalStatus.PENDING], ApprovalStatus.EXPIRED, later,
                                         "nobody decided in 30 minutes")
    assert expired is not None and expired.status is ApprovalStatus.EXPIRED and expired.decided_at == later
    again = await store.close_approval(approval.id, [ApprovalStatus.PENDING], ApprovalStatus.NO_LONGER_NEEDED,
                                       later, "resolved")
    assert again is None
    stored = await store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.EXPIRED
    assert stored.detail == "nobody decided in 30 minutes"


async def test_an_approved_approval_closed_later_keeps_its_decision_time(store: Store) -> None:
    approval = make_approval()
    await store.create_approval(approval)
    await store.record_vote(approval.id, vote(approval, "alice"), T0 + timedelta(minutes=1))
    closed = await store.close_approval(approval.id, [ApprovalStatus.APPROVED], ApprovalStatus.NO_LONGER_NEEDED,
                                        T0 + timedelta(minutes=3), "alert resolved before it ran")
    assert closed is not None and closed.decided_at == T0 + timedelta(minutes=1)


def _audit(request_id: str, outcome: Outcome) -> AuditRecord:
    return AuditRecord(
        request_id=request_id, at=T0, incident_id="INC-2026-00001", alert_id="alert-1", policy="api-redeploy",
        action="notify.webhook", target="notify:oncall", params={}, plan_hash="h", mode="enforce",
        verdict=Verdict.ALLOW, decision_reason=DecisionReason.APPROVED, decision_detail="", outcome=outcome,
        detail={"error": "boom"} if outcome is Outcome.FAILED else {},
    )


async def test_the_outcome_of_an_approved_run_is_written_once(store: Store) -> None:
    approval = make_approval()
    await store.create_approval(approval)
    # Not approved yet: nothing is written.
    unchanged = await store.record_approval_outcome(approval.id, _audit("run-1", Outcome.SUCCEEDED))
    assert unchanged is not None and unchanged.outcome is None
    await store.record_vote(approval.id, vote(approval, "alice"), T0)
    first = await store.record_approval_outcome(approval.id, _audit("run-1", Outcome.FAILED))
    assert first is not None and first.outcome is Outcome.FAILED and first.run_request_id == "run-1"
    assert first.detail == "failed: boom"
    second = await store.record_approval_outcome(approval.id, _audit("run-2", Outcome.SUCCEEDED))
    assert second == first
    assert await store.record_approval_outcome("APR-NOPE", _audit("run-1", Outcome.FAILED)) is None


async def test_votes_keep_their_order_and_fields(store: Store) -> None:
    approval = dataclasses.replace(make_approval(required=3))
    await store.create_approval(approval)
    for minute, who in enumerate(["zed", "amy"]):
        at = T0 + timedelta(minutes=minute)
        await store.record_vote(approval.id, vote(approval, who, at=at, reason=f"ok {who} <b>"), at)
    stored = await store.get_approval(approval.id)
    assert stored is not None
    assert [(v.by, v.reason, v.at) for v in stored.votes] == [
        ("zed", "ok zed <b>", T0), ("amy", "ok amy <b>", T0 + timedelta(minutes=1))]
