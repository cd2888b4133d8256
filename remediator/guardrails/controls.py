"""Operators' controls: the kill switch, scoped pauses, maintenance windows set at run time, and
closing a circuit. Their rules live here once, for the JSON API and the console alike (the CLI
goes through the API): what a change must carry, who may make it, and what the audit log says.

A change that breaks a rule raises BadRequest (status, code, detail) before anything is stored.
Every change that is stored writes one warning line on the `remediator.controls` logger (the
controls' audit trail), naming who made it and why, whichever door it came through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from remediator.clock import Clock
from remediator.errors import BadRequest
from remediator.guardrails.circuit import circuit_key
from remediator.guardrails.maintenance import KIND as WINDOW_KIND
from remediator.guardrails.maintenance import ScheduledWindow, scheduled_windows
from remediator.guardrails.pause import KIND as PAUSE_KIND
from remediator.guardrails.pause import Pause, active_pauses, pause_name
from remediator.observability import get_logger
from remediator.settings import GuardrailSettings, MaintenanceWindow, parse_duration
from remediator.stores.circuits import Circuit
from remediator.stores.coordination import Coordination, KillSwitch

audit = get_logger("remediator.controls")

READ_ROLE: Final = "viewer"  # sees every control
CHANGE_ROLE: Final = "admin"  # changes them
MAX_TEXT = 500
PAUSE_SHAPE = ('expected {"scope": "policy|action|target", "match": "<glob>", "reason": "...", '
               '"for": "2h" or "until": "<RFC 3339 time>" (neither: until ended)}')


def may_change(roles: Iterable[str]) -> bool:
    """Whether someone with these roles may change a control (everyone signed in may look)."""
    return CHANGE_ROLE in roles


def required_text(value: object, what: str) -> str:
    """A person's text (a reason, a name): 1 to MAX_TEXT characters once trimmed."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > MAX_TEXT:
        raise BadRequest(400, "invalid_payload", f"{what} is required: 1 to {MAX_TEXT} characters")
    return text


def _validation_detail(exc: ValidationError, whole: str) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or whole}: {e['msg']}" for e in exc.errors())


def pause_until(lasting: object, until: object, now: datetime) -> datetime | None:
    """When a pause ends: `for` a duration or `until` a time with an offset (neither: until ended)."""
    if lasting is not None and until is not None:
        raise BadRequest(400, "invalid_payload", "give `for` or `until`, not both")
    try:
        if lasting is not None:
            duration = parse_duration(lasting)
            if duration.total_seconds() <= 0:
                raise ValueError("`for` must be longer than zero")
            return now + duration
        if until is not None:
            end = datetime.fromisoformat(str(until))
            if end.tzinfo is None or end <= now:
                raise ValueError("`until` must be a time with an offset, in the future")
            return end
    except ValueError as exc:
        raise BadRequest(400, "invalid_payload", str(exc)) from None
    return None


@dataclass(frozen=True, slots=True)
class KillSwitchView:
    """The switch as people see it: on in settings wins over what was set at run time."""

    enabled: bool
    forced_by_settings: bool
    state: KillSwitch

    def as_json(self) -> dict[str, Any]:
        at = self.state.at
        return {"enabled": self.enabled, "forced_by_settings": self.forced_by_settings, "by": self.state.by,
                "reason": self.state.reason, "at": at.isoformat() if at else None}


class Controls:
    """Reads and changes the controls in coordination (so every replica obeys them at once)."""

    def __init__(self, coordination: Coordination, settings: GuardrailSettings, clock: Clock) -> None:
        self.coordination = coordination
        self.settings = settings
        self.clock = clock

    # -- the kill switch --------------------------------------------------------------------------

    async def kill_switch(self) -> KillSwitchView:
        state = await self.coordination.kill_switch()
        forced = self.settings.kill_switch
        return KillSwitchView(state.enabled or forced, forced, state)

    async def set_kill_switch(self, who: str, enabled: object, reason: object) -> KillSwitch:
        if not isinstance(enabled, bool):
            raise BadRequest(400, "invalid_payload", 'expected {"enabled": true|false, "reason": "..."}')
        state = KillSwitch(enabled, who, required_text(reason, "reason"), self.clock.now())
        await self.coordination.set_kill_switch(state)
        audit.warning("kill_switch", enabled=enabled, by=who, reason=state.reason)
        return state

    # -- scoped pauses ----------------------------------------------------------------------------

    async def pauses(self) -> list[Pause]:
        return await active_pauses(self.coordination, self.clock.now())

    async def add_pause(self, who: str, fields: Mapping[str, Any]) -> Pause:
        """A pause from `scope`, `match`, `reason` and `for` or `until`; one of the same scope and
        match is replaced (its new reason and end are what count)."""
        now, given = self.clock.now(), dict(fields)
        until = pause_until(given.pop("for", None), given.pop("until", None), now)
        try:
            pause = Pause.model_validate({**given, "by": who, "at": now, "until": until})
        except ValidationError as exc:
            raise BadRequest(400, "invalid_payload", f"{_validation_detail(exc, 'pause')} ({PAUSE_SHAPE})") from None
        await self.coordination.put_control(PAUSE_KIND, pause.name, pause.model_dump_json().encode())
        audit.warning("paused", scope=pause.scope, match=pause.match, by=who, reason=pause.reason,
                      until=until.isoformat() if until else None)
        return pause

    async def end_pause(self, who: str, scope: object, match: object) -> tuple[str, str]:
        if not isinstance(scope, str) or not isinstance(match, str):
            raise BadRequest(400, "invalid_payload", 'expected {"scope": "...", "match": "..."}')
        if not await self.coordination.remove_control(PAUSE_KIND, pause_name(scope, match)):
            raise BadRequest(404, "not_found", f"no pause of {scope} {match}")
        audit.warning("pause_ended", scope=scope, match=match, by=who)
        return scope, match

    # -- maintenance windows ----------------------------------------------------------------------

    async def windows(self) -> list[tuple[MaintenanceWindow, str, str]]:
        """Every window: (window, where it comes from — settings or api —, who set it)."""
        found = [(w, "settings", "") for w in self.settings.maintenance]
        return found + [(s.window, "api", s.by) for s in await scheduled_windows(self.coordination)]

    def open_until(self, window: MaintenanceWindow) -> datetime | None:
        """When the window ends (in `guardrails.time_zone`) if it is open now; None when it is closed."""
        until = window.open_until(self.clock.now(), self.settings.zone)
        return until.astimezone(self.settings.zone) if until else None

    def window_view(self, window: MaintenanceWindow, source: str, by: str = "") -> dict[str, Any]:
        until = self.open_until(window)
        return {**window.model_dump(mode="json", exclude_none=True), "source": source, "by": by,
                "open_until": until.isoformat() if until else None}

    async def add_window(self, who: str, fields: object) -> MaintenanceWindow:
        """A window as `guardrails.maintenance` takes one; its name must be new."""
        try:
            window = MaintenanceWindow.model_validate(fields)
        except ValidationError as exc:
            raise BadRequest(400, "invalid_payload", _validation_detail(exc, "window")) from None
        if window.name in {w.name for w, _, _ in await self.windows()}:
            raise BadRequest(409, "conflict", f"a window named {window.name!r} exists; end it first, or pick "
                                              "another name")
        scheduled = ScheduledWindow(window=window, by=who, at=self.clock.now())
        await self.coordination.put_control(WINDOW_KIND, window.name, scheduled.model_dump_json().encode())
        audit.warning("maintenance_window_set", name=window.name, by=who, reason=window.reason)
        return window

    async def end_window(self, who: str, name: object) -> str:
        if not isinstance(name, str):
            raise BadRequest(400, "invalid_payload", 'expected {"name": "..."}')
        if any(w.name == name for w in self.settings.maintenance):
            raise BadRequest(409, "conflict", f"{name!r} is in the settings (guardrails.maintenance): change it there")
        if not await self.coordination.remove_control(WINDOW_KIND, name):
            raise BadRequest(404, "not_found", f"no window {name!r} was set at run time")
        audit.warning("maintenance_window_ended", name=name, by=who)
        return name

    # -- circuits ---------------------------------------------------------------------------------

    async def circuits(self) -> list[Circuit]:
        """Every circuit with failures counted, open or not."""
        return await self.coordination.circuits()

    def circuit_view(self, circuit: Circuit) -> dict[str, Any]:
        action, _, target = circuit.key.partition(":")
        breaker, now = self.settings.circuit_breaker, self.clock.now()
        closes = circuit.opened_at + breaker.cool_off if circuit.opened_at is not None else None
        return {"action": action, "target": target, "failures": circuit.failures, "reason": circuit.reason,
                "last_failure_at": circuit.last_failure_at.isoformat(),
                "state": "closed" if closes is None else ("open" if now < closes else "half_open"),
                "opened_at": circuit.opened_at.isoformat() if circuit.opened_at else None,
                "closes_at": closes.isoformat() if closes else None}

    async def close_circuit(self, who: str, action: object, target: object,
                            reason: object) -> tuple[str, str, str]:
        """A person closes a circuit: the action type is tried on the target again (each request still guarded)."""
        if not all(isinstance(f, str) and 0 < len(f) <= MAX_TEXT for f in (action, target, reason)):
            raise BadRequest(400, "invalid_payload", 'expected {"action": "...", "target": "...", "reason": "..."} '
                                                     f"(each 1 to {MAX_TEXT} characters)")
        action, target, reason = str(action), str(target), required_text(reason, "reason")
        if not await self.coordination.close_circuit(circuit_key(action, target)):
            raise BadRequest(404, "not_found", f"no failures are counted for {action} on {target}")
        audit.warning("circuit_closed", action=action, target=target, by=who, reason=reason)
        return action, target, reason
