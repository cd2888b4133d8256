"""Did it help? After a step, wait the policy's `verify.after` and check; if not, go on or escalate.

Recovered means the action's own recovery condition (`Action.verify`) says so, or the alert the
step was planned for has resolved. With `verify.timeout` the check repeats every `after` until
`timeout` has passed since the step ran. Not recovered: the policy's next step, or, after its
last step, escalation. A step that failed (or whose outcome is unknown) did not help either, so
the same happens at once, without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from remediator.actions.base import ActionContext
from remediator.deps import Deps
from remediator.engine.executor import IncidentNotes
from remediator.engine.timers import TimerLoop
from remediator.model import ActionRequest, Alert, AuditRecord, Execution, Incident, Outcome, Phase, TimelineEvent
from remediator.observability import get_logger
from remediator.policy.match import Match
from remediator.policy.model import Policy
from remediator.stores.base import Timer

log = get_logger("remediator.verification")

TIMER_KIND = "verify"

RunStep = Callable[[Match, int, Incident], Awaitable[object]]
Escalate = Callable[[str, str], Awaitable[None]]


class Verifier:
    """Follows every step up: marks containment, schedules checks, moves to the next step."""

    def __init__(self, deps: Deps, run_step: RunStep, escalate: Escalate) -> None:
        self.deps = deps
        self.run_step = run_step
        self.escalate = escalate

    def register(self, timers: TimerLoop) -> None:
        timers.register(TIMER_KIND, self.on_verify)

    async def follow_up(self, request: ActionRequest, alert: Alert, record: AuditRecord) -> None:
        """After a step was decided: a success contains the incident; a verifying policy checks on it."""
        store = self.deps.store
        if record.outcome is Outcome.SUCCEEDED:
            await store.update_phase(request.incident_id, Phase.CONTAIN, record.at)
        policy = self.deps.policies.by_name(request.policy)
        verify = policy.verify if policy else None
        if policy is None or verify is None:
            return
        if record.outcome in (Outcome.SUCCEEDED, Outcome.DRY_RUN):
            await store.schedule_timer(Timer(
                f"verify:{record.request_id}", TIMER_KIND, record.at + verify.after,
                {"request_id": record.request_id, "alert_id": alert.id, "incident_id": request.incident_id,
                 "policy": policy.name, "step": request.step, "started_at": record.at.isoformat(), "check": 1}))
        elif record.outcome in (Outcome.FAILED, Outcome.UNKNOWN):
            await self._not_recovered(policy, request, alert.id, f"{request.action} on {request.target} "
                                      f"{record.outcome.value}")

    async def on_verify(self, timer: Timer) -> None:
        """A check is due: recovered → verified; else check again (timeout), the next step, or escalate."""
        p = timer.payload
        store, now = self.deps.store, self.deps.clock.now()
        incident = await store.get_incident(p["incident_id"])
        if incident is None:
            return
        if await self._alert_resolved(incident, p["alert_id"]) or await self._action_recovered(p["request_id"]):
            self.deps.metrics.verifications.labels("recovered").inc()
            event = TimelineEvent(incident.id, now, "verified", f"recovered after {p['policy']} step {p['step'] + 1}",
                                  request_id=p["request_id"])
            await store.update_phase(incident.id, Phase.VERIFY, now, [event])
            return
        policy = self.deps.policies.by_name(p["policy"])
        verify = policy.verify if policy else None
        started = datetime.fromisoformat(p["started_at"]) if "started_at" in p else None
        if verify is not None and verify.timeout is not None and started is not None \
                and now + verify.after <= started + verify.timeout:
            self.deps.metrics.verifications.labels("not_recovered").inc()
            check = int(p.get("check", 1)) + 1
            await store.schedule_timer(Timer(f"verify:{p['request_id']}:{check}", TIMER_KIND, now + verify.after,
                                             {**p, "check": check}))
            return
        stored = await store.get_request(p["request_id"])
        if stored is None:
            log.error("verify_without_request", request_id=p["request_id"])
            return
        await self._not_recovered(policy, stored.request, p["alert_id"],
                                  f"not recovered after {p['policy']} step {p['step'] + 1}")

    async def _not_recovered(self, policy: Policy | None, after: ActionRequest, alert_id: str, reason: str) -> None:
        """The step `after` did not help: the policy's next step, or escalation after its last."""
        store, now = self.deps.store, self.deps.clock.now()
        step, incident_id, request_id = after.step, after.incident_id, after.id
        incident = await store.get_incident(incident_id)
        alert = await store.get_alert(alert_id)
        next_step = step + 1
        if policy is not None and incident is not None and alert is not None and next_step < len(policy.actions):
            self.deps.metrics.verifications.labels("next_step").inc()
            await store.add_events([TimelineEvent(incident_id, now, "not_recovered",
                                                  f"{reason}; running step {next_step + 1} of {policy.name}",
                                                  request_id=request_id)])
            await self.run_step(Match(policy, alert), next_step, incident)
            return
        self.deps.metrics.verifications.labels("escalated").inc()
        await self.escalate(incident_id, f"{reason}; no step of {policy.name if policy else 'its policy'} is left")

    async def _alert_resolved(self, incident: Incident, alert_id: str) -> bool:
        if incident.recovered:
            return True
        alert = await self.deps.store.get_alert(alert_id)
        return alert is not None and not await self.deps.store.is_firing(incident.id, alert.fingerprint)

    async def _action_recovered(self, request_id: str) -> bool:
        stored = await self.deps.store.get_request(request_id)
        action = self.deps.registry.get(stored.request.action) if stored else None
        if stored is None or action is None:
            return False
        audit = await self.deps.store.get_audit(request_id)
        execution = Execution(audit.outcome, reason=audit.failure_reason, detail=audit.detail) if audit else None
        ctx = ActionContext(stored.request, self.deps.actions, IncidentNotes(self.deps, stored.request),
                            log.bind(request_id=request_id), self.deps.dry_run, execution=execution)
        try:
            params = action.Params.model_validate(stored.request.params)
            async with asyncio.timeout(self.deps.settings.engine.action_timeout.total_seconds()):
                return await action.verify(params, ctx) is True
        except Exception:
            log.exception("verify_failed", request_id=request_id)
            return False
