"""Statistics on a seeded set of incidents whose expected numbers are worked out below."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from remediator.incidents.stats import incident_stats
from remediator.model import (
    Approval,
    ApprovalStatus,
    AuditRecord,
    DecisionReason,
    Incident,
    IncidentStatus,
    Outcome,
    Phase,
    Severity,
    Verdict,
)
from remediator.settings import IncidentSettings
from tests.support import builders

SINCE, UNTIL = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
NOW = UNTIL


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def incident(key: str, severity: Severity, opened: datetime, *, acked: timedelta | None = None,
             recovered: timedelta | None = None) -> Incident:
    return Incident(
        id=f"INC-{key}", correlation_key=key, title=key, severity=severity,
        status=IncidentStatus.RESOLVED if recovered else IncidentStatus.OPEN,
        phase=Phase.RECOVER if recovered else Phase.TRIAGE, opened_at=opened, updated_at=opened,
        resolved_at=opened + recovered if recovered else None,
        acknowledged_by="alice" if acked else "", acknowledged_at=opened + acked if acked else None,
    )


def succeeded(incident_id: str, when: datetime, action: str = "test.restart", origin: str = "policy") -> AuditRecord:
    return AuditRecord(
        request_id=f"{incident_id}-{action}-{origin}", at=when, incident_id=incident_id, alert_id="a", policy="p",
        action=action, target="t", params={}, plan_hash="h", mode="enforce", verdict=Verdict.ALLOW,
        decision_reason=DecisionReason.ALLOWED, decision_detail="", outcome=Outcome.SUCCEEDED, origin=origin,
    )


# A: P1, acknowledged after 10 min, recovered after 40 min by an automatic restart: no target missed.
# B: P1, acknowledged after 25 min (> 15), recovered after 90 min (> 1 h) by an approved restart.
# C: P2, nobody acknowledged, recovered after 20 min (< 30: no response was due); only a notification ran.
# D: P3, nobody acknowledged, still open on 1 March: both its targets (2 h, 24 h) have passed.
# E: P2, acknowledged after 5 min, recovered after 60 min by an automatic restart.
INCIDENTS = [
    incident("A", Severity.P1, at(1, 5, 9), acked=timedelta(minutes=10), recovered=timedelta(minutes=40)),
    incident("B", Severity.P1, at(1, 20, 14), acked=timedelta(minutes=25), recovered=timedelta(minutes=90)),
    incident("C", Severity.P2, at(2, 2, 10), recovered=timedelta(minutes=20)),
    incident("D", Severity.P3, at(2, 10, 8)),
    incident("E", Severity.P2, at(2, 14, 12), acked=timedelta(minutes=5), recovered=timedelta(minutes=60)),
]
AUDIT = [
    succeeded("INC-A", at(1, 5, 9, 5)),
    succeeded("INC-B", at(1, 20, 14, 20), origin="approval:APR-1"),
    succeeded("INC-C", at(2, 2, 10, 1), action="notify.webhook"),
    succeeded("INC-E", at(2, 14, 12, 2)),
]


def approval(key: str, status: ApprovalStatus, decided_after: timedelta, outcome: Outcome | None = None) -> Approval:
    base = builders.approval(alert_id=key, created_at=at(1, 20, 14, 5))
    return dataclasses.replace(base, status=status, decided_at=base.created_at + decided_after, outcome=outcome)


APPROVALS = [
    approval("1", ApprovalStatus.APPROVED, timedelta(minutes=12), Outcome.SUCCEEDED),
    approval("2", ApprovalStatus.REJECTED, timedelta(minutes=4)),
    approval("3", ApprovalStatus.EXPIRED, timedelta(minutes=30)),  # not a decision by people
    approval("4", ApprovalStatus.NO_LONGER_NEEDED, timedelta(minutes=2)),
    approval("5", ApprovalStatus.APPROVED, timedelta(minutes=20), Outcome.FAILED),
]


def test_stats_on_the_seeded_incidents() -> None:
    stats = incident_stats(INCIDENTS, AUDIT, APPROVALS, IncidentSettings(), now=NOW, since=SINCE, until=UNTIL)

    assert stats["incidents"] == {
        "total": 5,
        "by_severity": {"P1": 2, "P2": 2, "P3": 1, "P4": 0},
        "by_month": {"2026-01": {"P1": 2, "P2": 0, "P3": 0, "P4": 0},
                     "2026-02": {"P1": 0, "P2": 2, "P3": 1, "P4": 0}},
    }
    # Recovered: A 40 min, B 90, C 20, E 60 → mean 52.5 min = 3150 s, max 90 min = 5400 s.
    assert stats["recovery"]["recovered"] == 4
    assert (stats["recovery"]["mean_seconds"], stats["recovery"]["max_seconds"]) == (3150.0, 5400.0)
    assert stats["recovery"]["by_severity"]["P1"] == {"recovered": 2, "mean_seconds": 3900.0, "max_seconds": 5400.0}
    assert stats["recovery"]["by_severity"]["P3"] == {"recovered": 0, "mean_seconds": None, "max_seconds": None}
    # Automatic: A and E (B needed people; C only notified) → 2 of 4 recovered.
    assert stats["auto_remediated"] == {"count": 2, "share": 0.5}
    # Missed: B (respond 25 > 15 min, recover 90 > 60 min) and D (open past 2 h and 24 h).
    assert stats["sla_breaches"]["respond"] == 2 and stats["sla_breaches"]["recover"] == 2
    assert stats["sla_breaches"]["by_severity"]["P1"] == {"respond": 1, "recover": 1}
    assert stats["sla_breaches"]["by_severity"]["P3"] == {"respond": 1, "recover": 1}
    # Decided by people: 12, 4 and 20 minutes → median 12 min = 720 s.
    assert stats["approvals"] == {
        "total": 5,
        "by_outcome": {"pending": 0, "approved": 2, "rejected": 1, "expired": 1, "no_longer_needed": 1},
        "approved_runs": {"failed": 1, "succeeded": 1},
        "median_latency_seconds": 720.0,
    }


def test_an_empty_period_has_no_averages() -> None:
    stats = incident_stats([], [], [], IncidentSettings(), now=NOW, since=SINCE, until=UNTIL)
    assert stats["recovery"]["mean_seconds"] is None and stats["auto_remediated"]["share"] is None
    assert stats["approvals"]["median_latency_seconds"] is None and stats["incidents"]["by_month"] == {}


def test_the_runbooks_monthly_view_and_mttr() -> None:
    stats = incident_stats(INCIDENTS, AUDIT, APPROVALS, IncidentSettings(), now=NOW, since=SINCE, until=UNTIL)
    # §10.3's view: newest month first, then severity; minutes. February: C 20 and E 60 min (P2), D open (P3);
    # January: A 40 and B 90 min (P1).
    assert stats["monthly"] == [
        {"month": "2026-02", "severity": "P2", "incident_count": 2, "resolved_count": 2,
         "avg_resolution_minutes": 40.0, "max_resolution_minutes": 60.0},
        {"month": "2026-02", "severity": "P3", "incident_count": 1, "resolved_count": 0,
         "avg_resolution_minutes": None, "max_resolution_minutes": None},
        {"month": "2026-01", "severity": "P1", "incident_count": 2, "resolved_count": 2,
         "avg_resolution_minutes": 65.0, "max_resolution_minutes": 90.0},
    ]
    # MTTR over the three months before 1 March (from 1 December): every seeded incident that recovered.
    assert stats["mttr"]["since"] == "2025-12-01T00:00:00+00:00"
    assert stats["mttr"]["by_severity"] == {"P1": {"resolved_count": 2, "mttr_minutes": 65.0},
                                            "P2": {"resolved_count": 2, "mttr_minutes": 40.0},
                                            "P3": {"resolved_count": 0, "mttr_minutes": None},
                                            "P4": {"resolved_count": 0, "mttr_minutes": None}}


def test_mttr_looks_three_months_back_whatever_the_period_and_leaves_older_incidents_out() -> None:
    old = incident("OLD", Severity.P1, datetime(2025, 11, 30, tzinfo=UTC), recovered=timedelta(minutes=500))
    february = [i for i in INCIDENTS if i.opened_at.month == 2]
    stats = incident_stats(february, [], [], IncidentSettings(), now=NOW, since=at(2, 1, 0), until=UNTIL,
                           history=[old, *INCIDENTS])
    assert stats["incidents"]["total"] == 3  # the period: February
    assert stats["mttr"]["by_severity"]["P1"] == {"resolved_count": 2, "mttr_minutes": 65.0}  # January's, not OLD


def test_counts_are_numbers_never_booleans() -> None:
    # One incident that missed both targets: the first count of a Counter must still be a number.
    [late] = [i for i in INCIDENTS if i.id == "INC-D"]
    stats = incident_stats([late], [], [], IncidentSettings(), now=NOW, since=SINCE, until=UNTIL)
    by_severity = stats["sla_breaches"]["by_severity"]
    assert by_severity["P3"] == {"respond": 1, "recover": 1}
    counts = [v for s in by_severity.values() for v in s.values()] + [stats["auto_remediated"]["count"]]
    assert all(type(v) is int for v in counts)
