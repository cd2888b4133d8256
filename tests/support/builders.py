"""Domain objects for tests, with defaults a reader need not care about."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from remediator.approvals import new_approval
from remediator.model import ActionRequest, Alert, AlertStatus, Approval, Choice, Risk, Severity, Vote, stable_id
from remediator.policy.plan import plan_hash

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, where FakeClock starts


def make_alert(
    name: str = "ApiErrorRate", *, fingerprint: str = "fp-api", status: AlertStatus = AlertStatus.FIRING,
    group_key: str = "group-api", starts_at: datetime = T0, labels: Mapping[str, str] | None = None,
    occurrence: str = "", received_at: datetime | None = None,
) -> Alert:
    """One Alertmanager-like occurrence; `occurrence` tells apart two deliveries of one alert."""
    key = f"am:{fingerprint}:{starts_at.isoformat()}:{status.value}{occurrence}"
    return Alert(
        source="alertmanager", name=name, status=status, fingerprint=fingerprint, dedup_keys=(key,),
        group_key=group_key, starts_at=starts_at, received_at=received_at or starts_at,
        labels=dict(labels or {"alertname": name, "service": "erp-api"}), summary=f"{name} summary",
    )


def make_request(
    *, incident_id: str = "INC-2026-00001", alert_id: str = "alert-1", policy: str = "api-redeploy",
    action: str = "notify.webhook", target: str = "notify:oncall", params: Mapping[str, object] | None = None,
    severity: Severity = Severity.P1, created_at: datetime = T0, step: int = 0,
) -> ActionRequest:
    params = dict(params if params is not None else {"to": "oncall", "text": "restart the API"})
    return ActionRequest(
        id=stable_id(alert_id, policy, str(step)), alert_id=alert_id, incident_id=incident_id, policy=policy,
        step=step, action=action, target=target, params=params, severity=severity, risk=Risk.NORMAL,
        plan_hash=plan_hash(action, target, params), created_at=created_at,
    )


def make_approval(
    *, required: int = 1, created_at: datetime = T0, ttl: timedelta = timedelta(minutes=30),
    incident_id: str = "INC-2026-00001", alert_id: str = "alert-1", policy: str = "api-redeploy",
    severity: Severity = Severity.P1,
) -> Approval:
    request = make_request(created_at=created_at, incident_id=incident_id, alert_id=alert_id, policy=policy,
                           severity=severity)
    return new_approval(request, "P1 policy: held for approval", required, created_at, ttl)


def vote(approval: Approval, by: str, choice: Choice = Choice.APPROVE, *, at: datetime = T0,
         plan: str | None = None, reason: str = "looked at the dashboards") -> Vote:
    return Vote(by=by, choice=choice, reason=reason, plan_hash=approval.plan_hash if plan is None else plan, at=at)
