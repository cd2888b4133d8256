"""One action request from claim to audit record: claim → decide → execute → audit.

The claim (a unique row in the store) comes first, so whichever replica received the alert and
however often it was delivered, exactly one replica decides and at most one executes. The audit
record is written in `finally`: exactly one per request, whatever happened.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from remediator.actions.base import ActionContext, ActionParams, AnyAction, TimelineWriter, reads_live_state
from remediator.deps import Deps
from remediator.errors import ClaimLost, CoordinationUnavailable, StoreUnavailable
from remediator.guardrails import GuardInput
from remediator.guardrails.circuit import CircuitCounter
from remediator.model import (
    ActionRequest,
    Alert,
    AuditRecord,
    Decision,
    DecisionReason,
    Execution,
    FailureReason,
    Outcome,
    TimelineEvent,
    Verdict,
)
from remediator.observability import get_logger
from remediator.policy.plan import PlannedStep
from remediator.stores.base import Decided
from remediator.stores.coordination import Lease

log = get_logger("remediator.execution")

# In a dry-run record's detail where the precheck could not read live state (simulate, test).
LIVE_STATE_NOT_READ = "not read"

# Called once a HOLD is recorded, and again whenever the held request turns up once more (a replay
# after a crash may find the hold recorded but its approval missing): it must be idempotent.
HoldHandler = Callable[[PlannedStep, Decision], Awaitable[None]]


class IncidentNotes(TimelineWriter):
    """What actions write onto their incident's timeline."""

    def __init__(self, deps: Deps, request: ActionRequest) -> None:
        self.deps, self.request = deps, request

    async def note(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        event = TimelineEvent(self.request.incident_id, self.deps.clock.now(), kind, message,
                              request_id=self.request.id, data=dict(data or {}))
        await self.deps.store.add_events([event])


@dataclass(slots=True)
class Pending:
    """One claimed request on its way through decide and execute."""

    planned: PlannedStep
    alert: Alert
    flap_count: int = 0
    started: float = field(default_factory=time.monotonic)
    decision: Decision | None = None
    execution: Execution | None = None
    record: AuditRecord | None = None
    lost: bool = False  # the claim was taken from this process: it neither acts nor records


class Executor:
    """Runs planned requests through guardrails and actions, and records each exactly once."""

    def __init__(self, deps: Deps, on_hold: HoldHandler | None = None, circuits: CircuitCounter | None = None) -> None:
        self.deps = deps
        self.on_hold = on_hold
        # Requests being decided or run by this executor: recovery leaves them be.
        self.in_flight: Counter[str] = Counter()
        # Requests whose start the store may or may not have recorded (its answer was lost): this
        # process never ran them, so recovery may take them back, running or not.
        self.unstarted: set[str] = set()
        self.circuits = circuits  # counts failures in a row per action type and target (circuit breaker)
        # Audit records the store could not take when their request ended, written as soon as it can.
        self.unrecorded: dict[str, tuple[AuditRecord, list[TimelineEvent]]] = {}

    async def respond(self, items: Sequence[tuple[PlannedStep, Alert, int]]) -> list[Pending]:
        """Decide, then claim and act, and audit; a request another replica (or an earlier run) owns
        is dropped. Returns the requests this call recorded.

        Decisions are taken one after the other (the second of two requests for one target sees
        the first one's cooldown). A request decided without acting (denied, held) is claimed and
        audited in one write; a request that will act is claimed first, and nothing runs unless its
        claim was won. Deciding before claiming is safe across replicas because admission is
        idempotent per request: two replicas deciding one occurrence reach the same verdict.
        """
        ids = [planned.request.id for planned, _, _ in items]
        self.in_flight.update(ids)
        try:
            return await self._respond([Pending(planned, alert, flaps) for planned, alert, flaps in items])
        finally:
            self.in_flight.subtract(ids)
            for request_id in ids:
                if self.in_flight[request_id] <= 0:
                    self.in_flight.pop(request_id, None)

    async def _respond(self, pending: list[Pending]) -> list[Pending]:
        for item in pending:
            item.decision = await self.decide(item.planned, item.alert, item.flap_count)
        acting = [i for i in pending if i.decision is not None and i.decision.verdict is Verdict.ALLOW]
        settled = [i for i in pending if i.decision is not None and i.decision.verdict is not Verdict.ALLOW]
        done = await self._record(settled) if settled else []
        done += await self._act(acting) if acting else []
        if self.on_hold is not None:
            for item in done:
                if item.decision is not None and item.decision.verdict is Verdict.HOLD:
                    await self.on_hold(item.planned, item.decision)
        return done

    async def _record(self, settled: list[Pending]) -> list[Pending]:
        """Denied and held requests: claim and audit record in one write, per request."""
        for item in settled:
            item.execution = Execution(Outcome.NOT_RUN)
            item.record = self._audit(item)
        won = await self.deps.store.record_decisions(
            [Decided(i.planned.request, i.record, tuple(_events(i.planned.request, i.record)))
             for i in settled if i.record is not None], self.deps.clock.now())
        kept = [item for item, ok in zip(settled, won, strict=True) if ok]
        for item, ok in zip(settled, won, strict=True):
            if ok:
                self._count(item)
            else:
                self.deps.metrics.duplicates.labels("request").inc()
                await self.hold_again(item.planned)
        return kept

    async def _act(self, acting: list[Pending]) -> list[Pending]:
        """Allowed requests: claimed before anything runs; executions run concurrently; all audit
        records and their timeline events are written together, in `finally`.

        A request whose claim was lost meanwhile (this process was presumed dead) is neither run
        nor recorded here: its new holder does both.
        """
        fresh = [item for item in acting if item.planned.request.id not in self.unrecorded]
        claims = await self.deps.store.claim_requests([i.planned.request for i in fresh], self.deps.clock.now())
        claimed = [item for item, ok in zip(fresh, claims, strict=True) if ok]
        if len(claimed) < len(acting):
            self.deps.metrics.duplicates.labels("request").inc(len(acting) - len(claimed))
        try:
            await asyncio.gather(*(self._execute(item) for item in claimed))
        finally:
            for item in claimed:
                if not item.lost:
                    item.record = self._audit(item)
            await self._finish([i for i in claimed if i.record is not None])
            for item in claimed:
                self._count(item)
                if self.circuits is not None and item.record is not None:
                    await self.circuits.count(item.record)
        return [item for item in claimed if not item.lost]

    async def respond_one(self, planned: PlannedStep, alert: Alert, flap_count: int = 0) -> AuditRecord | None:
        """One request (approvals, verification's next step); None when it was claimed already."""
        done = await self.respond([(planned, alert, flap_count)])
        return done[0].record if done else None

    async def _execute(self, item: Pending) -> None:
        assert item.decision is not None
        log_ = _bound(item.planned.request)
        try:
            item.decision, item.execution = await self.execute(item.planned, item.decision, log_)
        except ClaimLost as exc:
            item.lost = True
            log_.warning("claim_lost", error=str(exc))
        except asyncio.CancelledError:
            item.execution = Execution.failed(FailureReason.CRASHED, "stopped while handling the request")
            raise
        except Exception as exc:
            log_.exception("request_failed")
            item.execution = Execution.failed(FailureReason.INTERNAL, f"{type(exc).__name__}: {exc}")

    async def _finish(self, items: Sequence[Pending]) -> None:
        """Write the audit records; if the store is down, keep them and write them when it returns.

        Losing one would leave its request open (RUNNING or CLAIMED) under a live holder: nobody
        would ever record what happened, and no other replica may take it over.
        """
        records = [(i.record, _events(i.planned.request, i.record)) for i in items if i.record is not None]
        if not records:
            return
        try:
            await self.deps.store.finish_requests([r for r, _ in records], [e for _, events in records for e in events])
        except StoreUnavailable as exc:
            for record, events in records:
                self.unrecorded[record.request_id] = (record, events)
            log.warning("audit_deferred", error=str(exc), waiting=len(self.unrecorded))

    async def flush_unrecorded(self) -> int:
        """Write the audit records kept while the store was down; how many are still waiting."""
        if self.unrecorded:
            waiting = list(self.unrecorded.values())
            try:
                await self.deps.store.finish_requests([r for r, _ in waiting], [e for _, ev in waiting for e in ev])
            except StoreUnavailable:
                return len(self.unrecorded)
            for record, _ in waiting:
                self.unrecorded.pop(record.request_id, None)
            log.info("audit_recorded_late", count=len(waiting))
        return len(self.unrecorded)

    async def hold_again(self, planned: PlannedStep) -> None:
        """A request held before a crash may lack what the hold handler makes of it: hand it over again."""
        if self.on_hold is None:
            return
        record = await self.deps.store.get_audit(planned.request.id)
        if record is not None and record.verdict is Verdict.HOLD:
            await self.on_hold(planned, Decision(record.verdict, record.decision_reason, record.decision_detail))

    async def decide(self, planned: PlannedStep, alert: Alert, flap_count: int) -> Decision:
        if planned.skip:
            return Decision.deny(DecisionReason.SKIPPED, planned.skip, "sequence")
        decision = await self._guard(planned, alert, flap_count)
        if not planned.condition:
            return decision
        if decision.verdict is Verdict.HOLD and planned.dry_run_only and not self.deps.dry_run:
            # Nothing to approve: it is only a dry run, and an approved run would not know that.
            decision = Decision(Verdict.ALLOW, decision.reason, f"not held, a dry run: {decision.detail}")
        return replace(decision, detail=f"{planned.condition}; {decision.detail}" if decision.detail
                       else planned.condition)

    async def _guard(self, planned: PlannedStep, alert: Alert, flap_count: int) -> Decision:
        if planned.error:
            reason = DecisionReason.UNKNOWN_ACTION if planned.params is None and \
                self.deps.registry.get(planned.request.action) is None else DecisionReason.INVALID_PARAMS
            return Decision.deny(reason, planned.error, "plan")
        action = self.deps.registry.get(planned.request.action)
        given = GuardInput(planned.request, planned.step.guardrails, alert, action, self.deps.clock.now(), flap_count)
        decision = await self.deps.guardrails.evaluate(given)
        if decision.verdict is Verdict.ALLOW and planned.request.origin.startswith("approval:"):
            return Decision(Verdict.ALLOW, DecisionReason.APPROVED, decision.detail or "approved by people")
        return decision

    async def execute(
        self, planned: PlannedStep, decision: Decision, bound: structlog.typing.FilteringBoundLogger
    ) -> tuple[Decision, Execution]:
        if decision.verdict is not Verdict.ALLOW:
            return decision, Execution(Outcome.NOT_RUN)
        request = planned.request
        action = self.deps.registry.get(request.action)
        assert action is not None and planned.params is not None  # planning guarantees both for an ALLOW
        dry_run = self.deps.dry_run or planned.step.guardrails.dry_run
        ctx = ActionContext(request, self.deps.actions, IncidentNotes(self.deps, request), bound, dry_run)
        if dry_run:
            return decision, await self._dry_run(action, planned.params, ctx)
        try:
            lease = await self._lease(request, action) if action.exclusive else None
        except CoordinationUnavailable as exc:
            return Decision.deny(DecisionReason.COORDINATION_UNAVAILABLE, f"no target lease: {exc}", "lease"), \
                Execution(Outcome.NOT_RUN)
        if lease is False:
            return Decision.deny(DecisionReason.TARGET_BUSY, f"another action holds {request.target}", "lease"), \
                Execution(Outcome.NOT_RUN)
        try:
            if isinstance(lease, Lease):
                ctx.fencing_token = lease.token
            reason = await self._precheck(action, planned.params, ctx)
            if reason:
                return decision, Execution.failed(FailureReason.PRECHECK_FAILED, reason)
            try:
                await self.deps.store.start_execution(request.id, self.deps.clock.now())
            except StoreUnavailable as exc:  # nothing ran: the claim stays, and recovery decides it again
                self.unstarted.add(request.id)
                raise ClaimLost(f"not started, the store is unavailable: {exc}") from exc
            return decision, await self.run(action, planned.params, ctx)
        finally:
            if isinstance(lease, Lease):
                await self._release(lease)

    @staticmethod
    async def _precheck(action: AnyAction, params: ActionParams, ctx: ActionContext) -> str | None:
        """Every check before the first mutating call, the same in both modes: what settings
        forbid, then (where live state can be read) the action's read-only precheck."""
        refusal = action.refusal(params, ctx)
        if refusal is not None or not ctx.deps.live_state:
            return refusal
        return await action.precheck(params, ctx)

    async def _dry_run(self, action: AnyAction, params: ActionParams, ctx: ActionContext) -> Execution:
        """What enforce would record, short of its mutating calls: a refused precheck fails here too."""
        reason = await self._precheck(action, params, ctx)
        if reason:
            return Execution.failed(FailureReason.PRECHECK_FAILED, reason)
        detail: dict[str, Any] = {"would_call": [c.as_dict() for c in await action.plan_calls(params, ctx)]}
        if not ctx.deps.live_state and reads_live_state(action):
            detail["live_state"] = LIVE_STATE_NOT_READ
        return Execution(Outcome.DRY_RUN, detail=detail)

    async def _lease(self, request: ActionRequest, action: AnyAction) -> Lease | bool | None:
        """The target's lease; None when the action needs none and coordination is down; False when busy."""
        coordination, settings = self.deps.coordination, self.deps.settings
        try:
            lease = await coordination.acquire_lease(f"target:{request.target}", self.deps.holder,
                                                     settings.coordination.lease_ttl, self.deps.clock.now())
        except CoordinationUnavailable:
            self.deps.metrics.coordination_errors.inc()
            if action.needs_coordination:
                raise
            return None
        return lease if lease is not None else False

    async def _release(self, lease: Lease) -> None:
        try:
            await self.deps.coordination.release_lease(lease)
        except CoordinationUnavailable:
            self.deps.metrics.coordination_errors.inc()  # the lease expires on its own

    async def run(self, action: AnyAction, params: ActionParams, ctx: ActionContext) -> Execution:
        """`action.run` with a timeout per attempt, retried (jitter, deadline) while retryable."""
        engine = self.deps.settings.engine

        def note_retry(state: Any) -> None:
            self.deps.metrics.action_retries.labels(action.type_name).inc()

        retrying = AsyncRetrying(
            stop=stop_after_attempt(engine.retry_attempts) | stop_after_delay(engine.retry_deadline.total_seconds()),
            wait=wait_exponential_jitter(multiplier=engine.retry_initial_wait.total_seconds(), max=30),
            retry=retry_if_result(lambda e: e.outcome is Outcome.FAILED and e.retryable),
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            before_sleep=note_retry,
        )
        execution: Execution = await retrying(self._attempt, action, params, ctx)
        return replace(execution, attempts=retrying.statistics.get("attempt_number", 1))

    async def _attempt(self, action: AnyAction, params: ActionParams, ctx: ActionContext) -> Execution:
        timeout = self.deps.settings.engine.action_timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout):
                return await action.run(params, ctx)
        except TimeoutError:
            # Not retried: the action may have taken effect before the deadline.
            return Execution.failed(FailureReason.TIMEOUT, f"no result within {timeout:.0f}s; the action may have "
                                    "taken effect, check the target")
        except Exception as exc:
            ctx.log.exception("action_raised")
            return Execution.failed(FailureReason.INTERNAL, f"{type(exc).__name__}: {exc}")

    def _audit(self, item: Pending) -> AuditRecord:
        request, seconds = item.planned.request, time.monotonic() - item.started
        decision = item.decision or Decision.deny(DecisionReason.ERROR, "no decision was reached", "engine")
        execution = item.execution or Execution(Outcome.NOT_RUN)
        dry_run = self.deps.dry_run or item.planned.step.guardrails.dry_run
        return AuditRecord(
            request_id=request.id, at=self.deps.clock.now(), incident_id=request.incident_id,
            alert_id=request.alert_id, policy=request.policy, action=request.action, target=request.target,
            params=request.params, plan_hash=request.plan_hash,
            mode="dry-run" if dry_run else "enforce",
            verdict=decision.verdict, decision_reason=decision.reason, decision_detail=decision.detail,
            outcome=execution.outcome, failure_reason=execution.reason,
            detail={**execution.detail, "attempts": execution.attempts} if execution.outcome in (
                Outcome.SUCCEEDED, Outcome.FAILED) else dict(execution.detail),
            duration_ms=round(seconds * 1000, 3), origin=request.origin,
        )

    def _count(self, item: Pending) -> None:
        record = item.record
        if record is None:
            return
        metrics = self.deps.metrics
        metrics.child(metrics.decisions, record.verdict, record.decision_reason).inc()
        metrics.child(metrics.actions, record.action, record.outcome).inc()
        if record.failure_reason is not None:
            metrics.child(metrics.action_failures, record.action, record.failure_reason).inc()
        if record.outcome in (Outcome.SUCCEEDED, Outcome.FAILED):
            metrics.child(metrics.action_duration, record.action).observe(record.duration_ms / 1000)
        request = item.planned.request
        level = log.warning if record.outcome is Outcome.FAILED else log.info
        level("action_request", request_id=request.id, incident_id=request.incident_id, alert_id=request.alert_id,
              policy=request.policy, action=request.action, target=request.target, verdict=record.verdict,
              reason=record.decision_reason, outcome=record.outcome, failure=record.failure_reason,
              detail=record.decision_detail, mode=record.mode)


def _bound(request: ActionRequest) -> structlog.typing.FilteringBoundLogger:
    return log.bind(request_id=request.id, incident_id=request.incident_id, alert_id=request.alert_id,
                    policy=request.policy, action=request.action, target=request.target)


def _events(request: ActionRequest, record: AuditRecord) -> list[TimelineEvent]:
    decided = TimelineEvent(
        request.incident_id, record.at, "decided",
        f"{request.action} on {request.target or '?'}: {record.verdict} ({record.decision_reason})"
        + (f" — {record.decision_detail}" if record.decision_detail else ""),
        alert_id=request.alert_id, request_id=request.id,
        data={"policy": request.policy, "step": request.step, "verdict": record.verdict,
              "reason": record.decision_reason, "plan_hash": request.plan_hash},
    )
    if record.outcome is Outcome.NOT_RUN:
        return [decided]
    executed = TimelineEvent(
        request.incident_id, record.at, "executed",
        f"{request.action} on {request.target}: {record.outcome}"
        + (f" ({record.failure_reason})" if record.failure_reason else ""),
        alert_id=request.alert_id, request_id=request.id,
        data={"outcome": record.outcome, "detail": dict(record.detail)},
    )
    return [decided, executed]
