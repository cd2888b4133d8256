"""Small builders for domain objects, with defaults a test can override by keyword."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from remediator.incidents.approvals import new_approval
from remediator.model import (
    ActionRequest,
    Alert,
    AlertStatus,
    Approval,
    AuditRecord,
    Choice,
    DecisionReason,
    Outcome,
    Risk,
    Severity,
    Verdict,
    Vote,
    stable_id,
)
from remediator.policy.plan import plan_hash
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


def approval(
    *, required: int = 1, created_at: datetime = T0, ttl: timedelta = timedelta(minutes=30),
    incident_id: str = "INC-2026-00001", alert_id: str = "alert-1", policy: str = "api-redeploy",
    severity: Severity = Severity.P1,
) -> Approval:
    """A pending approval of a held notify.webhook request (its plan hash is the real one)."""
    params = {"to": "oncall", "text": "restart the API"}
    held = request(stable_id(alert_id, policy, "0"), incident_id=incident_id, alert_id=alert_id,
                   created_at=created_at, policy=policy, severity=severity, params=params,
                   plan_hash=plan_hash("notify.webhook", "notify:oncall", params))
    return new_approval(held, "P1 policy: held for approval", required, created_at, ttl)


def vote(
    of: Approval, by: str, choice: Choice = Choice.APPROVE, *, at: datetime = T0, plan: str | None = None,
    reason: str = "looked at the dashboards",
) -> Vote:
    """`by`'s vote on `of`, naming the plan hash it was shown (`plan` to name another)."""
    return Vote(by=by, choice=choice, reason=reason, plan_hash=of.plan_hash if plan is None else plan, at=at)
