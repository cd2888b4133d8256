"""Shared fixtures: the corpus, a fake clock, settings on a temporary SQLite store, real servers."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from remediator.clock import FakeClock
from remediator.settings import Settings
from tests.support import servers

# start_daemon; make_harness, sink; the SNS endpoint's CA, certificate mirror and moto
pytest_plugins = ["tests.support.daemon", "tests.support.engine", "tests.support.sns"]

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("REMEDIATOR_CORPUS") or ROOT / "tests" / "corpus")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings on a fresh SQLite file; keyword arguments override top-level keys (sections are merged)."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
            "policies_dir": str(tmp_path / "policies"),
            "alertmanager": {"bearer_tokens": ["am-secret"]},
        }
        for key, value in overrides.items():
            base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) \
                else value
        (tmp_path / "policies").mkdir(exist_ok=True)
        return Settings.model_validate(base)

    return make


def corpus_file(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.fail(f"corpus file {path} is missing (REMEDIATOR_CORPUS points at a corpus folder)")
    return path


# -- real servers (see tests/support/servers.py) ---------------------------------------------------
@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A PostgreSQL superuser DSN: the configured server if it answers, else a private one."""
    dsn = servers.CHOSEN.get(servers.PG_ENV, servers.DEFAULT_PG)
    if not servers.private_forced() and servers.answers(dsn, 5432):
        yield dsn
        return
    server = servers.PrivatePostgres()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = servers.CHOSEN.get(servers.REDIS_ENV, servers.DEFAULT_REDIS)
    if not servers.private_forced() and servers.answers(url, 6379):
        yield url
        return
    server = servers.PrivateRedis()
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A schema of this test's own, dropped afterwards: tests share the server, never state.

    Synchronous (its cleanup runs on a loop of its own) so that parametrized fixtures can ask for
    it lazily with `request.getfixturevalue`.
    """
    name = f"t_{secrets.token_hex(6)}"
    yield name
    asyncio.run(_drop_schema(pg_dsn, name))


async def _drop_schema(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are unlinked afterwards."""
    prefix = f"test:{secrets.token_hex(6)}:"
    yield prefix
    asyncio.run(_unlink_prefix(redis_url, prefix))


async def _unlink_prefix(url: str, prefix: str) -> None:
    client = aioredis.from_url(url)
    try:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await client.unlink(*keys)
    finally:
        await client.aclose()
