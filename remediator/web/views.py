"""JSON shapes of the domain objects, shared by the API and the CLI."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from remediator.model import AuditRecord, Incident, TimelineEvent


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def incident_view(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id, "title": incident.title, "severity": incident.severity.value,
        "status": incident.status.value, "phase": incident.phase.value, "correlation_key": incident.correlation_key,
        "opened_at": _iso(incident.opened_at), "updated_at": _iso(incident.updated_at),
        "resolved_at": _iso(incident.resolved_at), "closed_at": _iso(incident.closed_at),
        "alert_count": incident.alert_count, "firing": incident.firing_count,
        "phase_times": {k: _iso(v) for k, v in incident.phase_times.items()},
        "root_cause": incident.root_cause, "acknowledged_by": incident.acknowledged_by,
    }


def event_view(event: TimelineEvent) -> dict[str, Any]:
    return {"at": _iso(event.at), "kind": event.kind, "message": event.message, "alert_id": event.alert_id,
            "request_id": event.request_id, "data": dict(event.data)}


def audit_view(record: AuditRecord) -> dict[str, Any]:
    view = asdict(record)
    view["at"] = _iso(record.at)
    for key in ("verdict", "decision_reason", "outcome", "failure_reason"):
        value = view[key]
        view[key] = value.value if value is not None else None
    view["params"], view["detail"] = dict(record.params), dict(record.detail)
    return view
