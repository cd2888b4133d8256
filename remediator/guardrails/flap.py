"""Flap control: an alert that changed state too often within a window is not acted on.

A state change is an occurrence of the alert (by fingerprint) starting to fire or resolving, the
same as what an on-call engineer sees flapping; each is counted once, however often it is
replayed after a crash (the occurrence's id is the member counted).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from remediator.guardrails.base import GuardInput
from remediator.model import Alert, AlertStatus, Decision, DecisionReason
from remediator.policy.match import PolicyIndex
from remediator.settings import WindowLimit
from remediator.stores.coordination import Coordination


def counts_for_flapping(alert: Alert, policies: PolicyIndex, matched: bool) -> bool:
    """Whether this alert's state change counts: it matched a policy, or it is the resolution of
    an alert that would (while firing) match one."""
    if matched:
        return True
    return alert.status is AlertStatus.RESOLVED and bool(policies.match(replace(alert, status=AlertStatus.FIRING)))


async def record_state_change(coordination: Coordination, alert: Alert, limit: WindowLimit, now: datetime) -> int:
    """Count this state change of the alert once; how many changes it had within the window."""
    return await coordination.record_change(_key(alert), limit.window, now, member=alert.id)


async def current_flap_count(coordination: Coordination, alert: Alert, limit: WindowLimit, now: datetime) -> int:
    """How many state changes the alert had within the window, counting none (a decision taken again)."""
    return len(await coordination.recent_changes(_key(alert), limit.window, now))


def _key(alert: Alert) -> str:
    return f"flap:{alert.fingerprint}"


class FlapGuard:
    name = "flap"

    def __init__(self, limit: WindowLimit) -> None:
        self.limit = limit

    async def check(self, given: GuardInput) -> Decision | None:
        if self.limit.max and given.flap_count > self.limit.max:
            return Decision.deny(
                DecisionReason.FLAPPING,
                f"{given.alert.name} changed state {given.flap_count} times within {self.limit.window}; "
                f"more than {self.limit.max} suppresses actions", self.name)
        return None
