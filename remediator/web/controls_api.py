"""The operators' controls in the JSON API: the kill switch, scoped pauses, maintenance windows and
circuits. Anyone with the viewer role reads them; changing one needs the admin role. The rules
(what a change must carry, what is audited) are `guardrails/controls.py`'s, shared with the console.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from remediator.errors import BadRequest, CoordinationUnavailable
from remediator.guardrails.controls import CHANGE_ROLE, READ_ROLE, Controls
from remediator.web.common import Role, authorize, error_response, json_response, read_json_object
from remediator.web.keys import DEPS

Work = Callable[[str, Controls], Awaitable[web.Response]]


def controls_of(request: web.Request) -> Controls:
    deps = request.config_dict[DEPS]
    return Controls(deps.coordination, deps.settings.guardrails, deps.clock)


async def _answer(request: web.Request, role: Role, work: Work) -> web.Response:
    """Authorize as `role`, do the work; its refusal or an unreachable coordination store as JSON."""
    try:
        who = authorize(request, request.config_dict[DEPS].settings.api, role)
        return await work(who, controls_of(request))
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)


async def get_killswitch(request: web.Request) -> web.Response:
    async def work(_: str, controls: Controls) -> web.Response:
        return json_response((await controls.kill_switch()).as_json())
    return await _answer(request, READ_ROLE, work)


async def set_killswitch(request: web.Request) -> web.Response:
    async def work(who: str, controls: Controls) -> web.Response:
        payload = await read_json_object(request)
        state = await controls.set_kill_switch(who, payload.get("enabled"), payload.get("reason"))
        return json_response({"enabled": state.enabled, "by": who, "reason": state.reason})
    return await _answer(request, CHANGE_ROLE, work)


async def list_pauses(request: web.Request) -> web.Response:
    async def work(_: str, controls: Controls) -> web.Response:
        return json_response({"pauses": [p.model_dump(mode="json") for p in await controls.pauses()]})
    return await _answer(request, READ_ROLE, work)


async def add_pause(request: web.Request) -> web.Response:
    async def work(who: str, controls: Controls) -> web.Response:
        pause = await controls.add_pause(who, await read_json_object(request))
        return json_response(pause.model_dump(mode="json"), 201)
    return await _answer(request, CHANGE_ROLE, work)


async def end_pause(request: web.Request) -> web.Response:
    async def work(who: str, controls: Controls) -> web.Response:
        payload = await read_json_object(request)
        scope, match = await controls.end_pause(who, payload.get("scope"), payload.get("match"))
        return json_response({"scope": scope, "match": match, "ended": True, "by": who})
    return await _answer(request, CHANGE_ROLE, work)


async def list_windows(request: web.Request) -> web.Response:
    async def work(_: str, controls: Controls) -> web.Response:
        views = [controls.window_view(*found) for found in await controls.windows()]
        return json_response({"time_zone": controls.settings.time_zone, "windows": views})
    return await _answer(request, READ_ROLE, work)


async def add_window(request: web.Request) -> web.Response:
    async def work(who: str, controls: Controls) -> web.Response:
        window = await controls.add_window(who, await read_json_object(request))
        return json_response(controls.window_view(window, "api", who), 201)
    return await _answer(request, CHANGE_ROLE, work)


async def end_window(request: web.Request) -> web.Response:
    async def work(who: str, controls: Controls) -> web.Response:
        name = await controls.end_window(who, (await read_json_object(request)).get("name"))
        return json_response({"name": name, "ended": True, "by": who})
    return await _answer(request, CHANGE_ROLE, work)


async def list_circuits(request: web.Request) -> web.Response:
    async def work(_: str, controls: Controls) -> web.Response:
        breaker = controls.settings.circuit_breaker
        return json_response({"threshold": breaker.failures, "cool_off_seconds": breaker.cool_off.total_seconds(),
                              "circuits": [controls.circuit_view(c) for c in await controls.circuits()]})
    return await _answer(request, READ_ROLE, work)


async def close_circuit(request: web.Request) -> web.Response:
    async def work(who: str, controls: Controls) -> web.Response:
        payload = await read_json_object(request)
        action, target, reason = await controls.close_circuit(who, payload.get("action"), payload.get("target"),
                                                              payload.get("reason"))
        return json_response({"action": action, "target": target, "closed": True, "by": who, "reason": reason})
    return await _answer(request, CHANGE_ROLE, work)
