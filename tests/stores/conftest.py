"""Store and coordination backends for the contract suites.

Each backend is a parameter; a backend that needs a server (PostgreSQL, Redis) is added by the
module that provides it. Tests receive opened stores and close nothing themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from remediator.stores.base import Coordination, Store
from remediator.stores.memory import InProcessCoordination
from remediator.stores.sqlite import SqliteStore

StoreFactory = Callable[[str], Awaitable[Store]]


@pytest.fixture(params=["sqlite"])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores on one shared backend, each with its own holder (as separate replicas would)."""
    opened: list[Store] = []

    async def make(holder: str) -> Store:
        store: Store = SqliteStore(tmp_path / "contract.db", holder=holder)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory("replica-a")


@pytest.fixture(params=["memory"])
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    backend = InProcessCoordination()
    await backend.open()
    yield backend
    await backend.close()
