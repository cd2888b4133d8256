"""SQLite gives purged space back: new files use incremental vacuum, old ones reuse their free pages."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from remediator.clock import FakeClock
from remediator.settings import RetentionSettings
from remediator.stores.purge import Purger
from remediator.stores.retention import Kind
from remediator.stores.sqlite.store import SqliteStore
from tests.conftest import T0
from tests.support.builders import alert

NOW = T0 + timedelta(days=60)


def _pages(path: Path) -> tuple[int, int]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA page_count").fetchone()[0], conn.execute("PRAGMA freelist_count").fetchone()[0]
    finally:
        conn.close()


async def _filled(path: Path, count: int) -> SqliteStore:
    store = SqliteStore(path, holder="a")
    await store.open()
    for start in range(0, count, 500):
        batch = [alert(fingerprint=f"fp-{i}", labels={"padding": "x" * 400}) for i in range(start, start + 500)]
        await store.record_alerts(batch, T0)
        await store.mark_processed([a.id for a in batch], T0)
    return store


async def test_a_new_store_gives_purged_pages_back_to_the_file_system(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = await _filled(path, 3000)
    try:
        assert (await store.store_stats()).auto_vacuum == "incremental"
        before, _ = _pages(path)
        reports = await Purger(store, RetentionSettings(pause=timedelta(0)), FakeClock(NOW)).run([Kind.ALERTS])
        assert reports[0].deleted == 3000
        after, free = _pages(path)
        assert free == 0 and after < before / 4, (before, after)
    finally:
        await store.close()


async def test_an_old_store_keeps_its_size_and_reuses_the_freed_pages(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    sqlite3.connect(path).execute("CREATE TABLE made_before_retention (x)").connection.close()
    store = await _filled(path, 3000)
    try:
        assert (await store.store_stats()).auto_vacuum == "none"
        before, _ = _pages(path)
        await Purger(store, RetentionSettings(pause=timedelta(0)), FakeClock(NOW)).run([Kind.ALERTS])
        after, free = _pages(path)
        assert after == before and free > before / 2
        assert (await store.store_stats()).reusable_bytes > 0
        for start in range(3000, 4500, 500):  # new rows fill the free pages: the file does not grow
            batch = [alert(fingerprint=f"fp-{i}", labels={"padding": "x" * 400}) for i in range(start, start + 500)]
            await store.record_alerts(batch, NOW)
        assert _pages(path)[0] == before
    finally:
        await store.close()
