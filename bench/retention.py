"""Retention benchmark: purge a SQLite store of a million alerts while ingest goes on.

    .venv/bin/python bench/retention.py                    # 1,000,000 alerts over 60 days, 30 kept
    .venv/bin/python bench/retention.py --alerts 2000000 --seconds 20

The store is built fast (bulk inserts on one connection, outside the daemon's writer), with
alerts received evenly over `--days` days, all processed, each with its dedup key; alerts older
than 30 days then expire. Ingest is measured in this process, on the store's acknowledgement path
(`record_alerts` of two-alert deliveries from 50 concurrent senders, each awaiting its COMMIT):
first alone, then for as long while the purge runs (which then goes on alone), and alone again;
the ratio is taken against the mean of the two runs alone, because the machine's speed drifts.
Printed: the store's size before and after (file with WAL, and the pages SQLite holds), rows
deleted and the purge's rate, ingest deliveries/s and p99 acknowledgement with and without the
purge, and what reading the store gauges costs. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from remediator.clock import FakeClock
from remediator.model import Alert, AlertStatus, alert_id
from remediator.settings import RetentionSettings
from remediator.stores import rows
from remediator.stores.purge import Purger
from remediator.stores.sqlite.store import SqliteStore

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LABELS = rows.dumps({"alertname": "PostgresTooManyConnections", "instance": "db-1:9187", "job": "postgres",
                     "severity": "warning", "service": "erp-db", "env": "prod", "team": "platform"})
ANNOTATIONS = rows.dumps({"summary": "too many connections", "runbook": "https://wiki.example/runbook/pg-conns"})


def build(path: Path, count: int, days: int) -> None:
    """`count` processed alerts received evenly over the `days` before NOW, with their keys."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")
    step = timedelta(days=days) / count
    start = NOW - timedelta(days=days)
    for chunk in range(0, count, 50_000):
        alerts, keys = [], []
        for i in range(chunk, min(chunk + 50_000, count)):
            at = rows.ts(start + step * i)
            key = f"bench:fp-{i}:{at}:firing"
            ident = alert_id(start + step * i, key)
            alerts.append((ident, "alertmanager", "PostgresTooManyConnections", "firing", f"fp-{i}", f"g-{i % 100}",
                           at, None, at, LABELS, ANNOTATIONS, "too many connections", 1, None, f'["{key}"]', at))
            keys.append((key, ident))
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO alerts ({rows.ALERT_COLUMNS}, processed_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", alerts)
        conn.executemany("INSERT INTO alert_keys (key, alert_id) VALUES (?, ?)", keys)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def delivery(n: int) -> list[Alert]:
    """Two new alerts, as one Alertmanager delivery carries them."""
    out = []
    for part in range(2):
        fp = hashlib.sha1(f"{n}-{part}".encode(), usedforsecurity=False).hexdigest()[:16]
        out.append(Alert(source="alertmanager", name="ApiDown", status=AlertStatus.FIRING, fingerprint=fp,
                         dedup_keys=(f"am:{fp}:{NOW.isoformat()}:firing",), group_key=f"g-{n % 100}",
                         starts_at=NOW, received_at=NOW, labels={"alertname": "ApiDown", "instance": fp},
                         annotations={"summary": "down"}, actionable=True, summary="down"))
    return out


async def ingest(store: SqliteStore, seconds: float, senders: int, first: int,
                 until: asyncio.Event | None = None) -> tuple[int, list[float]]:
    """Deliveries acknowledged (each awaited to its COMMIT) in `seconds`, or until `until` is set."""
    latencies: list[float] = []
    counter = iter(range(first, first + 10**9))
    deadline = time.perf_counter() + seconds

    async def sender() -> None:
        while time.perf_counter() < deadline and not (until is not None and until.is_set()):
            alerts = delivery(next(counter))
            began = time.perf_counter()
            await store.record_alerts(alerts, NOW)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(sender() for _ in range(senders)))
    return len(latencies), latencies


def pages(path: Path) -> tuple[int, int, int]:
    conn = sqlite3.connect(path)
    try:
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return (conn.execute("PRAGMA page_count").fetchone()[0] * size,
                conn.execute("PRAGMA freelist_count").fetchone()[0] * size, size)
    finally:
        conn.close()


def on_disk(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(str(path) + "-wal")) if p.exists())


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def p99(values: list[float]) -> str:
    return f"{statistics.quantiles(values, n=100)[98] * 1000:.1f} ms" if len(values) > 100 else "-"


async def run(args: argparse.Namespace, path: Path) -> None:
    store = SqliteStore(path, holder="bench")
    await store.open()
    await store.close()
    began = time.perf_counter()
    build(path, args.alerts, args.days)
    print(f"built {args.alerts:,} alerts over {args.days} days in {time.perf_counter() - began:.1f} s")
    logical, _, _ = pages(path)
    print(f"before: {mib(on_disk(path))} on disk, {mib(logical)} of pages")

    store = SqliteStore(path, holder="bench")
    await store.open()
    try:
        alone_1, lat_1 = await ingest(store, args.seconds, args.senders, 0)
        settings = RetentionSettings(batch_size=args.batch, pause=timedelta(milliseconds=args.pause_ms))
        purger = Purger(store, settings, FakeClock(NOW))
        done = asyncio.Event()

        async def purge() -> tuple[int, float]:
            started = time.perf_counter()
            reports = await purger.run()
            done.set()
            return sum(r.deleted for r in reports), time.perf_counter() - started

        purging = asyncio.create_task(purge())
        began = time.perf_counter()
        during, lat_d = await ingest(store, args.seconds, args.senders, 10**7, until=done)
        seconds_d = time.perf_counter() - began
        deleted, took = await purging  # the rest of the purge, alone
        alone_2, lat_2 = await ingest(store, args.seconds, args.senders, 2 * 10**7)
        began = time.perf_counter()
        stats = await store.store_stats()
        scrape = time.perf_counter() - began
    finally:
        await store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    logical_after, free_after, _ = pages(path)
    alone = (alone_1 + alone_2) / 2 / args.seconds
    rate = during / seconds_d
    print(f"purge: {deleted:,} rows deleted in {took:.1f} s ({deleted / took:,.0f} rows/s; under full ingest for "
          f"the first {seconds_d:.0f} s), batches of {args.batch}, {args.pause_ms} ms apart")
    print(f"after: {mib(on_disk(path))} on disk, {mib(logical_after)} of pages ({mib(free_after)} free), "
          f"{stats.rows['alerts']:,} alerts left ({2 * (alone_1 + during + alone_2):,} ingested by the bench)")
    print(f"ingest alone: {alone_1 / args.seconds:,.0f} and {alone_2 / args.seconds:,.0f} deliveries/s "
          f"(p99 {p99(lat_1)}, {p99(lat_2)})")
    print(f"ingest during the purge: {rate:,.0f} deliveries/s (p99 {p99(lat_d)}); "
          f"ratio to alone: {rate / alone:.2f}")
    print(f"store_stats() (what a /metrics scrape reads) on this store: {scrape * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=10.0, help="each ingest run alone")
    parser.add_argument("--senders", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--pause-ms", type=int, default=20)
    parser.add_argument("--dir", help="where the store is built (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as workdir:
        asyncio.run(run(args, Path(workdir) / "bench.db"))
    os.sync()


if __name__ == "__main__":
    main()
