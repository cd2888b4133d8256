"""Store contract: what people do to incidents, correlation replays, and the reads reports need."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from remediator.incidents.lifecycle import Acknowledge, AddNote, Close, SetRootCause
from remediator.model import (
    AuditRecord,
    DecisionReason,
    Incident,
    IncidentStatus,
    Outcome,
    Phase,
    Severity,
    Verdict,
)
from remediator.stores.base import Store
from tests.conftest import T0
from tests.stores.conftest import StoreFactory
from tests.support import builders
from tests.support.builders import alert
from tests.support.store_calls import claim_request, correlate, finish_request


async def _open(store: Store, group: str = "group-api", at: timedelta = timedelta(0)) -> Incident:
    firing = alert(group=group, fingerprint=f"fp-{group}", starts_at=T0 + at)
    await store.record_alerts([firing], T0 + at)
    correlation = await correlate(store, firing, Severity.P1, T0 + at)
    assert correlation.incident is not None and correlation.opened
    return correlation.incident


async def test_acknowledging_stamps_the_response_once(store: Store) -> None:
    incident = await _open(store)
    effect = await store.apply_incident_command(incident.id, Acknowledge("alice", "looking"), T0 + timedelta(minutes=4))
    assert effect is not None and not effect.refusal
    stored = await store.get_incident(incident.id)
    assert stored is not None
    assert (stored.acknowledged_by, stored.acknowledged_at) == ("alice", T0 + timedelta(minutes=4))
    assert stored.phase is Phase.TRIAGE and stored.phase_times["triage"] == T0 + timedelta(minutes=4)

    again = await store.apply_incident_command(incident.id, Acknowledge("bob"), T0 + timedelta(minutes=5))
    assert again is not None and "acknowledged already by alice" in again.refusal
    after = await store.get_incident(incident.id)
    assert after == stored  # bob's acknowledgement changed nothing
    assert [e.kind for e in await store.timeline(incident.id)] == ["detected", "acknowledged", "phase"]


async def test_two_people_acknowledging_at_once_give_one_acknowledgement(store: Store) -> None:
    incident = await _open(store)
    effects = await asyncio.gather(*(store.apply_incident_command(incident.id, Acknowledge(who), T0)
                                     for who in ("alice", "bob", "carol")))
    assert sum(1 for e in effects if e is not None and not e.refusal) == 1
    assert [e.kind for e in await store.timeline(incident.id)].count("acknowledged") == 1


async def test_notes_and_root_cause_do_not_touch_what_alerts_changed(store: Store) -> None:
    incident = await _open(store)
    second = alert("DbConnections", fingerprint="fp-db", group="group-api", starts_at=T0 + timedelta(minutes=1))
    await store.record_alerts([second], T0)
    await correlate(store, second, Severity.P1, T0 + timedelta(minutes=1))
    await store.apply_incident_command(incident.id, AddNote("alice", "pgbouncer at 100%"), T0 + timedelta(minutes=2))
    await store.apply_incident_command(incident.id, SetRootCause("alice", "a report query held locks"),
                                       T0 + timedelta(minutes=3))
    stored = await store.get_incident(incident.id)
    assert stored is not None
    assert stored.firing_count == 2 and stored.alert_count == 2
    assert stored.root_cause == "a report query held locks"
    events = await store.timeline(incident.id)
    assert [(e.kind, e.data.get("by")) for e in events[-3:]] == [("note", "alice"), ("root_cause", "alice"),
                                                                  ("phase", "alice")]  # triage → root_cause


async def test_closing_an_incident_with_firing_alerts_needs_force(store: Store) -> None:
    incident = await _open(store)
    refused = await store.apply_incident_command(incident.id, Close("alice", "false alarm"), T0)
    assert refused is not None and "still firing" in refused.refusal
    unchanged = await store.get_incident(incident.id)
    assert unchanged is not None and unchanged.status is IncidentStatus.OPEN

    forced = await store.apply_incident_command(incident.id, Close("alice", "false alarm", force=True),
                                                T0 + timedelta(minutes=9))
    assert forced is not None and not forced.refusal
    closed = await store.get_incident(incident.id)
    assert closed is not None and closed.status is IncidentStatus.CLOSED and closed.phase is Phase.CLOSED
    assert closed.closed_at == T0 + timedelta(minutes=9)
    # Skipped phases are not stamped: nothing contained or verified it.
    assert set(closed.phase_times) == {"detect", "closed"}
    twice = await store.apply_incident_command(incident.id, Close("bob", "again"), T0 + timedelta(minutes=10))
    assert twice is not None and twice.refusal == "the incident is closed already"


async def test_a_resolved_incident_closes_without_force(store: Store) -> None:
    incident = await _open(store)
    resolved = alert(fingerprint="fp-group-api", group="group-api", status="resolved", starts_at=T0)
    await store.record_alerts([resolved], T0)
    await correlate(store, resolved, Severity.P1, T0 + timedelta(minutes=20))
    effect = await store.apply_incident_command(incident.id, Close("alice", "done"), T0 + timedelta(hours=1))
    assert effect is not None and not effect.refusal
    closed = await store.get_incident(incident.id)
    assert closed is not None and closed.resolved_at == T0 + timedelta(minutes=20)


async def test_commands_on_unknown_incidents_are_none(store: Store) -> None:
    assert await store.apply_incident_command("INC-2026-99999", AddNote("alice", "x"), T0) is None


async def test_a_replayed_alert_says_so(store: Store) -> None:
    incident = await _open(store)
    again = await correlate(store, alert(group="group-api", fingerprint="fp-group-api"), Severity.P1, T0)
    assert again.replayed and not again.opened and again.incident is not None and again.incident.id == incident.id


async def test_acknowledgement_survives_a_restart(store: Store, store_factory: StoreFactory) -> None:
    incident = await _open(store)
    await store.apply_incident_command(incident.id, Acknowledge("alice"), T0 + timedelta(minutes=1))
    await store.close()
    restarted = await store_factory("replica-a-after-restart")
    stored = await restarted.get_incident(incident.id)
    assert stored is not None and stored.acknowledged_at == T0 + timedelta(minutes=1)


async def test_incidents_opened_in_a_window_oldest_first(store: Store) -> None:
    first = await _open(store, "g1", timedelta(0))
    second = await _open(store, "g2", timedelta(days=31))
    await _open(store, "g3", timedelta(days=62))
    found = await store.list_incidents_opened(T0, T0 + timedelta(days=62))
    assert [i.id for i in found] == [first.id, second.id]


def _audit(request_id: str, incident_id: str) -> AuditRecord:
    return AuditRecord(
        request_id=request_id, at=T0, incident_id=incident_id, alert_id="alert-1", policy="p", action="a",
        target="t", params={}, plan_hash="h", mode="enforce", verdict=Verdict.ALLOW,
        decision_reason=DecisionReason.ALLOWED, decision_detail="", outcome=Outcome.SUCCEEDED,
    )


async def test_audit_for_several_incidents_in_written_order(store: Store) -> None:
    for request_id, incident_id in (("r1", "INC-1"), ("r2", "INC-2"), ("r3", "INC-1"), ("r4", "INC-3")):
        # Only the holder of a claim records its outcome (Store.finish_request).
        assert await claim_request(store, builders.request(request_id, incident_id=incident_id), T0)
        await finish_request(store, _audit(request_id, incident_id))
    found = await store.audit_for_incidents(["INC-1", "INC-2"])
    assert [r.request_id for r in found] == ["r1", "r2", "r3"]
    assert await store.audit_for_incidents([]) == []
