"""The console's incident pages: the list, one incident with its timeline picture, statistics.

Read-only, server-rendered from Jinja2 templates (`web/templates/`) with autoescaping on: alert
labels, titles and people's notes are attacker-influenced and only ever reach the page escaped.
Every page is behind the console's session (`console_auth.require_session`); the data comes
from the store's own queries (incident, timeline, approvals, the statistics report).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from remediator.clock import describe_duration
from remediator.errors import BadRequest
from remediator.incidents.lifecycle import Targets, measure, recovered_at
from remediator.incidents.reports import incident_record, postmortem_report, stats_report
from remediator.model import Approval, ApprovalStatus, Incident, IncidentStatus, Severity, TimelineEvent
from remediator.web import console_html as ui
from remediator.web.console_auth import SESSION, html, now_of, secure
from remediator.web.console_charts import lane_of, stacked_bars, timeline
from remediator.web.incidents_api import period
from remediator.web.keys import DEPS
from remediator.web.sessions import PATH

TEMPLATES = jinja2.Environment(loader=jinja2.PackageLoader("remediator.web", "templates"), autoescape=True,
                               undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
SEVERITIES = [s.value for s in Severity]
LISTED = 200


def render_page(request: web.Request, name: str, title: str, status: int = 200,
            flash: ui.Markup = ui.NOTHING, **values: object) -> web.Response:
    zone = request.config_dict[DEPS].settings.incidents.zone
    body = TEMPLATES.get_template(name).render(prefix=PATH, zone=zone.key, **values)
    return html(ui.page(ui.Markup(body), request[SESSION], flash, title=title,
                        mode=request.config_dict[DEPS].settings.mode.value), status)


class When:
    """Times as people read them: in the incidents' time zone, to the minute (or second)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    def __call__(self, value: datetime | None, seconds: bool = False) -> str:
        return value.astimezone(self.zone).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "")) if value else "—"


@dataclass(frozen=True, slots=True)
class Row:
    """One incident in the list, measured against its severity's targets."""

    incident: Incident
    targets: Targets
    age: str
    respond: str
    recover: str
    waiting: list[Approval]


def _targets(request: web.Request, incident: Incident, now: datetime) -> Targets:
    settings = request.config_dict[DEPS].settings.incidents
    return measure(incident, settings.targets[incident.severity], settings.zone, now)


def _age(incident: Incident, now: datetime) -> str:
    end = recovered_at(incident)
    return describe_duration((end or now) - incident.opened_at) + ("" if end else " so far")


def _due(due: datetime, breached: bool, done: datetime | None, now: datetime, when: When) -> str:
    if breached:
        return f"{when(due)} — missed"
    if done is not None or due <= now:
        return f"{when(due)} — met"
    return f"{when(due)} (in {describe_duration(due - now)})"


async def incidents(request: web.Request) -> web.Response:
    """GET <prefix>/incidents: open incidents first (most severe, then newest), then the rest."""
    store, now = request.config_dict[DEPS].store, now_of(request)
    when = When(request.config_dict[DEPS].settings.incidents.zone)
    waiting: dict[str, list[Approval]] = defaultdict(list)
    for approval in sorted(await store.list_approvals(ApprovalStatus.PENDING, limit=LISTED),
                           key=lambda a: a.expires_at):
        waiting[approval.incident_id].append(approval)
    # Every open incident (up to LISTED), however many newer ones have closed since.
    opened = await store.list_incidents(IncidentStatus.OPEN, limit=LISTED)
    found = opened + [i for i in await store.list_incidents(None, limit=LISTED) if i.status is not IncidentStatus.OPEN]
    found.sort(key=lambda i: (i.status is not IncidentStatus.OPEN, i.severity.rank, -i.opened_at.timestamp()))
    del found[LISTED:]
    rows = [_row(incident, _targets(request, incident, now), now, when, waiting[incident.id]) for incident in found]
    return render_page(request, "incidents.html", "Incidents", rows=rows, open_count=len(opened))


def _row(incident: Incident, targets: Targets, now: datetime, when: When, waiting: list[Approval]) -> Row:
    recovered = recovered_at(incident)
    return Row(incident, targets, _age(incident, now),
               _due(targets.respond_due, targets.respond_breached, incident.acknowledged_at or recovered, now, when),
               _due(targets.recover_due, targets.recover_breached, recovered, now, when), waiting)


@dataclass(frozen=True, slots=True)
class Check:
    """One item of the runbook's incident declaration checklist, and what in the record shows it."""

    text: str
    done: bool
    evidence: str = ""


def declaration(incident: Incident, events: list[TimelineEvent], when: When) -> list[Check]:
    kinds = {e.kind for e in events}
    escalations = [e for e in events if e.kind == "escalated"]
    return [
        Check("Symptom identified", True, incident.title),
        Check("Start time known", True, when(incident.opened_at)),
        Check("Severity judged", True, incident.severity.value),
        Check("Someone owns it (acknowledged)", incident.acknowledged_at is not None,
              f"{incident.acknowledged_by} at {when(incident.acknowledged_at)}" if incident.acknowledged_at else ""),
        Check("Timeline recording started", bool(events), f"{len(events)} event(s)"),
        Check("Escalated to the matrix's contacts", bool(escalations),
              escalations[-1].message if escalations else ""),
        Check("Impact and workarounds noted by people", "note" in kinds,
              "" if "note" in kinds else "add a note: who cannot do what"),
    ]


async def incident(request: web.Request) -> web.Response:
    """GET <prefix>/incidents/{id}: the timeline picture, its events, approvals, checklist, postmortem."""
    deps, now = request.config_dict[DEPS], now_of(request)
    record = await incident_record(deps.store, request.match_info["id"])
    if record is None:
        return render_page(request, "missing.html", "Incidents", 404, what=request.match_info["id"])
    zone, events, current = deps.settings.incidents.zone, list(record.timeline), record.incident
    targets, when = _targets(request, current, now), When(zone)
    return render_page(request, "incident.html", current.id, incident=current, targets=targets,
                   chart=timeline(current, events, targets, zone, now), events=events, lane_of=lane_of,
                   approvals=record.approvals, checklist=declaration(current, events, when), when=when,
                   age=_age(current, now), recovered=recovered_at(current))


async def postmortem(request: web.Request) -> web.Response:
    """GET <prefix>/incidents/{id}/postmortem: the Markdown draft, as text (never rendered as HTML)."""
    deps = request.config_dict[DEPS]
    text = await postmortem_report(deps.store, deps.settings, request.match_info["id"], now_of(request))
    if text is None:
        return render_page(request, "missing.html", "Incidents", 404, what=request.match_info["id"])
    response = web.Response(text=text, content_type="text/plain", charset="utf-8")
    secure(response)
    return response


def _minutes(seconds: float | None) -> float:
    return round(seconds / 60, 1) if seconds else 0.0


async def stats(request: web.Request) -> web.Response:
    """GET <prefix>/stats[?since=&until=]: counts per month and severity, MTTR per severity."""
    deps, now = request.config_dict[DEPS], now_of(request)
    query = dict(request.query)
    if len(query.get("until", "")) == len("2026-01-31"):  # the form's day is the last one shown
        query["until"] = _next_day(query["until"])
    try:
        since, until = period(query, now)
    except BadRequest as error:
        since, until = period({}, now)
        flash, status = ui.flash_box(f"{error.detail}; showing the last 365 days.", False), 400
    else:
        flash, status = ui.NOTHING, 200
    report = await stats_report(deps.store, deps.settings, since, until, now)
    months = stacked_bars(report["incidents"]["by_month"], SEVERITIES)
    mttr = stacked_bars({s: {s: _minutes(r["mean_seconds"])} for s, r in report["recovery"]["by_severity"].items()},
                        SEVERITIES, " min")
    return render_page(request, "stats.html", "Statistics", status, flash, report=report, severities=SEVERITIES,
                   months=months, mttr=mttr, since=f"{since:%Y-%m-%d}",
                   until=f"{until - timedelta(microseconds=1):%Y-%m-%d}", duration=_duration)


def _next_day(day: str) -> str:
    try:
        return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    except ValueError:
        return day  # `period` says what is wrong with it


def _duration(seconds: float | None) -> str:
    return describe_duration(timedelta(seconds=seconds)) if seconds is not None else "—"
