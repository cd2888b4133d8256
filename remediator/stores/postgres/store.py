"""The production store: PostgreSQL through an asyncpg pool, shared by every replica.

Semantics are SQLite's (one contract suite runs against both); what differs is how they hold
with several processes writing at once:

- intake is group-committed (`pg_batch`): concurrent webhook requests share one statement;
- correlation serialises on the correlation key (a transaction-level advisory lock, then the
  open incident's row lock), so two replicas can neither both open an incident for one key nor
  lose each other's update, and `incidents.apply_alert` runs inside that transaction;
- a request is claimed by a unique-key insert, and a holder is dead only when PostgreSQL says its
  liveness session is gone (`pg_connect.HolderLiveness`);
- backlog and timer claims skip rows another replica is claiming (`FOR UPDATE SKIP LOCKED`).

Every statement is a prepared statement (asyncpg caches them per connection) and is bounded by
`store.command_timeout`; connection-level failures surface as StoreUnavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from remediator.errors import ClaimLost, StoreUnavailable
from remediator.incidents import lifecycle as incidents
from remediator.model import (
    ActionRequest,
    Alert,
    AuditRecord,
    Incident,
    IncidentStatus,
    Phase,
    Severity,
    TimelineEvent,
)
from remediator.settings import StoreSettings
from remediator.stores.base import Correlation, Decided, Observation, StoredRequest, Timer
from remediator.stores.postgres import rows as pr
from remediator.stores.postgres.batch import AlertBatcher
from remediator.stores.postgres.connect import (
    HOLDER_ALIVE,
    HolderLiveness,
    create_pool,
    migrate,
    unavailable_as_store_error,
)
from remediator.stores.postgres.correlate import correlate_batch
from remediator.stores.postgres.people import PeopleRecords
from remediator.stores.postgres.recovery import RequestRecovery
from remediator.stores.postgres.retention import RetentionRecords
from remediator.stores.postgres.waf import WafBlockRecords

_ALERT = f"SELECT seq, {pr.ALERT_COLUMNS} FROM alerts"
_INCIDENT = f"SELECT {pr.INCIDENT_COLUMNS} FROM incidents"
_REQUEST = f"SELECT {pr.REQUEST_COLUMNS} FROM requests"
_AUDIT = f"SELECT {pr.AUDIT_COLUMNS} FROM audit"

# A claim left 'claimed' by this same holder (nothing ran under it), or released by reconcile
# because its holder died before running anything, may be taken.
CLAIM_REQUESTS = f"""
INSERT INTO requests ({pr.REQUEST_COLUMNS})
SELECT {pr.REQUEST_SELECT}, 'claimed', $14::text, $15::timestamptz FROM unnest({pr.unnest_args(pr.REQUEST_TYPES)})
    AS q({pr.REQUEST_COLUMNS.rsplit(", state", 1)[0]})
ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, claimed_at = excluded.claimed_at
WHERE requests.state = 'claimed' AND requests.holder IN (excluded.holder, '')
RETURNING id
"""
START_EXECUTION = f"""
UPDATE requests SET state = 'running', started_at = $2
WHERE id = $1 AND holder = $3 AND state = 'claimed' AND {HOLDER_ALIVE.format(holder="$3::text")}
"""
# Only the holder of an open claim records the outcome (a request reconciled UNKNOWN keeps that
# record); the events are added regardless, so a late result still reaches the timeline.
FINISH_REQUESTS = f"""
WITH r AS (
    SELECT * FROM unnest({pr.unnest_args(pr.AUDIT_TYPES)}) AS r({pr.AUDIT_COLUMNS})
), done AS (
    UPDATE requests q SET state = 'done', finished_at = r.at FROM r
    WHERE q.id = r.request_id AND q.holder = $19 AND q.state IN ('claimed', 'running') RETURNING q.id
), events AS (
    {pr.insert_events_sql(20)}
)
INSERT INTO audit ({pr.AUDIT_COLUMNS}) SELECT {pr.AUDIT_SELECT} FROM r WHERE r.request_id IN (SELECT id FROM done)
ON CONFLICT (request_id) DO NOTHING
"""
# Requests decided without acting: the claim (already done) and the audit record in one write.
# First writer wins; a claim this holder took but never finished is finished. Events go with
# the requests this statement wrote; `owner` ties each event to its request.
RECORD_DECISIONS = f"""
WITH q AS (
    SELECT * FROM unnest({pr.unnest_args(pr.REQUEST_TYPES)}) AS q({pr.REQUEST_COLUMNS.rsplit(", state", 1)[0]})
), r AS (
    SELECT * FROM unnest({pr.unnest_args(pr.AUDIT_TYPES, 14)}) AS r({pr.AUDIT_COLUMNS})
), won AS (
    INSERT INTO requests ({pr.REQUEST_COLUMNS}, finished_at)
    SELECT {", ".join("q." + c for c in pr.REQUEST_SELECT.split(", "))}, 'done', $32::text, $33::timestamptz, r.at
    FROM q JOIN r ON r.request_id = q.id
    ON CONFLICT (id) DO UPDATE SET state = 'done', finished_at = excluded.finished_at
    WHERE requests.state = 'claimed' AND requests.holder = excluded.holder
    RETURNING id
), audits AS (
    INSERT INTO audit ({pr.AUDIT_COLUMNS}) SELECT {pr.AUDIT_SELECT} FROM r WHERE r.request_id IN (SELECT id FROM won)
    ON CONFLICT (request_id) DO NOTHING
), events AS (
    INSERT INTO timeline ({pr.EVENT_COLUMNS})
    SELECT incident_id, at, kind, message, alert_id, request_id, data::jsonb
    FROM unnest({pr.unnest_args(("text", "timestamptz", "text", "text", "text", "text", "jsonb", "text"), 34)})
        AS e({pr.EVENT_COLUMNS}, owner)
    WHERE e.owner IN (SELECT id FROM won)
)
SELECT id FROM won
"""
CLAIM_TIMERS = """
UPDATE timers SET claimed_by = $1, claimed_until = $2 WHERE id IN (
    SELECT id FROM timers WHERE state = 'pending' AND due_at <= $3 AND (claimed_until IS NULL OR claimed_until < $3)
    ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING id, kind, due_at, payload
"""


class PostgresStore(PeopleRecords, WafBlockRecords, RequestRecovery, RetentionRecords):
    """`Store` on PostgreSQL; one per process, its `holder` named in claims."""

    def __init__(self, settings: StoreSettings, *, holder: str) -> None:
        self.settings, self.holder = settings, holder
        self._pool: asyncpg.Pool | None = None
        self._liveness = HolderLiveness(settings, holder)
        self._batcher = AlertBatcher(self._write_alerts, settings.batch_max)
        # A bound on a whole operation (a transaction is a few statements), besides each statement's.
        self._bound = settings.connect_timeout.total_seconds() + 3 * settings.command_timeout.total_seconds()

    # -- lifecycle --------------------------------------------------------------------------------
    async def open(self) -> None:
        try:
            with unavailable_as_store_error("open"):
                self._pool = await create_pool(self.settings)
                await migrate(self._pool, self.settings.schema_name)
            await self._liveness.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self._batcher.close()
        await self._liveness.stop()
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), self.settings.connect_timeout.total_seconds())
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()

    @contextlib.asynccontextmanager
    async def _conn(self, what: str) -> AsyncIterator[Any]:
        if self._pool is None:
            raise StoreUnavailable("the store is not open")
        with unavailable_as_store_error(what):
            async with asyncio.timeout(self._bound), self._pool.acquire() as conn:
                yield conn

    @contextlib.asynccontextmanager
    async def _tx(self, what: str) -> AsyncIterator[Any]:
        async with self._conn(what) as conn, conn.transaction():
            yield conn

    async def ping(self) -> None:
        async with self._conn("ping") as conn:
            in_recovery = await conn.fetchval("SELECT pg_is_in_recovery()")
        if in_recovery:
            raise StoreUnavailable("postgresql is in recovery (a read-only replica): writes would fail")
        if not self._liveness.alive:
            raise StoreUnavailable("this replica's liveness session is being re-established")

    @property
    def batches(self) -> int:
        return self._batcher.batches

    # -- alerts -----------------------------------------------------------------------------------
    async def record_alerts(self, alerts: Sequence[Alert], lease_until: datetime) -> list[bool]:
        return await self._batcher.record(alerts, lease_until)

    async def _write_alerts(self, batch: list[tuple[Alert, datetime]]) -> list[bool]:
        candidates = pr.batch_candidates(batch)
        keys = [(key, batch[p][0].id) for p in candidates for key in dict.fromkeys(batch[p][0].dedup_keys)]
        async with self._tx("record alerts") as conn:
            inserted = {r["key"] for r in await conn.fetch(pr.RECORD_KEYS, [k for k, _ in keys],
                                                           [a for _, a in keys])}
            fresh = [p for p in candidates if inserted.issuperset(batch[p][0].dedup_keys)]
            chosen = set(fresh)
            leftover = [k for p in candidates if p not in chosen for k in batch[p][0].dedup_keys if k in inserted]
            stored = {r["id"] for r in await conn.fetch(pr.RECORD_ALERTS, leftover, *pr.alerts_args(batch, fresh),
                                                        self.holder)}
        return [i in chosen and alert.id in stored for i, (alert, _) in enumerate(batch)]

    async def mark_processed(self, alert_ids: Sequence[str], now: datetime) -> None:
        async with self._conn("mark processed") as conn:
            await conn.execute("UPDATE alerts SET processed_at = $1, claimed_by = NULL, claimed_until = NULL "
                               "WHERE id = ANY($2::text[])", now, list(alert_ids))

    async def release_alerts(self, alert_ids: Sequence[str]) -> None:
        async with self._conn("release alerts") as conn:
            await conn.execute("UPDATE alerts SET claimed_by = NULL, claimed_until = NULL WHERE id = ANY($1::text[]) "
                               "AND processed_at IS NULL AND claimed_by = $2", list(alert_ids), self.holder)

    async def get_alert(self, alert_id: str) -> Alert | None:
        async with self._conn("get alert") as conn:
            row = await conn.fetchrow(f"{_ALERT} WHERE id = $1", alert_id)
        return pr.alert_from_record(row) if row else None

    async def count_unprocessed(self) -> int:
        async with self._conn("count unprocessed") as conn:
            return int(await conn.fetchval("SELECT count(*) FROM alerts WHERE processed_at IS NULL"))

    # -- incidents --------------------------------------------------------------------------------
    async def correlate_many(self, observations: Sequence[Observation], now: datetime) -> list[Correlation]:
        if not observations:
            return []
        async with self._tx("correlate") as conn:
            return await correlate_batch(conn, observations, now)

    @staticmethod
    async def _incident(conn: Any, incident_id: str) -> Incident | None:
        row = await conn.fetchrow(f"{_INCIDENT} WHERE id = $1", incident_id)
        return pr.incident_from_record(row) if row else None

    @staticmethod
    async def _insert_events(conn: Any, events: Sequence[TimelineEvent]) -> None:
        if events:
            await conn.execute(pr.INSERT_EVENTS, *pr.events_args(events))

    async def add_events(self, events: Sequence[TimelineEvent]) -> None:
        if events:
            async with self._conn("add events") as conn:
                await self._insert_events(conn, events)

    async def get_incident(self, incident_id: str) -> Incident | None:
        async with self._conn("get incident") as conn:
            return await self._incident(conn, incident_id)

    async def list_incidents(self, status: IncidentStatus | None = None, limit: int = 100) -> list[Incident]:
        async with self._conn("list incidents") as conn:
            found = await conn.fetch(f"{_INCIDENT} WHERE $1::text IS NULL OR status = $1 "
                                     "ORDER BY opened_at DESC, id DESC LIMIT $2", status.value if status else None,
                                     limit)
        return [pr.incident_from_record(r) for r in found]

    async def timeline(self, incident_id: str) -> list[TimelineEvent]:
        async with self._conn("timeline") as conn:
            found = await conn.fetch(f"SELECT {pr.EVENT_COLUMNS} FROM timeline WHERE incident_id = $1 ORDER BY seq",
                                     incident_id)
        return [pr.event_from_record(r) for r in found]

    async def is_firing(self, incident_id: str, fingerprint: str) -> bool:
        async with self._conn("is firing") as conn:
            found = await conn.fetchval("SELECT 1 FROM incident_firing WHERE incident_id = $1 AND fingerprint = $2",
                                        incident_id, fingerprint)
        return found is not None

    async def open_incident_counts(self) -> dict[Severity, int]:
        async with self._conn("open incident counts") as conn:
            found = await conn.fetch("SELECT severity, count(*) AS n FROM incidents WHERE status = 'open' "
                                     "GROUP BY severity")
        counts = dict.fromkeys(Severity, 0)
        counts.update({Severity(r["severity"]): int(r["n"]) for r in found})
        return counts

    async def update_phase(
        self, incident_id: str, phase: Phase, at: datetime, events: Sequence[TimelineEvent] = ()
    ) -> Incident | None:
        async with self._tx("update phase") as conn:
            found = await conn.fetchrow(f"{_INCIDENT} WHERE id = $1 FOR UPDATE", incident_id)
            if found is None:
                return None
            current = pr.incident_from_record(found)
            moved = incidents.move_phase(current, phase, at)
            if moved is not current:
                await conn.execute(pr.UPSERT_INCIDENT, *pr.incident_args(moved))
            await self._insert_events(conn, [*events, *incidents.phase_events(current, moved, at)])
        return moved

    # -- requests, executions, audit --------------------------------------------------------------
    async def claim_requests(self, requests: Sequence[ActionRequest], now: datetime) -> list[bool]:
        if not requests:
            return []
        first = {r.id: i for i, r in reversed(list(enumerate(requests)))}  # one claim per id and batch
        unique = [requests[i] for i in sorted(first.values())]
        async with self._conn("claim requests") as conn:
            claimed = {r["id"] for r in await conn.fetch(CLAIM_REQUESTS, *pr.requests_args(unique), self.holder, now)}
        return [first[r.id] == i and r.id in claimed for i, r in enumerate(requests)]

    async def start_execution(self, request_id: str, now: datetime) -> None:
        async with self._conn("start execution") as conn:
            status = await conn.execute(START_EXECUTION, request_id, now, self.holder)
        if status != "UPDATE 1":
            raise ClaimLost(f"{self.holder} no longer holds request {request_id} (or its liveness session is "
                            "gone): it must not run")

    async def finish_requests(self, records: Sequence[AuditRecord], events: Sequence[TimelineEvent] = ()) -> None:
        if not records and not events:
            return
        async with self._conn("finish requests") as conn:
            await conn.execute(FINISH_REQUESTS, *pr.audits_args(records), self.holder, *pr.events_args(events))

    async def record_decisions(self, decided: Sequence[Decided], now: datetime) -> list[bool]:
        if not decided:
            return []
        first = {d.request.id: i for i, d in reversed(list(enumerate(decided)))}  # one write per id and batch
        unique = [decided[i] for i in sorted(first.values())]
        events = [(e, d.request.id) for d in unique for e in d.events]
        owners = [owner for _, owner in events]
        async with self._conn("record decisions") as conn:
            won = {r["id"] for r in await conn.fetch(
                RECORD_DECISIONS, *pr.requests_args([d.request for d in unique]),
                *pr.audits_args([d.record for d in unique]), self.holder, now,
                *pr.events_args([e for e, _ in events]), owners)}
        return [first[d.request.id] == i and d.request.id in won for i, d in enumerate(decided)]

    async def existing_requests(self, request_ids: Collection[str]) -> set[str]:
        async with self._conn("existing requests") as conn:
            found = await conn.fetch("SELECT id FROM requests WHERE id = ANY($1::text[])", list(request_ids))
        return {r["id"] for r in found}

    async def get_request(self, request_id: str) -> StoredRequest | None:
        async with self._conn("get request") as conn:
            row = await conn.fetchrow(f"{_REQUEST} WHERE id = $1", request_id)
        return pr.stored_request_from_record(row) if row else None

    async def get_audit(self, request_id: str) -> AuditRecord | None:
        async with self._conn("get audit") as conn:
            row = await conn.fetchrow(f"{_AUDIT} WHERE request_id = $1", request_id)
        return pr.audit_from_record(row) if row else None

    async def list_audit(self, incident_id: str | None = None, limit: int = 100) -> list[AuditRecord]:
        async with self._conn("list audit") as conn:
            found = await conn.fetch(f"{_AUDIT} WHERE $1::text IS NULL OR incident_id = $1 ORDER BY seq DESC LIMIT $2",
                                     incident_id, limit)
        return [pr.audit_from_record(r) for r in found]

    # -- timers -----------------------------------------------------------------------------------
    async def schedule_timer(self, timer: Timer) -> bool:
        async with self._conn("schedule timer") as conn:
            inserted = await conn.fetchval(
                "INSERT INTO timers (id, kind, due_at, payload, state) VALUES ($1, $2, $3, $4, 'pending') "
                "ON CONFLICT (id) DO NOTHING RETURNING 1", timer.id, timer.kind, timer.due_at, dict(timer.payload))
        return inserted is not None

    async def claim_due_timers(self, now: datetime, lease_until: datetime, limit: int) -> list[Timer]:
        async with self._conn("claim timers") as conn:
            found = await conn.fetch(CLAIM_TIMERS, self.holder, lease_until, now, limit)
        return sorted((pr.timer_from_record(r) for r in found), key=lambda t: (t.due_at, t.id))

    async def complete_timer(self, timer_id: str, now: datetime) -> None:
        async with self._conn("complete timer") as conn:
            await conn.execute("UPDATE timers SET state = 'fired', fired_at = $2 WHERE id = $1", timer_id, now)

    async def cancel_timers(self, prefix: str) -> int:
        async with self._conn("cancel timers") as conn:
            status = await conn.execute("UPDATE timers SET state = 'cancelled' WHERE state = 'pending' "
                                        "AND starts_with(id, $1)", prefix)
        return int(status.split()[-1])
