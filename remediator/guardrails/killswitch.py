"""Kill switch: when on (in settings or through the API), nothing runs.

Except the daemon ending its own restrictions on schedule (`lifts_own_restriction`: a WAF
block's expiry): the switch stops remediator from changing the estate further; it must not turn
a block people agreed to for 15 minutes into one that lasts as long as the switch is on. Such a
request passes with the switch's state noted in its decision.
"""

from __future__ import annotations

from remediator.guardrails.base import GuardInput, lifts_own_restriction
from remediator.model import Decision, DecisionReason
from remediator.stores.coordination import Coordination


class KillSwitchGuard:
    name = "kill_switch"

    def __init__(self, coordination: Coordination, *, forced: bool) -> None:
        self.coordination = coordination
        self.forced = forced

    async def check(self, given: GuardInput) -> Decision | None:
        detail = await self._engaged()
        if detail is None:
            return None
        if lifts_own_restriction(given):
            return Decision.allow(f"{detail}; let through: an expiry only lifts remediator's own restriction")
        return Decision.deny(DecisionReason.KILL_SWITCH, detail, self.name)

    async def _engaged(self) -> str | None:
        """Why the switch is on, or None when it is off."""
        if self.forced:
            return "kill switch is on in settings"
        state = await self.coordination.kill_switch()
        if state.enabled:
            return f"kill switch turned on by {state.by or 'someone'}" + (f": {state.reason}" if state.reason else "")
        return None
