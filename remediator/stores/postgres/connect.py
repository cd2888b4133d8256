"""Connections of the PostgreSQL store: the pool, migrations, error mapping and holder liveness.

Liveness is what makes `reconcile_running` sound with several replicas. Each store keeps one
dedicated session that holds a session-level advisory lock keyed on (schema, holder). PostgreSQL
releases the lock the moment that session ends: when the process exits or is killed (the kernel
closes its socket), or when the server gives up on a silent peer (TCP keepalives, ~30 s). So "the
holder is dead" is a question the database answers exactly — no clocks, no heartbeat rows — and a
live replica's long-running action is never taken for an orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import asyncpg
import orjson

from remediator.errors import StoreUnavailable
from remediator.observability import get_logger
from remediator.settings import StoreSettings
from remediator.stores import rows
from remediator.stores import schema as schema_versions

log = get_logger("remediator.stores.postgres")

# The first key of the two-int advisory lock form: one namespace per purpose, so a hash collision
# between, say, an incident key and a holder can never make one wait on the other.
NS_MIGRATE = 0x52454D01
NS_HOLDER = 0x52454D02
NS_INCIDENT = 0x52454D03

# True while `holder` (a text column or parameter) owns a live liveness session in this schema.
HOLDER_ALIVE = (
    "EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted "
    f"AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.classid = {NS_HOLDER} "
    "AND l.objid = hashtext(current_schema() || ':' || {holder})::oid AND l.objsubid = 2)"
)

# Errors that mean "the database cannot be used right now", as opposed to a bug in a statement.
UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.InterfaceError,  # the connection is closed or broken
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, statement timeout, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: disk full, too many connections
    asyncpg.exceptions.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a failover left us on a reader
)


@contextlib.contextmanager
def unavailable_as_store_error(what: str) -> Iterator[None]:
    """Turn connection-level failures into StoreUnavailable (callers answer 503 and retry)."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise StoreUnavailable(f"postgresql {what}: {type(exc).__name__}: {exc}") from exc


def connect_kwargs(settings: StoreSettings, application: str = "remediator") -> dict[str, Any]:
    """Arguments of every connection: bounded connect and statements, our schema first."""
    timeout = settings.command_timeout.total_seconds()
    return {
        "dsn": settings.url,
        "timeout": settings.connect_timeout.total_seconds(),
        "command_timeout": timeout,
        "server_settings": {
            "search_path": settings.schema_name,
            "application_name": application,
            "statement_timeout": str(int(timeout * 1000)),
            "idle_in_transaction_session_timeout": str(int(timeout * 3000)),
            # A replica that vanishes without closing its socket is noticed within ~30 s.
            "tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "4",
        },
    }


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb in and out as Python values, encoded exactly as SQLite encodes its JSON."""
    await conn.set_type_codec("jsonb", encoder=rows.dumps, decoder=orjson.loads, schema="pg_catalog")


async def keep_session(conn: asyncpg.Connection) -> None:
    """Pool reset that costs no round trip: our statements leave no session state behind.

    asyncpg's default reset (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) runs on
    every release; only an unfinished transaction needs undoing here.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def create_pool(settings: StoreSettings) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        min_size=settings.pool_min, max_size=settings.pool_max, init=init_connection, reset=keep_session,
        max_inactive_connection_lifetime=60.0, **connect_kwargs(settings),
    )


async def migrate(pool: asyncpg.Pool, schema: str) -> list[int]:
    """Apply the versioned files not yet applied, in one transaction, under an advisory lock.

    Replicas starting together queue on the lock; the first applies, the others find it done. A
    schema written by newer code that this code cannot run on is refused, with nothing changed.
    """
    applied: list[int] = []
    known = schema_versions.migrations("postgres")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", NS_MIGRATE, schema)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                           "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())")
        await conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS oldest_code integer")
        done = {r["version"]: r["oldest"] for r in await conn.fetch(
            "SELECT version, coalesce(oldest_code, version) AS oldest FROM schema_migrations")}
        schema_versions.check_compatible(done, known, f"the PostgreSQL schema {schema}")
        for migration in known:
            if migration.version in done:
                continue
            await conn.execute(migration.sql)  # no arguments: the simple protocol runs the whole script
            await conn.execute("INSERT INTO schema_migrations (version, oldest_code) VALUES ($1, $2)",
                               migration.version, migration.oldest_code)
            applied.append(migration.version)
    return applied


def quote_ident(name: str) -> str:
    """A quoted SQL identifier (only for names that cannot be bind parameters)."""
    return '"' + name.replace('"', '""') + '"'


class HolderLiveness:
    """The dedicated session whose advisory lock says "this holder is alive"."""

    def __init__(self, settings: StoreSettings, holder: str, check_every: float = 2.0) -> None:
        self.settings, self.holder, self.check_every = settings, holder, check_every
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        await self._take()
        self._task = asyncio.create_task(self._keep(), name="pg-holder-liveness")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()

    async def _take(self) -> None:
        with unavailable_as_store_error("holder session"):
            conn = await asyncpg.connect(**connect_kwargs(self.settings, "remediator-liveness"))
            try:
                taken = await conn.fetchval("SELECT pg_try_advisory_lock($1, hashtext(current_schema() || ':' || $2))",
                                            NS_HOLDER, self.holder)
            except BaseException:
                conn.terminate()
                raise
        if not taken:
            conn.terminate()
            raise StoreUnavailable(f"another session holds the liveness lock of {self.holder}")
        self._conn = conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(self.settings.connect_timeout.total_seconds()):
                    await conn.close()
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.CancelledError):
                conn.terminate()

    async def _keep(self) -> None:
        """Probe the session; when it is gone, take the lock again on a new one as soon as possible."""
        while True:
            # Lost: try again soon, since until it is back this replica may not start any action.
            await asyncio.sleep(self.check_every if self.alive else min(self.check_every, 0.25))
            try:
                if self._conn is None or self._conn.is_closed():
                    await self._take()
                    log.info("holder_session_restored", holder=self.holder)
                    continue
                async with asyncio.timeout(self.settings.command_timeout.total_seconds()):
                    await self._conn.fetchval("SELECT 1")
            except (StoreUnavailable, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                if self._conn is not None:
                    log.warning("holder_session_lost", holder=self.holder, error=str(exc))
                    self._conn.terminate()
                    self._conn = None
