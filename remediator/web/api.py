"""The JSON API: incidents with their timeline and audit trail (the controls are `controls_api`'s)."""

from __future__ import annotations

from aiohttp import web

from remediator.errors import BadRequest
from remediator.model import IncidentStatus
from remediator.web.common import Role, authorize, error_response, json_response
from remediator.web.keys import DEPS
from remediator.web.views import audit_view, event_view, incident_view

MAX_LIMIT = 1000


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
