"""The SQLite store's writer: one thread that commits whatever queued up together (group commit).

Each write runs inside its own savepoint, so one failing write does not take the others with it;
a coroutine awaiting a write resumes only after the COMMIT. Urgent writes (recording alerts, which
a sender is waiting on) go first. Checkpoints run on their own connection, off the writer's path.
The writer also keeps a cache of open incidents (see `OpenIncidents`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from remediator.errors import StoreUnavailable
from remediator.model import Incident, IncidentStatus
from remediator.stores import rows

STOP = object()

URGENT, NORMAL = 0, 1
ENGINE_OPS_PER_COMMIT = 2  # bounds a commit's duration, so that acknowledgements stay fast
AUTOCHECKPOINT_PAGES = 20_000  # SQLite's own checkpoint: only a safety net behind the Checkpointer


class Writer(threading.Thread):
    """The one thread that writes; it commits everything that queued up together.

    Urgent jobs (recording alerts, which a sender is waiting on) go first; each commit takes all
    of them but only a few of the others, so one heavy engine write never delays an acknowledgement
    by more than a few milliseconds.
    """

    def __init__(self, path: str, synchronous: str, batch_max: int, busy_timeout_ms: int) -> None:
        super().__init__(name="sqlite-writer", daemon=True)
        self.path, self.synchronous, self.batch_max = path, synchronous, batch_max
        self.busy_timeout_ms = busy_timeout_ms
        self.jobs: queue.PriorityQueue[Any] = queue.PriorityQueue()
        self._sequence = itertools.count()
        # Called after BEGIN (to notice other connections' commits) and after any rollback.
        self.on_begin: Callable[[sqlite3.Connection], None] = lambda conn: None
        self.on_rollback: Callable[[], None] = lambda: None
        # Called once, on the new connection, outside any transaction (migrations).
        self.on_open: Callable[[sqlite3.Connection], object] = lambda conn: None
        self.ready = threading.Event()
        self.failure: BaseException | None = None
        self.batches = 0

    def run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                # A new file: freed pages can be given back later (PRAGMA incremental_vacuum). This
                # is only possible before the first table exists, and before the switch to WAL.
                conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            # No SQLite busy handler: it sleeps in steps of up to 100 ms while another process (an
            # intake process, the CLI) holds the write lock. `_begin` retries in fine steps instead.
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA cache_size=-65536")  # 64 MiB of pages: the hot indexes stay in memory
            # The checkpointer thread moves WAL pages into the database; this is only the safety net.
            conn.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
            self.on_open(conn)
        except Exception as exc:
            self.failure = exc
            self.ready.set()
            return
        self.ready.set()
        stopping = False
        while not stopping:
            batch = [self.jobs.get()[2]]
            normal = 0
            while len(batch) < self.batch_max and normal < ENGINE_OPS_PER_COMMIT:
                try:
                    priority, _, job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                normal += priority == NORMAL
                batch.append(job)
            if STOP in batch:
                stopping = True
                batch = [job for job in batch if job is not STOP]
            if batch:
                self._commit(conn, batch)
        conn.close()

    def _begin(self, conn: sqlite3.Connection) -> None:
        """BEGIN IMMEDIATE, waiting in fine steps for another process's write to end."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.0002)

    def submit(self, job: Any, priority: int = NORMAL) -> None:
        self.jobs.put((priority, next(self._sequence), job))

    def _commit(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        results: list[tuple[Any, Any, BaseException | None]] = []
        try:
            self._begin(conn)
            self.on_begin(conn)
            for op, loop, future in batch:
                conn.execute("SAVEPOINT op")
                try:
                    value = op(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    self.on_rollback()
                    failure = StoreUnavailable(str(exc)) if isinstance(exc, sqlite3.OperationalError) else exc
                    results.append((loop, future, failure))
                    continue
                conn.execute("RELEASE op")
                if isinstance(value, sqlite3.Cursor):
                    # A cursor must never leave this thread: dropped in another one, it would finalise
                    # its statement while this thread uses the connection ("API misuse").
                    value.close()
                    value = None
                results.append((loop, future, value))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.on_rollback()
            failure = StoreUnavailable(f"sqlite: {exc}")
            results = [(loop, future, failure) for _, loop, future in batch]
        self.batches += 1
        by_loop: dict[Any, list[tuple[Any, Any]]] = {}
        for loop, future, outcome in results:
            by_loop.setdefault(loop, []).append((future, outcome))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, settled)


class OpenIncidents:
    """The writer's cache of open incidents by correlation key (writer thread only).

    Correlating an alert is the hottest write; reading and decoding its incident each time was
    most of its cost. The cache is dropped whenever another connection has committed (SQLite's
    data_version says so) and whenever a write is rolled back, so it never serves stale data.
    """

    def __init__(self) -> None:
        self.by_key: dict[str, Incident] = {}
        self.version = -1

    def revalidate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self.version:
            self.by_key.clear()
            self.version = version

    def clear(self) -> None:
        self.by_key.clear()

    def get(self, conn: sqlite3.Connection, key: str) -> Incident | None:
        if key in self.by_key:
            return self.by_key[key]
        row = conn.execute(f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE correlation_key = ? "
                           "AND status = 'open'", (key,)).fetchone()
        incident = rows.incident_from_row(row) if row else None
        if incident is not None:
            self.by_key[key] = incident
        return incident

    def save(self, conn: sqlite3.Connection, incident: Incident) -> None:
        """Write an incident (every incident write goes through here, so the cache stays true)."""
        self.save_many(conn, (incident,))

    def save_many(self, conn: sqlite3.Connection, incidents: Sequence[Incident]) -> None:
        conn.executemany(rows.UPSERT_INCIDENT, [rows.incident_row(incident) for incident in incidents])
        for incident in incidents:
            if incident.status is IncidentStatus.OPEN:
                self.by_key[incident.correlation_key] = incident
            else:
                self.by_key.pop(incident.correlation_key, None)


class Checkpointer(threading.Thread):
    """Copies the WAL into the database from its own connection, off the writer's path."""

    def __init__(self, path: str, interval: float = 0.5) -> None:
        super().__init__(name="sqlite-checkpointer", daemon=True)
        self.path, self.interval = path, interval
        self.stopping = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self.stopping.wait(self.interval):
                with contextlib.suppress(sqlite3.Error):  # busy now: next time
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()


def _settle(settled: list[tuple[asyncio.Future[Any], Any]]) -> None:
    for future, outcome in settled:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
