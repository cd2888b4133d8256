"""Flap control: an alert that changed state too often within a window is not acted on."""

from __future__ import annotations

from remediator.guardrails.base import GuardInput
from remediator.model import Decision, DecisionReason
from remediator.settings import WindowLimit


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
