"""Engine benchmark: the core's record-and-process path in one process, against naive SQLite inserts.

    .venv/bin/python bench/engine.py                     # 40,000 alerts, 16 per record call
    .venv/bin/python bench/engine.py --wal-report        # also: WAL pages written per alert, by table

bench/ingest.py measures the whole daemon over HTTP, and on a 2-core machine its run-to-run noise
hides a change of 10 %. This one leaves HTTP and the intake process out to look at what the
core's engine and SQLite store do per alert, with less noise: the same realistic two-alert
Alertmanager payload (fresh fingerprints, 100 alert groups; no bundled policy matches it) is
parsed before the clock starts; then the alerts are recorded the way the intake hands them over
(`Engine.record`, a few calls in flight) and the engine correlates, matches, plans and decides
all of them. Printed: alerts recorded and processed per second, CPU time per alert, record-call
latency, commits; and, in the same process, the baseline: the naive way, each alert inserted
into a WAL-mode SQLite file in its own transaction.

`--wal-report` runs the engine once more with checkpoints off and reads the write-ahead log
back: how many 4 KiB pages each table and index wrote per alert (what a commit costs is
mostly these pages). It is a benchmark, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sqlite3
import struct
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import ingest

from remediator.clock import SystemClock
from remediator.daemon.app import build_deps
from remediator.daemon.runtime import tune_gc
from remediator.engine.pipeline import Engine
from remediator.model import Alert
from remediator.observability import configure_logging
from remediator.settings import load_settings
from remediator.sources.alertmanager import parse_alertmanager
from remediator.stores import rows
from remediator.stores.sqlite import writer as sqlite_writer

ROOT = Path(__file__).resolve().parents[1]
IN_FLIGHT = 4  # record calls at once, as an intake process makes them


@dataclass
class Run:
    alerts: int
    seconds: float
    cpu_seconds: float
    p50_ms: float
    p99_ms: float
    commits: int
    wal: bytes = b""  # the write-ahead log as the run left it (only when asked for)


def make_alerts(count: int) -> list[Alert]:
    template = ingest.payload_template()
    clock = SystemClock()
    alerts: list[Alert] = []
    for n in range((count + 1) // 2):  # each payload received at its own moment, as over HTTP
        body = template.replace("@A@", format(n * 2, "016x")).replace("@B@", format(n * 2 + 1, "016x"))
        alerts += parse_alertmanager(body.replace("@G@", f"g{n % 100:03d}").encode(), clock.now())
    return alerts[:count]


async def run_engine(alerts: list[Alert], chunk: int, workdir: Path, *, keep_wal: bool = False,
                     engine_settings: dict[str, int] | None = None, policies_dir: Path = ROOT / "policies",
                     log_level: str = "warning") -> Run:
    settings_file = workdir / "settings.yaml"
    settings_file.write_text(json.dumps({
        "policies_dir": str(policies_dir), "store": {"url": f"sqlite:///{workdir / 'engine.db'}"},
        "log": {"level": log_level}, "engine": engine_settings or {},
    }))
    deps = build_deps(load_settings(settings_file, {}))
    await deps.store.open()
    await deps.coordination.open()
    engine = Engine(deps)
    await engine.start()
    tune_gc()
    chunks = iter([alerts[i : i + chunk] for i in range(0, len(alerts), chunk)])
    latencies: list[float] = []

    async def sender() -> None:
        for part in chunks:
            started = time.perf_counter()
            await engine.record(part)
            latencies.append(time.perf_counter() - started)

    try:
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(sender() for _ in range(IN_FLIGHT)))
        await engine.drain()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        commits = deps.store.batches  # type: ignore[attr-defined]
        wal = await asyncio.to_thread(Path(f"{workdir / 'engine.db'}-wal").read_bytes) if keep_wal else b""
    finally:
        await engine.stop()
        await deps.store.close()
        await deps.coordination.close()
    latencies.sort()
    return Run(len(alerts), wall, cpu, latencies[len(latencies) // 2] * 1000,
               latencies[int(len(latencies) * 0.99)] * 1000, commits, wal)


def run_naive(alerts: list[Alert], workdir: Path) -> Run:
    """One INSERT and one COMMIT per alert: the figure batching is meant to beat."""
    conn = sqlite3.connect(workdir / "naive.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"CREATE TABLE alerts (seq INTEGER PRIMARY KEY, {rows.ALERT_COLUMNS}, claimed_by, claimed_until, "
                 "UNIQUE (id))")
    wall, cpu = time.perf_counter(), time.process_time()
    for alert in alerts:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(rows.INSERT_ALERT, (*rows.alert_row(alert), None, None))
        conn.execute("COMMIT")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    conn.close()
    return Run(len(alerts), wall, cpu, 0.0, 0.0, len(alerts))


def wal_report(alerts: list[Alert], chunk: int, workdir: Path,
               engine_settings: dict[str, int]) -> list[tuple[str, float]]:
    """Pages written to the WAL per alert, by table or index (checkpoints off for this run)."""
    with mock.patch.object(sqlite_writer.Checkpointer, "run", lambda self: None), \
            mock.patch.object(sqlite_writer, "AUTOCHECKPOINT_PAGES", 0):
        wal = asyncio.run(run_engine(alerts, chunk, workdir, keep_wal=True, engine_settings=engine_settings)).wal
    page_size = struct.unpack(">I", wal[8:12])[0]
    pages: collections.Counter[int] = collections.Counter()
    for offset in range(32, len(wal) - 24 - page_size + 1, 24 + page_size):
        pages[struct.unpack(">I", wal[offset : offset + 4])[0]] += 1
    conn = sqlite3.connect(workdir / "engine.db")  # checkpointed at close: page numbers are the WAL's
    owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
    conn.close()
    by_name: collections.Counter[str] = collections.Counter()
    for page, times in pages.items():
        by_name[owner.get(page, "(freed)")] += times
    return [("all", sum(pages.values()) / len(alerts))] + \
        [(name, count / len(alerts)) for name, count in by_name.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=40_000, help="alerts recorded and processed (default 40,000)")
    parser.add_argument("--chunk", type=int, default=16, help="alerts per record call (default 16)")
    parser.add_argument("--wal-report", action="store_true", help="also report WAL pages written per alert")
    parser.add_argument("--batch-size", type=int, help="engine.batch_size (default: the daemon's)")
    parser.add_argument("--workers", type=int, help="engine.workers (default: the daemon's)")
    args = parser.parse_args()
    configure_logging("warning")
    alerts = make_alerts(args.alerts)
    with tempfile.TemporaryDirectory(prefix="remediator-engine-bench-") as tmp:
        naive = run_naive(alerts, Path(tmp))
        tuned = {k: v for k, v in (("batch_size", args.batch_size), ("workers", args.workers)) if v is not None}
        engine = asyncio.run(run_engine(alerts, args.chunk, Path(tmp), engine_settings=tuned))
        (Path(tmp) / "wal").mkdir()
        report = wal_report(alerts, args.chunk, Path(tmp) / "wal", tuned) if args.wal_report else []
    print(f"\nengine benchmark: {args.alerts} alerts, {args.chunk} per record call, {IN_FLIGHT} calls in flight"
          + "".join(f", engine.{k} {v}" for k, v in tuned.items()))
    print(f"{'':34}{'alerts/s':>10}{'CPU us/alert':>14}{'record p50':>12}{'p99 ms':>8}{'commits':>9}")
    for name, r in (("naive insert, one commit each", naive), ("engine: record and process", engine)):
        latency = f"{r.p50_ms:12.2f}{r.p99_ms:8.2f}" if r is engine else f"{'-':>12}{'-':>8}"
        print(f"{name:34}{r.alerts / r.seconds:10.0f}{r.cpu_seconds / r.alerts * 1e6:14.0f}{latency}{r.commits:9d}")
    print(f"\nratio engine / naive insert: {naive.seconds / engine.seconds:.1%} of alerts per second")
    if report:
        print("\nWAL pages written per alert (checkpoints off):")
        for name, per_alert in report:
            if per_alert >= 0.005:
                print(f"  {per_alert:6.2f}  {name}")


if __name__ == "__main__":
    main()
