"""The recovery part of the Store contract: work a dead holder (or a failed write) left is taken
over by liveness, at once, and by exactly one taker (issue 12)."""

from __future__ import annotations

from datetime import timedelta

from remediator.model import Outcome
from remediator.stores.base import RequestState
from tests.conftest import T0
from tests.stores.conftest import StoreFactory
from tests.support import builders
from tests.support.store_calls import claim_request, finish_request

LONG_LEASE = T0 + timedelta(minutes=2)


async def test_alerts_of_a_dead_holder_are_taken_at_once_not_after_their_lease(store_factory: StoreFactory) -> None:
    dead, alive, busy = [await store_factory(name) for name in ("replica-dead", "replica-alive", "replica-busy")]
    orphan, held = builders.alert(fingerprint="fp-orphan"), builders.alert(fingerprint="fp-held")
    await dead.record_alerts([orphan], LONG_LEASE)
    await busy.record_alerts([held], LONG_LEASE)
    assert await alive.claim_backlog(T0, T0 + timedelta(minutes=1), 10) == []  # both holders live
    await dead.close()  # kill -9 as far as the store can tell: its liveness lock is gone
    taken = await alive.claim_backlog(T0 + timedelta(seconds=1), T0 + timedelta(minutes=1), 10)
    # The dead holder's alert, long before its lease ends; the live holder's alert stays its own.
    assert [a.id for a in taken] == [orphan.id]
    assert await busy.claim_backlog(T0 + timedelta(seconds=2), T0 + timedelta(minutes=1), 10, exclude=[held.id]) == []


async def test_a_released_claim_is_taken_by_exactly_one_replica(store_factory: StoreFactory) -> None:
    dead, a, b = [await store_factory(name) for name in ("replica-dead", "replica-a", "replica-b")]
    req = builders.request("req-orphan")
    assert await claim_request(dead, req, T0)
    assert await a.claim_orphaned_requests(T0 + timedelta(seconds=1), (), 10) == []  # its holder lives
    await dead.close()
    await a.reconcile_running(T0 + timedelta(seconds=2))  # releases it (nothing ran: nothing is unknown)
    first = await a.claim_orphaned_requests(T0 + timedelta(seconds=3), (), 10)
    second = await b.claim_orphaned_requests(T0 + timedelta(seconds=3), (), 10)
    assert [(s.request, s.state) for s in first] == [(req, RequestState.CLAIMED)] and second == []
    stored = await b.get_request(req.id)
    assert stored is not None and stored.holder == "replica-a"
    # The taker decides it as the claim's holder: runs it and writes its one audit record.
    await a.start_execution(req.id, T0 + timedelta(seconds=4))
    await finish_request(a, builders.audit(req, outcome=Outcome.SUCCEEDED))
    assert await b.claim_orphaned_requests(T0 + timedelta(seconds=5), (), 10) == []
    record = await b.get_audit(req.id)
    assert record is not None and record.outcome is Outcome.SUCCEEDED


async def test_own_claims_nobody_decides_are_taken_again_but_not_those_in_flight(store_factory: StoreFactory) -> None:
    store, other = await store_factory("replica-a"), await store_factory("replica-b")
    lost, deciding, fresh = (builders.request(f"req-{name}") for name in ("lost", "deciding", "fresh"))
    for req in (lost, deciding):
        assert await claim_request(store, req, T0)
    assert await claim_request(store, fresh, T0 + timedelta(seconds=10))
    running = builders.request("req-running")
    assert await claim_request(store, running, T0)
    await store.start_execution(running.id, T0)
    # `deciding` is in flight in this process; `fresh` was claimed after the sweep began.
    taken = await store.claim_orphaned_requests(T0 + timedelta(seconds=10), {deciding.id}, 10)
    assert [s.request.id for s in taken] == [lost.id]
    # Another replica never takes the claims of a holder that lives, nor anything running.
    assert await other.claim_orphaned_requests(T0 + timedelta(hours=1), (), 10) == []


async def test_orphaned_claims_are_taken_oldest_first_up_to_the_limit(store_factory: StoreFactory) -> None:
    store = await store_factory("replica-a")
    for i in range(3):
        assert await claim_request(store, builders.request(f"req-{i}"), T0 + timedelta(seconds=i))
    first = await store.claim_orphaned_requests(T0 + timedelta(minutes=1), (), 2)
    assert [s.request.id for s in first] == ["req-0", "req-1"]
    rest = await store.claim_orphaned_requests(T0 + timedelta(minutes=1), (), 2)
    assert [s.request.id for s in rest] == ["req-2"]


async def test_a_start_whose_answer_was_lost_is_taken_back_only_by_its_holder(store_factory: StoreFactory) -> None:
    """start_execution committed but its answer never came (the connection dropped after COMMIT):
    the holder never ran the action, so it may take the request back, running or not."""
    store, other = await store_factory("replica-a"), await store_factory("replica-b")
    lost, running, theirs = (builders.request(f"req-{name}") for name in ("lost", "running", "theirs"))
    for owner, req in ((store, lost), (store, running), (other, theirs)):
        assert await claim_request(owner, req, T0)
        await owner.start_execution(req.id, T0)
    now = T0 + timedelta(seconds=1)
    taken = await store.claim_orphaned_requests(now, (), 10, unstarted=[lost.id, theirs.id])
    assert [(s.request.id, s.state, s.holder) for s in taken] == [(lost.id, RequestState.CLAIMED, "replica-a")]
    # Decided again by its holder: started and finished once; the others are untouched.
    await store.start_execution(lost.id, now)
    await finish_request(store, builders.audit(lost, outcome=Outcome.SUCCEEDED))
    for req in (running, theirs):
        stored = await other.get_request(req.id)
        assert stored is not None and stored.state is RequestState.RUNNING
