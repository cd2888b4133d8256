"""`remediator store stats|purge|backup|compact`: the store's size and age, and its upkeep.

`stats` and `purge` work on both stores; `backup` and `compact` are SQLite's (PostgreSQL relies
on its own backups and autovacuum). `backup` runs beside the daemon: SQLite's backup API copies
one consistent snapshot (WAL readers never block the writer). `compact` rewrites the file and
must run alone (README, Retention).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

from remediator.aws.clients import AwsClients
from remediator.cli import terminal
from remediator.clock import SystemClock
from remediator.daemon.app import holder_id, make_store
from remediator.observability import configure_logging
from remediator.settings import Settings, load_settings
from remediator.stores.archive import S3Archive
from remediator.stores.base import Store
from remediator.stores.purge import Purger
from remediator.stores.retention import Kind, StoreStats
from remediator.stores.sqlite.holder_files import HolderFiles


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


async def _open(settings: Settings) -> Store:
    store = make_store(settings, f"cli:{holder_id()}", owner=False)
    await store.open()
    return store


def render_stats(stats: StoreStats, settings: Settings) -> str:
    now = SystemClock().now()
    data = stats.as_dict(now)
    budget = settings.retention.size_budget_bytes
    lines = [f"size: {_mib(stats.size_bytes)}" + (f" of a {_mib(budget)} budget ({stats.size_bytes / budget:.0%})"
                                                  if budget else "")]
    if stats.auto_vacuum:
        lines.append(f"reusable: {_mib(stats.reusable_bytes)} (auto_vacuum {stats.auto_vacuum})")
    lines += ["", "table                  rows"]
    lines += [f"{table:<20} {count:>6}" for table, count in stats.rows.items()]
    lines += ["", "kind        oldest      kept for"]
    for kind in Kind:
        age = data["oldest_age_seconds"][kind.value]
        lines.append(f"{kind.value:<10}  {_days(age):>9}  {settings.retention.keep(kind.value).days} days")
    unfinished = data["oldest_unfinished_age_seconds"]
    lines.append(f"\noldest unfinished request: {_days(unfinished) if unfinished is not None else 'none'}")
    return "\n".join(lines) + "\n"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _days(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 86400:.1f} days"


def cmd_store(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging("warning", "console", stream=sys.stderr)  # stdout is the answer
    if args.action in ("backup", "compact") and not settings.store.is_sqlite:
        terminal.err(f"remediator: store {args.action} is for the SQLite store; PostgreSQL relies on its own "
                     "backups (RDS snapshots, pg_dump) and on autovacuum")
        return 2
    if args.action == "backup":
        return backup(settings.store.sqlite_path, Path(args.file), force=args.force)
    if args.action == "compact":
        return compact(settings.store.sqlite_path)
    result: int = asyncio.run(_stats(settings, args) if args.action == "stats" else _purge(settings, args))
    return result


async def _stats(settings: Settings, args: argparse.Namespace) -> int:
    store = await _open(settings)
    try:
        stats = await store.store_stats()
    finally:
        await store.close()
    if getattr(args, "output", "text") == "json":
        terminal.out_json({**stats.as_dict(SystemClock().now()),
                           "size_budget_bytes": settings.retention.size_budget_bytes})
    else:
        terminal.out(render_stats(stats, settings))
    return 0


async def _purge(settings: Settings, args: argparse.Namespace) -> int:
    """One purge pass now, as the daemon makes them (with the archive, when configured)."""
    kinds = [Kind(k) for k in args.kind] if args.kind else list(Kind)
    store = await _open(settings)
    try:
        async with AwsClients(settings.aws) as aws:
            archive = S3Archive(settings.retention.archive, aws) if settings.retention.archive.enabled else None
            reports = await Purger(store, settings.retention, SystemClock(), archive=archive).run(kinds)
    finally:
        await store.close()
    for report in reports:
        terminal.out(f"{report.kind.value:<10} deleted {report.deleted:>8}  exported {report.exported:>8}"
                     + (f"  ({len(report.objects)} objects)" if report.objects else ""))
    return 0


def backup(database: Path, target: Path, *, force: bool = False) -> int:
    """A consistent copy of the live SQLite store, taken in one read transaction."""
    if not database.exists():
        terminal.err(f"remediator: {database}: no such store")
        return 2
    if target.exists() and not force:
        terminal.err(f"remediator: {target} exists; pass --force to replace it")
        return 1
    target.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # all pages in one step: a single snapshot, the writer goes on meanwhile
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        checked = copy.execute("PRAGMA quick_check").fetchone()[0]
    finally:
        copy.close()
        source.close()
    if checked != "ok":
        terminal.err(f"remediator: the copy in {target} does not check out: {checked}")
        return 1
    terminal.out(f"{target}: a consistent copy of {database} ({target.stat().st_size / 2**20:.1f} MiB); "
                 "README, Backups, says how to restore it")
    return 0


def compact(database: Path) -> int:
    """Rewrite the file with auto_vacuum=INCREMENTAL (stores made before retention lack it)."""
    if HolderFiles(str(database)).anyone_alive():
        terminal.err("remediator: a remediator process has the store open; stop the daemon first "
                     "(compact rewrites the whole file)")
        return 1
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        before = database.stat().st_size
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        mode = conn.execute("PRAGMA auto_vacuum").fetchone()[0]
    finally:
        conn.close()
    terminal.out(f"{database}: {before / 2**20:.1f} MiB -> {database.stat().st_size / 2**20:.1f} MiB, "
                 f"auto_vacuum {'incremental' if mode == 2 else mode}")
    return 0


def add_parser(sub: Any) -> None:
    store = sub.add_parser("store", help="the store's size and age, a purge pass, a backup (SQLite)")
    action = store.add_subparsers(dest="action", required=True)
    action.add_parser("stats", parents=[terminal.OUTPUT, terminal.JSON_ALIAS],
                      help="size, rows per table, the oldest row of each kind")
    purge = action.add_parser("purge", help="delete (and archive) what retention lets go, now")
    purge.add_argument("--kind", action="append", choices=[k.value for k in Kind], help="only this kind (repeat)")
    backup_ = action.add_parser("backup", help="a consistent copy of the SQLite store, while the daemon runs")
    backup_.add_argument("file")
    backup_.add_argument("--force", action="store_true", help="replace FILE if it exists")
    action.add_parser("compact", help="rewrite an SQLite store so that purged space is given back (daemon stopped)")
    store.set_defaults(func=cmd_store)
