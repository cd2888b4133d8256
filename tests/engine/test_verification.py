"""Verification with a fake clock: wait `verify.after`, check, then the next step or escalation."""

from __future__ import annotations

from datetime import timedelta

from remediator.model import Phase
from tests.conftest import T0
from tests.support import builders
from tests.support.engine import Harness, HarnessFactory

# The runbook's database section: terminate idle connections; if that did not help, redeploy the API.
POLICIES = """
policies:
  - name: pg-connections
    severity: P2
    match: {alertname: PostgresTooManyConnections}
    actions:
      - type: test.restart
        params: {service: pgbouncer}
      - type: test.restart
        params: {service: erp-api}
    verify: {after: 10m}
  - name: pg-connections-patient
    severity: P2
    match: {alertname: PostgresSlowRecovery}
    actions:
      - type: test.restart
        params: {service: pgbouncer}
      - type: test.restart
        params: {service: erp-api}
    verify: {after: 5m, timeout: 15m}
"""

FIRING = builders.alert(fingerprint="fp-db", group="db")
RESOLVED = builders.alert(fingerprint="fp-db", group="db", status="resolved")
GUARDS: dict[str, list[str]] = {"hold_severities": []}


async def _incident_phase(h: Harness) -> Phase:
    [incident] = await h.deps.store.list_incidents()
    return incident.phase


async def test_not_recovered_runs_the_next_step_then_escalates(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=GUARDS)
    await h.deliver(FIRING)
    assert h.action.runs == ["pgbouncer"]  # one step at a time when the policy verifies
    assert await _incident_phase(h) is Phase.CONTAIN

    await h.tick(timedelta(minutes=9, seconds=59))
    assert h.action.runs == ["pgbouncer"]
    await h.tick(timedelta(seconds=1))
    assert h.action.runs == ["pgbouncer", "erp-api"]
    await h.tick(timedelta(minutes=10))
    [incident] = await h.deps.store.list_incidents()
    kinds = await h.kinds(incident.id)
    # Two escalations: the P2 matrix's 15-minute step (team lead), and no step being left.
    assert kinds.count("not_recovered") == 1 and kinds.count("escalated") == 2
    [escalated] = [e for e in await h.deps.store.timeline(incident.id)
                   if e.kind == "escalated" and "not recovered after 15 min" not in e.message]
    assert "no step of pg-connections is left" in escalated.message
    # P2, 20 minutes in: the first level of its matrix (the team lead) hears both.
    assert len(h.sink.to("team-lead")) == 2


async def test_a_resolved_alert_is_verified_and_the_next_step_never_runs(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=GUARDS)
    await h.deliver(FIRING)
    h.clock.advance(timedelta(minutes=4))
    await h.deliver(RESOLVED)
    await h.tick(timedelta(minutes=6))
    assert h.action.runs == ["pgbouncer"]
    assert await _incident_phase(h) is Phase.VERIFY
    [incident] = await h.deps.store.list_incidents()
    assert set(incident.phase_times) == {"detect", "triage", "contain", "recover", "verify"}
    assert incident.phase_times["verify"] == T0 + timedelta(minutes=10)


async def test_the_actions_own_recovery_condition_counts(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=GUARDS)
    h.action.recovered = True
    await h.deliver(FIRING)
    await h.tick(timedelta(minutes=10))
    assert h.action.runs == ["pgbouncer"] and await _incident_phase(h) is Phase.VERIFY


async def test_the_alert_resolving_counts_even_when_others_of_the_incident_still_fire(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(POLICIES, guardrails=GUARDS)
    await h.deliver(FIRING, builders.alert("DiskFilling", fingerprint="fp-disk", group="db"))
    await h.deliver(RESOLVED)  # the connections alert resolved; the disk one still fires
    await h.tick(timedelta(minutes=10))
    assert h.action.runs == ["pgbouncer"]  # no redeploy for an alert that is gone


async def test_with_a_timeout_the_check_repeats_until_it_runs_out(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=GUARDS)
    await h.deliver(builders.alert("PostgresSlowRecovery", fingerprint="fp-slow", group="db2"))
    for minute in (5, 10):
        await h.tick(timedelta(minutes=5))
        assert h.action.runs == ["pgbouncer"], f"checked again at {minute} min, still waiting"
    await h.tick(timedelta(minutes=5))  # 15 minutes: the timeout is reached
    assert h.action.runs == ["pgbouncer", "erp-api"]


async def test_recovery_within_the_timeout_is_verified(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=GUARDS)
    await h.deliver(builders.alert("PostgresSlowRecovery", fingerprint="fp-slow", group="db2"))
    await h.tick(timedelta(minutes=5))
    h.action.recovered = True
    await h.tick(timedelta(minutes=5))
    assert h.action.runs == ["pgbouncer"] and await _incident_phase(h) is Phase.VERIFY


async def test_a_failed_step_goes_on_at_once(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=GUARDS)
    h.action.fails_with = "AccessDenied"
    await h.deliver(FIRING)
    [incident] = await h.deps.store.list_incidents()
    kinds = await h.kinds(incident.id)
    # Both steps were tried without waiting 10 minutes for a step that did nothing; then people hear.
    assert kinds.count("not_recovered") == 1 and kinds.count("escalated") == 1
    assert incident.phase is Phase.TRIAGE  # nothing contained it
