"""The SQLite store's retention (see `stores.retention`): reads on the reader pool, each deletion one
small job on the writer, so a purge interleaves with ingest instead of holding the write lock.

Space: a file created by this version uses auto_vacuum=INCREMENTAL, and `reclaim_space` gives
freed pages back a few at a time. An older file (auto_vacuum=NONE) keeps its freed pages for new
rows, so it stops growing but does not shrink until `remediator store compact` (README, Retention).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson

from remediator.stores import rows
from remediator.stores.retention import JSON_COLUMNS, QUERIES, TABLES, UNFINISHED, Kind, StoreStats

T = TypeVar("T")

CHUNK = 500  # bound parameters per statement


def _marks(items: Sequence[Any]) -> str:
    return ", ".join("?" * len(items))


def _dicts(cursor: sqlite3.Cursor, table: str) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    out = []
    for row in cursor.fetchall():
        item = dict(zip(names, row, strict=True))
        for name in JSON_COLUMNS.get(table, frozenset()).intersection(item):
            if isinstance(item[name], str):
                item[name] = orjson.loads(item[name])
        out.append(item)
    return out


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


class RetentionRecords:
    """A mixin of `SqliteStore`."""

    path: str

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError

    async def oldest_expired(self, kind: Kind, since: datetime, before: datetime) -> datetime | None:
        q = QUERIES[kind]
        row = await self._read(lambda conn: conn.execute(
            f"SELECT {q.at} FROM {q.table} WHERE {q.at} >= ? AND {q.at} < ? AND {q.deletable} "
            f"ORDER BY {q.at}, {q.key} LIMIT 1", (rows.ts(since), rows.ts(before))).fetchone())
        return rows.parse_ts(row[0]) if row else None

    async def expired_page(self, kind: Kind, since: datetime, before: datetime,
                           after: tuple[datetime, str] | None, limit: int) -> list[tuple[datetime, str]]:
        q = QUERIES[kind]
        cursor, args = "", [rows.ts(since), rows.ts(before)]
        if after is not None:
            cursor = f" AND ({q.at}, {q.key}) > (?, ?)"
            args += [rows.ts(after[0]), after[1]]
        found = await self._read(lambda conn: conn.execute(
            f"SELECT {q.at}, {q.key} FROM {q.table} WHERE {q.at} >= ? AND {q.at} < ?{cursor} AND {q.deletable} "
            f"ORDER BY {q.at}, {q.key} LIMIT ?", (*args, limit)).fetchall())
        return [(rows.parse_ts(at) or since, key) for at, key in found]

    async def export_rows(self, kind: Kind, keys: Sequence[str]) -> list[dict[str, Any]]:
        def op(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            q = QUERIES[kind]
            found: dict[str, dict[str, Any]] = {}
            for chunk in _chunks(keys):
                for item in _dicts(conn.execute(f"SELECT * FROM {q.table} WHERE {q.key} IN ({_marks(chunk)})",
                                                chunk), q.table):
                    found[item[q.key]] = item
                if kind is Kind.INCIDENTS:
                    _attach_detail(conn, found, chunk)
            return [found[k] for k in keys if k in found]

        return await self._read(op)

    async def delete_expired(self, kind: Kind, keys: Sequence[str], before: datetime) -> int:
        q = QUERIES[kind]

        def op(conn: sqlite3.Connection) -> int:
            deleted = 0
            for chunk in _chunks(keys):
                going = conn.execute(
                    f"SELECT {q.key}{', dedup_keys' if kind is Kind.ALERTS else ''} FROM {q.table} "
                    f"WHERE {q.key} IN ({_marks(chunk)}) AND {q.at} < ? AND {q.deletable}",
                    (*chunk, rows.ts(before))).fetchall()
                ids = [r[0] for r in going]
                if not ids:
                    continue
                marks = _marks(ids)
                if kind is Kind.ALERTS:
                    conn.executemany("DELETE FROM alert_keys WHERE key = ? AND alert_id = ?",
                                     [(key, r[0]) for r in going for key in orjson.loads(r[1])])
                if kind is Kind.INCIDENTS:
                    conn.execute(f"DELETE FROM timeline WHERE incident_id IN ({marks})", ids)
                    conn.execute(f"DELETE FROM incident_firing WHERE incident_id IN ({marks})", ids)
                    conn.execute("DELETE FROM approval_votes WHERE approval_id IN "
                                 f"(SELECT id FROM approvals WHERE incident_id IN ({marks}))", ids)
                    conn.execute(f"DELETE FROM approvals WHERE incident_id IN ({marks})", ids)
                deleted += conn.execute(f"DELETE FROM {q.table} WHERE {q.key} IN ({marks})", ids).rowcount
            return deleted

        return await self._write(op)

    async def reclaim_space(self, pages: int) -> int:
        return await asyncio.to_thread(_incremental_vacuum, self.path, pages)

    async def store_stats(self) -> StoreStats:
        def op(conn: sqlite3.Connection) -> StoreStats:
            counts = {t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in TABLES}
            oldest = {}
            for kind, q in QUERIES.items():
                row = conn.execute(f"SELECT min({q.at}) FROM {q.table}").fetchone()
                oldest[kind] = rows.parse_ts(row[0]) if row else None
            unfinished = conn.execute(
                f"SELECT min(a.received_at) FROM requests r JOIN alerts a ON a.id = r.alert_id WHERE r.{UNFINISHED}"
            ).fetchone()[0]
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
            free = int(conn.execute("PRAGMA freelist_count").fetchone()[0]) * page_size
            mode = {0: "none", 1: "full", 2: "incremental"}[int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])]
            return StoreStats(_file_size(self.path), free, counts, oldest, rows.parse_ts(unfinished), mode)

        return await self._read(op)


def _attach_detail(conn: sqlite3.Connection, found: dict[str, dict[str, Any]], ids: Sequence[str]) -> None:
    """An incident's export carries its timeline, and its approvals with their votes."""
    marks = _marks(ids)
    for item in found.values():
        item.setdefault("timeline", [])
        item.setdefault("approvals", [])
    events = _dicts(conn.execute(f"SELECT * FROM timeline WHERE incident_id IN ({marks}) ORDER BY seq", ids),
                    "timeline")
    for event in events:
        found[event["incident_id"]]["timeline"].append(event)
    approvals = _dicts(conn.execute(f"SELECT * FROM approvals WHERE incident_id IN ({marks})", ids), "approvals")
    for approval in approvals:
        approval["votes"] = _dicts(conn.execute("SELECT * FROM approval_votes WHERE approval_id = ? ORDER BY seq",
                                                (approval["id"],)), "approval_votes")
        found[approval["incident_id"]]["approvals"].append(approval)


def _incremental_vacuum(path: str, pages: int) -> int:
    """Give up to `pages` free pages back, on a connection of its own (not the writer's).

    `PRAGMA incremental_vacuum(N)` frees one page per step of its statement, and Python's
    `execute` steps a statement that returns no rows once: only `executescript` runs it to the end,
    and it must bring its own transaction (it commits whatever is open first). The write lock is
    held for those pages only; the writer waits for it in fine steps (`Writer._begin`).
    """
    if path == ":memory:":
        return 0
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=2000")
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # not INCREMENTAL: nothing to give back
            return 0
        before = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        if before == 0:
            return 0
        try:
            conn.executescript(f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({int(pages)}); COMMIT;")
        except sqlite3.OperationalError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return 0  # busy: the next pass goes on
        return before - int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    finally:
        conn.close()


def _file_size(path: str) -> int:
    """The database with its WAL: what the disk holds."""
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
