"""Approval: P1 requests (by settings) and high-risk actions wait for people.

Never held: what people approved (it runs as origin `approval:<id>`), and the daemon ending its
own restriction on schedule (a WAF block's expiry, part of the block people or the policy decided).

An action that changes nothing in the estate (a notification, a diagnostics snapshot) is not
held because of its policy's severity: holding it would only delay telling people about the
most serious incidents. A `risk: high` action, or a step that asks for approval, is always held.
"""

from __future__ import annotations

from collections.abc import Collection

from remediator.guardrails.base import GuardInput, lifts_own_restriction
from remediator.model import Decision, Risk, Severity


class ApprovalGuard:
    name = "approval"

    def __init__(self, hold_severities: Collection[Severity]) -> None:
        self.hold_severities = frozenset(hold_severities)

    async def check(self, given: GuardInput) -> Decision | None:
        request = given.request
        if request.origin.startswith("approval:"):
            return None  # people approved this very plan; the other rules still apply
        if lifts_own_restriction(given):
            return None  # the end of a restriction already decided; the other rules still apply
        reasons = []
        changes_nothing = given.action is not None and given.action.changes_nothing
        if request.severity in self.hold_severities and not changes_nothing:
            reasons.append(f"{request.severity.value} policy")
        if request.risk is Risk.HIGH:
            reasons.append(f"{request.action} is a high-risk action")
        if given.step.require_approval:
            reasons.append("the policy requires approval")
        if reasons:
            return Decision.hold("; ".join(reasons) + ": held for approval", self.name)
        return None
