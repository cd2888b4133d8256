"""Circuit breaker: an action type that failed N times in a row on one target is not tried there
again until a cool-off has passed or a person closes the circuit.

While the circuit is open, requests are denied with reason `circuit_open`; the incident whose
failure opened it is escalated (people must look: the automation is not helping). After the
cool-off the next request is let through as a trial (noted in its decision): a success closes the
circuit, a failure opens it again for another cool-off. Only enforce-mode executions that ran
count: a dry run changes nothing, and a refused precheck means the action never ran; the daemon's
own scheduled requests (a WAF block's expiry) retry and escalate on their own and are not counted.
The state is in coordination (Redis with several replicas), so every replica sees it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from remediator.errors import CoordinationUnavailable
from remediator.guardrails.base import GuardInput, lifts_own_restriction
from remediator.model import AuditRecord, Decision, DecisionReason, FailureReason, Outcome
from remediator.observability import get_logger
from remediator.settings import CircuitBreakerSettings
from remediator.stores.circuits import Circuit
from remediator.stores.coordination import Coordination

log = get_logger("remediator.circuit")

Escalate = Callable[[str, str], Awaitable[None]]


def circuit_key(action: str, target: str) -> str:
    return f"{action}:{target}"


def describe(circuit: Circuit) -> str:
    return (f"{circuit.failures} failures in a row of {circuit.key} (last: {circuit.reason} at "
            f"{circuit.last_failure_at.isoformat()})")


class CircuitBreakerGuard:
    name = "circuit_breaker"

    def __init__(self, coordination: Coordination, settings: CircuitBreakerSettings) -> None:
        self.coordination = coordination
        self.settings = settings

    async def check(self, given: GuardInput) -> Decision | None:
        if not self.settings.failures:
            return None
        circuit = await self.coordination.circuit(circuit_key(given.request.action, given.request.target))
        if circuit is None or circuit.opened_at is None:
            return None
        closes = circuit.opened_at + self.settings.cool_off
        if given.now >= closes:
            return Decision.allow(f"circuit half-open after its cool-off ({describe(circuit)}): one more try")
        detail = (f"circuit open: {describe(circuit)}; closes at {closes.isoformat()} or when a person "
                  "closes it")
        if lifts_own_restriction(given):
            return Decision.allow(f"{detail}; let through: an expiry only lifts remediator's own restriction")
        return Decision.deny(DecisionReason.CIRCUIT_OPEN, detail, self.name)


class CircuitCounter:
    """Counts what executions did, after their audit record is written; escalates when a circuit opens."""

    def __init__(self, coordination: Coordination, settings: CircuitBreakerSettings,
                 escalate: Escalate | None = None) -> None:
        self.coordination = coordination
        self.settings = settings
        self.escalate = escalate

    async def count(self, record: AuditRecord) -> Circuit | None:
        """The circuit this record opened, if it did."""
        if not self.settings.failures or record.mode != "enforce" or record.origin == "system":
            return None  # the daemon's own schedule (a WAF block's expiry) retries and escalates on its own
        key = circuit_key(record.action, record.target)
        try:
            if record.outcome is Outcome.SUCCEEDED:
                await self.coordination.count_success(key)
                return None
            if record.outcome is not Outcome.FAILED or record.failure_reason is FailureReason.PRECHECK_FAILED:
                return None
            reason = record.failure_reason.value if record.failure_reason else "failed"
            circuit = await self.coordination.count_failure(key, record.at, self.settings.failures, reason)
        except CoordinationUnavailable as exc:
            log.warning("circuit_not_counted", key=key, error=str(exc))
            return None
        if circuit.opened_at is None:
            return None
        log.error("circuit_opened", key=key, failures=circuit.failures, incident_id=record.incident_id)
        if self.escalate is not None:
            await self.escalate(record.incident_id, f"circuit open: {describe(circuit)}; {record.action} is not "
                                f"tried on {record.target} for {self.settings.cool_off} or until a person "
                                "closes the circuit")
        return circuit
