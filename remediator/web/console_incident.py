"""The console's incident page (read only): phase, channel, roles, deadlines and the runbook's
declaration checklist (§4.2), with who checked what and when. Changes go through the API or
the CLI (`remediator incidents ...`); this page shows where an incident stands.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from remediator.incidents.record import DECLARATION, Facts
from remediator.incidents.reports import incident_record
from remediator.incidents.summary import IncidentRecord, when
from remediator.settings.people import INCIDENT_ROLES
from remediator.web import console_html as ui
from remediator.web.console_auth import SESSION, html, now_of
from remediator.web.keys import DEPS

INCIDENT_ID = re.compile(r"^INC-\d{4}-\d{5,}$")

SUMMARY = """<h2>{id} — {title}</h2>
<p>{severity} · {status} · phase <strong>{phase}</strong> · channel {channel}</p>
<h3>Deadlines</h3>{deadlines}
<h3>Roles</h3><ul>{roles}</ul>
<h3>Declaration checklist (runbook §4.2)</h3>{checklist}"""


def _deadlines(facts: Facts, now: datetime, zone: ZoneInfo) -> ui.Markup:
    rows = []
    for name, d in facts.deadlines.items():
        if d.met is not None and d.met.checked:
            state = f"met by {d.met.by} at {when(d.met.at, zone)}"
        else:
            state = "OVERDUE, not met" if now > d.due_at else "not met yet"
        rows.append(ui.render("<li><strong>{name}</strong>: {description} — due {due} ({state})</li>", name=name,
                              description=d.description, due=when(d.due_at, zone), state=state))
    return ui.render("<ul>{rows}</ul>", rows=ui.join(rows)) if rows else ui.Markup('<p class="muted">none</p>')


def _checklist(facts: Facts, zone: ZoneInfo) -> ui.Markup:
    found = facts.checks["declaration"]
    sections = []
    for section, items in DECLARATION.items():
        lines = []
        for key, text in items:
            check = found.get(key)
            done = check is not None and check.checked
            lines.append(ui.render("<li>{box} {text}{who}</li>", box="☑" if done else "☐", text=text,
                                   who=f" — {check.by}, {when(check.at, zone)}" if done and check else ""))
        sections.append(ui.render("<h4>{section}</h4><ul>{items}</ul>", section=section, items=ui.join(lines)))
    return ui.join(sections)


def incident_body(record: IncidentRecord, now: datetime, zone: ZoneInfo) -> ui.Markup:
    incident, facts = record.incident, record.facts
    roles = [ui.render("<li>{role}: {person}</li>", role=label,
                       person=facts.roles[key][0] if key in facts.roles else "—")
             for key, label in INCIDENT_ROLES.items()]
    return ui.render(SUMMARY, id=incident.id, title=incident.title, severity=incident.severity.value,
                     status=incident.status.value, phase=incident.phase.value,
                     channel=f"#{facts.channel}" if facts.channel else "—",
                     deadlines=_deadlines(facts, now, zone), roles=ui.join(roles), checklist=_checklist(facts, zone))


async def show_incident(request: web.Request) -> web.Response:
    """GET <prefix>/incidents/{id}."""
    deps = request.config_dict[DEPS]
    incident_id = request.match_info["id"]
    record = await incident_record(deps.store, incident_id) if INCIDENT_ID.match(incident_id) else None
    if record is None:
        body = ui.render('<p class="flash bad">No incident {id}.</p>', id=incident_id)
        return html(ui.page(body, request[SESSION]), status=404)
    return html(ui.page(incident_body(record, now_of(request), deps.settings.incidents.zone), request[SESSION]))
