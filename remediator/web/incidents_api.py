"""What people do to incidents through the API, and the reports: statistics and postmortem drafts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from aiohttp import web

from remediator.deps import Deps
from remediator.errors import BadRequest, StoreUnavailable
from remediator.incidents import record
from remediator.incidents.lifecycle import Acknowledge, AddNote, Close, Command, MovePhase, SetRootCause, measure
from remediator.incidents.reports import declaration_view, executive_report_text, postmortem_report, stats_report
from remediator.model import Phase
from remediator.observability import get_logger
from remediator.web.common import STORE_DOWN, authorize, error_response, json_response, read_json_object, text_field
from remediator.web.keys import DEPS, ENGINE
from remediator.web.views import incident_view

log = get_logger("remediator.api.incidents")

MAX_PERIOD = timedelta(days=2 * 366)
T = TypeVar("T")


RECORDS = {"checklist": record.check_item, "roles": record.assign_role,
           "postmortem-fields": record.postmortem_fields, "prevention-actions": record.prevention_action}


def _phase(payload: dict[str, Any], who: str) -> MovePhase:
    try:
        phase = Phase(str(payload.get("phase")))
    except ValueError:
        raise BadRequest(400, "invalid_payload", f"phase must be one of {', '.join(p.value for p in Phase)}") from None
    return MovePhase(who, phase, text_field(payload, "note", max_length=500, required=False))


async def _command(request: web.Request, who: str, action: str) -> Command:
    payload = await read_json_object(request)
    if action == "acknowledge":
        return Acknowledge(who, text_field(payload, "note", required=False))
    if action == "notes":
        return AddNote(who, text_field(payload, "text"))
    if action == "root-cause":
        return SetRootCause(who, text_field(payload, "text"))
    if action == "phase":
        return _phase(payload, who)
    if action in RECORDS:
        return RECORDS[action](who, payload)
    force = payload.get("force", False)
    if not isinstance(force, bool):
        raise BadRequest(400, "invalid_payload", "force must be true or false")
    return Close(who, text_field(payload, "reason", max_length=500), force)


async def incident_command(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/acknowledge | notes | root-cause | phase | checklist | roles |
    postmortem-fields | prevention-actions | close (approver role)."""
    deps, engine = request.app[DEPS], request.app[ENGINE]
    incident_id, action = request.match_info["id"], request.match_info["action"]
    try:
        who = authorize(request, deps.settings.api, "approver")
        command = await _command(request, who, action)
        effect = await deps.store.apply_incident_command(incident_id, command, deps.clock.now())
        if effect is not None and not effect.refusal:
            if isinstance(command, Close):
                await engine.escalation.stop(incident_id)
                await engine.declaration.stop(incident_id)
                await engine.approvals.incident_closed(incident_id)
            elif isinstance(command, Acknowledge):
                settings = deps.settings.incidents
                incident = effect.incident
                if measure(incident, settings.targets[incident.severity], settings.zone, deps.clock.now()) \
                        .respond_breached:
                    deps.metrics.sla_breaches.labels(incident.severity.value, "respond").inc()
    except BadRequest as error:
        return error_response(error)
    except StoreUnavailable:
        return json_response(STORE_DOWN, 503)
    if effect is None:
        return json_response({"error": "not_found", "detail": "no such incident"}, 404)
    if effect.refusal:
        return json_response({"error": "conflict", "detail": effect.refusal}, 409)
    log.info("incident_command", incident_id=incident_id, action=action, by=who)
    return json_response(incident_view(effect.incident))


def _moment(raw: str, name: str) -> datetime:
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), datetime.min.time(), UTC)
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(400, "invalid_query", f"{name} must be a date (2026-01-31) or an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise BadRequest(400, "invalid_query", f"{name} needs a time zone (e.g. 2026-01-31T00:00:00Z)")
    return moment


def period(query: dict[str, str], now: datetime) -> tuple[datetime, datetime]:
    """`since` and `until` from a query (default: the last 365 days), checked."""
    until = _moment(query["until"], "until") if query.get("until") else now
    since = _moment(query["since"], "since") if query.get("since") else until - timedelta(days=365)
    if since >= until:
        raise BadRequest(400, "invalid_query", "since must be before until")
    if until - since > MAX_PERIOD:
        raise BadRequest(400, "invalid_query", "a period is at most two years")
    return since, until


async def stats(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        authorize(request, deps.settings.api, "viewer")
        since, until = period(dict(request.query), deps.clock.now())
        report = await stats_report(deps.store, deps.settings, since, until, deps.clock.now())
    except BadRequest as error:
        return error_response(error)
    except StoreUnavailable:
        return json_response(STORE_DOWN, 503)
    return json_response(report)


async def _viewer_read(request: web.Request, read: Callable[[Deps, str], Awaitable[T | None]]) -> T | web.Response:
    """A viewer's read of one incident's report: the report, or the error response."""
    deps = request.app[DEPS]
    try:
        authorize(request, deps.settings.api, "viewer")
        found = await read(deps, request.match_info["id"])
    except BadRequest as error:
        return error_response(error)
    except StoreUnavailable:
        return json_response(STORE_DOWN, 503)
    return json_response({"error": "not_found", "detail": "no such incident"}, 404) if found is None else found


async def postmortem(request: web.Request) -> web.Response:
    """GET /api/v1/incidents/{id}/postmortem | report: the postmortem draft or the executive report."""
    make = postmortem_report if request.path.endswith("/postmortem") else executive_report_text
    text = await _viewer_read(request, lambda deps, id_: make(deps.store, deps.settings, id_, deps.clock.now()))
    if isinstance(text, web.Response):
        return text
    return web.Response(text=text, content_type="text/markdown", charset="utf-8")


async def declaration(request: web.Request) -> web.Response:
    """GET /api/v1/incidents/{id}/declaration: checklists, roles, channel, postmortem fields."""
    view = await _viewer_read(request, lambda deps, id_: declaration_view(deps.store, id_, deps.clock.now()))
    return view if isinstance(view, web.Response) else json_response(view)


async def deadline(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/deadlines (approver): `{"deadline": name, "start": true}` starts
    one (counted from the incident's opening); `{"deadline": name, "met": true, "note": ...}` marks it."""
    deps, engine = request.app[DEPS], request.app[ENGINE]
    incident_id = request.match_info["id"]
    names = deps.settings.incidents.deadlines
    try:
        who = authorize(request, deps.settings.api, "approver")
        payload = await read_json_object(request)
        incident = await deps.store.get_incident(incident_id)
        if incident is None:
            return json_response({"error": "not_found", "detail": "no such incident"}, 404)
        if payload.get("start") is True and set(payload) <= {"deadline", "start"}:
            if payload.get("deadline") not in names:
                raise BadRequest(400, "invalid_payload", f"deadline must be one of {', '.join(sorted(names))}")
            if not await engine.deadlines.start(incident, str(payload["deadline"]), who):
                return json_response({"error": "conflict", "detail": "that deadline has started already"}, 409)
        else:
            command = record.deadline_met(who, payload, names)
            if command.data["deadline"] not in record.fold(await deps.store.timeline(incident_id)).deadlines:
                return json_response({"error": "conflict", "detail": "that deadline has not started"}, 409)
            effect = await deps.store.apply_incident_command(incident_id, command, deps.clock.now())
            incident = effect.incident if effect is not None else incident
    except BadRequest as error:
        return error_response(error)
    except StoreUnavailable:
        return json_response(STORE_DOWN, 503)
    log.info("incident_deadline", incident_id=incident_id, by=who, deadline=payload.get("deadline"))
    return json_response(incident_view(incident))
