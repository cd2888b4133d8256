"""The embedded store: one SQLite file in WAL mode.

All writes go through one writer thread that commits whatever has queued up together in one
transaction (group commit), each write inside its own savepoint so one failing write does not
take the others with it. A coroutine awaiting a write resumes only after the COMMIT, so "acked"
means "on disk" (synchronous=NORMAL survives a crash of the process; FULL also a power loss).
Reads use their own connections on a small thread pool and see committed data only.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

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
from remediator.stores import rows, schema
from remediator.stores.base import Correlation, Decided, Observation, RequestState, StoredRequest, Timer
from remediator.stores.sqlite.correlate import BatchCorrelation, chunks, marks
from remediator.stores.sqlite.holder_files import HolderFiles
from remediator.stores.sqlite.people import PeopleRecords
from remediator.stores.sqlite.recovery import RequestRecovery
from remediator.stores.sqlite.retention import RetentionRecords
from remediator.stores.sqlite.waf import WafBlockRecords
from remediator.stores.sqlite.writer import NORMAL, STOP, URGENT, Checkpointer, OpenIncidents, Writer

T = TypeVar("T")


class SqliteStore(PeopleRecords, WafBlockRecords, RequestRecovery, RetentionRecords):
    """`Store` on one SQLite file."""

    def __init__(
        self, path: Path | str, *, holder: str, synchronous: str = "normal", batch_max: int = 512,
        busy_timeout_ms: int = 2000, release_claims: bool = True,
    ) -> None:
        self.path = str(path)
        self.holder = holder
        # Only the daemon's core owns the file: when it starts, claims of earlier processes are void.
        # An intake process or a CLI command opening the file must leave the running core's claims be.
        self.release_claims = release_claims
        self._writer = Writer(self.path, synchronous, batch_max, busy_timeout_ms)
        self._checkpointer = Checkpointer(self.path) if self.path != ":memory:" else None
        self._open = OpenIncidents()
        self._writer.on_begin = self._open.revalidate
        self._writer.on_rollback = self._open.clear
        self._writer.on_open = lambda conn: schema.migrate_sqlite(conn, schema.migrations("sqlite"), self.path)
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sqlite-reader")
        self._local = threading.local()
        self._liveness = HolderFiles(self.path)

    # -- lifecycle --------------------------------------------------------------------------------
    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer.start()
        await asyncio.to_thread(self._writer.ready.wait)
        if isinstance(self._writer.failure, schema.SchemaTooNew):
            raise self._writer.failure
        if self._writer.failure is not None:
            raise StoreUnavailable(f"cannot open {self.path}: {self._writer.failure}")
        try:
            self._liveness.take(self.holder)
        except (OSError, RuntimeError) as exc:
            raise StoreUnavailable(f"cannot take the liveness lock of {self.holder}: {exc}") from exc
        if self._checkpointer is not None:
            self._checkpointer.start()
        if self.release_claims:
            await self._write(lambda c: c.execute(
                "UPDATE alerts SET claimed_by = NULL, claimed_until = NULL WHERE processed_at IS NULL"))

    async def close(self) -> None:
        if self._checkpointer is not None and self._checkpointer.is_alive():
            self._checkpointer.stopping.set()
            await asyncio.to_thread(self._checkpointer.join, 10)
        if self._writer.is_alive():
            self._writer.submit(STOP, priority=NORMAL + 1)
            await asyncio.to_thread(self._writer.join, 10)
        self._readers.shutdown(wait=False)
        self._liveness.release(self.holder)

    async def ping(self) -> None:
        await self._write(lambda c: c.execute("UPDATE counters SET value = value WHERE name = 'ping'"))

    async def _write(self, op: Callable[[sqlite3.Connection], T], priority: int = NORMAL) -> T:
        if not self._writer.is_alive():
            raise StoreUnavailable("the store's writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._writer.submit((op, loop, future), priority)
        return await future

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = sqlite3.connect(self.path, check_same_thread=False)
                conn.execute("PRAGMA query_only = ON")
                self._local.conn = conn
            return op(conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, run)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from exc

    @property
    def batches(self) -> int:
        return self._writer.batches

    # -- alerts -----------------------------------------------------------------------------------
    async def record_alerts(self, alerts: Sequence[Alert], lease_until: datetime) -> list[bool]:
        prepared = [(a, rows.alert_row(a)) for a in alerts]
        claim = (self.holder, rows.ts(lease_until))

        def op(conn: sqlite3.Connection) -> list[bool]:
            # Set by set: which keys are known (one query), then the new keys and alerts (one
            # statement each). An alert is a duplicate when any of its keys is known, including a
            # key of an alert earlier in this batch.
            wanted = list({key for alert in alerts for key in alert.dedup_keys})
            known: set[str] = set()
            for chunk in chunks(wanted):
                known.update(key for (key,) in conn.execute(
                    f"SELECT key FROM alert_keys WHERE key IN ({marks(chunk)})", chunk))
            results, new_keys, new_rows = [], [], []
            for alert, row in prepared:
                new = known.isdisjoint(alert.dedup_keys)
                if new:
                    known.update(alert.dedup_keys)
                    new_keys += [(key, alert.id) for key in alert.dedup_keys]
                    new_rows.append((*row, *claim))
                results.append(new)
            conn.executemany("INSERT OR IGNORE INTO alert_keys (key, alert_id) VALUES (?, ?)", new_keys)
            conn.executemany(rows.INSERT_ALERT, new_rows)
            return results

        return await self._write(op, URGENT)

    async def mark_processed(self, alert_ids: Sequence[str], now: datetime) -> None:
        stamp = rows.ts(now)
        await self._write(lambda c: c.executemany(
            "UPDATE alerts SET processed_at = ?, claimed_by = NULL, claimed_until = NULL WHERE id = ?",
            [(stamp, i) for i in alert_ids]))

    async def release_alerts(self, alert_ids: Sequence[str]) -> None:
        await self._write(lambda c: c.executemany(
            "UPDATE alerts SET claimed_by = NULL, claimed_until = NULL WHERE id = ? AND processed_at IS NULL "
            "AND claimed_by = ?", [(i, self.holder) for i in alert_ids]))

    async def get_alert(self, alert_id: str) -> Alert | None:
        def op(conn: sqlite3.Connection) -> Alert | None:
            row = conn.execute(f"SELECT {rows.ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            return rows.alert_from_row(row) if row else None

        return await self._read(op)

    async def count_unprocessed(self) -> int:
        return int(await self._read(
            lambda c: c.execute("SELECT count(*) FROM alerts WHERE processed_at IS NULL").fetchone()[0]))

    # -- incidents --------------------------------------------------------------------------------
    def _save_incident(self, conn: sqlite3.Connection, incident: Incident) -> None:
        self._open.save(conn, incident)

    async def correlate_many(self, observations: Sequence[Observation], now: datetime) -> list[Correlation]:
        def op(conn: sqlite3.Connection) -> list[Correlation]:
            batch = BatchCorrelation(conn, now, open_incident=lambda key: self._open.get(conn, key),
                                     by_id=lambda incident_id: self._incident(conn, incident_id),
                                     new_id=lambda: self._next_incident_id(conn, now),
                                     save=lambda touched: self._open.save_many(conn, touched))
            return batch.run(observations)

        return await self._write(op)

    @staticmethod
    def _incident(conn: sqlite3.Connection, incident_id: str) -> Incident | None:
        row = conn.execute(f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)).fetchone()
        return rows.incident_from_row(row) if row else None

    @staticmethod
    def _next_incident_id(conn: sqlite3.Connection, now: datetime) -> str:
        name = f"incident-{now.year}"
        value = conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, 1) "
            "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value", (name,),
        ).fetchone()[0]
        return rows.incident_id(now.year, int(value))

    @staticmethod
    def _insert_events(conn: sqlite3.Connection, events: Sequence[TimelineEvent]) -> None:
        if events:
            conn.executemany(rows.INSERT_EVENT, [rows.event_row(e) for e in events])

    async def add_events(self, events: Sequence[TimelineEvent]) -> None:
        await self._write(lambda conn: self._insert_events(conn, events))

    async def get_incident(self, incident_id: str) -> Incident | None:
        return await self._read(lambda conn: self._incident(conn, incident_id))

    async def list_incidents(self, status: IncidentStatus | None = None, limit: int = 100) -> list[Incident]:
        where, args = ("WHERE status = ?", [status.value]) if status else ("", [])

        def op(conn: sqlite3.Connection) -> list[Incident]:
            found = conn.execute(f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents {where} "
                                 "ORDER BY opened_at DESC, id DESC LIMIT ?", (*args, limit)).fetchall()
            return [rows.incident_from_row(r) for r in found]

        return await self._read(op)

    async def timeline(self, incident_id: str) -> list[TimelineEvent]:
        def op(conn: sqlite3.Connection) -> list[TimelineEvent]:
            found = conn.execute(f"SELECT {rows.EVENT_COLUMNS} FROM timeline WHERE incident_id = ? ORDER BY seq",
                                 (incident_id,)).fetchall()
            return [rows.event_from_row(r) for r in found]

        return await self._read(op)

    async def is_firing(self, incident_id: str, fingerprint: str) -> bool:
        return await self._read(lambda conn: conn.execute(
            "SELECT 1 FROM incident_firing WHERE incident_id = ? AND fingerprint = ?",
            (incident_id, fingerprint)).fetchone() is not None)

    async def open_incident_counts(self) -> dict[Severity, int]:
        def op(conn: sqlite3.Connection) -> dict[Severity, int]:
            found = conn.execute("SELECT severity, count(*) FROM incidents WHERE status = 'open' GROUP BY severity")
            counts = dict.fromkeys(Severity, 0)
            counts.update({Severity(s): n for s, n in found})
            return counts

        return await self._read(op)

    async def update_phase(
        self, incident_id: str, phase: Phase, at: datetime, events: Sequence[TimelineEvent] = ()
    ) -> Incident | None:
        def op(conn: sqlite3.Connection) -> Incident | None:
            current = self._incident(conn, incident_id)
            if current is None:
                return None
            moved = incidents.move_phase(current, phase, at)
            if moved is not current:
                self._open.save(conn, moved)
            self._insert_events(conn, [*events, *incidents.phase_events(current, moved, at)])
            return moved

        return await self._write(op)

    # -- requests, executions, audit --------------------------------------------------------------
    async def claim_requests(self, requests: Sequence[ActionRequest], now: datetime) -> list[bool]:
        claim = (RequestState.CLAIMED.value, self.holder, rows.ts(now))
        prepared = [(*rows.request_row(r), *claim) for r in requests]
        return await self._write(lambda c: [c.execute(rows.CLAIM_REQUEST, row).rowcount == 1 for row in prepared])

    async def start_execution(self, request_id: str, now: datetime) -> None:
        started = await self._write(lambda c: c.execute(
            "UPDATE requests SET state = 'running', started_at = ? WHERE id = ? AND holder = ? AND state = 'claimed'",
            (rows.ts(now), request_id, self.holder)).rowcount)
        if started != 1:
            raise ClaimLost(f"{self.holder} no longer holds request {request_id}: it must not run")

    async def finish_requests(self, records: Sequence[AuditRecord], events: Sequence[TimelineEvent] = ()) -> None:
        finished = [(*rows.finish_row(r), self.holder) for r in records]
        timeline = [rows.event_row(e) for e in events]

        def op(conn: sqlite3.Connection) -> None:
            # Only the holder of an open claim records the outcome: a request reconciled as unknown
            # keeps that record, and the late result is still on the timeline through `events`.
            conn.executemany(rows.FINISH_OWN_REQUEST, finished)
            if timeline:
                conn.executemany(rows.INSERT_EVENT, timeline)

        await self._write(op)

    async def record_decisions(self, decided: Sequence[Decided], now: datetime) -> list[bool]:
        prepared = [(rows.decide_row(d.request, d.record, self.holder, now), rows.finish_row(d.record),
                     [rows.event_row(e) for e in d.events]) for d in decided]

        def op(conn: sqlite3.Connection) -> list[bool]:
            results = []
            for insert, finish, events in prepared:
                won = conn.execute(rows.DECIDE_REQUEST, insert).rowcount == 1 or conn.execute(
                    rows.FINISH_REQUEST + " AND state = 'claimed' AND holder = ?", (*finish, self.holder)).rowcount == 1
                if won and events:
                    conn.executemany(rows.INSERT_EVENT, events)
                results.append(won)
            return results

        return await self._write(op)

    async def existing_requests(self, request_ids: Collection[str]) -> set[str]:
        wanted = list(request_ids)

        def op(conn: sqlite3.Connection) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                found.update(r for (r,) in conn.execute(
                    f"SELECT id FROM requests WHERE id IN ({', '.join('?' * len(chunk))})", chunk))
            return found

        return await self._read(op) if wanted else set()

    async def get_request(self, request_id: str) -> StoredRequest | None:
        def op(conn: sqlite3.Connection) -> StoredRequest | None:
            row = conn.execute(f"SELECT {rows.REQUEST_COLUMNS} FROM requests WHERE id = ?", (request_id,)).fetchone()
            return rows.stored_request_from_row(row) if row else None

        return await self._read(op)

    async def get_audit(self, request_id: str) -> AuditRecord | None:
        def op(conn: sqlite3.Connection) -> AuditRecord | None:
            row = conn.execute(f"SELECT {rows.AUDIT_COLUMNS} FROM audit WHERE request_id = ?", (request_id,)).fetchone()
            return rows.audit_from_row(row) if row else None

        return await self._read(op)

    async def list_audit(self, incident_id: str | None = None, limit: int = 100) -> list[AuditRecord]:
        where, args = ("WHERE incident_id = ?", [incident_id]) if incident_id else ("", [])

        def op(conn: sqlite3.Connection) -> list[AuditRecord]:
            found = conn.execute(f"SELECT {rows.AUDIT_COLUMNS} FROM audit {where} ORDER BY seq DESC LIMIT ?",
                                 (*args, limit)).fetchall()
            return [rows.audit_from_row(r) for r in found]

        return await self._read(op)

    # -- timers -----------------------------------------------------------------------------------
    async def schedule_timer(self, timer: Timer) -> bool:
        inserted = await self._write(lambda c: c.execute(
            "INSERT OR IGNORE INTO timers (id, kind, due_at, payload, state) VALUES (?, ?, ?, ?, 'pending')",
            (timer.id, timer.kind, rows.ts(timer.due_at), rows.dumps(timer.payload))).rowcount)
        return inserted == 1

    async def claim_due_timers(self, now: datetime, lease_until: datetime, limit: int) -> list[Timer]:
        def op(conn: sqlite3.Connection) -> list[Timer]:
            found = conn.execute(
                "UPDATE timers SET claimed_by = ?, claimed_until = ? WHERE id IN ("
                " SELECT id FROM timers WHERE state = 'pending' AND due_at <= ?"
                " AND (claimed_until IS NULL OR claimed_until < ?) ORDER BY due_at LIMIT ?)"
                " RETURNING id, kind, due_at, payload",
                (self.holder, rows.ts(lease_until), rows.ts(now), rows.ts(now), limit),
            ).fetchall()
            return sorted((rows.timer_from_row(r) for r in found), key=lambda t: (t.due_at, t.id))

        return await self._write(op)

    async def complete_timer(self, timer_id: str, now: datetime) -> None:
        await self._write(lambda c: c.execute(
            "UPDATE timers SET state = 'fired', fired_at = ? WHERE id = ?", (rows.ts(now), timer_id)))

    async def cancel_timers(self, prefix: str) -> int:
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        cancelled = await self._write(lambda c: c.execute(
            "UPDATE timers SET state = 'cancelled' WHERE state = 'pending' AND id LIKE ? ESCAPE '\\'",
            (pattern,)).rowcount)
        return int(cancelled)

