"""Fixtures the contract tests run against (SQLite here; PostgreSQL joins them later).

`store` is one open store. `open_store(holder)` opens another store on the same database, as a
second replica or the same daemon after a restart would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from remediator.stores.base import Store
from remediator.stores.sqlite import SqliteStore

StoreOpener = Callable[[str], Awaitable[Store]]


@pytest.fixture
async def open_store(tmp_path: Path) -> AsyncIterator[StoreOpener]:
    opened: list[Store] = []

    async def opener(holder: str) -> Store:
        store = SqliteStore(tmp_path / "store.db", holder=holder)
        await store.open()
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_store: StoreOpener) -> Store:
    return await open_store("test-replica-a")
