"""People's commands and the runbook's targets, as pure rules."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from remediator.incidents.lifecycle import (
    Acknowledge,
    AddNote,
    Close,
    Command,
    MovePhase,
    SetRootCause,
    apply_command,
    measure,
)
from remediator.model import Incident, IncidentStatus, Phase, Severity
from remediator.settings import DEFAULT_TARGETS, IncidentSettings, SeverityTarget
from tests.conftest import T0

UTC_ZONE = ZoneInfo("UTC")


BASE = Incident(id="INC-2026-00001", correlation_key="g", title="ApiDown on erp-api", severity=Severity.P1,
                status=IncidentStatus.OPEN, phase=Phase.TRIAGE, opened_at=T0, updated_at=T0, firing_count=1,
                phase_times={"detect": T0, "triage": T0})


def _incident(status: IncidentStatus = IncidentStatus.OPEN, **changes: Any) -> Incident:
    return dataclasses.replace(BASE, status=status, **changes)


@pytest.mark.parametrize(("incident", "command", "refusal"), [
    (_incident(acknowledged_by="bob", acknowledged_at=T0), Acknowledge("alice"), "acknowledged already by bob"),
    (_incident(IncidentStatus.CLOSED), Acknowledge("alice"), "the incident is closed"),
    (_incident(), Close("alice", "done"), "1 alert(s) still firing"),
    (_incident(IncidentStatus.CLOSED), Close("alice", "done", force=True), "closed already"),
    (_incident(), MovePhase("alice", Phase.DETECT), "phases only move forward"),
    (_incident(), MovePhase("alice", Phase.TRIAGE), "in phase triage already"),
    (_incident(), MovePhase("alice", Phase.POSTMORTEM), "still firing: the postmortem starts after recovery"),
    (_incident(), MovePhase("alice", Phase.CLOSED), "closing is its own command"),
    (_incident(IncidentStatus.CLOSED, phase=Phase.CLOSED), MovePhase("alice", Phase.VERIFY), "the incident is closed"),
])
def test_refused_commands_change_nothing(incident: Incident, command: Command, refusal: str) -> None:
    effect = apply_command(incident, command, T0 + timedelta(minutes=1))
    assert refusal in effect.refusal and effect.incident == incident and effect.events == ()


@pytest.mark.parametrize("command", [AddNote("alice", "x"), SetRootCause("alice", "y")])
def test_notes_and_root_causes_are_welcome_after_closing(command: Command) -> None:
    effect = apply_command(_incident(IncidentStatus.CLOSED), command, T0)
    assert not effect.refusal and effect.events[0].data["by"] == "alice"


def test_acknowledging_detected_incident_moves_it_to_triage() -> None:
    effect = apply_command(_incident(phase=Phase.DETECT, phase_times={"detect": T0}), Acknowledge("alice", "on it"),
                           T0 + timedelta(minutes=3))
    assert effect.incident.phase is Phase.TRIAGE and effect.incident.acknowledged_at == T0 + timedelta(minutes=3)
    assert effect.events[0].message == "acknowledged by alice: on it"


P4 = DEFAULT_TARGETS[Severity.P4]


@pytest.mark.parametrize(("opened", "due"), [
    # Monday morning → the end of Tuesday.
    (datetime(2026, 1, 5, 9, tzinfo=UTC), datetime(2026, 1, 7, tzinfo=UTC)),
    # Friday evening → the end of Monday.
    (datetime(2026, 1, 9, 17, tzinfo=UTC), datetime(2026, 1, 13, tzinfo=UTC)),
    # Saturday → the end of Monday.
    (datetime(2026, 1, 10, 12, tzinfo=UTC), datetime(2026, 1, 13, tzinfo=UTC)),
])
def test_p4_is_answered_by_the_end_of_the_next_business_day(opened: datetime, due: datetime) -> None:
    measured = measure(_incident(severity=Severity.P4, opened_at=opened), P4, UTC_ZONE, opened)
    assert measured.respond_due == due
    assert measured.recover_due == opened + timedelta(weeks=1)


def test_business_days_are_counted_where_the_hospital_is() -> None:
    # 23:30 UTC on Thursday is already Friday in Tokyo: the next business day there is Monday.
    opened = datetime(2026, 1, 8, 23, 30, tzinfo=UTC)
    tokyo = IncidentSettings(timezone="Asia/Tokyo").zone
    due = measure(_incident(severity=Severity.P4, opened_at=opened), P4, tokyo, opened).respond_due
    assert due == datetime(2026, 1, 13, tzinfo=tokyo)


@pytest.mark.parametrize(("acked", "recovered", "now", "respond", "recover"), [
    (timedelta(minutes=14), timedelta(minutes=50), None, False, False),
    (timedelta(minutes=16), timedelta(minutes=50), None, True, False),
    (None, timedelta(minutes=10), None, False, False),  # recovered before anyone had to respond
    (None, timedelta(minutes=20), None, True, False),  # nobody answered within 15 minutes
    (None, None, timedelta(minutes=10), False, False),  # open, targets still ahead
    (None, None, timedelta(minutes=61), True, True),  # open, both targets passed
])
def test_p1_targets(acked: timedelta | None, recovered: timedelta | None, now: timedelta | None, respond: bool,
                    recover: bool) -> None:
    incident = _incident(acknowledged_at=T0 + acked if acked else None,
                         status=IncidentStatus.RESOLVED if recovered else IncidentStatus.OPEN,
                         resolved_at=T0 + recovered if recovered else None)
    target = SeverityTarget(respond=timedelta(minutes=15), recover=timedelta(hours=1))
    measured = measure(incident, target, UTC_ZONE, T0 + (now or timedelta(days=1)))
    assert (measured.respond_breached, measured.recover_breached) == (respond, recover)


def test_people_move_the_seven_phases_forward_and_the_timeline_says_so() -> None:
    resolved = _incident(IncidentStatus.RESOLVED, firing_count=0)
    at = T0 + timedelta(minutes=20)
    effect = apply_command(resolved, MovePhase("alice", Phase.ROOT_CAUSE, "report query locks"), at)
    assert effect.incident.phase is Phase.ROOT_CAUSE and effect.incident.phase_times["root_cause"] == at
    assert "contain" not in effect.incident.phase_times  # skipped: never stamped
    [event] = effect.events
    assert (event.kind, event.data) == ("phase", {"from": "triage", "to": "root_cause", "by": "alice"})
    assert event.message == "phase triage → root_cause (alice): report query locks"
    later = apply_command(effect.incident, MovePhase("bob", Phase.POSTMORTEM), at + timedelta(hours=1))
    assert later.incident.phase is Phase.POSTMORTEM and later.events[0].data["by"] == "bob"
    closed = apply_command(later.incident, Close("alice", "postmortem held"), at + timedelta(hours=2))
    assert [e.kind for e in closed.events] == ["closed", "phase"] and closed.incident.phase is Phase.CLOSED


def test_setting_the_root_cause_reaches_that_phase_and_never_goes_back() -> None:
    effect = apply_command(_incident(), SetRootCause("alice", "locks"), T0)
    assert effect.incident.phase is Phase.ROOT_CAUSE and [e.kind for e in effect.events] == ["root_cause", "phase"]
    verified = _incident(IncidentStatus.RESOLVED, phase=Phase.VERIFY)
    again = apply_command(verified, SetRootCause("alice", "locks, really"), T0)
    assert again.incident.phase is Phase.VERIFY and [e.kind for e in again.events] == ["root_cause"]
