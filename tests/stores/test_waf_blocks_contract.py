"""The Store contract for the WAF block ledger: entries, their one expiry timer, the hourly count."""

from __future__ import annotations

from datetime import timedelta

from remediator.model import WafBlock
from remediator.stores.base import WAF_EXPIRY_TIMER, Store, Timer, waf_expiry_timer
from tests.conftest import T0
from tests.stores.conftest import StoreFactory

SET = "arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/erp-blocklist/a1b2c3d4"
OTHER_SET = "arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/erp-blocklist-v6/e5f6a7b8"
ADDRESS = "203.0.113.7/32"
MINUTE = timedelta(minutes=1)
FAR = T0 + timedelta(days=30)


def block(at_minute: int = 0, lasts: int = 15, *, address: str = ADDRESS, ip_set: str = SET,
          request: str = "req-1", incident: str = "INC-2026-00001") -> WafBlock:
    at = T0 + at_minute * MINUTE
    return WafBlock(ip_set, address, at, at + lasts * MINUTE, request, incident)


async def pending_expiries(store: Store) -> list[Timer]:
    """Every pending expiry timer (claimed by this call: use it once per test, at the end)."""
    return [t for t in await store.claim_due_timers(FAR, FAR + MINUTE, 100) if t.kind == WAF_EXPIRY_TIMER]


async def test_a_new_block_is_stored_counted_and_given_its_expiry_timer(store: Store) -> None:
    first = block()
    assert await store.record_waf_block(first) == first
    assert await store.get_waf_block(SET, ADDRESS) == first
    assert await store.count_waf_blocks_added(SET, T0) == 1
    assert await store.count_waf_blocks_added(SET, T0 + timedelta(seconds=1)) == 0
    assert await store.count_waf_blocks_added(OTHER_SET, T0) == 0
    # Due at the expiry, not a moment before.
    assert await store.claim_due_timers(T0 + 15 * MINUTE - timedelta(seconds=1), FAR, 10) == []
    [timer] = await store.claim_due_timers(T0 + 15 * MINUTE, FAR, 10)
    assert timer == waf_expiry_timer(first)
    assert timer.payload == {"ip_set_arn": SET, "address": ADDRESS, "expires_at": first.expires_at.isoformat(),
                             "attempt": 1}


async def test_a_later_reblock_extends_the_entry_and_replaces_its_timer(store: Store) -> None:
    await store.record_waf_block(block())
    stored = await store.record_waf_block(block(at_minute=10, lasts=15, request="req-2", incident="INC-2026-00002"))

    assert stored == WafBlock(SET, ADDRESS, T0, T0 + 25 * MINUTE, "req-2", "INC-2026-00002")
    assert await store.get_waf_block(SET, ADDRESS) == stored
    assert await store.count_waf_blocks_added(SET, T0) == 1  # an extension is not an addition
    assert await pending_expiries(store) == [waf_expiry_timer(stored)]


async def test_a_shorter_reblock_changes_nothing(store: Store) -> None:
    first = await store.record_waf_block(block(lasts=60))
    assert await store.record_waf_block(block(at_minute=5, lasts=10, request="req-2")) == first
    assert await store.get_waf_block(SET, ADDRESS) == first
    assert await pending_expiries(store) == [waf_expiry_timer(first)]


async def test_forgetting_drops_the_entry_and_its_timers_but_not_its_count(store: Store) -> None:
    first = await store.record_waf_block(block())
    await store.schedule_timer(waf_expiry_timer(first, attempt=2, due_at=T0 + 16 * MINUTE))
    await store.forget_waf_block(SET, ADDRESS)
    await store.forget_waf_block(SET, "198.51.100.1/32")  # none: nothing happens

    assert await store.get_waf_block(SET, ADDRESS) is None
    assert await store.count_waf_blocks_added(SET, T0) == 1
    assert await pending_expiries(store) == []


async def test_a_block_forgotten_and_placed_again_has_a_timer_again(store: Store) -> None:
    """Same expiry, same timer id: the cancelled (or fired) row is revived, never left cancelled."""
    first = await store.record_waf_block(block())
    [fired] = await store.claim_due_timers(first.expires_at, FAR, 10)
    await store.complete_timer(fired.id, first.expires_at)
    await store.forget_waf_block(SET, ADDRESS)

    again = await store.record_waf_block(block())
    assert await store.count_waf_blocks_added(SET, T0) == 2
    assert await pending_expiries(store) == [waf_expiry_timer(again)]


async def test_due_blocks_are_soonest_first_and_limited(store: Store) -> None:
    await store.record_waf_block(block(lasts=30, address="198.51.100.2/32"))
    await store.record_waf_block(block(lasts=10, address="198.51.100.1/32"))
    await store.record_waf_block(block(lasts=20, ip_set=OTHER_SET))
    await store.record_waf_block(block(lasts=90, address="198.51.100.3/32"))

    due = await store.due_waf_blocks(T0 + 30 * MINUTE)
    assert [(b.ip_set_arn, b.address) for b in due] == [
        (SET, "198.51.100.1/32"), (OTHER_SET, ADDRESS), (SET, "198.51.100.2/32")]
    assert [b.address for b in await store.due_waf_blocks(T0 + 30 * MINUTE, limit=1)] == ["198.51.100.1/32"]
    assert await store.due_waf_blocks(T0 + 9 * MINUTE) == []


async def test_replicas_share_one_ledger_and_one_expiry(store_factory: StoreFactory) -> None:
    a, b = await store_factory("replica-a"), await store_factory("replica-b")
    await a.record_waf_block(block(lasts=15, request="req-a"))
    stored = await b.record_waf_block(block(lasts=20, request="req-b"))

    assert await a.get_waf_block(SET, ADDRESS) == stored and stored.request_id == "req-b"
    assert await a.count_waf_blocks_added(SET, T0) == 1
    # The one expiry fires once: the replica that claims it first has it.
    [timer] = await a.claim_due_timers(stored.expires_at, stored.expires_at + 2 * MINUTE, 10)
    assert timer == waf_expiry_timer(stored)
    assert await b.claim_due_timers(stored.expires_at, stored.expires_at + 2 * MINUTE, 10) == []
