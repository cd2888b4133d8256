"""Store and coordination backends for the contract suites.

Each backend is a parameter: SQLite and in-process coordination, PostgreSQL and Redis (real
servers, see tests/support/servers.py). Tests receive opened stores and close nothing themselves
except to play a replica that dies.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from remediator.settings import CoordinationSettings, StoreSettings
from remediator.stores.base import Store
from remediator.stores.coordination import Coordination
from remediator.stores.memory import InProcessCoordination
from remediator.stores.postgres.store import PostgresStore
from remediator.stores.redis import RedisCoordination
from remediator.stores.sqlite.store import SqliteStore

StoreFactory = Callable[[str], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "postgres"])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores on one shared backend, each with its own holder (as separate replicas would)."""
    opened: list[Store] = []
    if request.param == "postgres":
        settings = StoreSettings(url=request.getfixturevalue("pg_dsn"),
                                 schema_name=request.getfixturevalue("pg_schema"), pool_min=1, pool_max=4)

    async def make(holder: str) -> Store:
        store: Store
        if request.param == "postgres":
            store = PostgresStore(settings, holder=holder)
        else:
            store = SqliteStore(tmp_path / "contract.db", holder=holder)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory("replica-a")


@pytest.fixture(params=["memory", "redis"])
async def coordination(request: pytest.FixtureRequest) -> AsyncIterator[Coordination]:
    backend: Coordination
    if request.param == "redis":
        backend = RedisCoordination(CoordinationSettings(url=request.getfixturevalue("redis_url"),
                                                         key_prefix=request.getfixturevalue("redis_prefix")))
    else:
        backend = InProcessCoordination()
    await backend.open()
    yield backend
    await backend.close()
