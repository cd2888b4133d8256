"""Circuit breaker: N failures in a row of an action type on one target (enforce mode) open its
circuit: further requests are denied `circuit_open`, the incident that opened it is escalated; after
the cool-off one more try is let through (a success closes it), or a person closes it."""

from __future__ import annotations

from datetime import timedelta

from remediator.model import DecisionReason, Outcome, Verdict
from tests.support import builders
from tests.support.engine import Harness, HarnessFactory

POLICY = """
name: api-restart
severity: P2
match: {alertname: ApiDown}
actions:
  - type: test.restart
    params: {service: erp-api}
"""
BREAKER = {"default_cooldown": "0s", "circuit_breaker": {"failures": 3, "cool_off": "30m"}}


async def alert_of_a_new_incident(h: Harness, n: int) -> str:
    """An alert of its own group (a new incident, so each makes its own request); its incident id."""
    await h.deliver(builders.alert("ApiDown", fingerprint=f"fp-{n}", group=f"g-{n}"))
    incidents = await h.deps.store.list_incidents()
    return max(incidents, key=lambda i: i.opened_at).id if incidents else ""


async def last_record(h: Harness, incident_id: str) -> tuple[Verdict, DecisionReason, Outcome, str]:
    [record] = await h.deps.store.list_audit(incident_id, 1)
    return record.verdict, record.decision_reason, record.outcome, record.decision_detail


async def opened_circuit(make_harness: HarnessFactory) -> Harness:
    """A harness whose action failed three times in a row on svc:erp-api (three incidents)."""
    h = await make_harness(POLICY, guardrails=BREAKER)
    h.action.fails_with = "AccessDenied"
    for n in range(3):
        await alert_of_a_new_incident(h, n)
    return h


async def test_three_failures_in_a_row_open_the_circuit_and_escalate(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICY, guardrails=BREAKER)
    h.action.fails_with = "AccessDenied: the task role lacks ecs:UpdateService"
    incidents = [await alert_of_a_new_incident(h, n) for n in range(3)]
    opened_by = incidents[-1]
    assert "escalated" in await h.kinds(opened_by)
    assert "escalated" not in await h.kinds(incidents[0])  # two failures do not open it
    [escalation] = [e for e in await h.deps.store.timeline(opened_by) if e.kind == "escalated"]
    assert "circuit open: 3 failures in a row of test.restart:svc:erp-api" in escalation.message

    h.action.fails_with = None  # it would work now, but nobody has looked yet
    fourth = await alert_of_a_new_incident(h, 3)
    verdict, reason, outcome, detail = await last_record(h, fourth)
    assert (verdict, reason, outcome) == (Verdict.DENY, DecisionReason.CIRCUIT_OPEN, Outcome.NOT_RUN)
    assert "closes at" in detail and "access_denied" in detail
    assert h.action.runs == []  # nothing ran on the target while the circuit was open
    assert await h.deps.store.list_incidents()  # the alert was recorded and its incident opened as always


async def test_after_the_cool_off_one_try_and_a_success_closes_it(make_harness: HarnessFactory) -> None:
    h = await opened_circuit(make_harness)
    h.clock.advance(timedelta(minutes=30))
    h.action.fails_with = None  # fixed meanwhile
    trial = await alert_of_a_new_incident(h, 3)
    verdict, _, outcome, detail = await last_record(h, trial)
    assert (verdict, outcome) == (Verdict.ALLOW, Outcome.SUCCEEDED) and "half-open" in detail
    assert await h.deps.coordination.circuit("test.restart:svc:erp-api") is None
    again = await alert_of_a_new_incident(h, 4)
    assert (await last_record(h, again))[:3] == (Verdict.ALLOW, DecisionReason.ALLOWED, Outcome.SUCCEEDED)


async def test_a_failed_trial_opens_it_again_and_a_person_can_close_it(make_harness: HarnessFactory) -> None:
    h = await opened_circuit(make_harness)
    h.clock.advance(timedelta(minutes=31))
    await alert_of_a_new_incident(h, 3)  # the trial fails
    denied = await alert_of_a_new_incident(h, 4)
    assert (await last_record(h, denied))[1] is DecisionReason.CIRCUIT_OPEN
    assert await h.deps.coordination.close_circuit("test.restart:svc:erp-api") is True
    h.action.fails_with = None
    allowed = await alert_of_a_new_incident(h, 5)
    assert (await last_record(h, allowed))[:3] == (Verdict.ALLOW, DecisionReason.ALLOWED, Outcome.SUCCEEDED)


async def test_refused_prechecks_and_other_targets_do_not_count(make_harness: HarnessFactory) -> None:
    other = POLICY.replace("erp-api", "erp-web").replace("ApiDown", "WebDown").replace("api-restart", "web-restart")
    h = await make_harness(f"policies:\n  - {POLICY.strip().replace(chr(10), chr(10) + '    ')}\n"
                           f"  - {other.strip().replace(chr(10), chr(10) + '    ')}\n", guardrails=BREAKER)
    h.action.precheck_says = "the service is already restarting"
    for n in range(4):
        await alert_of_a_new_incident(h, n)
    assert await h.deps.coordination.circuits() == []  # the action never ran: nothing counted
    h.action.precheck_says = None
    h.action.fails_with = "AccessDenied"
    for n in range(4, 6):
        await alert_of_a_new_incident(h, n)
    await h.deliver(builders.alert("WebDown", fingerprint="fp-web", group="g-web"))
    [circuit] = [c for c in await h.deps.coordination.circuits() if c.key.endswith("erp-api")]
    assert circuit.failures == 2 and circuit.opened_at is None


async def test_off_with_zero_failures(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICY, guardrails={**BREAKER, "circuit_breaker": {"failures": 0}})
    h.action.fails_with = "AccessDenied"
    incidents = [await alert_of_a_new_incident(h, n) for n in range(5)]
    assert {(await last_record(h, i))[2] for i in incidents} == {Outcome.FAILED}
