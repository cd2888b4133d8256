"""People on incidents through the API, statistics over a seeded period, and the postmortem draft."""

from __future__ import annotations

from datetime import timedelta

import pytest

from remediator.model import Alert, IncidentStatus
from tests.conftest import T0
from tests.support import builders
from tests.web.conftest import Daemon, DaemonFactory

POLICIES = """
policies:
  - name: api-down
    severity: P1
    match: {alertname: ApiDown}
    actions:
      - type: test.restart
        params: {service: erp-api}
  - name: reports-slow
    severity: P2
    match: {alertname: ReportsSlow}
    actions:
      - type: test.restart
        params: {service: reports}
"""


def _down(status: str = "firing") -> Alert:
    return builders.alert("ApiDown", fingerprint="fp-api", group="api", status=status)


async def _open(d: Daemon) -> str:
    await d.deliver(_down())
    [incident] = await d.deps.store.list_incidents()
    return incident.id


async def test_people_acknowledge_note_set_root_cause_and_close(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    incident_id = await _open(d)
    base = f"/api/v1/incidents/{incident_id}"
    d.clock.advance(timedelta(minutes=7))
    ack = await d.client.post(f"{base}/acknowledge", headers=d.auth("alice"), json={"note": "on it"})
    assert ack.status == 200 and (await ack.json())["acknowledged_by"] == "alice"
    again = await d.client.post(f"{base}/acknowledge", headers=d.auth("bob"), json={})
    assert again.status == 409 and "acknowledged already by alice" in (await again.json())["detail"]
    note = await d.client.post(f"{base}/notes", headers=d.auth("bob"), json={"text": "pgbouncer pool full"})
    assert note.status == 200
    cause = await d.client.post(f"{base}/root-cause", headers=d.auth("alice"), json={"text": "report query locks"})
    assert (await cause.json())["root_cause"] == "report query locks"
    early = await d.client.post(f"{base}/close", headers=d.auth("alice"), json={"reason": "done"})
    assert early.status == 409 and "still firing" in (await early.json())["detail"]

    await d.deliver(_down("resolved"))
    closed = await d.client.post(f"{base}/close", headers=d.auth("alice"), json={"reason": "verified by ward 4"})
    assert closed.status == 200 and (await closed.json())["status"] == "closed"
    shown = await (await d.client.get(base, headers=d.auth("victor"))).json()
    kinds = [e["kind"] for e in shown["timeline"]]
    assert {"acknowledged", "note", "root_cause", "closed"} <= set(kinds)
    assert shown["acknowledged_at"] == (T0 + timedelta(minutes=7)).isoformat()


@pytest.mark.parametrize(("who", "action", "body", "status"), [
    (None, "acknowledge", {}, 401),
    ("victor", "notes", {"text": "hi"}, 403),
    ("alice", "notes", {"text": ""}, 400),
    ("alice", "notes", {"text": 5}, 400),
    ("alice", "root-cause", {}, 400),
    ("alice", "close", {"reason": "x", "force": "yes"}, 400),
    ("alice", "close", {"reason": ""}, 400),
    ("victor", "phase", {"phase": "contain"}, 403),
    ("alice", "phase", {"phase": "fixing"}, 400),
    ("alice", "phase", {"phase": "triage"}, 409),  # it is past triage (contained): phases only move forward
    ("alice", "phase", {"phase": "postmortem"}, 409),  # its alert still fires
    ("alice", "phase", {"phase": "closed"}, 409),  # closing is `close`, with a reason
    ("alice", "checklist", {"item": "coffee"}, 400),
    ("alice", "checklist", {"list": "shopping", "item": "symptoms"}, 400),
    ("alice", "checklist", {"item": "symptoms", "checked": "yes"}, 400),
    ("alice", "roles", {"role": "king", "person": "alice"}, 400),
    ("alice", "roles", {"role": "scribe", "person": ""}, 400),
    ("alice", "postmortem-fields", {}, 400),
    ("alice", "postmortem-fields", {"failed_vital_entries": -1}, 400),
    ("alice", "postmortem-fields", {"failed_vital_entries": True}, 400),
    ("alice", "postmortem-fields", {"data_loss": "없음", "mood": "bad"}, 400),  # nothing of it is kept
    ("alice", "postmortem-fields", {"lessons": "one"}, 400),
    ("alice", "prevention-actions", {"action": "add an index", "owner": "DBA", "due": "next week"}, 400),
    ("alice", "prevention-actions", {"action": "", "owner": "DBA", "due": "2026-01-13"}, 400),
])
async def test_bad_commands_are_refused_and_change_nothing(
    make_daemon: DaemonFactory, who: str | None, action: str, body: dict[str, object], status: int,
) -> None:
    d = await make_daemon(POLICIES)
    incident_id = await _open(d)
    before = await d.deps.store.get_incident(incident_id)
    events = len(await d.deps.store.timeline(incident_id))
    answer = await d.client.post(f"/api/v1/incidents/{incident_id}/{action}",
                                 headers=d.auth(who) if who else {}, json=body)
    assert answer.status == status
    assert await d.deps.store.get_incident(incident_id) == before  # not a field changed
    assert len(await d.deps.store.timeline(incident_id)) == events  # not an event added


async def test_closing_with_force_stops_escalation_and_waiting_approvals(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    incident_id = await _open(d)
    answer = await d.client.post(f"/api/v1/incidents/{incident_id}/close", headers=d.auth("alice"),
                                 json={"reason": "false alarm: synthetic check misconfigured", "force": True})
    assert answer.status == 200
    [approval] = await d.deps.store.list_approvals()
    assert approval.status.value == "no_longer_needed"
    d.clock.advance(timedelta(hours=3))
    assert await d.engine.timers.fire_due() == 0
    assert d.sink.to("team-lead") == []
    closed = await d.deps.store.get_incident(incident_id)
    assert closed is not None and closed.status is IncidentStatus.CLOSED


async def test_stats_over_a_seeded_period(make_daemon: DaemonFactory) -> None:
    # The daemon's own timer loop runs: no approval may expire while the clock is moved below.
    d = await make_daemon(POLICIES, approvals={"expire_after": "3h", "notify": "oncall"})
    # P1 at 09:00: acknowledged at 09:10, recovered at 09:40; its restart was held and never approved.
    incident_id = await _open(d)
    d.clock.advance(timedelta(minutes=10))
    await d.client.post(f"/api/v1/incidents/{incident_id}/acknowledge", headers=d.auth("alice"), json={})
    d.clock.advance(timedelta(minutes=30))
    await d.deliver(_down("resolved"))
    # P2 the next day at 10:00: restarted automatically, nobody acknowledged, recovered after 45 minutes.
    d.clock.set(T0 + timedelta(days=1, hours=1))
    slow = builders.alert("ReportsSlow", fingerprint="fp-rep", group="rep", starts_at=d.clock.now())
    await d.deliver(slow)
    d.clock.advance(timedelta(minutes=45))
    await d.deliver(builders.alert("ReportsSlow", fingerprint="fp-rep", group="rep", starts_at=slow.starts_at,
                                   status="resolved"))

    answer = await d.client.get("/api/v1/stats?since=2026-01-01&until=2026-02-01", headers=d.auth("victor"))
    stats = await answer.json()
    assert answer.status == 200
    assert stats["incidents"]["by_month"] == {"2026-01": {"P1": 1, "P2": 1, "P3": 0, "P4": 0}}
    # Recovery: 40 and 45 minutes → mean 2550 s, max 2700 s.
    assert (stats["recovery"]["mean_seconds"], stats["recovery"]["max_seconds"]) == (2550.0, 2700.0)
    # Only the P2 was remediated without people.
    assert stats["auto_remediated"] == {"count": 1, "share": 0.5}
    # The P2 had no response within 30 minutes and had not recovered by then; the P1 was answered in 10.
    assert (stats["sla_breaches"]["respond"], stats["sla_breaches"]["recover"]) == (1, 0)
    assert stats["approvals"]["by_outcome"]["no_longer_needed"] == 1
    assert stats["approvals"]["median_latency_seconds"] is None

    for query in ("since=yesterday", "since=2026-02-01&until=2026-01-01", "since=2020-01-01&until=2026-01-01",
                  "since=2026-01-01T00:00:00"):
        bad = await d.client.get(f"/api/v1/stats?{query}", headers=d.auth("victor"))
        assert bad.status == 400, query


async def test_postmortem_draft_of_an_incident(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    incident_id = await _open(d)
    await d.client.post(f"/api/v1/incidents/{incident_id}/notes", headers=d.auth("bob"),
                        json={"text": "ward 4 charts on paper"})
    answer = await d.client.get(f"/api/v1/incidents/{incident_id}/postmortem", headers=d.auth("victor"))
    assert answer.status == 200 and answer.content_type == "text/markdown"
    text = await answer.text()
    assert text.startswith("# 인시던트 사후분석 보고서") and incident_id in text
    assert "| note: bob: ward 4 charts on paper |" in text
    assert "APR-" in text  # the held restart appears with its approval
    missing = await d.client.get("/api/v1/incidents/INC-2026-99999/postmortem", headers=d.auth("victor"))
    assert missing.status == 404


async def test_declaration_view_shows_who_checked_what_and_when(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    incident_id = await _open(d)
    base = f"/api/v1/incidents/{incident_id}"
    d.clock.advance(timedelta(minutes=3))
    for command, body in (("roles", {"role": "incident_commander", "person": "alice"}),
                          ("checklist", {"item": "scope", "note": "wards 3 and 4"}),
                          ("checklist", {"item": "severity"}),
                          ("checklist", {"item": "severity", "checked": False, "note": "P1 or P2?"})):
        answer = await d.client.post(f"{base}/{command}", headers=d.auth("alice"), json=body)
        assert answer.status == 200, await answer.text()
    view = await (await d.client.get(f"{base}/declaration", headers=d.auth("victor"))).json()
    assert view["roles"]["incident_commander"] == {"person": "alice", "by": "alice",
                                                   "at": (T0 + timedelta(minutes=3)).isoformat()}
    assert view["roles"]["scribe"] is None
    [first] = [s for s in view["checklists"]["declaration"] if s["section"] == "1. 초기 정보 수집"]
    items = {i["item"]: i for i in first["items"]}
    assert list(items) == ["symptoms", "scope", "start_time", "severity"]  # the runbook's order
    assert (items["scope"]["checked"], items["scope"]["by"], items["scope"]["note"]) == (True, "alice", "wards 3 and 4")
    assert (items["severity"]["checked"], items["severity"]["note"]) == (False, "P1 or P2?")  # the latest wins
    assert items["symptoms"] == {"item": "symptoms", "text": "증상 확인 (어떤 문제가 발생했는가?)", "checked": False,
                                 "by": None, "at": None, "note": ""}
    missing = await d.client.get("/api/v1/incidents/INC-2026-99999/declaration", headers=d.auth("victor"))
    assert missing.status == 404


async def test_a_person_starts_a_deadline_and_marks_it_met(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    incident_id = await _open(d)
    base = f"/api/v1/incidents/{incident_id}"
    d.clock.advance(timedelta(hours=2))  # the leak is suspected two hours in: the count is from the opening
    for body, status in (({"deadline": "postmortem", "start": True}, 400),
                         ({"deadline": "privacy_regulator", "met": True}, 409),  # not started: nothing to meet
                         ({"deadline": "privacy_regulator", "start": True}, 200),
                         ({"deadline": "privacy_regulator", "start": True}, 409),
                         ({"deadline": "privacy_regulator", "met": "yes"}, 400)):
        answer = await d.client.post(f"{base}/deadlines", headers=d.auth("alice"), json=body)
        assert answer.status == status, (body, await answer.text())
    refused = await d.client.post(f"{base}/deadlines", headers=d.auth("victor"),
                                  json={"deadline": "privacy_regulator", "met": True})
    assert refused.status == 403
    view = await (await d.client.get(f"{base}/declaration", headers=d.auth("victor"))).json()
    deadline = view["deadlines"]["privacy_regulator"]
    assert (deadline["started_at"], deadline["due_at"]) == (T0.isoformat(), (T0 + timedelta(hours=72)).isoformat())
    assert (deadline["met"], deadline["overdue"]) == (False, False)
    answer = await d.client.post(f"{base}/deadlines", headers=d.auth("alice"),
                                 json={"deadline": "privacy_regulator", "note": "reported online"})
    assert answer.status == 200
    view = await (await d.client.get(f"{base}/declaration", headers=d.auth("victor"))).json()
    assert view["deadlines"]["privacy_regulator"]["met"] is True
    assert view["deadlines"]["privacy_regulator"]["by"] == "alice"
    draft = await (await d.client.get(f"{base}/postmortem", headers=d.auth("victor"))).text()
    assert "due 2026-01-08 09:00 UTC, met (alice, 2026-01-05 11:00 UTC)" in draft
