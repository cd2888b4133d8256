"""The Coordination contract: in-process and Redis must behave the same."""

from __future__ import annotations

from datetime import timedelta

from remediator.model import DecisionReason
from remediator.stores.coordination import ConsoleSession, Coordination, KillSwitch, Quota
from tests.conftest import T0

MINUTE = timedelta(minutes=1)


def cooldown(key: str = "cooldown:p:t", window: timedelta = 10 * MINUTE) -> Quota:
    return Quota(key, 1, window, DecisionReason.COOLDOWN)


async def test_a_cooldown_admits_once_per_window(coordination: Coordination) -> None:
    assert (await coordination.admit([cooldown()], T0)).admitted
    denied = await coordination.admit([cooldown()], T0 + 9 * MINUTE)
    assert not denied.admitted and denied.denied_by == cooldown()
    assert 59 <= denied.retry_after <= 60
    assert (await coordination.admit([cooldown()], T0 + 10 * MINUTE + timedelta(seconds=1))).admitted


async def test_a_window_limit_slides(coordination: Coordination) -> None:
    rate = Quota("rate:p:0", 3, 10 * MINUTE, DecisionReason.RATE_LIMITED)
    for minute in (0, 1, 2):
        assert (await coordination.admit([rate], T0 + minute * MINUTE)).admitted
    assert not (await coordination.admit([rate], T0 + 5 * MINUTE)).admitted
    assert (await coordination.admit([rate], T0 + 10 * MINUTE + timedelta(seconds=1))).admitted


async def test_admission_is_all_or_nothing(coordination: Coordination) -> None:
    budget = Quota("budget", 2, 60 * MINUTE, DecisionReason.BUDGET_EXHAUSTED)
    assert (await coordination.admit([cooldown("cooldown:a"), budget], T0)).admitted
    # The cooldown denies: the budget must not be spent by the denied request.
    denied = await coordination.admit([cooldown("cooldown:a"), budget], T0)
    assert denied.denied_by == cooldown("cooldown:a")
    assert (await coordination.admit([cooldown("cooldown:b"), budget], T0)).admitted
    assert (await coordination.admit([cooldown("cooldown:c"), budget], T0)).denied_by == budget


async def test_blast_radius_counts_distinct_targets(coordination: Coordination) -> None:
    def blast(target: str) -> Quota:
        return Quota("blast:ecs.force_new_deployment", 2, 60 * MINUTE, DecisionReason.BLAST_RADIUS, member=target)

    assert (await coordination.admit([blast("api")], T0)).admitted
    assert (await coordination.admit([blast("web")], T0)).admitted
    assert (await coordination.admit([blast("api")], T0 + MINUTE)).admitted  # already counted
    assert (await coordination.admit([blast("worker")], T0 + MINUTE)).denied_by == blast("worker")
    assert (await coordination.admit([blast("worker")], T0 + 61 * MINUTE)).admitted


async def test_the_kill_switch_is_shared_state(coordination: Coordination) -> None:
    assert not (await coordination.kill_switch()).enabled
    state = KillSwitch(True, "alice", "change freeze", T0)
    await coordination.set_kill_switch(state)
    assert await coordination.kill_switch() == state
    await coordination.set_kill_switch(KillSwitch(False, "bob", "", T0))
    assert not (await coordination.kill_switch()).enabled


async def test_state_changes_are_counted_within_their_window(coordination: Coordination) -> None:
    counts = [await coordination.record_change("flap:fp", 10 * MINUTE, T0 + i * 3 * MINUTE) for i in range(5)]
    assert counts == [1, 2, 3, 4, 4]


async def test_a_change_replayed_under_its_own_member_is_counted_once(coordination: Coordination) -> None:
    """A flap counter replayed after a crash (the same occurrence processed again) must not grow."""
    first = await coordination.record_change("flap:fp", 10 * MINUTE, T0, member="occurrence-1")
    again = await coordination.record_change("flap:fp", 10 * MINUTE, T0 + MINUTE, member="occurrence-1")
    other = await coordination.record_change("flap:fp", 10 * MINUTE, T0 + MINUTE, member="occurrence-2")
    assert (first, again, other) == (1, 1, 2)
    # Counted at its first time: it leaves the window 10 minutes after T0, not after the replay.
    assert await coordination.recent_changes("flap:fp", 10 * MINUTE, T0 + 10 * MINUTE + timedelta(seconds=1)) == [
        T0 + MINUTE]


async def test_a_lease_is_exclusive_until_released_or_expired(coordination: Coordination) -> None:
    first = await coordination.acquire_lease("target:api", "a", 5 * MINUTE, T0)
    assert first is not None
    assert await coordination.acquire_lease("target:api", "b", 5 * MINUTE, T0 + MINUTE) is None
    assert [lease.key for lease in await coordination.held_leases(T0 + MINUTE)] == ["target:api"]
    second = await coordination.acquire_lease("target:api", "b", 5 * MINUTE, T0 + 6 * MINUTE)
    assert second is not None and second.token > first.token  # fencing: strictly increasing
    assert not await coordination.release_lease(first)  # a stale holder cannot release the new lease
    assert await coordination.release_lease(second)
    assert await coordination.held_leases(T0 + 6 * MINUTE) == []
    third = await coordination.acquire_lease("target:api", "a", 5 * MINUTE, T0 + 7 * MINUTE)
    assert third is not None and third.token > second.token


async def test_admission_is_idempotent_per_request(coordination: Coordination) -> None:
    """The same request decided twice (two replicas got the same occurrence) is admitted both times."""
    rate = Quota("rate:p:0", 1, 10 * MINUTE, DecisionReason.RATE_LIMITED)
    budget = Quota("budget", 5, 60 * MINUTE, DecisionReason.BUDGET_EXHAUSTED)
    assert (await coordination.admit([rate, budget], T0, "req-1")).admitted
    assert (await coordination.admit([rate, budget], T0 + MINUTE, "req-1")).admitted
    assert (await coordination.admit([rate, budget], T0 + MINUTE, "req-2")).denied_by == rate
    # Counted once: four more requests still fit the budget of five (with room in their own rates).
    for i in range(4):
        assert (await coordination.admit([budget], T0, f"other-{i}")).admitted
    assert (await coordination.admit([budget], T0, "other-5")).denied_by == budget


async def test_recent_changes_are_read_without_being_counted(coordination: Coordination) -> None:
    for minute in (0, 1, 2):
        await coordination.record_change("signin:addr:10.0.0.9", 10 * MINUTE, T0 + minute * MINUTE)
    window = 10 * MINUTE
    assert await coordination.recent_changes("signin:addr:10.0.0.9", window, T0 + 2 * MINUTE) == \
        [T0, T0 + MINUTE, T0 + 2 * MINUTE]
    assert await coordination.recent_changes("signin:addr:10.0.0.9", window, T0 + 10 * MINUTE + timedelta(
        seconds=30)) == [T0 + MINUTE, T0 + 2 * MINUTE]
    assert await coordination.recent_changes("signin:addr:10.0.0.10", window, T0) == []
    # Reading counted nothing: the next change is the fourth.
    assert await coordination.record_change("signin:addr:10.0.0.9", window, T0 + 3 * MINUTE) == 4


async def test_a_console_session_is_seen_until_it_expires_or_ends(coordination: Coordination) -> None:
    alice = ConsoleSession("a" * 64, T0 + 8 * 60 * MINUTE)
    await coordination.start_session("sid-digest-1", alice, T0)
    await coordination.start_session("sid-digest-2", ConsoleSession("b" * 64, T0 + MINUTE), T0)
    assert await coordination.find_session("sid-digest-1", T0 + MINUTE) == alice
    assert await coordination.find_session("sid-digest-2", T0 + MINUTE) is None  # expired by the caller's clock
    assert await coordination.find_session("sid-unknown", T0) is None
    await coordination.end_session("sid-digest-1")
    # Ended: a cookie replayed afterwards finds nothing.
    assert await coordination.find_session("sid-digest-1", T0 + MINUTE) is None
    await coordination.end_session("sid-digest-1")  # ending twice is not an error


async def test_a_circuit_counts_failures_in_a_row_and_opens_at_the_threshold(coordination: Coordination) -> None:
    key = "postgres.terminate_idle:erp-prod-db"
    first = await coordination.count_failure(key, T0, 3, "timeout")
    assert (first.failures, first.opened_at) == (1, None)
    await coordination.count_failure(key, T0 + MINUTE, 3, "timeout")
    third = await coordination.count_failure(key, T0 + 2 * MINUTE, 3, "access_denied")
    assert (third.failures, third.opened_at, third.reason) == (3, T0 + 2 * MINUTE, "access_denied")
    stored = await coordination.circuit(key)
    assert stored == third
    assert [c.key for c in await coordination.circuits()] == [key]
    other = await coordination.count_failure("ecs.force_redeploy:erp-api", T0, 3, "timeout")
    assert other.failures == 1  # per action type and target


async def test_a_success_or_a_person_closes_a_circuit(coordination: Coordination) -> None:
    for minute in range(3):
        await coordination.count_failure("a:t", T0 + minute * MINUTE, 2, "timeout")
    await coordination.count_success("a:t")
    assert await coordination.circuit("a:t") is None
    assert (await coordination.count_failure("a:t", T0 + 5 * MINUTE, 2, "timeout")).failures == 1
    await coordination.count_failure("a:t", T0 + 6 * MINUTE, 2, "timeout")
    assert await coordination.close_circuit("a:t") is True
    assert await coordination.close_circuit("a:t") is False  # nothing left to close
    assert await coordination.circuit("a:t") is None and await coordination.circuits() == []


async def test_controls_are_named_documents_by_kind(coordination: Coordination) -> None:
    assert await coordination.controls("pause") == {}
    await coordination.put_control("pause", "policy:pg-*", b'{"by": "alice"}')
    await coordination.put_control("pause", "target:erp-prod-db", b'{"by": "bob"}')
    await coordination.put_control("pause", "policy:pg-*", b'{"by": "carol"}')  # replaced
    assert await coordination.controls("pause") == {"policy:pg-*": b'{"by": "carol"}',
                                                     "target:erp-prod-db": b'{"by": "bob"}'}
    assert await coordination.controls("other") == {}
    assert await coordination.remove_control("pause", "policy:pg-*") is True
    assert await coordination.remove_control("pause", "policy:pg-*") is False
    assert list(await coordination.controls("pause")) == ["target:erp-prod-db"]
