"""Reads that reports need, shared by the HTTP API and the CLI: statistics and postmortem drafts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from remediator.incidents.lifecycle import measure
from remediator.incidents.postmortem import IncidentRecord, draft
from remediator.incidents.stats import incident_stats
from remediator.settings import Settings
from remediator.stores.base import Store

ALL = 1_000_000  # "every approval of the period": periods are bounded by the callers


async def stats_report(store: Store, settings: Settings, since: datetime, until: datetime,
                       now: datetime) -> dict[str, Any]:
    """Statistics of the incidents opened, and the approvals created, in [since, until)."""
    incidents = await store.list_incidents_opened(since, until)
    audit = await store.audit_for_incidents([i.id for i in incidents])
    approvals = await store.list_approvals(since=since, until=until, limit=ALL)
    return incident_stats(incidents, audit, approvals, settings.incidents, now=now, since=since, until=until)


async def incident_record(store: Store, incident_id: str) -> IncidentRecord | None:
    incident = await store.get_incident(incident_id)
    if incident is None:
        return None
    approvals = await store.list_approvals(incident_id=incident_id, limit=ALL)
    return IncidentRecord(incident, await store.timeline(incident_id), await store.audit_for_incidents([incident_id]),
                          list(reversed(approvals)))


async def postmortem_report(store: Store, settings: Settings, incident_id: str, now: datetime) -> str | None:
    """The Markdown postmortem draft of one incident; None when there is no such incident."""
    record = await incident_record(store, incident_id)
    if record is None:
        return None
    incidents = settings.incidents
    targets = measure(record.incident, incidents.targets[record.incident.severity], incidents.zone, now)
    return draft(record, targets, incidents.zone, now)
