"""The PostgreSQL store's retention (see `stores.retention`): the same rules as SQLite, in batches.

Each batch is one short transaction on its own pooled connection; the freed space is PostgreSQL's
to reuse (autovacuum), so `reclaim_space` has nothing to do. Audit records live in their own
table here; they go with the requests they belong to.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from remediator.stores.retention import QUERIES, TABLES, UNFINISHED, Kind, StoreStats

SIZE = ("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind = 'r'")


class RetentionRecords:
    """A mixin of `PostgresStore`."""

    def _conn(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    def _tx(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def oldest_expired(self, kind: Kind, since: datetime, before: datetime) -> datetime | None:
        q = QUERIES[kind]
        async with self._conn("oldest expired") as conn:
            found: datetime | None = await conn.fetchval(
                f"SELECT {q.at} FROM {q.table} WHERE {q.at} >= $1 AND {q.at} < $2 AND {q.deletable} "
                f"ORDER BY {q.at}, {q.key} LIMIT 1", since, before)
        return found

    async def expired_page(self, kind: Kind, since: datetime, before: datetime,
                           after: tuple[datetime, str] | None, limit: int) -> list[tuple[datetime, str]]:
        q = QUERIES[kind]
        cursor, args = "", [since, before, limit]
        if after is not None:
            cursor = f" AND ({q.at}, {q.key}) > ($4, $5)"
            args += [after[0], after[1]]
        async with self._conn("expired page") as conn:
            found = await conn.fetch(
                f"SELECT {q.at} AS at, {q.key} AS key FROM {q.table} WHERE {q.at} >= $1 AND {q.at} < $2{cursor} "
                f"AND {q.deletable} ORDER BY {q.at}, {q.key} LIMIT $3", *args)
        return [(r["at"], r["key"]) for r in found]

    async def export_rows(self, kind: Kind, keys: Sequence[str]) -> list[dict[str, Any]]:
        q = QUERIES[kind]
        select = f"SELECT * FROM {q.table}"
        if kind is Kind.AUDIT:
            select = ("SELECT requests.*, to_jsonb(a) - 'seq' AS audit FROM requests "
                      "LEFT JOIN audit a ON a.request_id = requests.id")
        if kind is Kind.INCIDENTS:
            select = (
                "SELECT incidents.*, "
                "coalesce((SELECT jsonb_agg(to_jsonb(t) ORDER BY t.seq) FROM timeline t "
                "WHERE t.incident_id = incidents.id), '[]'::jsonb) AS timeline, "
                "coalesce((SELECT jsonb_agg(to_jsonb(p) || jsonb_build_object('votes', coalesce((SELECT "
                "jsonb_agg(to_jsonb(v) ORDER BY v.seq) FROM approval_votes v WHERE v.approval_id = p.id), "
                "'[]'::jsonb))) "
                "FROM approvals p WHERE p.incident_id = incidents.id), '[]'::jsonb) AS approvals FROM incidents")
        async with self._conn("export rows") as conn:
            found = {r[q.key]: dict(r) for r in await conn.fetch(
                f"{select} WHERE {q.table}.{q.key} = ANY($1::text[])", list(keys))}
        return [found[k] for k in keys if k in found]

    async def delete_expired(self, kind: Kind, keys: Sequence[str], before: datetime) -> int:
        q = QUERIES[kind]
        async with self._tx("purge") as conn:
            going = [r[0] for r in await conn.fetch(
                f"SELECT {q.key} FROM {q.table} WHERE {q.key} = ANY($1::text[]) AND {q.at} < $2 AND {q.deletable} "
                f"FOR UPDATE", list(keys), before)]
            if not going:
                return 0
            if kind is Kind.ALERTS:
                # By key (the primary key): alert_keys has no index on alert_id.
                await conn.execute("DELETE FROM alert_keys WHERE key IN (SELECT jsonb_array_elements_text(dedup_keys) "
                                   "FROM alerts WHERE id = ANY($1::text[])) AND alert_id = ANY($1::text[])", going)
            if kind is Kind.INCIDENTS:
                for statement in (
                    "DELETE FROM timeline WHERE incident_id = ANY($1::text[])",
                    "DELETE FROM incident_firing WHERE incident_id = ANY($1::text[])",
                    "DELETE FROM approval_votes WHERE approval_id IN "
                    "(SELECT id FROM approvals WHERE incident_id = ANY($1::text[]))",
                    "DELETE FROM approvals WHERE incident_id = ANY($1::text[])",
                ):
                    await conn.execute(statement, going)
            if kind is Kind.AUDIT:
                await conn.execute("DELETE FROM audit WHERE request_id = ANY($1::text[])", going)
            status = await conn.execute(f"DELETE FROM {q.table} WHERE {q.key} = ANY($1::text[])", going)
        return int(status.split()[-1])

    async def reclaim_space(self, pages: int) -> int:
        return 0  # autovacuum makes deleted rows' space reusable; the files are not shrunk

    async def store_stats(self) -> StoreStats:
        async with self._conn("store stats") as conn:
            counts = {t: int(await conn.fetchval(f"SELECT count(*) FROM {t}")) for t in (*TABLES, "audit")}
            oldest = {kind: await conn.fetchval(f"SELECT min({q.at}) FROM {q.table}") for kind, q in QUERIES.items()}
            unfinished = await conn.fetchval(
                f"SELECT min(a.received_at) FROM requests r JOIN alerts a ON a.id = r.alert_id WHERE r.{UNFINISHED}")
            size = int(await conn.fetchval(SIZE))
        return StoreStats(size, 0, counts, oldest, unfinished)
