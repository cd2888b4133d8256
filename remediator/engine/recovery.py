"""What a crash or a store outage interrupted between "alert recorded" and "request finished".

One property of the request's state machine (`stores.base.RequestState`), not retries here and
there: a request that is not finished is owned by a holder that is alive by the store's liveness
mechanism (PostgreSQL: an advisory lock on a session of its own; SQLite: flock on a file).

- `reconcile`: a RUNNING request of a dead holder becomes UNKNOWN (with its one audit record) and
  is escalated, never re-run; a CLAIMED one (nothing ran) is released.
- `sweep`: released claims, and this holder's own claims that nothing in this process is deciding
  (a claim lost while the store was away, a decision whose write failed), are taken by one holder
  (the store's compare-and-set) and decided again from the stored request: exactly one audit
  record, whoever does it.

Runs at start and every `engine.reconcile_interval`, so whatever an outage interrupted settles
within that interval of the store's return.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from remediator.deps import Deps
from remediator.engine.executor import Executor
from remediator.errors import StoreUnavailable
from remediator.model import ActionRequest, Alert, AuditRecord, Outcome
from remediator.observability import get_logger
from remediator.policy.model import ActionStep
from remediator.policy.plan import PlannedStep
from remediator.stores.base import StoredRequest

log = get_logger("remediator.recovery")

SWEEP_LIMIT = 100  # orphaned requests taken at once; the next sweep takes more

Escalate = Callable[[str, str], Awaitable[None]]
FollowUp = Callable[[ActionRequest, Alert, AuditRecord], Awaitable[None]]


class FlapCount(Protocol):
    async def __call__(self, alert: Alert, *, record: bool = True) -> int: ...


class Recovery:
    """Reconciles dead holders' requests and decides orphaned claims again."""

    def __init__(self, deps: Deps, executor: Executor, escalate: Escalate,
                 follow_up: FollowUp, flap_count: FlapCount) -> None:
        self.deps, self.executor = deps, executor
        self.escalate, self.follow_up, self.flap_count = escalate, follow_up, flap_count

    async def reconcile(self) -> int:
        """Requests a dead holder left running: recorded UNKNOWN, escalated, never re-run."""
        orphans = await self.deps.store.reconcile_running(self.deps.clock.now())
        for orphan in orphans:
            request = orphan.request
            self.deps.metrics.actions.labels(request.action, Outcome.UNKNOWN.value).inc()
            await self.escalate(request.incident_id, f"{request.action} on {request.target} was running when "
                                f"{orphan.holder} stopped; its outcome is unknown and it will not be re-run")
        return len(orphans)

    async def sweep(self) -> int:
        """Reconcile, then decide again every orphaned claim this holder wins; how many it decided."""
        await self.reconcile()
        decided = 0
        while True:
            busy = set(self.executor.in_flight) | set(self.executor.unrecorded)
            unstarted = set(self.executor.unstarted)
            taken = await self.deps.store.claim_orphaned_requests(self.deps.clock.now(), busy, SWEEP_LIMIT,
                                                                  unstarted)
            # Each one taken here, or settled otherwise (finished, reconciled, in flight again).
            self.executor.unstarted -= unstarted if len(taken) < SWEEP_LIMIT else {s.request.id for s in taken}
            for stored in taken:
                await self.redecide(stored)
            decided += len(taken)
            if len(taken) < SWEEP_LIMIT:
                return decided

    async def run(self) -> None:
        interval = self.deps.settings.engine.reconcile_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except StoreUnavailable as exc:
                log.warning("recovery_store_unavailable", error=str(exc))

    async def redecide(self, stored: StoredRequest) -> None:
        """Decide (and act on, when allowed) a claim this holder took over, as if it were new."""
        request = stored.request
        alert = await self.deps.store.get_alert(request.alert_id)
        if alert is None:
            log.error("orphaned_request_without_alert", request_id=request.id, alert_id=request.alert_id)
            return
        planned = replan(self.deps, request)
        log.warning("request_decided_again", request_id=request.id, previous_holder=stored.holder,
                    action=request.action, target=request.target)
        self.deps.metrics.requests_recovered.inc()
        done = await self.executor.respond([(planned, alert, await self.flap_count(alert, record=False))])
        for item in done:
            if item.record is not None and not request.origin.startswith("approval:"):
                await self.follow_up(request, alert, item.record)


def replan(deps: Deps, request: ActionRequest) -> PlannedStep:
    """A stored request as a planned step again: the same id, action, target and parameters,
    validated anew; the step's limits come from its policy when that is still loaded."""
    action = deps.registry.get(request.action)
    policy = deps.policies.by_name(request.policy)
    step = ActionStep(type=request.action, params=dict(request.params))
    found = policy is not None and request.step < len(policy.actions) and \
        policy.actions[request.step].type == request.action
    if policy is not None and found:
        step = policy.actions[request.step]
    if action is None:
        return PlannedStep(request, step, None, f"unknown action {request.action!r}")
    if not found and not request.origin.startswith("approval:"):
        return PlannedStep(request, step, None, f"policy {request.policy!r} no longer has this step")
    try:
        params = action.Params.model_validate(request.params)
    except ValueError as exc:
        return PlannedStep(request, step, None, f"the stored parameters are no longer valid: {exc}")
    if action.target(params) != request.target:
        return PlannedStep(request, step, None, "the stored parameters now name another target")
    return PlannedStep(request, step, params)
