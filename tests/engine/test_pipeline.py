"""The pipeline in one process: incidents, decisions, actions and the audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from remediator.model import DecisionReason, IncidentStatus, Outcome, Phase, Verdict
from remediator.stores.base import RequestState
from remediator.stores.sqlite.store import SqliteStore
from tests.conftest import corpus_file
from tests.support import builders
from tests.support.daemon import Daemon, DaemonFactory
from tests.support.receiver import Receiver, running_receiver
from tests.support.store_calls import claim_request

BEARER = {"Authorization": "Bearer am-secret"}
FIRING = corpus_file("am-v0.25-firing-2-alerts.json").read_bytes()
RESOLVED = corpus_file("am-v0.25-resolved-all.json").read_bytes()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


def notify_settings(receiver: Receiver) -> dict[str, object]:
    return {"notify": {"oncall": {"url": receiver.url, "format": "slack"}},
            "engine": {"retry_initial_wait": "10ms"}}


async def post(daemon: Daemon, body: bytes) -> None:
    response = await daemon.client.post("/webhooks/alertmanager", data=body, headers=BEARER)
    assert response.status == 200
    await daemon.engine.drain()


async def test_enforce_runs_the_action_once_and_records_it_everywhere(
    start_daemon: DaemonFactory, receiver: Receiver
) -> None:
    daemon = await start_daemon(mode="enforce", **notify_settings(receiver))
    await post(daemon, FIRING)
    # Two alerts of one group, one policy, one target: the second is in cooldown.
    assert len(receiver.received) == 1
    assert receiver.received[0]["text"].startswith("*PostgresTooManyConnections on db-")
    audit = await daemon.deps.store.list_audit()
    assert sorted((a.verdict, a.decision_reason, a.outcome) for a in audit) == [
        (Verdict.ALLOW, DecisionReason.ALLOWED, Outcome.SUCCEEDED),
        (Verdict.DENY, DecisionReason.COOLDOWN, Outcome.NOT_RUN),
    ]
    incident = (await daemon.deps.store.list_incidents())[0]
    assert incident.phase is Phase.CONTAIN
    kinds = [e.kind for e in await daemon.deps.store.timeline(incident.id)]
    # One event per alert (an alert storm must not double the timeline), one per decision.
    assert kinds[0] == "detected" and kinds.count("matched") == 2 and "alert_firing" not in kinds
    assert kinds.count("decided") == 2 and kinds.count("executed") == 1

    await post(daemon, RESOLVED)
    resolved = await daemon.deps.store.get_incident(incident.id)
    assert resolved is not None and resolved.status is IncidentStatus.RESOLVED
    assert [e.kind for e in await daemon.deps.store.timeline(incident.id)][-2:] == ["resolved", "phase"]
    assert daemon.metric("remediator_actions_total", action="notify.webhook", outcome="succeeded") == 1


async def test_dry_run_decides_and_records_but_touches_nothing(start_daemon: DaemonFactory, receiver: Receiver) -> None:
    daemon = await start_daemon(**notify_settings(receiver))
    await post(daemon, FIRING)
    assert receiver.received == []
    dry = [a for a in await daemon.deps.store.list_audit() if a.outcome is Outcome.DRY_RUN]
    assert len(dry) == 1 and dry[0].mode == "dry-run"
    call = dry[0].detail["would_call"][0]
    assert (call["service"], call["operation"], call["args"]["to"]) == ("http", "POST", "oncall")


async def test_retryable_failures_are_retried_by_the_engine(start_daemon: DaemonFactory, receiver: Receiver) -> None:
    receiver.statuses = [503, 502]
    daemon = await start_daemon(mode="enforce", **notify_settings(receiver))
    await post(daemon, FIRING)
    record = next(a for a in await daemon.deps.store.list_audit() if a.verdict is Verdict.ALLOW)
    assert record.outcome is Outcome.SUCCEEDED and record.detail["attempts"] == 3
    assert len(receiver.received) == 3
    assert daemon.metric("remediator_action_retries_total", action="notify.webhook") == 2


async def test_a_permanent_failure_is_not_retried_and_says_why(start_daemon: DaemonFactory, receiver: Receiver) -> None:
    receiver.statuses = [404]
    daemon = await start_daemon(mode="enforce", **notify_settings(receiver))
    await post(daemon, FIRING)
    record = next(a for a in await daemon.deps.store.list_audit() if a.verdict is Verdict.ALLOW)
    assert record.outcome is Outcome.FAILED and record.failure_reason is not None
    assert record.failure_reason.value == "validation" and record.detail["error"] == "webhook answered 404"
    assert len(receiver.received) == 1


async def test_a_parameter_that_does_not_fit_is_denied_and_audited(start_daemon: DaemonFactory) -> None:
    policy = """
name: bad-template
severity: P3
match: {alertname: PostgresTooManyConnections}
actions:
  - type: notify.webhook
    params: {to: "{labels.instance}", text: hello}
"""
    daemon = await start_daemon(policies=policy)
    await post(daemon, FIRING)
    records = await daemon.deps.store.list_audit()
    assert len(records) == 2 and {r.decision_reason for r in records} == {DecisionReason.INVALID_PARAMS}
    assert "String should match pattern" in records[0].decision_detail


async def test_a_p1_notification_goes_out_at_once_but_a_p1_step_asking_for_approval_waits(
    start_daemon: DaemonFactory, receiver: Receiver
) -> None:
    policy = """
name: p1-page
severity: P1
match: {alertname: PostgresTooManyConnections, labels: {instance: "db-1:9187"}}
actions:
  - type: notify.webhook
    params: {to: oncall, text: paging}
  - type: notify.webhook
    params: {to: oncall, text: approved words only}
    guardrails: {require_approval: true}
"""
    daemon = await start_daemon(policies=policy, mode="enforce", **notify_settings(receiver))
    await post(daemon, FIRING)
    records = sorted(await daemon.deps.store.list_audit(), key=lambda r: r.params["text"])
    assert [(r.params["text"], r.verdict, r.outcome) for r in records] == [
        ("approved words only", Verdict.HOLD, Outcome.NOT_RUN), ("paging", Verdict.ALLOW, Outcome.SUCCEEDED)]
    assert len(receiver.received) == 1 and "\npaging\n" in receiver.received[0]["text"]
    incident = (await daemon.deps.store.list_incidents())[0]
    assert incident.severity.value == "P1"


async def test_recorded_but_unprocessed_alerts_are_processed_at_start(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    await daemon.engine.stop()
    alerts = [builders.alert(fingerprint=f"fp-{i}", group=f"g-{i}") for i in range(3)]
    await daemon.deps.store.record_alerts(alerts, daemon.deps.clock.now() - timedelta(minutes=10))
    await daemon.engine.start()
    await daemon.engine.drain()
    assert len(await daemon.deps.store.list_incidents()) == 3
    assert await daemon.deps.store.count_unprocessed() == 0


async def test_an_overflowing_queue_loses_nothing(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon(engine={"queue_size": 2, "workers": 1})
    payloads = []
    for i in range(10):
        body = FIRING.replace(b"db-1:9187", f"db-{i}-a".encode()).replace(b"db-2:9187", f"db-{i}-b".encode())
        payloads.append(body.replace(b"c9f75c09d90195e5", f"fa{i}".encode()).replace(b"025cc091d9936184",
                                                                                    f"fb{i}".encode()))
    for body in payloads:
        response = await daemon.client.post("/webhooks/alertmanager", data=body, headers=BEARER)
        assert response.status == 200
    await daemon.engine.drain()
    assert await daemon.deps.store.count_unprocessed() == 0
    assert daemon.metric("remediator_alerts_processed_total") == 20


VERIFYING = """
name: api-escalating
severity: P2
match: {alertname: PostgresTooManyConnections, labels: {instance: "db-1:9187"}}
verify: {after: 5m}
actions:
  - type: notify.webhook
    params: {to: oncall, text: first}
  - type: notify.webhook
    params: {to: dba, text: second}
"""


async def test_not_recovered_after_verify_runs_the_next_step_then_escalates(
    start_daemon: DaemonFactory, receiver: Receiver
) -> None:
    settings = notify_settings(receiver)
    settings["notify"] = {"oncall": {"url": receiver.url}, "dba": {"url": receiver.url}}
    daemon = await start_daemon(policies=VERIFYING, mode="enforce", **settings)
    await post(daemon, FIRING)
    assert [r["text"] for r in receiver.received] == ["first"]
    clock = daemon.clock
    assert await daemon.engine.timers.fire_due() == 1  # the P2's declaration; its verification is not due yet
    clock.advance(timedelta(minutes=5))
    assert await daemon.engine.timers.fire_due() == 1
    assert [r["text"] for r in receiver.received] == ["first", "second"]
    clock.advance(timedelta(minutes=5))
    assert await daemon.engine.timers.fire_due() == 1
    incident = (await daemon.deps.store.list_incidents())[0]
    kinds = [e.kind for e in await daemon.deps.store.timeline(incident.id)]
    assert kinds.count("not_recovered") == 1 and kinds[-1] == "escalated"


async def test_resolved_before_verify_is_recorded_as_verified(start_daemon: DaemonFactory, receiver: Receiver) -> None:
    daemon = await start_daemon(policies=VERIFYING, mode="enforce", **notify_settings(receiver))
    await post(daemon, FIRING)
    await post(daemon, RESOLVED)
    daemon.clock.advance(timedelta(minutes=5))
    assert await daemon.engine.timers.fire_due() == 2  # the P2's declaration, the verification
    assert len(receiver.received) == 1
    incident = (await daemon.deps.store.list_incidents())[0]
    assert incident.phase is Phase.VERIFY
    assert [e.kind for e in await daemon.deps.store.timeline(incident.id)][-2:] == ["verified", "phase"]


async def test_an_action_left_running_by_a_crash_is_marked_unknown_and_escalated_never_rerun(
    start_daemon: DaemonFactory,
) -> None:
    daemon = await start_daemon()
    store = daemon.deps.store
    await daemon.engine.stop()
    # What a crash mid-action leaves behind: a request claimed and running under another holder.
    dead = SqliteStore(daemon.db, holder="dead-replica")
    await dead.open()
    request = builders.request("req-crashed")
    await claim_request(dead, request, daemon.deps.clock.now())
    await dead.start_execution(request.id, daemon.deps.clock.now())
    await dead.close()
    await daemon.engine.start()
    stored = await store.get_request(request.id)
    assert stored is not None and stored.state is RequestState.UNKNOWN
    record = await store.get_audit(request.id)
    assert record is not None and record.outcome is Outcome.UNKNOWN
    events = await store.timeline(request.incident_id)
    assert events[-1].kind == "escalated" and "will not be re-run" in events[-1].message
    assert not await claim_request(store, request, daemon.deps.clock.now())
