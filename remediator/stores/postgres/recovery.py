"""The PostgreSQL store's part that picks up what a dead holder (or a failed write) left behind.

A mixin of `PostgresStore`. Whether a holder lives is PostgreSQL's answer (`HOLDER_ALIVE`: its
liveness session holds its advisory lock): an alert claimed by a dead holder is free at once (not
after its lease), a `running` request of a dead holder becomes `unknown`, and a `claimed` one is
released and then taken, once, by whichever replica asks first (`claim_orphaned_requests`, rows
locked with SKIP LOCKED), to be decided again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import datetime
from typing import Any

from remediator.model import Alert
from remediator.stores import rows
from remediator.stores.base import StoredRequest
from remediator.stores.postgres import rows as pr
from remediator.stores.postgres.connect import HOLDER_ALIVE

_RETURNING = ", ".join("r." + c.strip() for c in pr.REQUEST_COLUMNS.split(","))
_AUDIT_VALUES = ", ".join(f"${n}::{t}" for n, t in enumerate(pr.AUDIT_TYPES, start=1))

# Free: never claimed, lease over, or claimed by a holder whose liveness session is gone.
CLAIM_BACKLOG = f"""
WITH dead AS MATERIALIZED (
    SELECT h.claimed_by FROM (SELECT DISTINCT claimed_by FROM alerts WHERE processed_at IS NULL
        AND claimed_until >= $3 AND claimed_by <> $1) h
    WHERE NOT {HOLDER_ALIVE.format(holder="h.claimed_by")}
)
UPDATE alerts SET claimed_by = $1, claimed_until = $2 WHERE seq IN (
    SELECT seq FROM alerts WHERE processed_at IS NULL
    AND (claimed_until IS NULL OR claimed_until < $3 OR claimed_by IN (SELECT claimed_by FROM dead))
    AND NOT (id = ANY($5::text[])) ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING seq, {pr.ALERT_COLUMNS}
"""
RECONCILE = f"""
WITH holders AS MATERIALIZED (
    SELECT DISTINCT holder FROM requests WHERE state IN ('claimed', 'running') AND holder NOT IN ($1, '')
), dead AS MATERIALIZED (
    SELECT h.holder FROM holders h WHERE NOT {HOLDER_ALIVE.format(holder="h.holder")}
), released AS (
    UPDATE requests r SET holder = '' FROM dead WHERE r.holder = dead.holder AND r.state = 'claimed' RETURNING r.id
)
UPDATE requests r SET state = 'unknown', finished_at = $2 FROM dead
WHERE r.holder = dead.holder AND r.state = 'running'
RETURNING {_RETURNING}
"""
# Released claims, this holder's own claims from before `now` that nothing here is deciding, and
# its requests whose start it could not confirm (marked running or not: it never ran them).
CLAIM_ORPHANS = f"""
UPDATE requests r SET holder = $1, claimed_at = $2, state = 'claimed', started_at = NULL WHERE id IN (
    SELECT id FROM requests WHERE ((state = 'claimed' AND (holder = '' OR (holder = $1 AND claimed_at < $2)))
        OR (state IN ('claimed', 'running') AND holder = $1 AND id = ANY($5::text[])))
    AND NOT (id = ANY($3::text[])) ORDER BY claimed_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING {_RETURNING}
"""


class RequestRecovery:
    """Backlog claims, reconcile and orphaned requests on PostgreSQL."""

    holder: str

    def _conn(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore provides it

    def _tx(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore provides it

    async def claim_backlog(
        self, now: datetime, lease_until: datetime, limit: int, exclude: Collection[str] = ()
    ) -> list[Alert]:
        async with self._conn("claim backlog") as conn:
            found = await conn.fetch(CLAIM_BACKLOG, self.holder, lease_until, now, limit, list(exclude))
        return [pr.alert_from_record(r) for r in sorted(found, key=lambda r: r["seq"])]

    async def reconcile_running(self, now: datetime) -> list[StoredRequest]:
        async with self._tx("reconcile") as conn:
            found = [pr.stored_request_from_record(r) for r in await conn.fetch(RECONCILE, self.holder, now)]
            if found:
                await conn.executemany(f"INSERT INTO audit ({pr.AUDIT_COLUMNS}) VALUES ({_AUDIT_VALUES}) "
                                       "ON CONFLICT (request_id) DO NOTHING",
                                       [pr.audit_args(rows.unknown_audit(item, now)) for item in found])
        return sorted(found, key=lambda s: (s.claimed_at, s.request.id))

    async def claim_orphaned_requests(self, now: datetime, exclude: Collection[str], limit: int,
                                      unstarted: Collection[str] = ()) -> list[StoredRequest]:
        async with self._conn("claim orphaned requests") as conn:
            found = await conn.fetch(CLAIM_ORPHANS, self.holder, now, list(exclude), limit, list(unstarted))
        return sorted((pr.stored_request_from_record(r) for r in found), key=lambda s: (s.claimed_at, s.request.id))
