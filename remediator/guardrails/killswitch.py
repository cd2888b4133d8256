"""Kill switch: when on (in settings or through the API), nothing runs."""

from __future__ import annotations

from remediator.guardrails.base import GuardInput
from remediator.model import Decision, DecisionReason
from remediator.stores.base import Coordination


class KillSwitchGuard:
    name = "kill_switch"

    def __init__(self, coordination: Coordination, *, forced: bool) -> None:
        self.coordination = coordination
        self.forced = forced

    async def check(self, given: GuardInput) -> Decision | None:
        if self.forced:
            return Decision.deny(DecisionReason.KILL_SWITCH, "kill switch is on in settings", self.name)
        state = await self.coordination.kill_switch()
        if state.enabled:
            detail = f"kill switch turned on by {state.by or 'someone'}" + (f": {state.reason}" if state.reason else "")
            return Decision.deny(DecisionReason.KILL_SWITCH, detail, self.name)
        return None
