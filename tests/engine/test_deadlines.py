"""Incident deadlines: the runbook's §8.2 72 hours to notify the privacy regulator, counted from
the incident's opening, reminded at 24, 48 and 66 hours, escalated at 72 unless marked met."""

from __future__ import annotations

from datetime import timedelta

from remediator.incidents.lifecycle import Close
from remediator.incidents.record import deadline_met, fold
from tests.conftest import T0
from tests.support import builders
from tests.support.engine import Harness, HarnessFactory

POLICIES = """
policies:
  - name: data-leak-suspected
    severity: P1
    match: {alertname: PatientBulkRead}
    actions:
      - {type: notify.webhook, params: {to: oncall, text: "bulk patient reads"}}
  - name: reports-slow
    severity: P3
    match: {alertname: SlowReports}
    actions:
      - {type: notify.webhook, params: {to: oncall, text: "reports are slow"}}
"""
LEAK = builders.alert("PatientBulkRead", fingerprint="fp-leak", group="leak")
SETTINGS: dict[str, list[str]] = {"hold_severities": []}
INCIDENTS = {"contacts": {"security": "sec", "csirt": "csirt", "head_of_department": "hod", "executives": "execs"},
             "notify": "oncall", "deadlines": {"privacy_regulator": {
                 "description": "notify the privacy regulator", "within": "72h", "remind_at": ["24h", "48h", "66h"],
                 "contacts": ["security", "csirt"], "policies": ["data-leak-suspected"]}}}


async def _kinds(h: Harness, kind: str) -> list[str]:
    [incident] = await h.deps.store.list_incidents()
    return [e.message for e in await h.deps.store.timeline(incident.id) if e.kind == kind]


async def test_a_suspected_leak_starts_the_72_hours_reminds_and_escalates(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=SETTINGS, incidents=INCIDENTS)
    await h.deliver(LEAK)
    [incident] = await h.deps.store.list_incidents()
    state = fold(await h.deps.store.timeline(incident.id)).deadlines["privacy_regulator"]
    assert (state.started_at, state.due_at) == (T0, T0 + timedelta(hours=72))
    await h.deliver(builders.alert("PatientBulkRead", fingerprint="fp-leak-2", group="leak"))  # started once
    assert len(await _kinds(h, "deadline_started")) == 1

    await h.tick(timedelta(hours=23, minutes=59))
    assert [len(h.sink.to(t)) for t in ("sec", "csirt")] == [0, 0]
    for step in (timedelta(minutes=1), timedelta(hours=24), timedelta(hours=18)):  # at 24, 48 and 66 h
        await h.tick(step)
    reminders = await _kinds(h, "deadline_reminder")
    assert ["due in 2 d" in reminders[0], "due in 1 d" in reminders[1], "due in 6 h" in reminders[2]] == [True] * 3
    assert await _kinds(h, "deadline_missed") == []
    await h.tick(timedelta(hours=6))
    [missed] = await _kinds(h, "deadline_missed")
    assert "deadline privacy_regulator missed" in missed
    assert [len(h.sink.to(t)) for t in ("sec", "csirt")] == [4, 4]  # three reminders and the miss each
    escalated = await _kinds(h, "escalated")
    assert any("deadline privacy_regulator missed" in m for m in escalated)  # the matrix hears it too


async def test_marked_met_tells_nobody_more_and_closing_does_not_stop_it(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=SETTINGS, incidents=INCIDENTS)
    await h.deliver(LEAK)
    [incident] = await h.deps.store.list_incidents()
    await h.deliver(builders.alert("PatientBulkRead", fingerprint="fp-leak", group="leak", status="resolved"))
    await h.deps.store.apply_incident_command(incident.id, Close("alice", "contained"), T0 + timedelta(hours=1))
    await h.tick(timedelta(hours=24))
    assert len(await _kinds(h, "deadline_reminder")) == 1  # the incident is closed, the regulator's clock is not
    names = h.deps.settings.incidents.deadlines
    met = deadline_met("alice", {"deadline": "privacy_regulator", "note": "reported, receipt 2026-118"}, names)
    await h.deps.store.apply_incident_command(incident.id, met, T0 + timedelta(hours=30))
    await h.tick(timedelta(hours=60))
    assert len(await _kinds(h, "deadline_reminder")) == 1 and await _kinds(h, "deadline_missed") == []
    state = fold(await h.deps.store.timeline(incident.id)).deadlines["privacy_regulator"]
    assert state.met is not None and (state.met.by, state.met.note) == ("alice", "reported, receipt 2026-118")


async def test_other_policies_start_no_deadline(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=SETTINGS, incidents=INCIDENTS)
    await h.deliver(builders.alert("SlowReports", fingerprint="fp-reports", group="reports"))
    await h.tick(timedelta(hours=80))
    assert await _kinds(h, "deadline_started") == [] and h.sink.to("sec") == []
