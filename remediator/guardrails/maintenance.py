"""Maintenance windows: while one is open, the requests it covers (by policy, action type and
target) are denied with reason `maintenance_window`. Alerts are recorded and incidents opened as
always; only actions wait for the people doing the maintenance.

Like the kill switch, a window never keeps remediator's own restriction in place: the expiry of
its WAF block (`lifts_own_restriction`) passes, with the window noted in its decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import tzinfo

from remediator.guardrails.base import GuardInput, lifts_own_restriction
from remediator.model import Decision, DecisionReason
from remediator.settings import MaintenanceWindow


class MaintenanceWindowGuard:
    name = "maintenance_window"

    def __init__(self, windows: Sequence[MaintenanceWindow], zone: tzinfo) -> None:
        self.windows = list(windows)
        self.zone = zone

    async def check(self, given: GuardInput) -> Decision | None:
        request = given.request
        for window in self.windows:
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
