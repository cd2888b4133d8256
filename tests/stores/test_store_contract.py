"""The Store contract: every backend must pass every test here (DESIGN.md §4)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from remediator.errors import ClaimLost
from remediator.model import IncidentStatus, Outcome, Phase, Severity, TimelineEvent, stable_id
from remediator.stores.base import Decided, Observation, RequestState, Store, Timer
from tests.conftest import T0
from tests.stores.conftest import StoreFactory
from tests.support import builders
from tests.support.store_calls import claim_request, correlate, finish_request

LEASE = T0 + timedelta(minutes=2)


async def test_a_new_alert_is_recorded_and_a_redelivery_is_a_duplicate(store: Store) -> None:
    first = builders.alert()
    assert await store.record_alerts([first], LEASE) == [True]
    assert await store.record_alerts([first], LEASE) == [False]
    assert await store.get_alert(first.id) == first
    assert await store.count_unprocessed() == 1


async def test_an_alert_sharing_any_dedup_key_is_a_duplicate(store: Store) -> None:
    a = builders.alert(keys=("sns:topic:m-1", "cloudwatch:arn:t:ALARM"))
    b = builders.alert(fingerprint="other", keys=("sns:topic:m-2", "cloudwatch:arn:t:ALARM"))
    assert await store.record_alerts([a, b], LEASE) == [True, False]
    assert await store.get_alert(b.id) is None
    # b's own new key was not kept: the same delivery of b alone is as new as it ever was.
    c = builders.alert(fingerprint="third", keys=("sns:topic:m-2", "cloudwatch:arn:t2:ALARM"))
    assert await store.record_alerts([c], LEASE) == [True]


async def test_a_redelivery_received_later_is_still_a_duplicate_and_keeps_the_first_id(store: Store) -> None:
    first = builders.alert(received_at=T0)
    again = builders.alert(received_at=T0 + timedelta(seconds=30))  # same occurrence, delivered again
    assert again.id != first.id  # ids follow the moment of receipt; duplicates are known by their keys
    assert await store.record_alerts([first], LEASE) == [True]
    assert await store.record_alerts([again], LEASE) == [False]
    assert await store.get_alert(again.id) is None
    assert await store.get_alert(first.id) == first


async def test_an_alert_recorded_under_a_hashed_id_keeps_it(store: Store) -> None:
    """Alerts recorded before ids were ordered by receipt carry the hash of their first key: the
    backlog hands them out under that id, and marking them processed by it works."""
    template = builders.alert()
    old = dataclasses.replace(template, id=stable_id(template.dedup_keys[0]))
    await store.record_alerts([old], T0)
    [taken] = await store.claim_backlog(T0 + timedelta(seconds=1), LEASE, 10)
    assert taken.id == old.id == stable_id(old.dedup_keys[0]) and taken == old
    await store.mark_processed([taken.id], T0)
    assert await store.count_unprocessed() == 0


async def test_duplicates_within_one_batch_are_recognised(store: Store) -> None:
    a = builders.alert()
    assert await store.record_alerts([a, a], LEASE) == [True, False]


async def test_backlog_respects_claims_of_other_holders_until_their_lease_expires(
    store_factory: StoreFactory,
) -> None:
    a, b = await store_factory("replica-a"), await store_factory("replica-b")
    first, second = builders.alert(fingerprint="fp-1"), builders.alert(fingerprint="fp-2")
    await a.record_alerts([first], LEASE)
    await b.record_alerts([second], LEASE)
    # Each holder's own fresh alerts are claimed by it; the other sees nothing until the lease ends.
    assert await a.claim_backlog(T0, LEASE, 10, exclude=[first.id]) == []
    taken = await a.claim_backlog(LEASE + timedelta(seconds=1), LEASE + timedelta(minutes=5), 10, exclude=[first.id])
    assert [x.id for x in taken] == [second.id]
    # a's own claim on `first` has expired too, while `second` is now a's until LEASE + 5 minutes.
    later = await b.claim_backlog(LEASE + timedelta(seconds=2), LEASE + timedelta(minutes=5), 10)
    assert [x.id for x in later] == [first.id]


async def test_backlog_is_oldest_first_and_processed_alerts_leave_it(store: Store) -> None:
    alerts = [builders.alert(fingerprint=f"fp-{i}") for i in range(5)]
    await store.record_alerts(alerts, T0)  # lease already over: free for the backlog
    taken = await store.claim_backlog(T0 + timedelta(seconds=1), LEASE, 3)
    assert [x.fingerprint for x in taken] == ["fp-0", "fp-1", "fp-2"]
    await store.mark_processed([taken[0].id], T0)
    assert await store.count_unprocessed() == 4
    # fp-1 and fp-2 stay claimed until LEASE; only what nobody holds is handed out.
    rest = await store.claim_backlog(T0 + timedelta(seconds=1), LEASE, 10)
    assert [x.fingerprint for x in rest] == ["fp-3", "fp-4"]
    after = await store.claim_backlog(LEASE + timedelta(seconds=1), LEASE + timedelta(minutes=2), 10,
                                      exclude=[taken[1].id])
    assert [x.fingerprint for x in after] == ["fp-2", "fp-3", "fp-4"]


async def test_released_alerts_return_to_the_backlog_at_once(store_factory: StoreFactory) -> None:
    a, b = await store_factory("replica-a"), await store_factory("replica-b")
    item = builders.alert()
    await a.record_alerts([item], LEASE)
    await a.release_alerts([item.id])
    assert [x.id for x in await b.claim_backlog(T0, LEASE, 10)] == [item.id]


async def test_a_holder_releases_only_its_own_claims(store_factory: StoreFactory) -> None:
    a, b, c = [await store_factory(name) for name in ("replica-a", "replica-b", "replica-c")]
    item = builders.alert()
    await a.record_alerts([item], LEASE)  # claimed by replica-a until LEASE
    await b.release_alerts([item.id])  # replica-b hands back what it was never given
    assert await c.claim_backlog(T0, LEASE, 10) == [], "replica-a's claim was voided by replica-b"


async def test_firing_alert_opens_an_incident_and_its_resolution_resolves_it(store: Store) -> None:
    firing = builders.alert(fingerprint="fp-1")
    other = builders.alert(fingerprint="fp-2", labels={"instance": "db-2:9187"})
    await store.record_alerts([firing, other], LEASE)
    opened = await correlate(store, firing, Severity.P2, T0)
    assert opened.opened and opened.incident is not None
    incident = opened.incident
    assert (incident.status, incident.severity, incident.phase) == (IncidentStatus.OPEN, Severity.P2, Phase.DETECT)
    joined = await correlate(store, other, Severity.P2, T0 + timedelta(seconds=5))
    assert joined.incident is not None and joined.incident.id == incident.id and not joined.opened
    assert joined.incident.alert_count == 2 and joined.incident.firing_count == 2
    again = builders.alert(fingerprint="fp-1", starts_at=T0 + timedelta(seconds=30))  # re-fired: still one
    await store.record_alerts([again], LEASE)
    refired = await correlate(store, again, Severity.P2, T0 + timedelta(seconds=30))
    assert refired.incident is not None and refired.incident.firing_count == 2

    end = T0 + timedelta(minutes=5)
    for fp in ("fp-1", "fp-2"):
        resolved = builders.alert(fingerprint=fp, status="resolved")
        await store.record_alerts([resolved], LEASE)
        result = await correlate(store, resolved, Severity.P2, end)
    assert result.resolved and result.incident is not None
    stored = await store.get_incident(incident.id)
    assert stored is not None and stored.status is IncidentStatus.RESOLVED and stored.resolved_at == end
    assert stored.phase is Phase.RECOVER
    kinds = [e.kind for e in await store.timeline(incident.id)]
    assert kinds == ["detected", "alert_firing", "alert_firing", "alert_resolved", "alert_resolved", "resolved",
                     "phase"]  # detect → recover


async def test_a_batch_is_correlated_in_order(store: Store) -> None:
    """Several alerts of one group in one call: the same result as one call each."""
    a, b = builders.alert(fingerprint="fp-1"), builders.alert(fingerprint="fp-2")
    await store.record_alerts([a, b], LEASE)
    firing = await store.correlate_many([Observation(x, Severity.P2, ("p",)) for x in (a, b)], T0)
    assert [(c.opened, c.resolved) for c in firing] == [(True, False), (False, False)]
    a_ok = builders.alert(fingerprint="fp-1", status="resolved")
    b_ok = builders.alert(fingerprint="fp-2", status="resolved")
    await store.record_alerts([a_ok, b_ok], LEASE)
    found = await store.correlate_many([Observation(x, Severity.P2) for x in (a_ok, b_ok)], T0)
    assert [(c.opened, c.resolved) for c in found] == [(False, False), (False, True)]
    incident = found[-1].incident
    assert incident is not None and incident.status is IncidentStatus.RESOLVED and incident.firing_count == 0
    assert incident.alert_count == 2 and not await store.is_firing(incident.id, "fp-1")
    stored = await store.get_incident(incident.id)
    assert stored == incident
    again = await store.correlate_many([Observation(a, Severity.P2)], T0)
    assert again[0].replayed and again[0].incident == incident


async def test_an_alert_that_fires_in_one_batch_and_resolves_in_the_next_leaves_the_firing_set(store: Store) -> None:
    a, other = builders.alert(fingerprint="fp-1"), builders.alert(fingerprint="fp-2")
    await store.record_alerts([a, other], LEASE)
    first = await store.correlate_many([Observation(a, Severity.P2), Observation(other, Severity.P2)], T0)
    incident = first[0].incident
    assert incident is not None and await store.is_firing(incident.id, "fp-1")
    a_ok = builders.alert(fingerprint="fp-1", status="resolved")
    await store.record_alerts([a_ok], LEASE)
    second = await store.correlate_many([Observation(a_ok, Severity.P2)], T0)
    assert second[0].incident is not None and second[0].incident.firing_count == 1 and not second[0].resolved
    assert not await store.is_firing(incident.id, "fp-1") and await store.is_firing(incident.id, "fp-2")


async def test_correlating_the_same_alert_twice_changes_nothing_more(store: Store) -> None:
    item = builders.alert()
    await store.record_alerts([item], LEASE)
    first = await correlate(store, item, Severity.P3, T0)
    again = await correlate(store, item, Severity.P3, T0 + timedelta(seconds=1))
    assert again.incident == first.incident and not again.opened
    assert first.incident is not None
    assert len(await store.timeline(first.incident.id)) == 1


async def test_a_later_alert_raises_the_severity_never_lowers_it(store: Store) -> None:
    a, b, c = (builders.alert(fingerprint=f"fp-{i}") for i in range(3))
    await store.record_alerts([a, b, c], LEASE)
    first = await correlate(store, a, Severity.P3, T0)
    raised = await correlate(store, b, Severity.P1, T0)
    kept = await correlate(store, c, Severity.P4, T0)
    assert first.incident and raised.incident and kept.incident
    assert raised.severity_raised and raised.incident.severity is Severity.P1
    assert kept.incident.severity is Severity.P1 and not kept.severity_raised


async def test_a_firing_processed_after_its_resolution_was_recorded_is_stale_even_in_one_batch(store: Store) -> None:
    firing, resolved = builders.alert(status="firing"), builders.alert(status="resolved")
    await store.record_alerts([firing, resolved], LEASE)
    found = await store.correlate_many([Observation(firing, Severity.P2), Observation(resolved, Severity.P2)], T0)
    assert found[0].stale and found[1].incident is None
    assert await store.list_incidents() == []


async def test_a_firing_that_arrives_after_its_resolution_is_stale(store: Store) -> None:
    resolved = builders.alert(status="resolved")
    firing = builders.alert(status="firing")
    await store.record_alerts([resolved, firing], LEASE)
    assert (await correlate(store, resolved, Severity.P2, T0)).incident is None
    late = await correlate(store, firing, Severity.P2, T0)
    assert late.stale and late.incident is None
    assert await store.list_incidents() == []


async def test_a_non_actionable_alert_opens_nothing_but_is_noted_on_an_open_incident(store: Store) -> None:
    note = builders.alert(fingerprint="ecs-task", actionable=False, status="resolved")
    await store.record_alerts([note], LEASE)
    assert (await correlate(store, note, Severity.P4, T0)).incident is None
    firing = builders.alert(fingerprint="fp-1")
    later = builders.alert(fingerprint="ecs-task-2", actionable=False)
    await store.record_alerts([firing, later], LEASE)
    opened = await correlate(store, firing, Severity.P2, T0)
    noted = await correlate(store, later, Severity.P4, T0)
    assert opened.incident and noted.incident and noted.incident.id == opened.incident.id
    assert [e.kind for e in await store.timeline(opened.incident.id)] == ["detected", "observed"]


async def test_phases_only_move_forward_and_skipped_phases_stay_unstamped(store: Store) -> None:
    item = builders.alert()
    await store.record_alerts([item], LEASE)
    incident = (await correlate(store, item, Severity.P2, T0)).incident
    assert incident is not None
    later = T0 + timedelta(minutes=3)
    moved = await store.update_phase(incident.id, Phase.CONTAIN, later,
                                     [TimelineEvent(incident.id, later, "note", "contained")])
    assert moved is not None and moved.phase is Phase.CONTAIN
    # Nobody triaged it: the record must not say when that happened (see incidents.move_phase).
    assert moved.phase_times[Phase.CONTAIN.value] == later and Phase.TRIAGE.value not in moved.phase_times
    back = await store.update_phase(incident.id, Phase.TRIAGE, later + timedelta(minutes=1))
    assert back is not None and back.phase is Phase.CONTAIN
    assert await store.update_phase("INC-none", Phase.CONTAIN, later) is None


async def test_open_incident_counts_by_severity(store: Store) -> None:
    for i, severity in enumerate((Severity.P1, Severity.P2, Severity.P2)):
        item = builders.alert(fingerprint=f"fp-{i}", group=f"g-{i}")
        await store.record_alerts([item], LEASE)
        await correlate(store, item, severity, T0)
    counts = await store.open_incident_counts()
    assert counts == {Severity.P1: 1, Severity.P2: 2, Severity.P3: 0, Severity.P4: 0}


async def test_a_request_is_claimed_once_across_replicas(store_factory: StoreFactory) -> None:
    a, b = await store_factory("replica-a"), await store_factory("replica-b")
    req = builders.request()
    assert await claim_request(a, req, T0)
    assert not await claim_request(b, req, T0)
    # The same holder may take back a claim whose outcome it never recorded: nothing ran under it.
    assert await claim_request(a, req, T0)
    await finish_request(a, builders.audit(req))
    assert not await claim_request(a, req, T0)
    assert not await claim_request(b, req, T0)


async def test_finishing_a_request_writes_exactly_one_audit_record(store: Store) -> None:
    req = builders.request()
    await claim_request(store, req, T0)
    event = TimelineEvent(req.incident_id, T0, "decided", "allowed", request_id=req.id)
    await finish_request(store, builders.audit(req), [event])
    await finish_request(store, builders.audit(req, outcome=Outcome.FAILED))
    records = await store.list_audit()
    assert [(r.request_id, r.outcome) for r in records] == [(req.id, Outcome.DRY_RUN)]
    assert await store.get_audit(req.id) == records[0]
    stored = await store.get_request(req.id)
    assert stored is not None and stored.state is RequestState.DONE
    assert [e.kind for e in await store.timeline(req.incident_id)] == ["decided"]


async def test_a_decision_without_action_is_claimed_and_audited_at_once_first_writer_wins(
    store_factory: StoreFactory,
) -> None:
    a, b = await store_factory("replica-a"), await store_factory("replica-b")
    denied = builders.request("req-denied")
    event = TimelineEvent(denied.incident_id, T0, "decided", "denied: cooldown", request_id=denied.id)
    record = builders.audit(denied, outcome=Outcome.NOT_RUN)
    assert await a.record_decisions([Decided(denied, record, (event,))], T0) == [True]
    # The other replica decided the same occurrence: its record is not written, nor its event.
    assert await b.record_decisions([Decided(denied, builders.audit(denied, outcome=Outcome.FAILED), (event,))],
                                    T0) == [False]
    assert [r.outcome for r in await b.list_audit()] == [Outcome.NOT_RUN]
    assert [e.kind for e in await b.timeline(denied.incident_id)] == ["decided"]
    assert not await claim_request(b, denied, T0)
    # A claim of this holder that was never finished (the store failed between) gets finished.
    held = builders.request("req-held")
    assert await claim_request(a, held, T0)
    assert await a.record_decisions([Decided(held, builders.audit(held, outcome=Outcome.NOT_RUN))], T0) == [True]
    stored = await a.get_request(held.id)
    assert stored is not None and stored.state is RequestState.DONE


async def test_a_running_request_of_a_dead_replica_becomes_unknown_never_rerun(store_factory: StoreFactory) -> None:
    dead, alive = await store_factory("replica-dead"), await store_factory("replica-alive")
    req = builders.request()
    assert await claim_request(dead, req, T0)
    await dead.start_execution(req.id, T0)
    assert await dead.reconcile_running(T0) == []  # a holder never declares itself dead
    await dead.close()  # the process is gone: its liveness lock with it
    orphans = await alive.reconcile_running(T0 + timedelta(hours=1))
    assert [o.request.id for o in orphans] == [req.id] and orphans[0].holder == "replica-dead"
    record = await alive.get_audit(req.id)
    assert record is not None and record.outcome is Outcome.UNKNOWN
    stored = await alive.get_request(req.id)
    assert stored is not None and stored.state is RequestState.UNKNOWN
    assert not await claim_request(alive, req, T0)
    assert await alive.reconcile_running(T0 + timedelta(hours=2)) == []


async def test_a_live_replicas_long_running_request_is_never_marked_unknown(store_factory: StoreFactory) -> None:
    busy, starting = await store_factory("replica-busy"), await store_factory("replica-starting")
    req = builders.request()
    assert await claim_request(busy, req, T0)
    await busy.start_execution(req.id, T0)
    # However long the action runs, another replica's start (or periodic reconcile) leaves it alone.
    assert await starting.reconcile_running(T0 + timedelta(days=2)) == []
    stored = await starting.get_request(req.id)
    assert stored is not None and stored.state is RequestState.RUNNING
    await finish_request(busy, builders.audit(req, outcome=Outcome.SUCCEEDED))
    record = await starting.get_audit(req.id)
    assert record is not None and record.outcome is Outcome.SUCCEEDED


async def test_a_dead_replicas_unstarted_claim_is_released_to_the_others(store_factory: StoreFactory) -> None:
    dead, alive = await store_factory("replica-dead"), await store_factory("replica-alive")
    req = builders.request()
    assert await claim_request(dead, req, T0)
    assert not await claim_request(alive, req, T0)  # its holder lives: it is taken
    await dead.close()
    assert await alive.reconcile_running(T0) == []  # nothing ran: nothing is unknown
    assert await claim_request(alive, req, T0)
    await alive.start_execution(req.id, T0)
    await finish_request(alive, builders.audit(req, outcome=Outcome.SUCCEEDED))
    record = await alive.get_audit(req.id)
    assert record is not None and record.outcome is Outcome.SUCCEEDED


async def test_only_the_holder_of_a_claim_starts_it_or_records_its_outcome(store_factory: StoreFactory) -> None:
    owner, other = await store_factory("replica-a"), await store_factory("replica-b")
    req = builders.request()
    assert await claim_request(owner, req, T0)
    with pytest.raises(ClaimLost):
        await other.start_execution(req.id, T0)
    await finish_request(other, builders.audit(req, outcome=Outcome.FAILED))
    assert await owner.get_audit(req.id) is None
    await owner.start_execution(req.id, T0)
    with pytest.raises(ClaimLost):
        await owner.start_execution(req.id, T0)  # running already: never started twice
    await finish_request(owner, builders.audit(req, outcome=Outcome.SUCCEEDED))
    record = await owner.get_audit(req.id)
    assert record is not None and record.outcome is Outcome.SUCCEEDED


async def test_timers_fire_once_when_due_and_can_be_cancelled(store_factory: StoreFactory) -> None:
    a, b = await store_factory("replica-a"), await store_factory("replica-b")
    timer = Timer("verify:req-1", "verify", T0 + timedelta(minutes=5), {"request_id": "req-1"})
    assert await a.schedule_timer(timer)
    assert not await a.schedule_timer(timer)
    assert await a.claim_due_timers(T0, LEASE, 10) == []
    due = T0 + timedelta(minutes=5)
    claimed = await a.claim_due_timers(due, due + timedelta(minutes=2), 10)
    assert claimed == [timer]
    assert await b.claim_due_timers(due, due + timedelta(minutes=2), 10) == []  # held by a
    await a.complete_timer(timer.id, due)
    assert await b.claim_due_timers(due + timedelta(hours=1), due + timedelta(hours=2), 10) == []

    for i in range(3):
        await a.schedule_timer(Timer(f"escalate:INC-1:{i}", "escalate", due))
    await a.schedule_timer(Timer("escalate:INC-10:0", "escalate", due))
    assert await a.cancel_timers("escalate:INC-1:") == 3
    assert [t.id for t in await b.claim_due_timers(due, due, 10)] == ["escalate:INC-10:0"]


async def test_a_timer_held_by_a_dead_replica_fires_after_its_lease(store_factory: StoreFactory) -> None:
    a, b = await store_factory("replica-a"), await store_factory("replica-b")
    due = T0 + timedelta(minutes=1)
    await a.schedule_timer(Timer("t-1", "verify", due))
    assert len(await a.claim_due_timers(due, due + timedelta(minutes=2), 10)) == 1
    assert await b.claim_due_timers(due + timedelta(minutes=1), due + timedelta(minutes=3), 10) == []
    assert len(await b.claim_due_timers(due + timedelta(minutes=3), due + timedelta(minutes=5), 10)) == 1


async def test_a_batch_correlates_in_order_like_one_alert_at_a_time(store: Store) -> None:
    first, second = builders.alert(fingerprint="fp-1"), builders.alert(fingerprint="fp-2")
    elsewhere = builders.alert(fingerprint="fp-3", group="group-2")
    await store.record_alerts([first, second, elsewhere], LEASE)
    results = await store.correlate_many([
        Observation(first, Severity.P3, ("pg-conns",)), Observation(second, Severity.P2),
        Observation(elsewhere, Severity.P4), Observation(first, Severity.P3),
    ], T0)
    assert [r.opened for r in results] == [True, False, True, False]
    one, other = results[0].incident, results[2].incident
    assert one is not None and other is not None and one.id != other.id
    assert results[3].incident is not None and results[3].incident.id == one.id  # the repeat changes nothing
    final = await store.get_incident(one.id)
    assert final is not None and final.phase is Phase.TRIAGE and final.severity is Severity.P2
    assert (final.alert_count, final.firing_count, final.status) == (2, 2, IncidentStatus.OPEN)
    kinds = [e.kind for e in await store.timeline(one.id)]
    assert kinds == ["detected", "matched", "phase", "alert_firing", "severity_raised"], kinds


async def test_requests_are_claimed_and_finished_in_batches(store_factory: StoreFactory) -> None:
    a, b = await store_factory("replica-a"), await store_factory("replica-b")
    first, taken, third = builders.request("req-1"), builders.request("req-2"), builders.request("req-3")
    assert await claim_request(b, taken, T0)
    assert await a.claim_requests([first, taken, third], T0) == [True, False, True]
    events = [TimelineEvent(first.incident_id, T0, "decided", "ok", request_id=r.id) for r in (first, third)]
    await a.finish_requests([builders.audit(first), builders.audit(third, outcome=Outcome.FAILED)], events)
    assert [(r.request_id, r.outcome) for r in await a.list_audit()] == [
        ("req-3", Outcome.FAILED), ("req-1", Outcome.DRY_RUN)]
    for request in (first, third):
        stored = await a.get_request(request.id)
        assert stored is not None and stored.state is RequestState.DONE
    assert len(await a.timeline(first.incident_id)) == 2
