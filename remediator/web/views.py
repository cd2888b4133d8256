"""JSON shapes of the domain objects, shared by the API and the CLI."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from remediator.actions.base import ActionRegistry
from remediator.model import Approval, AuditRecord, Incident, TimelineEvent


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
        "acknowledged_at": _iso(incident.acknowledged_at),
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


def action_summary(registry: ActionRegistry, action_type: str) -> str:
    """What an action does, in plain words: the first paragraph of its docstring."""
    action = registry.get(action_type)
    doc = (type(action).__doc__ or "").strip().split("\n\n")[0] if action is not None else ""
    return " ".join(doc.split()) or f"{action_type} (an action this daemon does not know)"


def approval_view(approval: Approval, registry: ActionRegistry) -> dict[str, Any]:
    return {
        "id": approval.id, "status": approval.status.value, "severity": approval.severity.value,
        "incident_id": approval.incident_id, "alert_id": approval.alert_id, "request_id": approval.request_id,
        "policy": approval.policy, "step": approval.step,
        "plan": {"action": approval.action, "target": approval.target, "params": dict(approval.params),
                 "hash": approval.plan_hash, "summary": action_summary(registry, approval.action)},
        "requested_by": approval.requested_by, "reason": approval.reason, "required": approval.required,
        "approvers": list(approval.approvers),
        "votes": [{"by": v.by, "choice": v.choice.value, "reason": v.reason, "plan_hash": v.plan_hash,
                   "at": _iso(v.at)} for v in approval.votes],
        "created_at": _iso(approval.created_at), "expires_at": _iso(approval.expires_at),
        "decided_at": _iso(approval.decided_at), "run_request_id": approval.run_request_id or None,
        "outcome": approval.outcome.value if approval.outcome else None, "detail": approval.detail,
    }
