"""A skeleton of the daemon for bench/ingest.py --skeleton: only the writes each alert requires.

    .venv/bin/python bench/skeleton.py PORT DATABASE

It is not remediator and never acts. It is the floor under the ingest figures: the least work a
daemon can do and still meet the issue's rules, written as leanly as plain aiohttp and sqlite3
allow, in one process:
- each alert is recorded under its unique dedup key, and the 2xx goes out only after COMMIT
  (group commit);
- then, in a later commit, it is correlated into its group's incident: one timeline event per
  alert, its fingerprint joins the incident's firing set, the incident's counters are updated
  once per commit, and the alert is marked processed.

It does no payload validation beyond what it reads, builds no objects, and runs no policies,
guardrails, metrics, claims or second process. bench/ingest.py runs it in place of the daemon
against the same parse-only baseline, so the ratio it gets bounds what the daemon can reach on
the same machine. GET /stats tells how many alerts were recorded and processed.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import sys
import threading
import time
from typing import Any

import orjson
from aiohttp import web

SCHEMA = """
CREATE TABLE alerts (seq INTEGER PRIMARY KEY, key TEXT UNIQUE, labels TEXT, annotations TEXT, starts_at TEXT,
                     status TEXT, incident_id TEXT, processed_at TEXT);
CREATE TABLE incidents (id TEXT PRIMARY KEY, group_key TEXT UNIQUE, alert_count INT, firing INT, updated_at TEXT);
CREATE TABLE timeline (seq INTEGER PRIMARY KEY, incident_id TEXT, at TEXT, kind TEXT, message TEXT, alert_seq INT,
                       data TEXT);
CREATE INDEX timeline_incident ON timeline (incident_id, seq);
CREATE TABLE incident_firing (incident_id TEXT, fingerprint TEXT, PRIMARY KEY (incident_id, fingerprint))
    WITHOUT ROWID
"""

Recorded = tuple[int, str, str, str]  # alert seq, group, fingerprint, alert name
Job = tuple[list[tuple[str, ...]], asyncio.AbstractEventLoop, "asyncio.Future[int]"]


class Skeleton(threading.Thread):
    """The one writer: records what the handlers queued, and correlates what earlier commits recorded."""

    def __init__(self, path: str) -> None:
        super().__init__(name="skeleton-writer", daemon=True)
        self.path = path
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.recorded: list[Recorded] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.accepted = self.processed = 0

    def run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for statement in SCHEMA.split(";"):
            conn.execute(statement)
        while True:
            jobs: list[Job] = []
            # With alerts left to correlate, a commit comes soon even if no request arrives.
            with contextlib.suppress(queue.Empty):
                jobs.append(self.jobs.get(timeout=0.05 if self.recorded else None))
            while not self.jobs.empty():
                jobs.append(self.jobs.get_nowait())
            conn.execute("BEGIN IMMEDIATE")
            self._correlate(conn)
            answers = [(loop, future, self._record(conn, rows)) for rows, loop, future in jobs]
            conn.execute("COMMIT")
            for loop, future, count in answers:
                loop.call_soon_threadsafe(future.set_result, count)

    def _record(self, conn: sqlite3.Connection, rows: list[tuple[str, ...]]) -> int:
        fresh = 0
        for key, labels, notes, starts_at, status, group, fingerprint, name in rows:
            found = conn.execute("INSERT OR IGNORE INTO alerts (key, labels, annotations, starts_at, status) "
                                 "VALUES (?, ?, ?, ?, ?) RETURNING seq",
                                 (key, labels, notes, starts_at, status)).fetchone()
            if found:
                self.recorded.append((found[0], group, fingerprint, name))
                fresh += 1
        self.accepted += fresh
        return fresh

    def _correlate(self, conn: sqlite3.Connection) -> None:
        work, self.recorded = self.recorded, []
        if not work:
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%S")
        touched: dict[str, dict[str, Any]] = {}
        events, firing, done = [], [], []
        for seq, group, fingerprint, name in work:
            incident = self.incidents.get(group)
            if incident is None:
                incident = self.incidents[group] = {"id": f"INC-{len(self.incidents) + 1:05d}", "alerts": 0,
                                                    "firing": 0}
                conn.execute("INSERT INTO incidents VALUES (?, ?, 0, 0, ?)", (incident["id"], group, now))
            incident["alerts"] += 1
            incident["firing"] += 1
            touched[incident["id"]] = incident
            events.append((incident["id"], now, "matched", f"{name} matched", seq,
                           orjson.dumps({"fingerprint": fingerprint}).decode()))
            firing.append((incident["id"], fingerprint))
            done.append((incident["id"], now, seq))
        conn.executemany("UPDATE incidents SET alert_count = ?, firing = ?, updated_at = ? WHERE id = ?",
                         [(i["alerts"], i["firing"], now, key) for key, i in touched.items()])
        conn.executemany("INSERT INTO timeline (incident_id, at, kind, message, alert_seq, data) "
                         "VALUES (?, ?, ?, ?, ?, ?)", events)
        conn.executemany("INSERT OR IGNORE INTO incident_firing VALUES (?, ?)", firing)
        conn.executemany("UPDATE alerts SET incident_id = ?, processed_at = ? WHERE seq = ?", done)
        self.processed += len(work)


def build(path: str) -> web.Application:
    writer = Skeleton(path)
    writer.start()

    async def alertmanager(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer bench-token":
            return web.json_response({"error": "unauthorized"}, status=401)
        payload = orjson.loads(await request.read())
        rows: list[tuple[str, ...]] = []
        for alert in payload["alerts"]:
            labels = alert["labels"]
            rows.append((f"am:{alert['fingerprint']}:{alert['startsAt']}:{alert['status']}",
                         orjson.dumps(labels).decode(), orjson.dumps(alert.get("annotations", {})).decode(),
                         alert["startsAt"], alert["status"], payload.get("groupKey", "") + labels.get("grp", ""),
                         alert["fingerprint"], labels.get("alertname", "")))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        writer.jobs.put((rows, loop, future))
        return web.json_response({"accepted": await future})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"accepted": writer.accepted, "processed": writer.processed,
                                  "backlog": writer.accepted - writer.processed})

    app = web.Application(client_max_size=1024 * 1024 + 1)
    app.router.add_post("/webhooks/alertmanager", alertmanager)
    app.router.add_get("/stats", stats)
    return app


if __name__ == "__main__":
    web.run_app(build(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
