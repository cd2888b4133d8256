"""Maintenance windows: list them (viewer; from settings and set at run time), schedule one (admin),
end one set at run time (admin). See guardrails/maintenance.py."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from remediator.deps import Deps
from remediator.errors import BadRequest, CoordinationUnavailable
from remediator.guardrails.maintenance import KIND, ScheduledWindow, scheduled_windows
from remediator.observability import get_logger
from remediator.settings import MaintenanceWindow
from remediator.web.bodies import read_body
from remediator.web.common import authorize, error_response, json_response
from remediator.web.keys import DEPS

log = get_logger("remediator.api")


def window_view(window: MaintenanceWindow, deps: Deps, source: str, by: str = "") -> dict[str, Any]:
    zone = deps.settings.guardrails.zone
    until = window.open_until(deps.clock.now(), zone)
    return {**window.model_dump(mode="json", exclude_none=True), "source": source, "by": by,
            "open_until": until.astimezone(zone).isoformat() if until else None}


async def list_windows(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        authorize(request, deps.settings.api, "viewer")
        scheduled = await scheduled_windows(deps.coordination)
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    views = [window_view(w, deps, "settings") for w in deps.settings.guardrails.maintenance]
    views += [window_view(s.window, deps, "api", s.by) for s in scheduled]
    return json_response({"time_zone": deps.settings.guardrails.time_zone, "windows": views})


async def _body(request: web.Request) -> Any:
    try:
        return orjson.loads(await read_body(request, 16 * 1024))
    except orjson.JSONDecodeError:
        raise BadRequest(400, "malformed_json", "the body is not JSON") from None


async def add_window(request: web.Request) -> web.Response:
    """A window as `guardrails.maintenance` takes one; its name must be new."""
    deps = request.app[DEPS]
    try:
        who = authorize(request, deps.settings.api, "admin")
        try:
            window = MaintenanceWindow.model_validate(await _body(request))
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'window'}: {e['msg']}" for e in exc.errors())
            raise BadRequest(400, "invalid_payload", detail) from None
        taken = {w.name for w in deps.settings.guardrails.maintenance}
        taken |= {s.window.name for s in await scheduled_windows(deps.coordination)}
        if window.name in taken:
            raise BadRequest(409, "conflict", f"a window named {window.name!r} exists; end it first, or pick "
                                              "another name")
        scheduled = ScheduledWindow(window=window, by=who, at=deps.clock.now())
        await deps.coordination.put_control(KIND, window.name, scheduled.model_dump_json().encode())
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    log.warning("maintenance_window_set", name=window.name, by=who, reason=window.reason)
    return json_response(window_view(window, deps, "api", who), 201)


async def end_window(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        who = authorize(request, deps.settings.api, "admin")
        payload = await _body(request)
        name = payload.get("name") if isinstance(payload, dict) else None
        if not isinstance(name, str):
            raise BadRequest(400, "invalid_payload", 'expected {"name": "..."}')
        if any(w.name == name for w in deps.settings.guardrails.maintenance):
            raise BadRequest(409, "conflict", f"{name!r} is in the settings (guardrails.maintenance): change it there")
        ended = await deps.coordination.remove_control(KIND, name)
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    if not ended:
        return json_response({"error": "not_found", "detail": f"no window {name!r} was set at run time"}, 404)
    log.warning("maintenance_window_ended", name=name, by=who)
    return json_response({"name": name, "ended": True, "by": who})
