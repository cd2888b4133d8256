"""Schema versions: whole scripts, and a store written by newer code (docs/DESIGN.md, "Schema versions")."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from remediator.settings import StoreSettings
from remediator.stores.postgres.store import PostgresStore
from remediator.stores.schema import Migration, SchemaTooNew, migrate_sqlite, migrations, parse_migration
from remediator.stores.sqlite.store import SqliteStore
from tests.support import builders

TRIGGER = """
-- oldest-code: 1
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, seen INTEGER NOT NULL DEFAULT 0);
CREATE TABLE note_log (note_id INTEGER, body TEXT);
CREATE TRIGGER notes_logged AFTER INSERT ON notes BEGIN
    INSERT INTO note_log (note_id, body) VALUES (new.id, 'logged; ' || new.body);
    UPDATE notes SET seen = 1 WHERE id = new.id;
END;
INSERT INTO notes (body) VALUES ('one; two; ''three''');
"""


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_a_script_runs_whole_with_a_trigger_and_a_semicolon_in_a_string(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    known = [*migrations("sqlite"), parse_migration("0099_notes.sql", TRIGGER)]
    assert migrate_sqlite(conn, known, "test") == [m.version for m in known]
    # The trigger body (two statements, each ending in ";") ran as one statement, and so did the string.
    assert conn.execute("SELECT body, seen FROM notes").fetchall() == [("one; two; 'three'", 1)]
    assert conn.execute("SELECT body FROM note_log").fetchall() == [("logged; one; two; 'three'",)]
    assert conn.execute("SELECT version, oldest_code FROM schema_migrations WHERE version = 99").fetchall() \
        == [(99, 1)]
    assert migrate_sqlite(conn, known, "test") == []  # applied once


def test_a_failing_script_leaves_nothing_of_itself_or_of_the_versions_with_it(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    known = migrations("sqlite")
    migrate_sqlite(conn, known, "test")
    before = list(conn.iterdump())
    broken = [Migration(98, "0098_ok.sql", "CREATE TABLE fine (x TEXT);", 98),
              Migration(99, "0099_bad.sql", "CREATE TABLE half (x TEXT);\nINSERT INTO nowhere VALUES (1);", 99)]
    with pytest.raises(sqlite3.OperationalError, match="nowhere"):
        migrate_sqlite(conn, [*known, *broken], "test")
    assert not conn.in_transaction
    assert list(conn.iterdump()) == before  # neither 98 nor half of 99, nor their version rows


def test_a_store_made_by_the_old_runner_gains_the_oldest_code_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for m in migrations("sqlite")[:3]:
        conn.executescript(m.sql)
        conn.execute("INSERT INTO schema_migrations VALUES (?, datetime('now'))", (m.version,))
    conn.close()
    assert migrate_sqlite(sqlite3.connect(path, isolation_level=None), migrations("sqlite"), "test") \
        == [m.version for m in migrations("sqlite")[3:]]
    rows = sqlite3.connect(path).execute("SELECT version, oldest_code FROM schema_migrations").fetchall()
    assert {v for v, _ in rows} == {m.version for m in migrations("sqlite")}


async def _sqlite_written_by_newer_code(path: Path, oldest_code: int) -> None:
    store = SqliteStore(path, holder="old")
    await store.open()
    await store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE newer_things (x TEXT)")
    conn.execute("INSERT INTO schema_migrations VALUES (900, datetime('now'), ?)", (oldest_code,))
    conn.close()


async def test_older_code_runs_on_a_store_an_additive_migration_changed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await _sqlite_written_by_newer_code(path, oldest_code=3)  # version 900 says: code knowing 3 may run
    store = SqliteStore(path, holder="rolled-back")
    await store.open()
    try:
        assert await store.record_alerts([builders.alert()], datetime.now(UTC)) == [True]
    finally:
        await store.close()


async def test_older_code_refuses_a_store_it_cannot_run_on_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    await _sqlite_written_by_newer_code(path, oldest_code=900)
    before = dump(path)
    store = SqliteStore(path, holder="rolled-back")
    with pytest.raises(SchemaTooNew) as refused:
        await store.open()
    await store.close()
    message = str(refused.value)
    assert "schema version 900" in message and "Nothing was changed" in message, message
    assert dump(path) == before


async def test_postgres_refuses_a_schema_it_cannot_run_on_and_runs_on_an_additive_one(
        pg_dsn: str, pg_schema: str) -> None:
    settings = StoreSettings(url=pg_dsn, schema_name=pg_schema, pool_min=1, pool_max=2)
    store = PostgresStore(settings, holder="newer")
    await store.open()
    await store.close()
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_schema})
    try:
        await conn.execute("INSERT INTO schema_migrations (version, oldest_code) VALUES (900, 3)")
        additive = PostgresStore(settings, holder="older-a")
        await additive.open()  # 900 is additive: the older code starts
        await additive.close()
        await conn.execute("UPDATE schema_migrations SET oldest_code = 900 WHERE version = 900")
        before = await conn.fetch("SELECT version, oldest_code, applied_at FROM schema_migrations ORDER BY version")
        refused = PostgresStore(settings, holder="older-b")
        with pytest.raises(SchemaTooNew, match="schema version 900"):
            await refused.open()
        after = await conn.fetch("SELECT version, oldest_code, applied_at FROM schema_migrations ORDER BY version")
        assert after == before
    finally:
        await conn.close()
