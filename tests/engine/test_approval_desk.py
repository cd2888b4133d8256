"""Approvals end to end on the engine: hold → approval → votes → the approved run (or nothing).

Real SQLite store, fake clock, a test action that records what it is asked to do, and a real
HTTP sink for notifications.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from remediator.clock import FakeClock
from remediator.engine.pipeline import Engine
from remediator.errors import StoreUnavailable
from remediator.incidents.approvals import Refusal
from remediator.model import (
    Alert,
    Approval,
    ApprovalStatus,
    Choice,
    DecisionReason,
    Outcome,
    Phase,
    Verdict,
    Vote,
)
from remediator.stores.coordination import KillSwitch
from tests.conftest import T0
from tests.support import builders
from tests.support.engine import Harness, HarnessFactory
from tests.support.store_calls import correlate

POLICIES = """
policies:
  - name: api-restart
    description: The API is down on a ward system; restart it.
    severity: P1
    match: {alertname: ApiDown}
    actions:
      - type: test.restart
        params: {service: "{labels.service}"}
"""

DOWN = builders.alert("ApiDown", fingerprint="fp-api", group="api", labels={"service": "erp-api"})
RESOLVED = builders.alert("ApiDown", fingerprint="fp-api", group="api", labels={"service": "erp-api"},
                          status="resolved")


async def _held(h: Harness, alert: Alert = DOWN) -> Approval:
    await h.deliver(alert)
    pending = await h.deps.store.list_approvals(ApprovalStatus.PENDING)
    assert len(pending) == 1
    return pending[0]


def _vote(approval: Approval, by: str, choice: Choice = Choice.APPROVE, plan: str | None = None,
          at: timedelta = timedelta(0)) -> Vote:
    return builders.vote(approval, by, choice, plan=plan, at=T0 + at, reason=f"{by} checked the ward systems")


async def test_a_p1_action_waits_for_people_and_they_are_told(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)

    assert h.action.runs == []  # held: nothing ran
    assert (approval.action, approval.target, dict(approval.params)) == ("test.restart", "svc:erp-api",
                                                                        {"service": "erp-api"})
    assert approval.requested_by == "policy:api-restart" and approval.required == 1
    assert approval.expires_at == T0 + timedelta(minutes=30)
    record = await h.deps.store.get_audit(approval.request_id)
    assert record is not None and record.verdict is Verdict.HOLD
    [posted] = h.sink.to("oncall")
    assert posted["link"] == "https://remediator.hospital.example/console/approvals"
    assert approval.id in posted["title"] and "svc:erp-api" in posted["title"]
    assert "approval_requested" in await h.kinds(approval.incident_id)


async def test_an_approved_plan_runs_once_in_the_daemon(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)

    answer = await h.engine.approvals.vote(approval.id, _vote(approval, "alice"))

    assert answer.refusal is None and answer.approval is not None
    assert answer.approval.status is ApprovalStatus.APPROVED and answer.approval.outcome is Outcome.SUCCEEDED
    assert h.action.runs == ["erp-api"]
    run = await h.deps.store.get_audit(answer.approval.run_request_id)
    assert run is not None and run.origin == f"approval:{approval.id}"
    assert (run.verdict, run.decision_reason, run.outcome) == (Verdict.ALLOW, DecisionReason.APPROVED,
                                                               Outcome.SUCCEEDED)
    incident = await h.deps.store.get_incident(approval.incident_id)
    assert incident is not None and incident.phase is Phase.CONTAIN
    # Nothing runs it again later (its safety-net timer is cancelled once the outcome is known).
    await h.tick(timedelta(minutes=10))
    assert h.action.runs == ["erp-api"]


async def test_two_distinct_approvers_are_needed_for_p1_when_configured(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, approvals={"approvers_by_severity": {"P1": 2}})
    approval = await _held(h)
    assert approval.required == 2

    first = await h.engine.approvals.vote(approval.id, _vote(approval, "alice"))
    assert first.approval is not None and first.approval.status is ApprovalStatus.PENDING
    again = await h.engine.approvals.vote(approval.id, _vote(approval, "alice"))
    assert again.refusal is Refusal.ALREADY_VOTED
    assert h.action.runs == []  # one approver is not enough, however often they say so

    second = await h.engine.approvals.vote(approval.id, _vote(approval, "bob", at=timedelta(minutes=3)))
    assert second.approval is not None and second.approval.approvers == ("alice", "bob")
    assert second.approval.outcome is Outcome.SUCCEEDED and h.action.runs == ["erp-api"]


async def test_a_stale_plan_hash_is_refused_and_changes_nothing(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)
    # Alice approved what she saw earlier: a plan whose hash is not this one.
    answer = await h.engine.approvals.vote(approval.id, _vote(approval, "alice", plan="e" * 64))
    assert answer.refusal is Refusal.STALE_PLAN and approval.plan_hash in answer.detail
    stored = await h.deps.store.get_approval(approval.id)
    assert stored == approval  # no vote, no status change
    assert h.action.runs == []


async def test_the_requester_never_counts(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)
    answer = await h.engine.approvals.vote(approval.id, _vote(approval, "policy:api-restart"))
    assert answer.refusal is Refusal.REQUESTER and h.action.runs == []


async def test_a_rejection_closes_it_and_nothing_runs(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, approvals={"approvers_by_severity": {"P1": 2}})
    approval = await _held(h)
    await h.engine.approvals.vote(approval.id, _vote(approval, "alice"))
    answer = await h.engine.approvals.vote(approval.id, _vote(approval, "bob", Choice.REJECT))
    assert answer.approval is not None and answer.approval.status is ApprovalStatus.REJECTED
    late = await h.engine.approvals.vote(approval.id, _vote(approval, "carol"))
    assert late.refusal is Refusal.NOT_PENDING and h.action.runs == []
    # Decided: neither its reminder nor its expiry tells anyone anything (escalations go on).
    await h.tick(timedelta(hours=1))
    assert len(h.sink.to("oncall")) == 1


async def test_an_alert_resolved_before_approval_closes_it_and_nothing_runs(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)
    await h.deliver(RESOLVED)  # the engine closes what waited for this alert

    stored = await h.deps.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.NO_LONGER_NEEDED
    late = await h.engine.approvals.vote(approval.id, _vote(approval, "alice"))
    assert late.refusal is Refusal.NOT_PENDING and h.action.runs == []


async def test_a_resolution_the_engine_has_not_processed_yet_is_checked_at_approval(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(POLICIES, approvals={"approvers_by_severity": {"P1": 2}})
    approval = await _held(h)
    await h.engine.approvals.vote(approval.id, _vote(approval, "alice"))
    # The resolution is recorded and correlated, but its follow-up has not run (a busy worker).
    await h.deps.store.record_alerts([RESOLVED], h.clock.now())
    await correlate(h.deps.store, RESOLVED, approval.severity, h.clock.now())

    answer = await h.engine.approvals.vote(approval.id, _vote(approval, "bob"))

    assert answer.approval is not None and answer.approval.status is ApprovalStatus.NO_LONGER_NEEDED
    assert answer.approval.outcome is None and h.action.runs == []


async def test_the_precheck_runs_again_before_the_approved_plan(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)
    h.action.precheck_says = "erp-api is being deployed by a person right now"
    answer = await h.engine.approvals.vote(approval.id, _vote(approval, "alice"))
    assert answer.approval is not None and answer.approval.outcome is Outcome.FAILED
    assert "being deployed" in answer.approval.detail and h.action.runs == []


async def test_other_guardrails_still_apply_to_an_approved_plan(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)
    await h.deps.coordination.set_kill_switch(KillSwitch(True, "ops", "database maintenance"))
    answer = await h.engine.approvals.vote(approval.id, _vote(approval, "alice"))
    assert answer.approval is not None and answer.approval.outcome is Outcome.NOT_RUN
    assert "kill_switch" in answer.approval.detail and h.action.runs == []


async def test_a_reminder_goes_out_before_expiry(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)
    await h.tick(timedelta(minutes=19))
    assert len(h.sink.to("oncall")) == 1  # only the first announcement so far
    await h.tick(timedelta(minutes=1))  # 10 minutes before expiry
    reminder = h.sink.to("oncall")[-1]
    assert "reminder: expires in 10 min" in reminder["text"]
    assert reminder["link"] == "https://remediator.hospital.example/console/approvals"
    assert "approval_reminder" in await h.kinds(approval.incident_id)


async def test_expiry_fails_closed_and_escalates(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, approvals={"expire_after": "20m", "remind_before": "5m"})
    approval = await _held(h)
    await h.tick(timedelta(minutes=20))

    stored = await h.deps.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.EXPIRED and h.action.runs == []
    assert "expired" in h.sink.to("oncall")[-1]["text"]
    # 20 minutes into a P1: the matrix's first level (head of department) is in charge.
    assert not any(approval.id in body["text"] for body in h.sink.to("team-lead"))
    assert any(approval.id in body["text"] for body in h.sink.to("hod"))
    kinds = await h.kinds(approval.incident_id)
    assert "approval_expired" in kinds and "escalated" in kinds
    late = await h.engine.approvals.vote(approval.id, _vote(approval, "alice", at=timedelta(minutes=21)))
    assert late.refusal is Refusal.NOT_PENDING and h.action.runs == []


async def test_expiry_scheduled_before_a_restart_fires_after_it(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)
    await h.deps.store.close()  # the daemon stops (or dies)

    later = FakeClock(T0 + timedelta(minutes=45))
    restarted = await make_harness(POLICIES, holder="replica-a-restarted", clock=later)
    assert await restarted.engine.timers.fire_due() >= 2  # the reminder, the expiry (and matrix steps)
    stored = await restarted.deps.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.EXPIRED
    assert ["reminder" in b["text"] for b in h.sink.to("oncall")] == [False, True, False]  # new, due, expired
    assert await restarted.engine.timers.fire_due() == 0  # fired once, never again


async def test_a_hold_recorded_before_a_crash_gets_its_approval_on_replay(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)

    async def crash_before_approval(*_: object) -> None:
        return None  # the process died after the audit record, before the approval was written

    h.engine = Engine(h.deps, on_hold=crash_before_approval)
    await h.deliver(DOWN)
    assert await h.deps.store.list_approvals() == []

    h.engine = Engine(h.deps)  # after the restart the unprocessed alert is replayed
    await h.engine.process([DOWN])
    [approval] = await h.deps.store.list_approvals()
    assert approval.status is ApprovalStatus.PENDING and len(h.sink.to("oncall")) == 1
    await h.engine.process([DOWN])  # and replayed once more: still one approval, one announcement
    assert len(await h.deps.store.list_approvals()) == 1 and len(h.sink.to("oncall")) == 1


async def test_an_approval_whose_deciding_process_died_runs_from_its_timer(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES)
    approval = await _held(h)
    # The vote was committed (with its run timer) but the process died before running the plan.
    run_timer = h.engine.approvals.run_timer(approval.id)
    effect = await h.deps.store.record_vote(approval.id, _vote(approval, "alice"), h.clock.now(), [run_timer])
    assert effect is not None and effect.decided and h.action.runs == []

    await h.tick(timedelta(minutes=7))
    assert h.action.runs == ["erp-api"]
    stored = await h.deps.store.get_approval(approval.id)
    assert stored is not None and stored.outcome is Outcome.SUCCEEDED
    await h.tick(timedelta(minutes=7))
    assert h.action.runs == ["erp-api"]


async def test_an_approved_runs_audit_record_kept_through_a_store_outage_is_written_when_it_returns(
    make_harness: HarnessFactory,
) -> None:
    """The store refuses the approved run's audit record once (an outage at the end of the run):
    the record must wait in the engine and be written later, never lost with its request left open."""
    h = await make_harness(POLICIES)
    approval = await _held(h)
    store = h.deps.store
    finish = store.finish_requests
    refused: list[int] = []

    async def refuse_once(*args: Any, **kwargs: Any) -> None:
        if not refused:
            refused.append(1)
            raise StoreUnavailable("the store is down")
        await finish(*args, **kwargs)

    setattr(store, "finish_requests", refuse_once)  # noqa: B010 - a fault on the real store
    answer = await h.engine.approvals.vote(approval.id, _vote(approval, "alice"))
    assert answer.approval is not None and h.action.runs == ["erp-api"]
    assert refused and await store.get_audit(answer.approval.run_request_id) is None  # not yet written

    await h.engine.stop()  # the store is back: stopping writes what waited, as the backlog loop does
    run = await store.get_audit(answer.approval.run_request_id)
    assert run is not None and (run.verdict, run.outcome) == (Verdict.ALLOW, Outcome.SUCCEEDED)
    assert h.action.runs == ["erp-api"]  # written, not run again
