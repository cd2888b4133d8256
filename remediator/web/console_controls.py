"""The console's controls page: the kill switch, scoped pauses, maintenance windows and circuits.

Everyone signed in sees them; only the admin role changes them, through forms that POST with the
session's CSRF token from this site (as the approvals page's do). The rules and the audit line
of every change are `guardrails/controls.py`'s, the same the JSON API applies. A refused change
is answered with the page itself, a 4xx status and a box that says why; nothing was changed. A
change leads back to the page (303) with what was done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from remediator.clock import describe_duration
from remediator.errors import BadRequest
from remediator.guardrails.controls import Controls, may_change
from remediator.observability import get_logger
from remediator.settings import MaintenanceWindow
from remediator.web import console_html as ui
from remediator.web.console_auth import SESSION, back, same_site
from remediator.web.console_pages import When, render_page
from remediator.web.controls_api import controls_of
from remediator.web.keys import DEPS, SESSIONS

log = get_logger("remediator.console")

DONE = {
    "kill_switch_on": "The kill switch is on: nothing runs until it is turned off.",
    "kill_switch_off": "The kill switch is off: guarded actions run again.",
    "paused": "Paused.", "pause_ended": "The pause is ended.",
    "window_set": "The maintenance window is set.", "window_ended": "The maintenance window is ended.",
    "circuit_closed": "The circuit is closed: the action type is tried on that target again.",
}
Change = Callable[[str, Controls, dict[str, str]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class WindowRow:
    """A maintenance window as the page lists it."""

    window: MaintenanceWindow
    source: str
    by: str
    open_until: datetime | None  # None when it is not open now


async def show(request: web.Request, flash: ui.Markup = ui.NOTHING, status: int = 200) -> web.Response:
    """GET <prefix>/controls: every control, with forms for an admin."""
    if not flash and request.query.get("done") in DONE:
        flash = ui.flash_box(DONE[request.query["done"]], True)
    controls, session = controls_of(request), request[SESSION]
    windows = [WindowRow(window, source, by, controls.open_until(window)) for window, source, by in
               await controls.windows()]
    return render_page(request, "controls.html", "Controls", status, flash, may_change=may_change(session.roles),
                       kill_switch=await controls.kill_switch(), pauses=await controls.pauses(), windows=windows,
                       circuits=[controls.circuit_view(c) for c in await controls.circuits()],
                       breaker=controls.settings.circuit_breaker, time_zone=controls.settings.time_zone,
                       csrf=session.csrf, describe=describe_duration,
                       when=When(request.config_dict[DEPS].settings.incidents.zone))


def _fields(form: Mapping[str, object], *names: str) -> dict[str, str]:
    return {name: str(form.get(name, "")).strip() for name in names}


def _given(fields: dict[str, str]) -> dict[str, str]:
    """The fields a person filled in (an empty one is one not given)."""
    return {k: v for k, v in fields.items() if v}


async def _change(request: web.Request, names: tuple[str, ...], change: Change) -> web.Response:
    """Check the session may change controls and the form is this site's, then make the change."""
    session = request[SESSION]
    form = await request.post()
    if not same_site(request) or not request.config_dict[SESSIONS].csrf_ok(session, str(form.get("csrf", ""))):
        log.warning("console_csrf_refused", who=session.name, remote=request.remote, path=request.path)
        return await _refused(request, BadRequest(403, "bad_csrf", "the form had expired or was not sent from "
                                                                   "this site; nothing was changed. Please try again"))
    if not may_change(session.roles):
        return await _refused(request, BadRequest(403, "forbidden", f"{session.name} may look at the controls; "
                                                                    "changing them needs the admin role"))
    try:
        done = await change(session.name, controls_of(request), _fields(form, *names))
    except BadRequest as error:
        return await _refused(request, error)
    return back(ui.CONTROLS_PAGE, done=done)


async def _refused(request: web.Request, error: BadRequest) -> web.Response:
    return await show(request, ui.flash_box(f"Not changed: {error.detail}.", False), error.status)


async def set_kill_switch(request: web.Request) -> web.Response:
    """POST <prefix>/controls/killswitch: `enabled` (on|off) and a reason."""
    async def change(who: str, controls: Controls, fields: dict[str, str]) -> str:
        enabled = {"on": True, "off": False}.get(fields["enabled"])
        state = await controls.set_kill_switch(who, enabled, fields["reason"])
        return "kill_switch_on" if state.enabled else "kill_switch_off"
    return await _change(request, ("enabled", "reason"), change)


async def add_pause(request: web.Request) -> web.Response:
    """POST <prefix>/controls/pauses: scope, match, reason, and `for` or `until` (neither: until ended)."""
    async def change(who: str, controls: Controls, fields: dict[str, str]) -> str:
        await controls.add_pause(who, {**fields, "for": fields["for"] or None, "until": fields["until"] or None})
        return "paused"
    return await _change(request, ("scope", "match", "reason", "for", "until"), change)


async def end_pause(request: web.Request) -> web.Response:
    """POST <prefix>/controls/pauses/end: scope and match of the pause."""
    async def change(who: str, controls: Controls, fields: dict[str, str]) -> str:
        await controls.end_pause(who, fields["scope"], fields["match"])
        return "pause_ended"
    return await _change(request, ("scope", "match"), change)


WINDOW_FIELDS = ("name", "reason", "start", "end", "cron", "duration", "policies", "actions", "targets")


def _window(fields: dict[str, str]) -> dict[str, object]:
    """The form's window as `guardrails.maintenance` takes one; the globs comma-separated."""
    given: dict[str, object] = dict(_given(fields))
    for key in ("policies", "actions", "targets"):
        if key in given:
            given[key] = [glob.strip() for glob in fields[key].split(",") if glob.strip()]
    return given


async def add_window(request: web.Request) -> web.Response:
    """POST <prefix>/controls/maintenance: a one-off (start, end) or recurring (cron, duration) window."""
    async def change(who: str, controls: Controls, fields: dict[str, str]) -> str:
        await controls.add_window(who, _window(fields))
        return "window_set"
    return await _change(request, WINDOW_FIELDS, change)


async def end_window(request: web.Request) -> web.Response:
    """POST <prefix>/controls/maintenance/end: the name of a window set at run time."""
    async def change(who: str, controls: Controls, fields: dict[str, str]) -> str:
        await controls.end_window(who, fields["name"])
        return "window_ended"
    return await _change(request, ("name",), change)


async def close_circuit(request: web.Request) -> web.Response:
    """POST <prefix>/controls/circuits/close: action type, target and a reason."""
    async def change(who: str, controls: Controls, fields: dict[str, str]) -> str:
        await controls.close_circuit(who, fields["action"], fields["target"], fields["reason"])
        return "circuit_closed"
    return await _change(request, ("action", "target", "reason"), change)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/controls", show)
    app.router.add_post("/controls/killswitch", set_kill_switch)
    app.router.add_post("/controls/pauses", add_pause)
    app.router.add_post("/controls/pauses/end", end_pause)
    app.router.add_post("/controls/maintenance", add_window)
    app.router.add_post("/controls/maintenance/end", end_window)
    app.router.add_post("/controls/circuits/close", close_circuit)
