"""The JSON API: incidents with their timeline and audit trail, and the kill switch."""

from __future__ import annotations

import orjson
from aiohttp import web

from remediator.errors import BadRequest, CoordinationUnavailable
from remediator.model import IncidentStatus
from remediator.observability import get_logger
from remediator.stores.base import KillSwitch
from remediator.web.bodies import read_body
from remediator.web.common import Role, authorize, error_response, json_response
from remediator.web.keys import DEPS
from remediator.web.views import audit_view, event_view, incident_view

MAX_LIMIT = 1000
log = get_logger("remediator.api")


def _caller(request: web.Request, role: Role) -> str:
    return authorize(request, request.app[DEPS].settings.api, role)


def _limit(request: web.Request) -> int:
    raw = request.query.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(400, "invalid_query", f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(raw)


async def list_incidents(request: web.Request) -> web.Response:
    try:
        _caller(request, "viewer")
        status_text = request.query.get("status")
        try:
            status = IncidentStatus(status_text) if status_text else None
        except ValueError:
            raise BadRequest(400, "invalid_query", "status must be open, resolved or closed") from None
        incidents = await request.app[DEPS].store.list_incidents(status, _limit(request))
    except BadRequest as error:
        return error_response(error)
    return json_response({"incidents": [incident_view(i) for i in incidents]})


async def get_incident(request: web.Request) -> web.Response:
    try:
        _caller(request, "viewer")
    except BadRequest as error:
        return error_response(error)
    store = request.app[DEPS].store
    incident = await store.get_incident(request.match_info["id"])
    if incident is None:
        return json_response({"error": "not_found", "detail": "no such incident"}, 404)
    timeline = await store.timeline(incident.id)
    audit = await store.list_audit(incident.id, MAX_LIMIT)
    return json_response({**incident_view(incident), "timeline": [event_view(e) for e in timeline],
                          "audit": [audit_view(a) for a in reversed(audit)]})


async def list_audit(request: web.Request) -> web.Response:
    try:
        _caller(request, "viewer")
        records = await request.app[DEPS].store.list_audit(request.query.get("incident"), _limit(request))
    except BadRequest as error:
        return error_response(error)
    return json_response({"audit": [audit_view(a) for a in records]})


async def get_killswitch(request: web.Request) -> web.Response:
    try:
        _caller(request, "viewer")
        deps = request.app[DEPS]
        state = await deps.coordination.kill_switch()
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    forced = deps.settings.guardrails.kill_switch
    return json_response({"enabled": state.enabled or forced, "forced_by_settings": forced, "by": state.by,
                          "reason": state.reason, "at": state.at.isoformat() if state.at else None})


async def set_killswitch(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        who = _caller(request, "admin")
        body = await read_body(request, 16 * 1024)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequest(400, "malformed_json", "the body is not JSON") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("enabled"), bool):
            raise BadRequest(400, "invalid_payload", 'expected {"enabled": true|false, "reason": "..."}')
        reason = payload.get("reason", "")
        if not isinstance(reason, str) or len(reason) > 500:
            raise BadRequest(400, "invalid_payload", "reason must be a string of at most 500 characters")
        state = KillSwitch(payload["enabled"], who, reason, deps.clock.now())
        await deps.coordination.set_kill_switch(state)
    except BadRequest as error:
        return error_response(error)
    except CoordinationUnavailable as exc:
        return json_response({"error": "coordination_unavailable", "detail": str(exc)}, 503)
    log.warning("kill_switch", enabled=state.enabled, by=who, reason=reason)
    return json_response({"enabled": state.enabled, "by": who, "reason": reason})
