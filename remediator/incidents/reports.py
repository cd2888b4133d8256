"""Reads that reports need, shared by the HTTP API and the CLI: statistics, postmortem drafts, the
executive report and the declaration checklist."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.incidents.lifecycle import measure
from remediator.incidents.postmortem import draft
from remediator.incidents.record import CHECKLISTS, DECLARED_SEVERITIES, checklist_view, deadlines_view
from remediator.incidents.stats import incident_stats, months_before
from remediator.incidents.summary import IncidentRecord, executive_report
from remediator.settings import Settings
from remediator.settings.people import INCIDENT_ROLES
from remediator.stores.base import Store

ALL = 1_000_000  # "every approval of the period": periods are bounded by the callers


async def stats_report(store: Store, settings: Settings, since: datetime, until: datetime,
                       now: datetime) -> dict[str, Any]:
    """Statistics of the incidents opened, and the approvals created, in [since, until)."""
    incidents = await store.list_incidents_opened(since, until)
    audit = await store.audit_for_incidents([i.id for i in incidents])
    approvals = await store.list_approvals(since=since, until=until, limit=ALL)
    three_months = months_before(until, 3)
    history = None if since <= three_months else await store.list_incidents_opened(three_months, until)
    return incident_stats(incidents, audit, approvals, settings.incidents, now=now, since=since, until=until,
                          history=history)


async def incident_record(store: Store, incident_id: str) -> IncidentRecord | None:
    incident = await store.get_incident(incident_id)
    if incident is None:
        return None
    approvals = await store.list_approvals(incident_id=incident_id, limit=ALL)
    timeline = await store.timeline(incident_id)
    first = next((e.alert_id for e in timeline if e.kind == "detected" and e.alert_id), "")
    alert = await store.get_alert(first) if first else None
    return IncidentRecord.of(incident, timeline, await store.audit_for_incidents([incident_id]),
                             list(reversed(approvals)), alert.starts_at if alert else None)


async def postmortem_report(store: Store, settings: Settings, incident_id: str, now: datetime) -> str | None:
    """The Markdown postmortem draft of one incident; None when there is no such incident."""
    record = await incident_record(store, incident_id)
    if record is None:
        return None
    incidents = settings.incidents
    targets = measure(record.incident, incidents.targets[record.incident.severity], incidents.zone, now)
    return draft(record, targets, incidents.zone, now)


async def executive_report_text(store: Store, settings: Settings, incident_id: str, now: datetime) -> str | None:
    record = await incident_record(store, incident_id)
    if record is None:
        return None
    return executive_report(record.incident, record.timeline, settings.incidents.zone, now, audit=record.audit,
                            started_at=record.started_at)


async def declaration_view(store: Store, incident_id: str, now: datetime) -> dict[str, Any] | None:
    """The declaration checklist (§4.2), the channel, the roles and both checklists' states."""
    record = await incident_record(store, incident_id)
    if record is None:
        return None
    facts = record.facts
    return {
        "incident_id": incident_id,
        "declared": record.incident.severity in DECLARED_SEVERITIES or bool(facts.channel),
        "channel": f"#{facts.channel}" if facts.channel else None,
        "channel_created": facts.channel_created,
        "roles": {role: ({"person": facts.roles[role][0], "by": facts.roles[role][1],
                          "at": facts.roles[role][2].isoformat()} if role in facts.roles else None)
                  for role in INCIDENT_ROLES},
        "checklists": {name: checklist_view(facts, name) for name in CHECKLISTS},
        "deadlines": deadlines_view(facts, now),
        "postmortem": {"fields": facts.fields,
                       "prevention_actions": [{"action": a.action, "owner": a.owner, "due": a.due.isoformat(),
                                               "by": a.by, "at": a.at.isoformat()} for a in facts.prevention_actions]},
    }
