"""The ledger of WAF blocks remediator placed: an extension of the store contract that `waf.block_ip` owns.

Nothing in the core (intake, correlation, requests, approvals) reads it; the WAF engine part
(`engine/waf_blocks.py`) asks for it by this type. Both SQL backends implement it, keeping each
entry's expiry timer (`stores.base.waf_expiry_timer`) in the same transaction, and `Store`
includes it so the daemon holds one object.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from remediator.model import WafBlock


class WafBlockStore(Protocol):
    """The ledger of `waf.block_ip`: one entry per (ip_set_arn, address), each with its expiry timer."""

    async def record_waf_block(self, block: WafBlock) -> WafBlock:
        """Keep `block` in the ledger together with its expiry timer, in one transaction.

        One entry per (ip_set_arn, address). No entry yet: `block` is stored as given and counts
        as one addition for `count_waf_blocks_added`. An entry exists: it is kept and never
        shortened; when `block.expires_at` is later, the entry takes that expiry and the
        request_id and incident_id of `block` (blocked_at stays the first one); otherwise it is
        left as it is. Then, in the same transaction, `waf_expiry_timer(stored)` is made the one
        pending expiry of the entry: inserted, or revived as pending and unclaimed (due at the
        stored expiry) when a row with its id exists in another state, and every other pending
        timer whose id starts with `waf_expiry_prefix(...)` is cancelled. A block therefore never
        exists without a timer that ends it, and re-blocks replace the timer, never add one.

        Returns the entry as stored. Concurrent calls for one entry, on any replicas, are
        serialised on its row (PostgreSQL: INSERT ... ON CONFLICT DO UPDATE ... RETURNING), so two
        racing blocks give one addition and the later of the two expiries.
        """

    async def get_waf_block(self, ip_set_arn: str, address: str) -> WafBlock | None:
        """The ledger entry for this address in this IP set, as committed now."""

    async def due_waf_blocks(self, now: datetime, limit: int = 100) -> list[WafBlock]:
        """Entries with `expires_at <= now`, soonest expiry first (then ip_set_arn, address)."""

    async def forget_waf_block(self, ip_set_arn: str, address: str) -> None:
        """Drop the entry (the address is out of the set) and cancel its pending expiry timers,
        in one transaction; nothing happens when there is none. Its addition stays counted."""

    async def count_waf_blocks_added(self, ip_set_arn: str, since: datetime) -> int:
        """How many entries were added to this IP set at or after `since` (by `blocked_at`),
        forgotten ones included: the hourly cap of `waf.block_ip`. Additions more than a day old
        may be pruned (the cap looks back one hour)."""
