"""Guardrails: every request passes them before any action runs (DESIGN.md §3).

Order matters and is visible here: the cheap, absolute rules first (kill switch, scoped
pauses, maintenance windows, open circuits, protected targets, flapping), then the approval hold, then the limits,
which are admitted all at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from remediator.errors import CoordinationUnavailable
from remediator.guardrails.allowlist import ProtectedTargetGuard
from remediator.guardrails.approval import ApprovalGuard
from remediator.guardrails.base import CheckRule, GuardInput, QuotaRule
from remediator.guardrails.circuit import CircuitBreakerGuard
from remediator.guardrails.flap import FlapGuard
from remediator.guardrails.killswitch import KillSwitchGuard
from remediator.guardrails.maintenance import MaintenanceWindowGuard
from remediator.guardrails.pause import PauseGuard
from remediator.guardrails.quotas import BlastRadiusRule, BudgetRule, CooldownRule, RateLimitRule
from remediator.model import Decision, DecisionReason, Verdict
from remediator.settings import GuardrailSettings
from remediator.stores.coordination import Coordination

__all__ = ["GuardInput", "Guardrails", "default_guardrails"]


class Guardrails:
    """Runs the checks in order, then admits the quotas together."""

    def __init__(self, coordination: Coordination, checks: Sequence[CheckRule], quotas: Sequence[QuotaRule]) -> None:
        self.coordination = coordination
        self.checks = list(checks)
        self.quotas = list(quotas)

    async def evaluate(self, given: GuardInput) -> Decision:
        needs_limits = given.action is None or given.action.needs_coordination
        try:
            notes = []
            for rule in self.checks:
                decision = await rule.check(given)
                if decision is None:
                    continue
                if decision.verdict is not Verdict.ALLOW:
                    return decision
                notes.append(decision.detail)  # passed, with something the record must say
            quotas = [q for rule in self.quotas if (q := rule.quota(given)) is not None]
            if quotas:
                admission = await self.coordination.admit(quotas, given.now, given.request.id)
                if not admission.admitted and admission.denied_by is not None:
                    quota = admission.denied_by
                    return Decision.deny(quota.reason, f"{quota.describe()}; retry in {admission.retry_after:.0f}s",
                                         quota.key.split(":", 1)[0])
        except CoordinationUnavailable as exc:
            if needs_limits:
                return Decision.deny(DecisionReason.COORDINATION_UNAVAILABLE,
                                     f"shared limits cannot be checked ({exc}); not running without them",
                                     "coordination")
            return Decision.allow("shared limits unavailable; this action does not need them")
        return Decision.allow("; ".join(note for note in notes if note))


def default_guardrails(settings: GuardrailSettings, coordination: Coordination) -> Guardrails:
    """The rules every request passes, in order."""
    checks: list[CheckRule] = [
        KillSwitchGuard(coordination, forced=settings.kill_switch),
        PauseGuard(coordination),
        MaintenanceWindowGuard(settings.maintenance, settings.zone, coordination),
        CircuitBreakerGuard(coordination, settings.circuit_breaker),
        ProtectedTargetGuard(settings.protected),
        FlapGuard(settings.flap),
        ApprovalGuard(settings.hold_severities),
    ]
    quotas: list[QuotaRule] = [
        CooldownRule(settings.default_cooldown),
        RateLimitRule(),
        BlastRadiusRule(),
        BudgetRule(settings.budget),
    ]
    return Guardrails(coordination, checks, quotas)
