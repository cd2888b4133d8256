"""The SQLite store's ledger of WAF blocks, each kept together with the timer that ends it.

A mixin of `SqliteStore`: every write is one job on the store's single writer thread, so the
read-modify-write of an entry and the rescheduling of its timer are one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from remediator.model import WafBlock
from remediator.stores import rows
from remediator.stores.base import waf_expiry_prefix, waf_expiry_timer

T = TypeVar("T")

COLUMNS = "ip_set_arn, address, blocked_at, expires_at, request_id, incident_id"
KEEP_ADDITIONS = timedelta(days=1)  # the hourly cap looks back one hour


def _block(row: Sequence[Any]) -> WafBlock:
    blocked_at, expires_at = rows.parse_ts(row[2]), rows.parse_ts(row[3])
    assert blocked_at is not None and expires_at is not None  # NOT NULL columns
    return WafBlock(row[0], row[1], blocked_at, expires_at, row[4], row[5])


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _one(conn: sqlite3.Connection, ip_set_arn: str, address: str) -> WafBlock | None:
    row = conn.execute(f"SELECT {COLUMNS} FROM waf_blocks WHERE ip_set_arn = ? AND address = ?",
                       (ip_set_arn, address)).fetchone()
    return _block(row) if row else None


def _store_entry(conn: sqlite3.Connection, block: WafBlock) -> WafBlock:
    """Insert the entry, or extend the existing one to the later expiry; what is stored now."""
    current = _one(conn, block.ip_set_arn, block.address)
    if current is None:
        conn.execute(f"INSERT INTO waf_blocks ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                     (block.ip_set_arn, block.address, rows.ts(block.blocked_at), rows.ts(block.expires_at),
                      block.request_id, block.incident_id))
        conn.execute("DELETE FROM waf_block_additions WHERE added_at < ?",
                     (rows.ts(block.blocked_at - KEEP_ADDITIONS),))
        conn.execute("INSERT INTO waf_block_additions (ip_set_arn, added_at) VALUES (?, ?)",
                     (block.ip_set_arn, rows.ts(block.blocked_at)))
        return block
    if block.expires_at <= current.expires_at:
        return current
    conn.execute("UPDATE waf_blocks SET expires_at = ?, request_id = ?, incident_id = ? "
                 "WHERE ip_set_arn = ? AND address = ?",
                 (rows.ts(block.expires_at), block.request_id, block.incident_id, block.ip_set_arn, block.address))
    return WafBlock(current.ip_set_arn, current.address, current.blocked_at, block.expires_at, block.request_id,
                    block.incident_id)


def _make_sole_expiry(conn: sqlite3.Connection, stored: WafBlock) -> None:
    """The stored entry's expiry timer is pending, and no other expiry timer of the entry is."""
    timer = waf_expiry_timer(stored)
    conn.execute("UPDATE timers SET state = 'cancelled' WHERE state = 'pending' AND id LIKE ? ESCAPE '\\' "
                 "AND id != ?", (_like(waf_expiry_prefix(stored.ip_set_arn, stored.address)), timer.id))
    conn.execute(
        "INSERT INTO timers (id, kind, due_at, payload, state) VALUES (?, ?, ?, ?, 'pending') "
        "ON CONFLICT (id) DO UPDATE SET state = 'pending', due_at = excluded.due_at, claimed_by = NULL, "
        "claimed_until = NULL, fired_at = NULL WHERE timers.state != 'pending'",
        (timer.id, timer.kind, rows.ts(timer.due_at), rows.dumps(timer.payload)))


class WafBlockRecords:
    """`Store`'s WAF block ledger on the SQLite file."""

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore provides it

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore provides it

    async def record_waf_block(self, block: WafBlock) -> WafBlock:
        def op(conn: sqlite3.Connection) -> WafBlock:
            stored = _store_entry(conn, block)
            _make_sole_expiry(conn, stored)
            return stored

        return await self._write(op)

    async def get_waf_block(self, ip_set_arn: str, address: str) -> WafBlock | None:
        return await self._read(lambda conn: _one(conn, ip_set_arn, address))

    async def due_waf_blocks(self, now: datetime, limit: int = 100) -> list[WafBlock]:
        def op(conn: sqlite3.Connection) -> list[WafBlock]:
            found = conn.execute(f"SELECT {COLUMNS} FROM waf_blocks WHERE expires_at <= ? "
                                 "ORDER BY expires_at, ip_set_arn, address LIMIT ?", (rows.ts(now), limit))
            return [_block(r) for r in found]

        return await self._read(op)

    async def forget_waf_block(self, ip_set_arn: str, address: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM waf_blocks WHERE ip_set_arn = ? AND address = ?", (ip_set_arn, address))
            conn.execute("UPDATE timers SET state = 'cancelled' WHERE state = 'pending' AND id LIKE ? ESCAPE '\\'",
                         (_like(waf_expiry_prefix(ip_set_arn, address)),))

        await self._write(op)

    async def count_waf_blocks_added(self, ip_set_arn: str, since: datetime) -> int:
        return int(await self._read(lambda conn: conn.execute(
            "SELECT count(*) FROM waf_block_additions WHERE ip_set_arn = ? AND added_at >= ?",
            (ip_set_arn, rows.ts(since))).fetchone()[0]))
