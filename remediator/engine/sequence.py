"""Ordered steps: which steps of a policy wait for another, and whether they run once it settled.

A step without `when` starts at once, beside the policy's other such steps (the default, and
what every policy did before `when` existed). A step with `when: succeeded | failed | always`
waits for the step just before it (or the earlier step `after` names) and, once that step has
settled, runs or is recorded as skipped with the reason. What counts as what:

| the step waited for                                   | counts as | succeeded | failed | always |
|-------------------------------------------------------|-----------|-----------|--------|--------|
| ran and succeeded                                     | succeeded | runs      | skipped| runs   |
| dry-run (dry-run mode, or its `guardrails.dry_run`)   | dry-run   | dry-run   | skipped| dry-run|
| failed (also its precheck, timeout, refusal)          | failed    | skipped   | runs   | runs   |
| denied by a guardrail, or its plan was invalid        | failed    | skipped   | runs   | runs   |
| held for approval                                     | waits until people decide and it ran  |
| approved and run                                      | what its run counts as                |
| rejected by people, or its approval expired           | failed    | skipped   | runs   | runs   |
| no longer needed: its alert resolved before it ran    | resolved  | skipped   | skipped| skipped|
| skipped itself (its own condition was not met)        | skipped   | skipped   | skipped| runs   |
| outcome unknown (the daemon died while it ran)        | unknown   | skipped   | skipped| runs   |

"Failed" therefore means "did not take effect", never "maybe took effect". A resolved alert
ends the chain, as it ends an approval: once the firing alert a chain is for has resolved (or people
closed its incident), every step still to come is recorded as skipped, whatever its `when`, so
nothing more is done, nor asked of people, for it. After
a dry run the steps that follow are dry runs too: in dry-run mode an operator sees the whole
chain, and in enforce mode a step with `guardrails.dry_run` makes its followers dry runs, since
what they would follow never happened (a follower that would be held is not: there is nothing to
approve). A skipped step is recorded like a denied one (verdict `deny`, reason `skipped`, the
detail e.g. "the previous step waf.block_ip (step 1) succeeded; this step runs when: failed"),
so it is in the audit trail and on the timeline; a step that runs carries its condition in its
decision detail. The engine walks a chain in `Engine.after_step`; this module decides each link.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from remediator.deps import Deps
from remediator.engine.executor import Executor
from remediator.incidents import approvals
from remediator.model import (
    ActionRequest,
    Alert,
    AlertStatus,
    Approval,
    ApprovalStatus,
    AuditRecord,
    DecisionReason,
    Incident,
    IncidentStatus,
    Outcome,
    TimelineEvent,
    Verdict,
)
from remediator.observability import get_logger
from remediator.policy.match import Match
from remediator.policy.model import ActionStep, Policy
from remediator.policy.plan import PlannedStep, plan_step

log = get_logger("remediator.sequence")


class StepResult(StrEnum):
    """What a settled step counts as for the steps that wait for it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DRY_RUN = "dry-run"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"
    RESOLVED = "resolved"  # its alert resolved before it ran: the chain ends there
    WAITING = "waiting"  # held for approval: nothing after it is decided yet


@dataclass(frozen=True, slots=True)
class Settled:
    """One step of one incident's policy as the steps after it see it."""

    policy: str
    step: int
    incident_id: str
    alert_id: str
    action: str
    target: str
    result: StepResult
    reason: str  # what happened and why, for people (and `{previous.reason}`)

    @staticmethod
    def of(request: ActionRequest, record: AuditRecord) -> Settled:
        return Settled(request.policy, request.step, request.incident_id, request.alert_id, request.action,
                       request.target, result_of(record), describe(record))

    @staticmethod
    def of_closed(approval: Approval) -> Settled:
        """A held step whose approval closed without a run: it did not take effect."""
        why = f"{approval.status.value.replace('_', ' ')}" + (f": {approval.detail}" if approval.detail else "")
        result = StepResult.RESOLVED if approval.status is ApprovalStatus.NO_LONGER_NEEDED else StepResult.FAILED
        return Settled(approval.policy, approval.step, approval.incident_id, approval.alert_id, approval.action,
                       approval.target, result, f"not run, approval {approval.id} {why}")

    def scope(self) -> dict[str, str]:
        """`{previous.*}` for the steps after it."""
        return {"action": self.action, "target": self.target, "outcome": self.result.value, "reason": self.reason}


def result_of(record: AuditRecord) -> StepResult:
    if record.verdict is Verdict.HOLD:
        return StepResult.WAITING
    if record.decision_reason is DecisionReason.SKIPPED:
        return StepResult.SKIPPED
    return {Outcome.SUCCEEDED: StepResult.SUCCEEDED, Outcome.DRY_RUN: StepResult.DRY_RUN,
            Outcome.UNKNOWN: StepResult.UNKNOWN}.get(record.outcome, StepResult.FAILED)


def describe(record: AuditRecord) -> str:
    """What became of a step, in one line: "denied (protected_target): …", "failed (access_denied): …"."""
    if record.verdict is Verdict.DENY:
        return f"denied ({record.decision_reason.value})" + (f": {record.decision_detail}"
                                                             if record.decision_detail else "")
    if record.outcome is Outcome.FAILED:
        error = str(record.detail.get("error", ""))
        return f"failed ({record.failure_reason.value if record.failure_reason else 'unknown'})" + \
            (f": {error}" if error else "")
    return record.outcome.value.replace("_", "-")


@dataclass(frozen=True, slots=True)
class Ruling:
    """Whether a waiting step runs, in which mode, and the sentence the records carry."""

    runs: bool
    dry_run: bool
    why: str


def judge(when: str, previous: Settled) -> Ruling:
    """The table of the module docstring, for one step waiting on `previous`."""
    what = f"{previous.action} (step {previous.step + 1})"
    result = previous.result
    if result is StepResult.RESOLVED:
        runs, said = False, "was not run: its alert resolved first, so nothing after it runs"
    elif result is StepResult.SKIPPED or result is StepResult.UNKNOWN:
        runs = when == "always"
        said = "was skipped" if result is StepResult.SKIPPED else "has an unknown outcome"
    elif result is StepResult.FAILED:
        runs, said = when in ("failed", "always"), f"did not take effect ({previous.reason})"
    else:  # succeeded or dry-run
        runs = when in ("succeeded", "always")
        said = "succeeded" if result is StepResult.SUCCEEDED else "ran dry (dry-run)"
    if not runs:
        return Ruling(False, False, f"the previous step {what} {said}; this step runs when: {when}")
    dry = result is StepResult.DRY_RUN
    return Ruling(True, dry, f"when: {when} — the previous step {what} {said}"
                    + ("; recorded as a dry run like it" if dry else ""))


class Sequencer:
    """Decides and runs the steps that waited for a settled step (one link of a chain)."""

    def __init__(self, deps: Deps, executor: Executor) -> None:
        self.deps = deps
        self.executor = executor

    async def after(self, previous: Settled) -> list[tuple[ActionRequest, Alert, AuditRecord]]:
        """Run (or record as skipped) every step waiting for `previous`; what this call recorded.

        Idempotent: a step that was requested already (a replay after a crash, another replica)
        is not decided again; the chain goes on from its record.
        """
        policy = self.deps.policies.by_name(previous.policy)
        if policy is None or previous.step >= len(policy.actions):
            return []
        waiting = policy.dependants(previous.step)
        if not waiting:
            return []
        store = self.deps.store
        if previous.result is StepResult.WAITING:
            await store.add_events([self._waiting(policy, waiting, previous)])
            return []
        incident, alert = await store.get_incident(previous.incident_id), await store.get_alert(previous.alert_id)
        if incident is None or alert is None:
            log.error("sequence_lost", policy=policy.name, step=previous.step, incident_id=previous.incident_id)
            return []
        ended = await self._ended(incident, alert, previous)
        planned = [self.plan(policy, index, alert, incident, previous, ended=ended) for index in waiting]
        existing = await store.existing_requests([p.request.id for p in planned])
        done: list[tuple[ActionRequest, Alert, AuditRecord]] = []
        for item in planned:
            if item.request.id in existing:
                done += await self.resume(item.request)
        fresh = [(p, alert, 0) for p in planned if p.request.id not in existing]
        for pending in await self.executor.respond(fresh) if fresh else []:
            if pending.record is not None:
                done.append((pending.planned.request, pending.alert, pending.record))
        return done

    def _waiting(self, policy: Policy, waiting: list[int], held: Settled) -> TimelineEvent:
        """The timeline's note that steps wait for a held one (so people see the whole chain)."""
        steps = ", ".join(f"step {i + 1} ({policy.actions[i].type}, when: {policy.actions[i].when})" for i in waiting)
        return TimelineEvent(held.incident_id, self.deps.clock.now(), "steps_waiting",
                             f"{steps} of {policy.name} wait(s) for step {held.step + 1} ({held.action} on "
                             f"{held.target}), held for approval", alert_id=held.alert_id,
                             data={"policy": policy.name, "held_step": held.step, "waiting": waiting})

    async def resume(self, request: ActionRequest) -> list[tuple[ActionRequest, Alert, AuditRecord]]:
        """A step recorded earlier (before a crash, or by another replica): go on after it if that
        did not happen yet. What this records, as `after`."""
        policy = self.deps.policies.by_name(request.policy)
        if policy is None or request.step >= len(policy.actions) or not policy.dependants(request.step):
            return []
        record = await self.deps.store.get_audit(request.id)
        if record is None:
            return []  # another process holds it: that process goes on from it
        if record.verdict is Verdict.HOLD:
            return await self._resume_held(request)
        return await self.after(Settled.of(request, record))

    async def _resume_held(self, held: ActionRequest) -> list[tuple[ActionRequest, Alert, AuditRecord]]:
        approval = await self.deps.store.get_approval(approvals.approval_id(held.id))
        return await self.after_approval(approval) if approval is not None else []

    async def after_approval(self, approval: Approval) -> list[tuple[ActionRequest, Alert, AuditRecord]]:
        """A held step people decided: go on from the closed approval, or from its run once recorded."""
        if closed_without_run(approval):
            return await self.after(Settled.of_closed(approval))
        if approval.status is not ApprovalStatus.APPROVED:
            return []
        store = self.deps.store
        run = await store.get_request(approvals.run_request_id(approval))
        record = await store.get_audit(run.request.id) if run is not None else None
        return await self.after(Settled.of(run.request, record)) if run is not None and record is not None else []

    async def _ended(self, incident: Incident, alert: Alert, previous: Settled) -> str:
        """Why nothing more of the chain runs, if so: its alert resolved (or its incident is over)."""
        if previous.result is StepResult.RESOLVED:
            return previous.reason
        if incident.status is IncidentStatus.CLOSED:
            return f"incident {incident.id} was closed"
        if alert.status is AlertStatus.FIRING and (
                incident.recovered or not await self.deps.store.is_firing(incident.id, alert.fingerprint)):
            return f"its alert {alert.name} has resolved"
        return ""

    def plan(self, policy: Policy, index: int, alert: Alert, incident: Incident, previous: Settled,
             *, ended: str = "") -> PlannedStep:
        """Step `index` planned after `previous`: to be skipped, or to run (as a dry run after one)."""
        step = policy.actions[index]
        assert step.when is not None  # only steps with `when` wait
        verdict = judge(step.when, previous)
        planned = plan_step(Match(policy, alert), index, incident, self.deps.registry, self.deps.clock.now(),
                            default_cooldown=self.deps.settings.guardrails.default_cooldown,
                            previous=previous.scope())
        if ended:
            return replace(planned, skip=f"nothing more of {policy.name} runs: {ended}")
        if not verdict.runs:
            return replace(planned, skip=verdict.why)
        if verdict.dry_run and not step.guardrails.dry_run:
            return replace(planned, step=_dry(step), condition=verdict.why, dry_run_only=True)
        return replace(planned, condition=verdict.why)


def _dry(step: ActionStep) -> ActionStep:
    return step.model_copy(update={"guardrails": step.guardrails.model_copy(update={"dry_run": True})})


def closed_without_run(approval: Approval) -> bool:
    """An approval that closed and will never run its plan."""
    return approval.status in (ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED, ApprovalStatus.NO_LONGER_NEEDED)
