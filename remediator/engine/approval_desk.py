"""Where held requests wait for people: approvals, votes, reminders, expiry and the approved run.

A HOLD becomes an approval (with a reminder and an expiry timer) in one store transaction, and
people are told. Votes go through the store's `record_vote` (one transaction, the rules of
`approvals.apply_vote`). Once enough people approved, the plan runs here, in the daemon, as a
request with origin `approval:<id>`: every guardrail but the approval hold applies again, the
action's precheck runs again, and if its alert has resolved meanwhile nothing runs at all.

Expiry fails closed: nothing runs, the approval is `expired` and the incident is escalated.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from remediator.actions.base import ActionParams
from remediator.actions.notification import Notification
from remediator.clock import describe_duration
from remediator.deps import Deps
from remediator.engine.escalation import Escalation
from remediator.engine.executor import Executor
from remediator.engine.notifier import Notifier
from remediator.engine.timers import TimerLoop
from remediator.incidents import approvals
from remediator.incidents.approvals import Refusal
from remediator.model import (
    ActionRequest,
    Alert,
    Approval,
    ApprovalStatus,
    AuditRecord,
    Choice,
    Decision,
    Risk,
    TimelineEvent,
    Vote,
)
from remediator.observability import get_logger
from remediator.plaintext import one_line
from remediator.policy.model import ActionStep
from remediator.policy.plan import PlannedStep
from remediator.stores.base import Timer

log = get_logger("remediator.approvals")

REMINDER, EXPIRY, RUN = "approval_reminder", "approval_expiry", "approval_run"
# An approved plan normally runs at once, in the process that took the deciding vote. The run
# timer only matters when that process died first; it is due once any run it started would have
# finished (action timeout plus this), so whoever fires it finds its audit record, or runs it.
RUN_GRACE = timedelta(minutes=1)

AfterRun = Callable[[ActionRequest, Alert, AuditRecord], Awaitable[None]]
# Closed without a run (rejected, expired, not needed), or approved with its run found recorded already.
AfterDecided = Callable[[Approval], Awaitable[None]]


class RunInProgress(Exception):
    """Another process holds the approved run's claim and has not recorded its outcome yet."""


@dataclass(frozen=True, slots=True)
class VoteAnswer:
    """What became of a vote: the approval as it stands now, or why the vote was refused."""

    approval: Approval | None
    refusal: Refusal | None = None
    detail: str = ""


class ApprovalDesk:
    """Turns holds into approvals and decided approvals into action (or into nothing, safely)."""

    def __init__(self, deps: Deps, executor: Executor, escalation: Escalation, notifier: Notifier,
                 after_run: AfterRun, *, after_decided: AfterDecided | None = None) -> None:
        self.deps = deps
        self.executor = executor
        self.escalation = escalation
        self.notifier = notifier
        self.after_run = after_run
        self.after_decided = after_decided
        self._runs: dict[str, asyncio.Task[Approval | None]] = {}  # approval id → its run in this process

    def register(self, timers: TimerLoop) -> None:
        timers.register(REMINDER, self.on_reminder)
        timers.register(EXPIRY, self.on_expiry)
        timers.register(RUN, self.on_run)

    @property
    def page(self) -> str:
        """The console's approvals page, on the admin listener (`public_url`)."""
        return f"{self.deps.settings.base_url}/console/approvals"

    # -- a hold becomes an approval ---------------------------------------------------------------
    async def on_hold(self, planned: PlannedStep, decision: Decision) -> None:
        """The executor's hold handler. Idempotent: a replayed hold finds its approval and stops."""
        request, settings, now = planned.request, self.deps.settings.approvals, self.deps.clock.now()
        approval = approvals.new_approval(request, decision.detail, settings.required_for(request.severity), now,
                                          settings.expire_after)
        timers = [Timer(f"approval:{approval.id}:remind", REMINDER, approval.expires_at - settings.remind_before,
                        {"approval_id": approval.id}),
                  Timer(f"approval:{approval.id}:expire", EXPIRY, approval.expires_at, {"approval_id": approval.id})]
        event = TimelineEvent(
            request.incident_id, now, "approval_requested",
            f"{approval.id}: {request.action} on {request.target} waits for {approval.required} approver(s) "
            f"until {approval.expires_at:%H:%M} UTC ({decision.detail})", alert_id=request.alert_id,
            request_id=request.id, data={"approval_id": approval.id, "plan_hash": approval.plan_hash})
        if not await self.deps.store.create_approval(approval, [event], timers):
            return
        self.deps.metrics.approvals_requested.labels(request.severity.value).inc()
        log.warning("approval_requested", approval_id=approval.id, incident_id=request.incident_id,
                    action=request.action, target=request.target, required=approval.required)
        await self._announce(approval, "approval_requested", f"{approval.required} approver(s) needed within "
                             f"{describe_duration(settings.expire_after)}")

    # -- people decide ----------------------------------------------------------------------------
    async def vote(self, approval_id: str, vote: Vote) -> VoteAnswer:
        """Record a vote; once approved, run the plan here and answer with the outcome."""
        store = self.deps.store
        current = await store.get_approval(approval_id)
        if current is None:
            return VoteAnswer(None, Refusal.NOT_FOUND, f"no approval {approval_id}")
        if vote.choice is Choice.APPROVE and current.open and not await self._still_needed(current):
            closed = await self._no_longer_needed(current, ApprovalStatus.PENDING)
            return VoteAnswer(closed or await store.get_approval(approval_id))
        effect = await store.record_vote(approval_id, vote, self.deps.clock.now(), [self.run_timer(approval_id)])
        if effect is None:
            return VoteAnswer(None, Refusal.NOT_FOUND, f"no approval {approval_id}")
        if effect.refusal is not None:
            return VoteAnswer(effect.approval, effect.refusal, effect.refusal_detail)
        log.warning("approval_vote", approval_id=approval_id, by=vote.by, choice=vote.choice.value,
                    status=effect.approval.status.value)
        if not effect.decided:
            return VoteAnswer(effect.approval)
        self._count_closed(effect.approval)
        await store.cancel_timers(f"approval:{approval_id}:remind")
        await store.cancel_timers(f"approval:{approval_id}:expire")
        if effect.approval.status is not ApprovalStatus.APPROVED:
            await self._decided(effect.approval)
            return VoteAnswer(effect.approval)
        return VoteAnswer(await self.run_now(approval_id))

    def run_timer(self, approval_id: str) -> Timer:
        """The safety net of an approved run: stored with the deciding vote, due after any run would end."""
        grace = self.deps.settings.engine.action_timeout + RUN_GRACE
        return Timer(f"approval:{approval_id}:run", RUN, self.deps.clock.now() + grace, {"approval_id": approval_id})

    async def run_now(self, approval_id: str) -> Approval | None:
        """Run an approved plan in a task of the desk's own, so a caller that goes away cannot cut it short."""
        try:
            return await asyncio.shield(self._run_task(approval_id))
        except RunInProgress:
            return await self.deps.store.get_approval(approval_id)

    def _run_task(self, approval_id: str) -> asyncio.Task[Approval | None]:
        task = self._runs.get(approval_id)
        if task is None:
            task = asyncio.create_task(self.run_approved(approval_id), name=f"approved-run-{approval_id}")
            self._runs[approval_id] = task
            task.add_done_callback(lambda _: self._runs.pop(approval_id, None))
        return task

    async def run_approved(self, approval_id: str) -> Approval | None:
        """Run the plan people approved, once, unless its alert resolved; note what happened."""
        store = self.deps.store
        approval = await store.get_approval(approval_id)
        if approval is None or approval.status is not ApprovalStatus.APPROVED or approval.outcome is not None:
            return approval
        if not await self._still_needed(approval):
            return await self._no_longer_needed(approval, ApprovalStatus.APPROVED) or \
                await store.get_approval(approval_id)
        alert = await store.get_alert(approval.alert_id)
        assert alert is not None  # _still_needed checked it
        planned = self._plan(approval)
        record = await self.executor.respond_one(planned, alert)
        if record is None:  # its claim exists: an earlier run (maybe of a process that died) owns it
            record = await store.get_audit(planned.request.id)
            if record is None:
                raise RunInProgress(f"the approved run of {approval_id} is owned by another process")
            await self._decided(approval)  # the steps after it go on, if that run's process died first
        else:
            await self.after_run(planned.request, alert, record)
        log.warning("approved_run", approval_id=approval_id, outcome=record.outcome.value,
                    verdict=record.verdict.value, reason=record.decision_reason.value)
        finished = await store.record_approval_outcome(approval_id, record)
        await store.cancel_timers(f"approval:{approval_id}:run")  # its safety net is not needed any more
        return finished

    def _plan(self, approval: Approval) -> PlannedStep:
        """The approved plan as a request: same action, target and parameters, validated again."""
        action = self.deps.registry.get(approval.action)
        policy = self.deps.policies.by_name(approval.policy)
        step = ActionStep(type=approval.action, params=dict(approval.params))
        if policy is not None and approval.step < len(policy.actions) \
                and policy.actions[approval.step].type == approval.action:
            step = policy.actions[approval.step]  # its limits (cooldown, rate limit...) apply again
        request = ActionRequest(
            id=approvals.run_request_id(approval), alert_id=approval.alert_id, incident_id=approval.incident_id,
            policy=approval.policy, step=approval.step, action=approval.action, target=approval.target,
            params=approval.params, severity=approval.severity, risk=action.risk if action else Risk.NORMAL,
            plan_hash=approval.plan_hash, created_at=self.deps.clock.now(), origin=f"approval:{approval.id}")
        params: ActionParams | None = None
        error = ""
        if action is None:
            error = f"unknown action {approval.action!r}"
        elif not approvals.plan_intact(approval):
            error = "the stored plan does not match the plan hash people approved"
        else:
            try:
                params = action.Params.model_validate(approval.params)
            except ValueError as exc:
                error = f"the approved parameters are no longer valid: {exc}"
            else:
                if action.target(params) != approval.target:
                    params, error = None, "the approved parameters now name another target"
        return PlannedStep(request, step, params, error)

    async def _still_needed(self, approval: Approval) -> bool:
        """Its incident is open and the alert it was held for is still firing."""
        incident = await self.deps.store.get_incident(approval.incident_id)
        alert = await self.deps.store.get_alert(approval.alert_id)
        return incident is not None and alert is not None and not incident.recovered \
            and await self.deps.store.is_firing(incident.id, alert.fingerprint)

    async def _no_longer_needed(self, approval: Approval, expected: ApprovalStatus) -> Approval | None:
        closed = await self.deps.store.close_approval(
            approval.id, [expected], ApprovalStatus.NO_LONGER_NEEDED, self.deps.clock.now(),
            "its alert resolved before the plan ran; nothing ran")
        if closed is not None:
            self._count_closed(closed)
            await self.deps.store.cancel_timers(f"approval:{approval.id}:")
            await self._decided(closed)
        return closed

    async def alert_resolved(self, incident_id: str, fingerprint: str) -> None:
        """Close the pending approvals held for an alert that has just resolved."""
        for approval in await self.deps.store.list_approvals(ApprovalStatus.PENDING, incident_id=incident_id):
            alert = await self.deps.store.get_alert(approval.alert_id)
            if alert is None or alert.fingerprint == fingerprint:
                await self._no_longer_needed(approval, ApprovalStatus.PENDING)

    async def incident_closed(self, incident_id: str) -> None:
        """People closed the incident: nothing held for it is needed any more."""
        for approval in await self.deps.store.list_approvals(ApprovalStatus.PENDING, incident_id=incident_id):
            await self._no_longer_needed(approval, ApprovalStatus.PENDING)

    # -- timers -----------------------------------------------------------------------------------
    async def on_reminder(self, timer: Timer) -> None:
        approval = await self.deps.store.get_approval(timer.payload["approval_id"])
        if approval is None or not approval.open:
            return
        left = describe_duration(approval.expires_at - self.deps.clock.now())
        await self.deps.store.add_events([TimelineEvent(
            approval.incident_id, self.deps.clock.now(), "approval_reminder",
            f"{approval.id} still waits for people; it expires in {left}", request_id=approval.request_id,
            data={"approval_id": approval.id})])
        await self._announce(approval, "approval_reminder", f"reminder: expires in {left}, "
                             f"{len(approval.approvers)} of {approval.required} approval(s) so far")

    async def on_expiry(self, timer: Timer) -> None:
        approval = await self.deps.store.get_approval(timer.payload["approval_id"])
        if approval is None or not approval.open:
            return
        if not await self._still_needed(approval):
            await self._no_longer_needed(approval, ApprovalStatus.PENDING)
            return
        expired = await self.deps.store.close_approval(
            approval.id, [ApprovalStatus.PENDING], ApprovalStatus.EXPIRED, self.deps.clock.now(),
            f"nobody decided within {describe_duration(approval.expires_at - approval.created_at)}; nothing ran")
        if expired is None:
            return  # decided meanwhile, here or on another replica
        self._count_closed(expired)
        await self._announce(expired, "approval_expired", "expired: nothing ran; the incident is escalated")
        await self._decided(expired)
        await self.escalation.escalate_now(approval.incident_id, f"approval {approval.id} for {approval.action} on "
                                           f"{approval.target} expired undecided; nothing ran")

    async def on_run(self, timer: Timer) -> None:
        approval_id = timer.payload["approval_id"]
        if approval_id in self._runs:
            # Never two runs of one plan in one process: its claim would let the second one in.
            raise RunInProgress(f"the approved run of {approval_id} is still going; checking again later")
        # RunInProgress from another process's claim propagates: the timer fires again later.
        await asyncio.shield(self._run_task(approval_id))

    async def stop(self, timeout: float) -> None:
        """Let approved runs in flight finish (bounded); a run cut short is reconciled at start."""
        if self._runs:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.gather(*self._runs.values(), return_exceptions=True)

    async def _decided(self, approval: Approval) -> None:
        """The steps that waited for the held one go on (engine/sequence.py)."""
        if self.after_decided is not None:
            await self.after_decided(approval)

    # -- telling people ---------------------------------------------------------------------------
    def _count_closed(self, approval: Approval) -> None:
        self.deps.metrics.approvals_closed.labels(approval.status.value).inc()
        if approval.decided_at is not None and approval.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
            self.deps.metrics.approval_latency.observe((approval.decided_at - approval.created_at).total_seconds())

    async def _announce(self, approval: Approval, purpose: str, what: str) -> None:
        target = self.deps.settings.approvals.notify
        if not target:
            log.warning("approval_not_announced", approval_id=approval.id, reason="approvals.notify is not set")
            return
        incident = await self.deps.store.get_incident(approval.incident_id)
        title = incident.title if incident else approval.incident_id
        notification = Notification(
            title=f"{approval.severity.value} approval {approval.id}: {approval.action} on {approval.target}",
            text=f"{what}. Incident {approval.incident_id} ({one_line(title)}). Held because: "
                 f"{one_line(approval.reason)}.",
            severity=approval.severity.value, link=self.page,
            fields=(("approval", approval.id), ("incident", approval.incident_id), ("policy", approval.policy),
                    ("expires", approval.expires_at.isoformat()), ("plan", approval.plan_hash[:12])),
        )
        await self.notifier.post(target, notification, purpose)
