"""The SQLite store's part that picks up what a dead holder (or a failed write) left behind.

A mixin of `SqliteStore`. Whether a holder lives is its lock file's answer (`HolderFiles`): an
alert claimed by a dead holder is free at once (not after its lease), a `running` request of a
dead holder becomes `unknown`, and a `claimed` one is released and then taken, once, by whichever
holder asks first (`claim_orphaned_requests`), to be decided again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from dataclasses import replace
from datetime import datetime
from typing import TypeVar

from remediator.model import Alert
from remediator.stores import rows
from remediator.stores.base import RequestState, StoredRequest
from remediator.stores.sqlite.holder_files import HolderFiles

T = TypeVar("T")

OPEN_HOLDERS = ("SELECT DISTINCT holder FROM requests WHERE state IN ('claimed', 'running') "
                "AND holder NOT IN (?, '')")
ALERT_HOLDERS = ("SELECT DISTINCT claimed_by FROM alerts WHERE processed_at IS NULL AND claimed_until >= ? "
                 "AND claimed_by <> ?")
BACKLOG = (f"SELECT {rows.ALERT_COLUMNS} FROM alerts WHERE processed_at IS NULL "
           "AND (claimed_until IS NULL OR claimed_until < ? OR claimed_by IN (SELECT value FROM json_each(?))) "
           "ORDER BY seq LIMIT ?")
# Released claims, this holder's own claims from before `now` that nothing here is deciding, and
# its requests whose start it could not confirm (marked running or not: it never ran them).
ORPHANS = (f"SELECT {rows.REQUEST_COLUMNS} FROM requests WHERE (state = 'claimed' "
           "AND (holder = '' OR (holder = ? AND claimed_at < ?))) OR (state IN ('claimed', 'running') "
           "AND holder = ? AND id IN (SELECT value FROM json_each(?))) ORDER BY claimed_at, id LIMIT ?")


class RequestRecovery:
    """Backlog claims, reconcile and orphaned requests on the SQLite file."""

    holder: str
    _liveness: HolderFiles

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore provides it

    def _dead(self, holders: Collection[str]) -> list[str]:
        return [h for h in holders if not self._liveness.alive(h)]

    async def claim_backlog(
        self, now: datetime, lease_until: datetime, limit: int, exclude: Collection[str] = ()
    ) -> list[Alert]:
        skip = set(exclude)

        def op(conn: sqlite3.Connection) -> list[Alert]:
            dead = self._dead([h for (h,) in conn.execute(ALERT_HOLDERS, (rows.ts(now), self.holder))])
            found = conn.execute(BACKLOG, (rows.ts(now), rows.dumps(dead), limit + len(skip))).fetchall()
            alerts = [rows.alert_from_row(r) for r in found if r[0] not in skip][:limit]
            conn.executemany("UPDATE alerts SET claimed_by = ?, claimed_until = ? WHERE id = ?",
                             [(self.holder, rows.ts(lease_until), a.id) for a in alerts])
            return alerts

        return await self._write(op)

    async def reconcile_running(self, now: datetime) -> list[StoredRequest]:
        def op(conn: sqlite3.Connection) -> list[StoredRequest]:
            dead = self._dead([h for (h,) in conn.execute(OPEN_HOLDERS, (self.holder,))])
            stored: list[StoredRequest] = []
            for holder in dead:
                conn.execute("UPDATE requests SET holder = '' WHERE holder = ? AND state = 'claimed'", (holder,))
                found = conn.execute(f"SELECT {rows.REQUEST_COLUMNS} FROM requests WHERE state = 'running' "
                                     "AND holder = ?", (holder,)).fetchall()
                stored += [rows.stored_request_from_row(r) for r in found]
            for item in stored:
                conn.execute(rows.FINISH_REQUEST, rows.finish_row(rows.unknown_audit(item, now), "unknown"))
            return sorted(stored, key=lambda s: (s.claimed_at, s.request.id))

        return await self._write(op)

    async def claim_orphaned_requests(self, now: datetime, exclude: Collection[str], limit: int,
                                      unstarted: Collection[str] = ()) -> list[StoredRequest]:
        skip = set(exclude)

        def op(conn: sqlite3.Connection) -> list[StoredRequest]:
            found = [rows.stored_request_from_row(r) for r in conn.execute(ORPHANS, (
                self.holder, rows.ts(now), self.holder, rows.dumps(list(unstarted)), limit + len(skip))).fetchall()]
            taken = [s for s in found if s.request.id not in skip][:limit]
            conn.executemany("UPDATE requests SET holder = ?, claimed_at = ?, state = 'claimed', started_at = NULL "
                             "WHERE id = ?", [(self.holder, rows.ts(now), s.request.id) for s in taken])
            return [replace(s, state=RequestState.CLAIMED, holder=self.holder, claimed_at=now) for s in taken]

        return await self._write(op)
