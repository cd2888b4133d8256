"""The PostgreSQL store's ledger of WAF blocks, each kept together with the timer that ends it.

A mixin of `PostgresStore`, mirroring `sqlite_waf`: recording an entry and making its timer the
one pending expiry is one transaction, with the entry's row locked, so replicas re-blocking one
address at once keep one entry, the later expiry and one timer.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from remediator.model import WafBlock
from remediator.stores.base import waf_expiry_prefix, waf_expiry_timer

COLUMNS = "ip_set_arn, address, blocked_at, expires_at, request_id, incident_id"
KEEP_ADDITIONS = timedelta(days=1)  # the hourly cap looks back one hour
REVIVE_TIMER = (
    "INSERT INTO timers (id, kind, due_at, payload, state) VALUES ($1, $2, $3, $4::jsonb, 'pending') "
    "ON CONFLICT (id) DO UPDATE SET state = 'pending', due_at = excluded.due_at, claimed_by = NULL, "
    "claimed_until = NULL, fired_at = NULL WHERE timers.state <> 'pending'")


def _block(row: Any) -> WafBlock:
    return WafBlock(row["ip_set_arn"], row["address"], row["blocked_at"], row["expires_at"], row["request_id"],
                    row["incident_id"])


async def _store_entry(conn: Any, block: WafBlock) -> WafBlock:
    """Insert the entry, or extend the existing one to the later expiry; what is stored now."""
    inserted = await conn.fetchval(
        f"INSERT INTO waf_blocks ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
        block.ip_set_arn, block.address, block.blocked_at, block.expires_at, block.request_id, block.incident_id)
    if inserted is not None:
        await conn.execute("DELETE FROM waf_block_additions WHERE added_at < $1", block.blocked_at - KEEP_ADDITIONS)
        await conn.execute("INSERT INTO waf_block_additions (ip_set_arn, added_at) VALUES ($1, $2)",
                           block.ip_set_arn, block.blocked_at)
        return block
    current = _block(await conn.fetchrow(f"SELECT {COLUMNS} FROM waf_blocks WHERE ip_set_arn = $1 AND address = $2 "
                                         "FOR UPDATE", block.ip_set_arn, block.address))
    if block.expires_at <= current.expires_at:
        return current
    await conn.execute("UPDATE waf_blocks SET expires_at = $1, request_id = $2, incident_id = $3 "
                       "WHERE ip_set_arn = $4 AND address = $5", block.expires_at, block.request_id,
                       block.incident_id, block.ip_set_arn, block.address)
    return WafBlock(current.ip_set_arn, current.address, current.blocked_at, block.expires_at, block.request_id,
                    block.incident_id)


class WafBlockRecords:
    """`Store`'s WAF block ledger on PostgreSQL."""

    def _conn(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore provides it

    def _tx(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore provides it

    async def record_waf_block(self, block: WafBlock) -> WafBlock:
        async with self._tx("record waf block") as conn:
            stored = await _store_entry(conn, block)
            timer = waf_expiry_timer(stored)
            await conn.execute("UPDATE timers SET state = 'cancelled' WHERE state = 'pending' "
                               "AND starts_with(id, $1) AND id <> $2",
                               waf_expiry_prefix(stored.ip_set_arn, stored.address), timer.id)
            await conn.execute(REVIVE_TIMER, timer.id, timer.kind, timer.due_at, dict(timer.payload))
        return stored

    async def get_waf_block(self, ip_set_arn: str, address: str) -> WafBlock | None:
        async with self._conn("get waf block") as conn:
            row = await conn.fetchrow(f"SELECT {COLUMNS} FROM waf_blocks WHERE ip_set_arn = $1 AND address = $2",
                                      ip_set_arn, address)
        return _block(row) if row else None

    async def due_waf_blocks(self, now: datetime, limit: int = 100) -> list[WafBlock]:
        async with self._conn("due waf blocks") as conn:
            found = await conn.fetch(f"SELECT {COLUMNS} FROM waf_blocks WHERE expires_at <= $1 "
                                     "ORDER BY expires_at, ip_set_arn, address LIMIT $2", now, limit)
        return [_block(r) for r in found]

    async def forget_waf_block(self, ip_set_arn: str, address: str) -> None:
        async with self._tx("forget waf block") as conn:
            await conn.execute("DELETE FROM waf_blocks WHERE ip_set_arn = $1 AND address = $2", ip_set_arn, address)
            await conn.execute("UPDATE timers SET state = 'cancelled' WHERE state = 'pending' AND starts_with(id, $1)",
                               waf_expiry_prefix(ip_set_arn, address))

    async def count_waf_blocks_added(self, ip_set_arn: str, since: datetime) -> int:
        async with self._conn("count waf blocks") as conn:
            return int(await conn.fetchval("SELECT count(*) FROM waf_block_additions WHERE ip_set_arn = $1 "
                                           "AND added_at >= $2", ip_set_arn, since))
