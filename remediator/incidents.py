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
    """What one alert does to its incident: the incident to write (if any), the events, and
    whether the alert's fingerprint joins (+1) or leaves (-1) the incident's firing set."""

    incident: Incident | None
    events: tuple[TimelineEvent, ...]
    opened: bool = False
    resolved: bool = False
    severity_raised: bool = False
    firing_change: int = 0


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


def with_matches(
    events: list[TimelineEvent], alert: Alert, policies: tuple[str, ...], at: datetime
) -> list[TimelineEvent]:
    """The alert's events once it matched policies: its `alert_firing` becomes a `matched` event
    (one event per alert either way: an alert storm must not double the timeline)."""
    others = [e for e in events if not (e.kind == "alert_firing" and e.alert_id == alert.id)]
    incident_id = events[0].incident_id
    return [*others, TimelineEvent(incident_id, at, "matched", f"{alert.name} matched {', '.join(policies)}",
                                   alert_id=alert.id, data={"policies": list(policies),
                                                            "fingerprint": alert.fingerprint})]


def title_of(alert: Alert) -> str:
    subject = alert.labels.get("service") or alert.labels.get("instance") or alert.labels.get("alarm_name", "")
    return f"{alert.name} on {subject}" if subject and subject != alert.name else alert.name


def _event(incident_id: str, alert: Alert, at: datetime, kind: str, message: str) -> TimelineEvent:
    data = {"status": alert.status.value, "fingerprint": alert.fingerprint, "source": alert.source}
    return TimelineEvent(incident_id, at, kind, message, alert_id=alert.id, data=data)


def apply_alert(
    current: Incident | None, alert: Alert, severity: Severity, now: datetime, new_id: Callable[[], str],
    *, known: bool = False,
) -> AlertEffect:
    """Correlate one (non-stale) alert with the open incident of its group, if any.

    `known`: the alert's fingerprint is in the open incident's firing set already. The set itself
    lives in the store (an alert storm can hold thousands); only its size is on the incident.
    """
    if not alert.actionable:
        if current is None:
            return AlertEffect(None, ())
        return AlertEffect(current, (_event(current.id, alert, now, "observed", f"observed: {alert.name}"),))
    if alert.status is AlertStatus.FIRING:
        return _firing(current, alert, severity, now, new_id, known=known)
    if current is None:
        return AlertEffect(None, ())
    change = -1 if known else 0
    incident = dataclasses.replace(current, firing_count=current.firing_count + change, updated_at=now)
    events = [_event(incident.id, alert, now, "alert_resolved", f"resolved: {alert.name}")]
    if incident.firing_count > 0:
        return AlertEffect(incident, tuple(events), firing_change=change)
    incident = move_phase(incident, Phase.RECOVER, now)
    incident = dataclasses.replace(incident, status=IncidentStatus.RESOLVED, resolved_at=now)
    events.append(TimelineEvent(incident.id, now, "resolved", "all alerts resolved", alert_id=alert.id))
    return AlertEffect(incident, tuple(events), resolved=True, firing_change=change)


def _firing(
    current: Incident | None, alert: Alert, severity: Severity, now: datetime, new_id: Callable[[], str],
    *, known: bool,
) -> AlertEffect:
    if current is None:
        incident = Incident(
            id=new_id(), correlation_key=alert.group_key, title=title_of(alert), severity=severity,
            status=IncidentStatus.OPEN, phase=Phase.DETECT, opened_at=now, updated_at=now,
            firing_count=1, phase_times={Phase.DETECT.value: now},
        )
        opened = TimelineEvent(incident.id, now, "detected", f"{alert.name}: {alert.summary}".rstrip(": "),
                               alert_id=alert.id, data={"severity": severity.value, "source": alert.source,
                                                        "fingerprint": alert.fingerprint})
        return AlertEffect(incident, (opened,), opened=True, firing_change=1)
    raised = severity.rank < current.severity.rank
    change = 0 if known else 1
    incident = dataclasses.replace(
        current, firing_count=current.firing_count + change, alert_count=current.alert_count + 1, updated_at=now,
        severity=severity if raised else current.severity,
    )
    events = [_event(incident.id, alert, now, "alert_firing", f"firing: {alert.name}")]
    if raised:
        events.append(TimelineEvent(incident.id, now, "severity_raised",
                                    f"severity raised {current.severity.value} → {severity.value}",
                                    alert_id=alert.id, data={"from": current.severity.value, "to": severity.value}))
    return AlertEffect(incident, tuple(events), severity_raised=raised, firing_change=change)
