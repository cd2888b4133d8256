"""Maintenance windows, from settings (`guardrails.maintenance`) or set at run time through the
API or CLI (kept in coordination, so every replica obeys them): while one is open, the requests
it covers (by policy, action type and target) are denied with reason `maintenance_window`.
Alerts are recorded and incidents opened as always; only actions wait for the people doing the
maintenance.

Like the kill switch, a window never keeps remediator's own restriction in place: the expiry of
its WAF block (`lifts_own_restriction`) passes, with the window noted in its decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo

from pydantic import BaseModel, ConfigDict, ValidationError

from remediator.guardrails.base import GuardInput, lifts_own_restriction
from remediator.model import Decision, DecisionReason
from remediator.settings import MaintenanceWindow
from remediator.stores.coordination import Coordination

KIND = "maintenance"


class ScheduledWindow(BaseModel):
    """A window people set through the API or CLI (kept in coordination), with who set it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window: MaintenanceWindow
    by: str
    at: datetime


async def scheduled_windows(coordination: Coordination) -> list[ScheduledWindow]:
    """The windows set at run time (one stored by another version and unreadable here is skipped)."""
    found = []
    for raw in (await coordination.controls(KIND)).values():
        try:
            found.append(ScheduledWindow.model_validate_json(raw))
        except ValidationError:
            continue
    return sorted(found, key=lambda w: w.window.name)


class MaintenanceWindowGuard:
    name = "maintenance_window"

    def __init__(self, windows: Sequence[MaintenanceWindow], zone: tzinfo,
                 coordination: Coordination | None = None) -> None:
        self.windows = list(windows)
        self.zone = zone
        self.coordination = coordination  # where windows set at run time are kept

    async def check(self, given: GuardInput) -> Decision | None:
        request = given.request
        scheduled = await scheduled_windows(self.coordination) if self.coordination is not None else []
        for window in [*self.windows, *(s.window for s in scheduled)]:
            if not window.covers(request.policy, request.action, request.target):
                continue
            until = window.open_until(given.now, self.zone)
            if until is None:
                continue
            why = f": {window.reason}" if window.reason else ""
            detail = f"maintenance window {window.name} until {until.astimezone(self.zone).isoformat()}{why}"
            if lifts_own_restriction(given):
                return Decision.allow(f"{detail}; let through: an expiry only lifts remediator's own restriction")
            return Decision.deny(DecisionReason.MAINTENANCE_WINDOW, detail, self.name)
        return None
