"""Incidents: how alerts open, update and resolve them, and the phases of the response.

`apply_alert` is pure: every store calls it inside its own transaction with the incident it
read, then writes what it returns. That keeps SQLite and PostgreSQL semantically identical.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from remediator.model import Alert, AlertStatus, Incident, IncidentStatus, Phase, Severity, TimelineEvent

PHASE_ORDER = list(Phase)


@dataclass(frozen=True, slots=True)
class AlertEffect:
    """What one alert does to its incident: the incident to write (if any) and the events."""

    incident: Incident | None
    events: tuple[TimelineEvent, ...]
    opened: bool = False
    resolved: bool = False
    severity_raised: bool = False


def move_phase(incident: Incident, phase: Phase, at: datetime) -> Incident:
    """Advance (never go back) to `phase`, stamping it and every skipped phase's time."""
    current = PHASE_ORDER.index(incident.phase)
    target = PHASE_ORDER.index(phase)
    if target <= current:
        return incident
    times = dict(incident.phase_times)
    for skipped in PHASE_ORDER[current + 1 : target + 1]:
        times.setdefault(skipped.value, at)
    return dataclasses.replace(incident, phase=phase, phase_times=times, updated_at=at)


def title_of(alert: Alert) -> str:
    subject = alert.labels.get("service") or alert.labels.get("instance") or alert.labels.get("alarm_name", "")
    return f"{alert.name} on {subject}" if subject and subject != alert.name else alert.name


def _event(incident_id: str, alert: Alert, at: datetime, kind: str, message: str) -> TimelineEvent:
    data = {"status": alert.status.value, "fingerprint": alert.fingerprint, "source": alert.source}
    return TimelineEvent(incident_id, at, kind, message, alert_id=alert.id, data=data)


def apply_alert(
    current: Incident | None, alert: Alert, severity: Severity, now: datetime, new_id: Callable[[], str]
) -> AlertEffect:
    """Correlate one (non-stale) alert with the open incident of its group, if any."""
    if not alert.actionable:
        if current is None:
            return AlertEffect(None, ())
        return AlertEffect(current, (_event(current.id, alert, now, "observed", f"observed: {alert.name}"),))
    if alert.status is AlertStatus.FIRING:
        return _firing(current, alert, severity, now, new_id)
    if current is None:
        return AlertEffect(None, ())
    firing = tuple(fp for fp in current.firing if fp != alert.fingerprint)
    incident = dataclasses.replace(current, firing=firing, updated_at=now)
    events = [_event(incident.id, alert, now, "alert_resolved", f"resolved: {alert.name}")]
    if firing:
        return AlertEffect(incident, tuple(events))
    incident = move_phase(incident, Phase.RECOVER, now)
    incident = dataclasses.replace(incident, status=IncidentStatus.RESOLVED, resolved_at=now)
    events.append(TimelineEvent(incident.id, now, "resolved", "all alerts resolved", alert_id=alert.id))
    return AlertEffect(incident, tuple(events), resolved=True)


def _firing(
    current: Incident | None, alert: Alert, severity: Severity, now: datetime, new_id: Callable[[], str]
) -> AlertEffect:
    if current is None:
        incident = Incident(
            id=new_id(), correlation_key=alert.group_key, title=title_of(alert), severity=severity,
            status=IncidentStatus.OPEN, phase=Phase.DETECT, opened_at=now, updated_at=now,
            firing=(alert.fingerprint,), phase_times={Phase.DETECT.value: now},
        )
        opened = TimelineEvent(incident.id, now, "detected", f"{alert.name}: {alert.summary}".rstrip(": "),
                               alert_id=alert.id, data={"severity": severity.value, "source": alert.source,
                                                        "fingerprint": alert.fingerprint})
        return AlertEffect(incident, (opened,), opened=True)
    raised = severity.rank < current.severity.rank
    firing = current.firing if alert.fingerprint in current.firing else (*current.firing, alert.fingerprint)
    incident = dataclasses.replace(
        current, firing=firing, alert_count=current.alert_count + 1, updated_at=now,
        severity=severity if raised else current.severity,
    )
    events = [_event(incident.id, alert, now, "alert_firing", f"firing: {alert.name}")]
    if raised:
        events.append(TimelineEvent(incident.id, now, "severity_raised",
                                    f"severity raised {current.severity.value} → {severity.value}",
                                    alert_id=alert.id, data={"from": current.severity.value, "to": severity.value}))
    return AlertEffect(incident, tuple(events), severity_raised=raised)
