"""Scoped pause: the kill switch for one policy, action type or target (a glob), with who paused
it, why, and until when (or until someone ends it). Requests it covers are denied with reason
`paused`; alerts are recorded as always. Pauses live in coordination, so every replica obeys them.

Like the kill switch, a pause never keeps remediator's own restriction in place: the expiry of its
WAF block (`lifts_own_restriction`) passes, with the pause noted in its decision.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediator.guardrails.base import GuardInput, lifts_own_restriction
from remediator.model import ActionRequest, Decision, DecisionReason
from remediator.stores.coordination import Coordination

KIND = "pause"
Scope = Literal["policy", "action", "target"]


class Pause(BaseModel):
    """One pause, as stored and as the API shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Scope
    match: str = Field(min_length=1, max_length=500)  # a glob on the request's policy, action type or target
    reason: str = Field(min_length=1, max_length=500)
    by: str
    at: datetime
    until: datetime | None = None  # None: until someone ends it

    @property
    def name(self) -> str:
        return pause_name(self.scope, self.match)

    def covers(self, request: ActionRequest, now: datetime) -> bool:
        if self.until is not None and now >= self.until:
            return False
        value = {"policy": request.policy, "action": request.action, "target": request.target}[self.scope]
        return fnmatch.fnmatchcase(value, self.match)

    def describe(self) -> str:
        until = f" until {self.until.isoformat()}" if self.until else " until ended"
        return f"{self.scope} {self.match} paused by {self.by}{until}: {self.reason}"


def pause_name(scope: str, match: str) -> str:
    return f"{scope}:{match}"


async def active_pauses(coordination: Coordination, now: datetime) -> list[Pause]:
    """The pauses in force at `now` (one stored by another version and unreadable here is skipped)."""
    found = []
    for raw in (await coordination.controls(KIND)).values():
        try:
            pause = Pause.model_validate_json(raw)
        except ValidationError:
            continue
        if pause.until is None or now < pause.until:
            found.append(pause)
    return sorted(found, key=lambda p: p.name)


class PauseGuard:
    name = "pause"

    def __init__(self, coordination: Coordination) -> None:
        self.coordination = coordination

    async def check(self, given: GuardInput) -> Decision | None:
        for pause in await active_pauses(self.coordination, given.now):
            if not pause.covers(given.request, given.now):
                continue
            if lifts_own_restriction(given):
                return Decision.allow(f"{pause.describe()}; let through: an expiry only lifts remediator's own "
                                      "restriction")
            return Decision.deny(DecisionReason.PAUSED, pause.describe(), self.name)
        return None
