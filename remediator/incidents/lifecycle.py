"""Incidents: how alerts open, update and resolve them, what people do to them, their targets.

`apply_alert` and `apply_command` are pure: every store calls them inside its own transaction
with the incident it read, then writes what they return. That keeps SQLite and PostgreSQL
semantically identical, and concurrent workers never overwrite each other's changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from remediator.model import Alert, AlertStatus, Incident, IncidentStatus, Phase, Severity, TimelineEvent
from remediator.settings import SeverityTarget

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


_INCIDENT_FIELDS = tuple(f.name for f in dataclasses.fields(Incident))


def evolve(incident: Incident, **changes: object) -> Incident:
    """`dataclasses.replace` without its per-call introspection: correlation calls it per alert."""
    new = object.__new__(Incident)
    for name in _INCIDENT_FIELDS:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(incident, name))
    return new


def move_phase(incident: Incident, phase: Phase, at: datetime) -> Incident:
    """Advance (never go back) to `phase`, stamping when it was reached.

    A skipped phase stays unstamped: an incident whose alert resolved on its own was never
    contained, and its record must not say it was.
    """
    if PHASE_ORDER.index(phase) <= PHASE_ORDER.index(incident.phase):
        return incident
    times = {**incident.phase_times, phase.value: at}
    return evolve(incident, phase=phase, phase_times=times, updated_at=at)


def phase_events(before: Incident, after: Incident, at: datetime, by: str = "remediator") -> tuple[TimelineEvent, ...]:
    """The timeline's record of a phase transition (none when the phase did not change)."""
    if before.phase is after.phase:
        return ()
    return (TimelineEvent(after.id, at, "phase", f"phase {before.phase.value} → {after.phase.value} ({by})",
                          data={"from": before.phase.value, "to": after.phase.value, "by": by}),)


def title_of(alert: Alert) -> str:
    subject = alert.labels.get("service") or alert.labels.get("instance") or alert.labels.get("alarm_name", "")
    return f"{alert.name} on {subject}" if subject and subject != alert.name else alert.name


def _event(incident_id: str, alert: Alert, at: datetime, kind: str, message: str) -> TimelineEvent:
    data = {"status": alert.status, "fingerprint": alert.fingerprint, "source": alert.source}
    return TimelineEvent(incident_id, at, kind, message, alert_id=alert.id, data=data)


def _matched_event(incident_id: str, alert: Alert, policies: tuple[str, ...], at: datetime) -> TimelineEvent:
    return TimelineEvent(incident_id, at, "matched", f"{alert.name} matched {', '.join(policies)}",
                         alert_id=alert.id, data={"policies": list(policies), "fingerprint": alert.fingerprint})


def apply_alert(
    current: Incident | None, alert: Alert, severity: Severity, now: datetime, new_id: Callable[[], str],
    *, known: bool = False, matched: tuple[str, ...] = (),
) -> AlertEffect:
    """Correlate one (non-stale) alert with the open incident of its group, if any.

    `known`: the alert's fingerprint is in the open incident's firing set already. The set itself
    lives in the store (an alert storm can hold thousands); only its size is on the incident.
    `matched`: the policies the alert matched; a matched alert moves its open incident to triage,
    and its event says which policies (one event per alert: a storm must not double the timeline).
    """
    if not alert.actionable:
        if current is None:
            return AlertEffect(None, ())
        return AlertEffect(current, (_event(current.id, alert, now, "observed", f"observed: {alert.name}"),))
    if alert.status is AlertStatus.FIRING:
        return _firing(current, alert, severity, now, new_id, known=known, matched=matched)
    if current is None:
        return AlertEffect(None, ())
    change = -1 if known else 0
    incident = evolve(current, firing_count=current.firing_count + change, updated_at=now)
    events = [_event(incident.id, alert, now, "alert_resolved", f"resolved: {alert.name}")]
    if matched:
        events.append(_matched_event(incident.id, alert, matched, now))
    if incident.firing_count > 0:
        return AlertEffect(incident, tuple(events), firing_change=change)
    moved = move_phase(incident, Phase.RECOVER, now)
    events.append(TimelineEvent(incident.id, now, "resolved", "all alerts resolved", alert_id=alert.id))
    events += phase_events(incident, moved, now)
    incident = evolve(moved, status=IncidentStatus.RESOLVED, resolved_at=now)
    return AlertEffect(incident, tuple(events), resolved=True, firing_change=change)


def _firing(
    current: Incident | None, alert: Alert, severity: Severity, now: datetime, new_id: Callable[[], str],
    *, known: bool, matched: tuple[str, ...],
) -> AlertEffect:
    if current is None:
        incident = Incident(
            id=new_id(), correlation_key=alert.group_key, title=title_of(alert), severity=severity,
            status=IncidentStatus.OPEN, phase=Phase.DETECT, opened_at=now, updated_at=now,
            firing_count=1, phase_times={Phase.DETECT.value: now},
        )
        opened = [TimelineEvent(incident.id, now, "detected", f"{alert.name}: {alert.summary}".rstrip(": "),
                                alert_id=alert.id, data={"severity": severity, "source": alert.source,
                                                         "fingerprint": alert.fingerprint})]
        if matched:
            triaged = move_phase(incident, Phase.TRIAGE, now)
            opened += [_matched_event(incident.id, alert, matched, now), *phase_events(incident, triaged, now)]
            incident = triaged
        return AlertEffect(incident, tuple(opened), opened=True, firing_change=1)
    raised = severity.rank < current.severity.rank
    change = 0 if known else 1
    incident = evolve(
        current, firing_count=current.firing_count + change, alert_count=current.alert_count + 1, updated_at=now,
        severity=severity if raised else current.severity,
    )
    if matched:
        triaged = move_phase(incident, Phase.TRIAGE, now)
        events = [_matched_event(incident.id, alert, matched, now), *phase_events(incident, triaged, now)]
        incident = triaged
    else:
        events = [_event(incident.id, alert, now, "alert_firing", f"firing: {alert.name}")]
    if raised:
        events.append(TimelineEvent(incident.id, now, "severity_raised",
                                    f"severity raised {current.severity.value} → {severity.value}",
                                    alert_id=alert.id, data={"from": current.severity.value, "to": severity.value}))
    return AlertEffect(incident, tuple(events), severity_raised=raised, firing_change=change)


# -- what people do -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Acknowledge:
    """Someone owns the incident now: the first acknowledgement is its response time."""

    by: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class AddNote:
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class SetRootCause:
    by: str
    text: str


@dataclass(frozen=True, slots=True)
class MovePhase:
    """A person moves the incident on to a later phase of the runbook's flow (never back)."""

    by: str
    phase: Phase
    note: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """A fact people record on the incident's timeline (a checklist item, a role, a postmortem
    field; see `incidents.record`): one event, already validated, that changes no column."""

    by: str
    kind: str
    message: str
    data: dict[str, object]


@dataclass(frozen=True, slots=True)
class Close:
    """End the incident. An incident with firing alerts closes only when `force` says so."""

    by: str
    reason: str
    force: bool = False


Command = Acknowledge | AddNote | SetRootCause | MovePhase | Record | Close


@dataclass(frozen=True, slots=True)
class CommandEffect:
    """The incident to write and its events; or, with `refusal`, why nothing changed."""

    incident: Incident
    events: tuple[TimelineEvent, ...] = ()
    refusal: str = ""


def apply_command(current: Incident, command: Command, now: datetime) -> CommandEffect:
    """One person's change to an incident, checked against its current state."""
    def event(kind: str, message: str) -> TimelineEvent:
        return TimelineEvent(current.id, now, kind, message, data={"by": command.by})

    if isinstance(command, Acknowledge):
        if current.acknowledged_at is not None:
            return CommandEffect(current, refusal=f"acknowledged already by {current.acknowledged_by} at "
                                 f"{current.acknowledged_at.isoformat()}")
        if current.status is IncidentStatus.CLOSED:
            return CommandEffect(current, refusal="the incident is closed")
        acked = dataclasses.replace(move_phase(current, Phase.TRIAGE, now), acknowledged_by=command.by,
                                    acknowledged_at=now, updated_at=now)
        note = f": {command.note}" if command.note else ""
        return CommandEffect(acked, (event("acknowledged", f"acknowledged by {command.by}{note}"),
                                     *phase_events(current, acked, now, command.by)))
    if isinstance(command, AddNote):
        return CommandEffect(dataclasses.replace(current, updated_at=now),
                             (event("note", f"{command.by}: {command.text}"),))
    if isinstance(command, SetRootCause):
        changed = dataclasses.replace(move_phase(current, Phase.ROOT_CAUSE, now), root_cause=command.text,
                                      updated_at=now)
        return CommandEffect(changed, (event("root_cause", f"root cause set by {command.by}: {command.text}"),
                                       *phase_events(current, changed, now, command.by)))
    if isinstance(command, MovePhase):
        return _move(current, command, now)
    if isinstance(command, Record):
        return CommandEffect(dataclasses.replace(current, updated_at=now), (TimelineEvent(
            current.id, now, command.kind, command.message, data={**command.data, "by": command.by}),))
    return _close(current, command, now, event("closed", f"closed by {command.by}: {command.reason}"))


def _move(current: Incident, command: MovePhase, now: datetime) -> CommandEffect:
    """Forward only; `closed` is `Close`'s; the postmortem phase starts once no alert fires."""
    if command.phase is Phase.CLOSED or current.status is IncidentStatus.CLOSED:
        return CommandEffect(current, refusal="closing is its own command (close), with a reason"
                             if command.phase is Phase.CLOSED else "the incident is closed")
    if PHASE_ORDER.index(command.phase) <= PHASE_ORDER.index(current.phase):
        return CommandEffect(current, refusal=f"the incident is in phase {current.phase.value} already; "
                             f"phases only move forward ({' → '.join(p.value for p in PHASE_ORDER)})")
    if command.phase is Phase.POSTMORTEM and current.status is IncidentStatus.OPEN:
        return CommandEffect(current, refusal=f"{current.firing_count} alert(s) still firing: the postmortem "
                             "starts after recovery")
    moved = move_phase(current, command.phase, now)
    events = phase_events(current, moved, now, command.by)
    if command.note:
        events = (dataclasses.replace(events[0], message=f"{events[0].message}: {command.note}"),)
    return CommandEffect(moved, events)


def _close(current: Incident, command: Close, now: datetime, event: TimelineEvent) -> CommandEffect:
    if current.status is IncidentStatus.CLOSED:
        return CommandEffect(current, refusal="the incident is closed already")
    if current.status is IncidentStatus.OPEN and not command.force:
        return CommandEffect(current, refusal=f"{current.firing_count} alert(s) still firing; wait for them to "
                             "resolve, or close with force to end it anyway")
    closed = dataclasses.replace(move_phase(current, Phase.CLOSED, now), status=IncidentStatus.CLOSED,
                                 closed_at=now, updated_at=now)
    if current.status is IncidentStatus.OPEN:
        event = dataclasses.replace(event, message=event.message + " (closed while alerts were firing)")
    return CommandEffect(closed, (event, *phase_events(current, closed, now, command.by)))


# -- the runbook's targets ----------------------------------------------------------------------
def recovered_at(incident: Incident) -> datetime | None:
    """When it recovered: its alerts resolved, or (closed while firing) when people closed it."""
    return incident.resolved_at or incident.closed_at


def end_of_next_business_day(at: datetime, zone: ZoneInfo) -> datetime:
    """The end of the first Monday to Friday after `at`'s day, in `zone` (public holidays not known)."""
    day = at.astimezone(zone).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return datetime.combine(day + timedelta(days=1), time(0), zone)


@dataclass(frozen=True, slots=True)
class Targets:
    """An incident measured against its severity's targets at `now`."""

    respond_due: datetime
    recover_due: datetime
    respond_breached: bool
    recover_breached: bool


def measure(incident: Incident, target: SeverityTarget, zone: ZoneInfo, now: datetime) -> Targets:
    """Respond = first acknowledgement; an incident that recovered before its respond target needs none."""
    if target.respond == "next_business_day":
        respond_due = end_of_next_business_day(incident.opened_at, zone)
    else:
        respond_due = incident.opened_at + target.respond
    recover_due = incident.opened_at + target.recover
    recovered = recovered_at(incident)
    if incident.acknowledged_at is not None:
        respond_breached = incident.acknowledged_at > respond_due
    elif recovered is not None and recovered <= respond_due:
        respond_breached = False
    else:
        respond_breached = now > respond_due
    recover_breached = (recovered or now) > recover_due
    return Targets(respond_due, recover_due, respond_breached, recover_breached)
