"""Scoped pauses: list them (viewer), pause a policy, action type or target (admin), end a pause
(admin). See guardrails/pause.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from aiohttp import web
from pydantic import ValidationError

from remediator.errors import BadRequest, CoordinationUnavailable
from remediator.guardrails.pause import KIND, Pause, active_pauses, pause_name
from remediator.observability import get_logger
from remediator.settings import parse_duration
from remediator.web.bodies import read_body
from remediator.web.common import authorize, error_response, json_response
from remediator.web.keys import DEPS

log = get_logger("remediator.api")
SHAPE = ('expected {"scope": "policy|action|target", "match": "<glob>", "reason": "...", '
         '"for": "2h" or "until": "<RFC 3339 time>" (neither: until ended)}')


async def _payload(request: web.Request) -> dict[str, Any]:
    try:
        payload = orjson.loads(await read_body(request, 16 * 1024))
    except orjson.JSONDecodeError:
        raise BadRequest(400, "malformed_json", "the body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, "invalid_payload", SHAPE)
    return payload


def _until(payload: dict[str, Any], now: datetime) -> datetime | None:
    lasting, until = payload.pop("for", None), payload.pop("until", None)
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


async def list_pauses(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        authorize(request, deps.settings.api, "viewer")
        found = await active_pauses(deps.coordination, deps.clock.now())
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    return json_response({"pauses": [p.model_dump(mode="json") for p in found]})


async def add_pause(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    now = deps.clock.now()
    try:
        who = authorize(request, deps.settings.api, "admin")
        payload = await _payload(request)
        until = _until(payload, now)
        try:
            pause = Pause.model_validate({**payload, "by": who, "at": now, "until": until})
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise BadRequest(400, "invalid_payload", f"{detail} ({SHAPE})") from None
        await deps.coordination.put_control(KIND, pause.name, pause.model_dump_json().encode())
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    log.warning("paused", scope=pause.scope, match=pause.match, by=who, reason=pause.reason,
                until=until.isoformat() if until else None)
    return json_response(pause.model_dump(mode="json"), 201)


async def end_pause(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        who = authorize(request, deps.settings.api, "admin")
        payload = await _payload(request)
        scope, match = payload.get("scope"), payload.get("match")
        if not isinstance(scope, str) or not isinstance(match, str):
            raise BadRequest(400, "invalid_payload", 'expected {"scope": "...", "match": "..."}')
        ended = await deps.coordination.remove_control(KIND, pause_name(scope, match))
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    if not ended:
        return json_response({"error": "not_found", "detail": f"no pause of {scope} {match}"}, 404)
    log.warning("pause_ended", scope=scope, match=match, by=who)
    return json_response({"scope": scope, "match": match, "ended": True, "by": who})
