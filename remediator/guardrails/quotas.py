"""The rules that limit how often: cooldown, rate limit, blast radius and the global budget."""

from __future__ import annotations

from datetime import timedelta

from remediator.guardrails.base import GuardInput
from remediator.model import DecisionReason
from remediator.settings import WindowLimit
from remediator.stores.coordination import Quota


class CooldownRule:
    """Once per (policy, target) per cooldown; the policy's own value or the default."""

    name = "cooldown"

    def __init__(self, default: timedelta) -> None:
        self.default = default

    def quota(self, given: GuardInput) -> Quota | None:
        window = given.step.cooldown if given.step.cooldown is not None else self.default
        if window.total_seconds() <= 0:
            return None
        request = given.request
        return Quota(f"cooldown:{request.policy}:{request.action}:{request.target}", 1, window,
                     DecisionReason.COOLDOWN)


class RateLimitRule:
    """At most N runs of one policy's step per window, whatever the target."""

    name = "rate_limit"

    def quota(self, given: GuardInput) -> Quota | None:
        limit = given.step.rate_limit
        if limit is None:
            return None
        return Quota(f"rate:{given.request.policy}:{given.request.step}", limit.max, limit.window,
                     DecisionReason.RATE_LIMITED)


class BlastRadiusRule:
    """At most N distinct targets of one action type per window (across policies)."""

    name = "blast_radius"

    def quota(self, given: GuardInput) -> Quota | None:
        limit = given.step.blast_radius
        if limit is None:
            return None
        return Quota(f"blast:{given.request.action}", limit.max, limit.window, DecisionReason.BLAST_RADIUS,
                     member=given.request.target)


class BudgetRule:
    """At most N actions per window for the whole daemon (all replicas)."""

    name = "budget"

    def __init__(self, budget: WindowLimit) -> None:
        self.budget = budget

    def quota(self, given: GuardInput) -> Quota | None:
        if given.action is not None and not given.action.budgeted:
            return None
        return Quota("budget", self.budget.max, self.budget.window, DecisionReason.BUDGET_EXHAUSTED)
