"""`remediator store stats|purge|backup|compact` on stores seeded here, as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from remediator.cli.commands import main
from remediator.stores.sqlite.store import SqliteStore
from tests.support import builders


def _config(tmp_path: Path, db: Path, extra: str = "") -> str:
    path = tmp_path / "settings.yaml"
    path.write_text(f'store: {{url: "sqlite:///{db}"}}\n{extra}')
    return str(path)


async def _seed(db: Path, count: int, received: datetime) -> SqliteStore:
    store = SqliteStore(db, holder="seed")
    await store.open()
    alerts = [builders.alert(fingerprint=f"fp-{i}", starts_at=received) for i in range(count)]
    await store.record_alerts(alerts, received)
    await store.mark_processed([a.id for a in alerts], received)
    return store


def _count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM alerts").fetchone()[0])
    finally:
        conn.close()


def _written_by_newer_code(tmp_path: Path) -> Path:
    """A store holding schema version 900, which only code knowing 900 may run on."""
    db = tmp_path / "r.db"
    asyncio.run(asyncio.run(_seed(db, 1, datetime.now(UTC))).close())
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_migrations VALUES (900, datetime('now'), 900)")
    conn.commit()
    conn.close()
    return db


def test_stats_print_rows_and_ages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"
    asyncio.run(asyncio.run(_seed(db, 3, datetime.now(UTC) - timedelta(days=2))).close())
    config = _config(tmp_path, db, "retention: {size_budget_bytes: 104857600}\n")

    assert main(["-c", config, "store", "stats"]) == 0
    text = capsys.readouterr().out
    assert "alerts                    3" in text and "of a 100.0 MiB budget" in text
    assert main(["-c", config, "store", "stats", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["rows"]["alerts"] == 3 and shown["rows"]["alert_keys"] == 3
    assert 1.9 * 86400 <= shown["oldest_age_seconds"]["alerts"] < 3 * 86400


def test_purge_deletes_only_what_has_expired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "r.db"

    async def seed() -> None:
        store = await _seed(db, 4, datetime.now(UTC) - timedelta(days=40))
        fresh = builders.alert(fingerprint="fresh", starts_at=datetime.now(UTC))
        await store.record_alerts([fresh], fresh.received_at)
        await store.mark_processed([fresh.id], fresh.received_at)
        await store.close()

    asyncio.run(seed())
    assert main(["-c", _config(tmp_path, db), "store", "purge", "--kind", "alerts"]) == 0
    assert "alerts     deleted        4" in capsys.readouterr().out
    assert _count(db) == 1


def test_a_backup_taken_while_the_store_is_written_opens_as_a_store(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    db, copy = tmp_path / "r.db", tmp_path / "backup.db"

    async def scenario() -> None:
        store = await _seed(db, 50, datetime.now(UTC))  # the daemon's store, open and written to
        writes = asyncio.create_task(store.record_alerts(
            [builders.alert(fingerprint=f"late-{i}") for i in range(200)], datetime.now(UTC)))
        code = await asyncio.to_thread(main, ["-c", _config(tmp_path, db), "store", "backup", str(copy)])
        assert code == 0
        await writes
        await store.close()
        # Restoring is using the copy as the store: it opens, and holds a consistent snapshot.
        restored = SqliteStore(copy, holder="restored")
        await restored.open()
        stats = await restored.store_stats()
        await restored.close()
        assert stats.rows["alerts"] in (50, 250) and stats.rows["alert_keys"] == stats.rows["alerts"]

    asyncio.run(scenario())
    assert "a consistent copy" in capsys.readouterr().out


def test_a_backup_never_overwrites_a_file_unasked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db, copy = tmp_path / "r.db", tmp_path / "backup.db"
    asyncio.run(asyncio.run(_seed(db, 1, datetime.now(UTC))).close())
    copy.write_bytes(b"yesterday's backup")
    assert main(["-c", _config(tmp_path, db), "store", "backup", str(copy)]) == 1
    assert copy.read_bytes() == b"yesterday's backup"
    assert "pass --force" in capsys.readouterr().err


def test_backup_and_compact_are_refused_on_postgres(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text('store: {url: "postgresql://127.0.0.1:1/none"}\n')
    for action in (["backup", str(tmp_path / "b.db")], ["compact"]):
        assert main(["-c", str(config), "store", *action]) == 2
        assert "PostgreSQL relies on its own backups" in capsys.readouterr().err
    assert not (tmp_path / "b.db").exists()


def test_compact_gives_an_old_store_incremental_vacuum_but_never_while_it_is_open(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "old.db"
    sqlite3.connect(db).execute("CREATE TABLE made_before_retention (x)").connection.close()  # auto_vacuum NONE

    async def scenario() -> None:
        store = await _seed(db, 20, datetime.now(UTC))
        assert (await store.store_stats()).auto_vacuum == "none"
        assert await asyncio.to_thread(main, ["-c", _config(tmp_path, db), "store", "compact"]) == 1
        await store.close()

    asyncio.run(scenario())
    assert "stop the daemon first" in capsys.readouterr().err
    assert sqlite3.connect(db).execute("PRAGMA auto_vacuum").fetchone()[0] == 0  # unchanged while open
    assert main(["-c", _config(tmp_path, db), "store", "compact"]) == 0
    assert sqlite3.connect(db).execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert _count(db) == 20


def test_a_store_written_by_newer_code_is_refused_with_a_clear_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _written_by_newer_code(tmp_path)
    before = list(sqlite3.connect(db).iterdump())
    assert main(["-c", _config(tmp_path, db), "store", "stats"]) == 2
    err = capsys.readouterr().err
    assert "refusing to start" in err and "schema version 900" in err
    assert list(sqlite3.connect(db).iterdump()) == before


def test_serve_refuses_a_store_written_by_newer_code_and_exits_2(tmp_path: Path) -> None:
    db = _written_by_newer_code(tmp_path)
    before = list(sqlite3.connect(db).iterdump())
    (tmp_path / "policies").mkdir()
    config = _config(tmp_path, db, f"policies_dir: {tmp_path / 'policies'}\nlisten: {{port: 0}}\n"
                                   "admin_listen: {port: 0}\nintake: {processes: 0}\n")
    done = subprocess.run([sys.executable, "-m", "remediator", "-c", config, "serve"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "refusing to start" in done.stderr and "schema version 900" in done.stderr
    assert list(sqlite3.connect(db).iterdump()) == before
