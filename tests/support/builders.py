"""Small builders for domain objects, with defaults a test can override by keyword."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from remediator.model import (
    ActionRequest,
    Alert,
    AlertStatus,
    AuditRecord,
    DecisionReason,
    Outcome,
    Risk,
    Severity,
    Verdict,
)
from tests.conftest import T0


def alert(
    name: str = "PostgresTooManyConnections", *, status: str = "firing", fingerprint: str = "fp-1",
    starts_at: datetime = T0, group: str = "group-1", labels: dict[str, str] | None = None,
    keys: tuple[str, ...] | None = None, actionable: bool = True, source: str = "alertmanager",
    received_at: datetime | None = None,
) -> Alert:
    stamp = starts_at.isoformat()
    return Alert(
        source=source, name=name, status=AlertStatus(status), fingerprint=fingerprint,
        dedup_keys=keys or (f"test:{fingerprint}:{stamp}:{status}",), group_key=group, starts_at=starts_at,
        received_at=received_at or starts_at + timedelta(seconds=1),
        labels={"alertname": name, "instance": "db-1:9187", **(labels or {})},
        annotations={"summary": "too many connections"}, actionable=actionable, summary="too many connections",
    )


def request(
    request_id: str = "req-1", *, incident_id: str = "INC-2026-00001", alert_id: str = "alert-1",
    action: str = "notify.webhook", target: str = "notify:oncall", created_at: datetime = T0, **extra: Any,
) -> ActionRequest:
    fields: dict[str, Any] = {
        "id": request_id, "alert_id": alert_id, "incident_id": incident_id, "policy": "pg-conns", "step": 0,
        "action": action, "target": target, "params": {"to": "oncall", "text": "hi"}, "severity": Severity.P2,
        "risk": Risk.NORMAL, "plan_hash": "h" * 64, "created_at": created_at,
    }
    fields.update(extra)
    return ActionRequest(**fields)


def audit(req: ActionRequest, *, at: datetime = T0, outcome: Outcome = Outcome.DRY_RUN) -> AuditRecord:
    return AuditRecord(
        request_id=req.id, at=at, incident_id=req.incident_id, alert_id=req.alert_id, policy=req.policy,
        action=req.action, target=req.target, params=req.params, plan_hash=req.plan_hash, mode="dry-run",
        verdict=Verdict.ALLOW, decision_reason=DecisionReason.ALLOWED, decision_detail="", outcome=outcome,
        detail={"would_call": []},
    )
