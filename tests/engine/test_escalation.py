"""The escalation matrix on the engine: durable timers, fired once, only while unrecovered."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from remediator.clock import FakeClock
from remediator.model import Outcome, Severity
from remediator.stores.base import RequestState
from tests.conftest import T0
from tests.support import builders
from tests.support.engine import Harness, HarnessFactory
from tests.support.store_calls import claim_request

POLICIES = """
policies:
  - name: api-down
    severity: P1
    match: {alertname: ApiDown}
    actions:
      - type: notify.webhook
        params: {to: oncall, text: "API down"}
  - name: slow-reports
    severity: P3
    match: {alertname: SlowReports}
    actions:
      - type: notify.webhook
        params: {to: oncall, text: "reports are slow"}
"""

DOWN = builders.alert("ApiDown", fingerprint="fp-api", group="api")
NO_HOLDS: dict[str, list[str]] = {"hold_severities": []}  # these tests are about the clock, not about approvals
SLOW = builders.alert("SlowReports", fingerprint="fp-reports", group="api")


async def _escalations(h: Harness) -> list[tuple[int, list[str]]]:
    [incident] = await h.deps.store.list_incidents()
    return [(e.data["level"], e.data["contacts"]) for e in await h.deps.store.timeline(incident.id)
            if e.kind == "escalated"]


async def test_an_unrecovered_p1_walks_the_runbook_matrix_once(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS)
    await h.deliver(DOWN)

    await h.tick(timedelta(minutes=14, seconds=59))
    assert await _escalations(h) == []
    await h.tick(timedelta(seconds=1))
    assert await _escalations(h) == [(1, ["head_of_department"])]
    assert len(h.sink.to("team-lead")) == 0 and len(h.sink.to("hod")) == 1
    assert "not recovered after 15 min" in h.sink.to("hod")[0]["text"]
    for _ in range(3):
        await h.tick(timedelta(hours=1))  # 1 h 15, 2 h 15, 3 h 15: every later step once, none again
    assert await _escalations(h) == [(1, ["head_of_department"]), (2, ["cto"]), (3, ["ceo"]),
                                     (4, ["external_support"])]
    assert [len(h.sink.to(t)) for t in ("team-lead", "hod", "cto", "ceo", "vendor")] == [0, 1, 1, 1, 1]
    assert "review external support" in h.sink.to("vendor")[0]["text"]


async def test_an_unrecovered_p3_reaches_the_head_of_department_and_reminds_them(
        make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS)
    await h.deliver(SLOW)
    await h.tick(timedelta(minutes=29))
    assert await _escalations(h) == []
    for _ in range(3):
        await h.tick(timedelta(minutes=31))  # 1 h, 1 h 31, 2 h 02
    assert await _escalations(h) == [(1, ["team_lead"]), (2, ["head_of_department"]), (3, ["head_of_department"])]
    first, reminder = h.sink.to("hod")
    assert "reminder" not in first["text"] and "reminder: not recovered after 2 h" in reminder["text"]


async def test_recovery_stops_the_matrix(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS)
    await h.deliver(DOWN)
    await h.tick(timedelta(minutes=10))
    await h.deliver(builders.alert("ApiDown", fingerprint="fp-api", group="api", status="resolved"))
    await h.tick(timedelta(hours=3))
    assert await _escalations(h) == []
    assert h.sink.to("team-lead") == [] and h.sink.to("cto") == []


async def test_a_raised_severity_escalates_as_the_higher_one_from_the_start(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS)
    await h.deliver(SLOW)  # P3: its first step is the team lead after 30 minutes
    await h.tick(timedelta(minutes=20))
    await h.deliver(builders.alert("ApiDown", fingerprint="fp-api", group="api",
                                   starts_at=T0 + timedelta(minutes=20)))
    [incident] = await h.deps.store.list_incidents()
    assert incident.severity is Severity.P1
    # P1's 15-minute step is overdue for this incident, so it goes out with the next tick.
    await h.tick(timedelta(seconds=1))
    assert await _escalations(h) == [(1, ["head_of_department"])]
    await h.tick(timedelta(hours=5))
    levels = await _escalations(h)
    assert [level for level, _ in levels] == [1, 2, 3, 4]  # P1's steps; the P3 step never fires


async def test_a_step_scheduled_before_a_restart_fires_after_it(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS)
    await h.deliver(DOWN)
    await h.deps.store.close()

    restarted = await make_harness(POLICIES, guardrails=NO_HOLDS, holder="replica-a-restarted",
                                   clock=FakeClock(T0 + timedelta(minutes=16)))
    assert await restarted.engine.timers.fire_due() == 2  # the P1's declaration, the matrix's 15-minute step
    assert await _escalations(restarted) == [(1, ["head_of_department"])]


async def test_two_replicas_fire_each_step_once(make_harness: HarnessFactory) -> None:
    a = await make_harness(POLICIES, guardrails=NO_HOLDS, holder="replica-a")
    await a.deliver(DOWN)
    b = await make_harness(POLICIES, guardrails=NO_HOLDS, holder="replica-b", clock=a.clock)
    a.clock.advance(timedelta(minutes=31))
    fired = await asyncio.gather(a.engine.timers.fire_due(), b.engine.timers.fire_due())
    assert sum(fired) == 3  # the declaration, the 15- and 30-minute steps, between them
    assert [level for level, _ in await _escalations(a)] == [1, 2]
    assert len(a.sink.to("cto")) == 1


async def test_an_execution_left_unknown_by_a_crash_escalates_at_start(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS)
    await h.deliver(DOWN)
    [incident] = await h.deps.store.list_incidents()
    request = builders.request("req-crashed", incident_id=incident.id, action="test.restart", target="svc:erp-api")
    await claim_request(h.deps.store, request, T0)
    await h.deps.store.start_execution(request.id, T0)  # ... and the process died here
    await h.deps.store.close()

    restarted = await make_harness(POLICIES, guardrails=NO_HOLDS, holder="replica-a-restarted",
                                   clock=FakeClock(T0 + timedelta(minutes=5)))
    await restarted.engine.start()
    await restarted.engine.stop()
    stored = await restarted.deps.store.get_request(request.id)
    assert stored is not None and stored.state is RequestState.UNKNOWN
    audit = await restarted.deps.store.get_audit(request.id)
    assert audit is not None and audit.outcome is Outcome.UNKNOWN
    # Five minutes in, nobody of the matrix is due yet: its first level hears it now.
    assert await _escalations(restarted) == [(1, ["head_of_department"])]
    assert "outcome is unknown" in restarted.sink.to("hod")[0]["text"]


async def test_a_contact_without_a_target_reaches_the_general_one(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS,
                           incidents={"contacts": {"cto": "cto", "executives": "ceo"},
                                                                     "notify": "oncall"})
    await h.deliver(DOWN)
    before = len(h.sink.to("oncall"))
    await h.tick(timedelta(minutes=30))
    assert len(h.sink.to("cto")) == 1
    assert len(h.sink.to("oncall")) == before + 1  # head_of_department, through the general target


async def test_nobody_reachable_is_said_on_the_timeline(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS, incidents={"contacts": {}, "notify": ""})
    await h.deliver(DOWN)
    await h.tick(timedelta(minutes=15))
    [incident] = await h.deps.store.list_incidents()
    [event] = [e for e in await h.deps.store.timeline(incident.id) if e.kind == "escalated"]
    assert "no notify target for head_of_department" in event.message
