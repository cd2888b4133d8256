"""Connections to the databases and caches actions act on, named in settings (`targets:`).

A policy names a target; the DSN or URL comes from the environment (`dsn_env`, `url_env`) or the
settings file, never from an alert. Connections are small pools opened on first use and closed by
the app's cleanup context; every PostgreSQL statement runs under the target's statement_timeout.
The app puts one `TargetConnections` in `ActionDeps.extras["targets"]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from remediator.settings import PostgresTarget, RedisTarget, TargetSettings

if TYPE_CHECKING:
    from remediator.actions.base import ActionDeps

TARGETS_EXTRA = "targets"  # the key of `TargetConnections` in `ActionDeps.extras`
APPLICATION_NAME = "remediator-action"


class TargetUnavailable(Exception):
    """The target is not configured, has no DSN/URL, or cannot be reached."""


def unknown_target(settings: TargetSettings, kind: Literal["postgres", "redis"], name: str) -> str | None:
    """Why `name` is not a target under `targets.<kind>` in settings, or None (reads nothing else)."""
    named: Mapping[str, object] = settings.postgres if kind == "postgres" else settings.redis
    if name in named:
        return None
    return f"no {'PostgreSQL' if kind == 'postgres' else 'Redis'} target named {name!r} under targets.{kind}"


class TargetConnections:
    """Lazily opened pools per named target; `close` ends them all."""

    def __init__(self, settings: TargetSettings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self._pools: dict[str, asyncpg.Pool] = {}
        self._redis: dict[str, aioredis.Redis] = {}
        self._lock = asyncio.Lock()

    def postgres_target(self, name: str) -> PostgresTarget:
        target = self.settings.postgres.get(name)
        if target is None:
            raise TargetUnavailable(unknown_target(self.settings, "postgres", name))
        return target

    def redis_target(self, name: str) -> RedisTarget:
        target = self.settings.redis.get(name)
        if target is None:
            raise TargetUnavailable(unknown_target(self.settings, "redis", name))
        return target

    def _secret(self, name: str, env: str, value: Any) -> str:
        if env:
            found = self.environ.get(env, "")
            if not found:
                raise TargetUnavailable(f"target {name!r}: environment variable {env} is not set")
            return found
        return str(value.get_secret_value())

    async def postgres(self, name: str) -> asyncpg.Pool:
        target = self.postgres_target(name)
        async with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                timeout = target.statement_timeout.total_seconds()
                try:
                    pool = await asyncpg.create_pool(
                        self._secret(name, target.dsn_env, target.dsn), min_size=0, max_size=target.pool_max,
                        timeout=target.connect_timeout.total_seconds(), command_timeout=timeout + 1,
                        max_inactive_connection_lifetime=60.0,
                        server_settings={"application_name": APPLICATION_NAME,
                                         "statement_timeout": str(int(timeout * 1000)),
                                         "lock_timeout": str(int(timeout * 1000))})
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    raise TargetUnavailable(f"target {name!r}: {type(exc).__name__}: {exc}") from exc
                self._pools[name] = pool
        return pool

    async def redis(self, name: str) -> aioredis.Redis:
        target = self.redis_target(name)
        async with self._lock:
            client = self._redis.get(name)
            if client is None:
                timeout = target.timeout.total_seconds()
                client = aioredis.from_url(self._secret(name, target.url_env, target.url), socket_timeout=timeout,
                                           socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1))
                self._redis[name] = client
        return client

    async def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        clients, self._redis = list(self._redis.values()), {}
        for pool in pools:
            try:
                await asyncio.wait_for(pool.close(), 5)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pool.terminate()
        for client in clients:
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(client.aclose(), 5)


def target_connections(deps: ActionDeps) -> TargetConnections:
    """The `TargetConnections` in `deps.extras["targets"]`; an error when the app put none there."""
    connections = deps.extras.get(TARGETS_EXTRA)
    if not isinstance(connections, TargetConnections):
        raise TargetUnavailable(f"ActionDeps.extras[{TARGETS_EXTRA!r}] holds no TargetConnections")
    return connections
