"""postgres.* actions against a real server: a database, roles and sessions of this test's own."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from pydantic import ValidationError

from remediator.actions.postgres.connections import (
    CancelLongParams,
    CancelLongQueries,
    TerminateIdleConnections,
    TerminateIdleParams,
)
from remediator.actions.postgres.diagnostics import DiagnosticsParams, PostgresDiagnostics
from remediator.model import Outcome
from tests.actions.conftest import ContextFactory, Notes
from tests.support.harness import eventually

pytestmark = pytest.mark.integration


@dataclass
class Database:
    """A database with an application role, a protected role and a least-privilege operator role."""

    admin_dsn: str
    name: str
    app: str
    keeper: str
    operator: str

    def dsn(self, user: str, application: str = "") -> str:
        parts = urlsplit(self.admin_dsn)
        netloc = f"{user}@{parts.hostname}:{parts.port or 5432}"
        query = f"application_name={application}" if application else ""
        return urlunsplit((parts.scheme, netloc, f"/{self.name}", query, ""))

    def targets(self, user: str | None = None) -> dict[str, object]:
        return {"postgres": {"erp": {"dsn": self.dsn(user or self.operator), "statement_timeout": "5s"}}}

    async def sessions(self) -> dict[tuple[str, str], int]:
        """Client sessions in the database by (user, state), as the superuser sees them."""
        conn = await asyncpg.connect(self.admin_dsn)
        try:
            found = await conn.fetch("SELECT usename, state, count(*) AS n FROM pg_stat_activity "
                                     "WHERE datname = $1 AND application_name <> 'remediator-action' "
                                     "AND backend_type = 'client backend' GROUP BY 1, 2", self.name)
        finally:
            await conn.close()
        return {(r["usename"], r["state"]): r["n"] for r in found}


@pytest.fixture
async def database(pg_dsn: str) -> AsyncIterator[Database]:
    tag = secrets.token_hex(4)
    db = Database(pg_dsn, f"act_{tag}", f"act_app_{tag}", f"act_keep_{tag}", f"act_ops_{tag}")
    admin = await asyncpg.connect(pg_dsn)
    try:
        await admin.execute(f"CREATE ROLE {db.app} LOGIN; CREATE ROLE {db.keeper} LOGIN; "
                            f"CREATE ROLE {db.operator} LOGIN IN ROLE pg_signal_backend, pg_read_all_stats")
        await admin.execute(f"CREATE DATABASE {db.name} OWNER {db.app}")
        yield db
    finally:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db.name)
        await admin.execute(f"DROP DATABASE IF EXISTS {db.name} WITH (FORCE)")
        for role in (db.app, db.keeper, db.operator):
            await admin.execute(f"DROP ROLE IF EXISTS {role}")
        await admin.close()


async def test_idle_sessions_are_terminated_and_busy_and_protected_ones_are_not(
    database: Database, action_context: ContextFactory
) -> None:
    idle = [await asyncpg.connect(database.dsn(database.app)) for _ in range(20)]
    busy = await asyncpg.connect(database.dsn(database.app))
    working = asyncio.create_task(busy.execute("SELECT pg_sleep(20)"))
    kept_user = await asyncpg.connect(database.dsn(database.keeper))
    kept_app = await asyncpg.connect(database.dsn(database.app, "ward-kiosk"))
    await asyncio.sleep(1.2)
    ctx = action_context(database.targets())
    params = TerminateIdleParams(target="erp", database=database.name, idle_for="1s",
                                 except_users=(database.keeper,), except_applications=("ward-kiosk",))
    action = TerminateIdleConnections()
    assert await action.precheck(params, ctx) is None

    execution = await action.run(params, ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["terminated"] == 20 and execution.detail["by_user"] == {database.app: 20}
    assert {s["user"] for s in execution.detail["sessions"]} == {database.app}
    expected = {(database.app, "active"): 1, (database.app, "idle"): 1, (database.keeper, "idle"): 1}
    await eventually(lambda: _equal(database.sessions(), expected))  # backends exit just after the signal
    assert not working.done()
    for conn in idle:
        with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError)):
            await conn.fetchval("SELECT 1")
    working.cancel()
    for conn in (busy, kept_user, kept_app, *idle):
        conn.terminate()


async def test_at_most_n_per_run_and_a_dry_run_changes_nothing(
    database: Database, action_context: ContextFactory
) -> None:
    idle = [await asyncpg.connect(database.dsn(database.app)) for _ in range(5)]
    await asyncio.sleep(1.2)
    params = TerminateIdleParams(target="erp", database=database.name, idle_for="1s",
                                 max_sessions=3)
    action = TerminateIdleConnections()
    planned = await action.plan_calls(params, action_context(database.targets(), dry_run=True))
    assert [c.operation for c in planned] == ["pg_terminate_backend"] * 3
    assert await database.sessions() == {(database.app, "idle"): 5}
    execution = await action.run(params, action_context(database.targets()))
    assert execution.detail["terminated"] == 3
    await eventually(lambda: _equal(database.sessions(), {(database.app, "idle"): 2}))
    for conn in idle:
        conn.terminate()


async def test_long_queries_are_cancelled_except_for_protected_users(
    database: Database, action_context: ContextFactory
) -> None:
    slow = await asyncpg.connect(database.dsn(database.app))
    protected = await asyncpg.connect(database.dsn(database.keeper))
    slow_query = asyncio.create_task(slow.execute("SELECT pg_sleep(20) WHERE 'patient 4711' <> ''"))
    protected_query = asyncio.create_task(protected.execute("SELECT pg_sleep(20)"))
    await asyncio.sleep(1.2)
    params = CancelLongParams(target="erp", database=database.name, running_for="1s",
                              except_users=(database.keeper,))
    execution = await CancelLongQueries().run(params, action_context(database.targets()))
    assert execution.detail["cancelled"] == 1 and execution.detail["by_user"] == {database.app: 1}
    assert "4711" not in str(execution.detail)  # query shapes only: no literals in the audit record
    with pytest.raises(asyncpg.QueryCanceledError):
        await slow_query
    assert not protected_query.done()
    protected_query.cancel()
    slow.terminate()
    protected.terminate()


@asynccontextmanager
async def long_queries(db: Database, seconds: int) -> AsyncIterator[tuple[asyncio.Task[str], asyncio.Task[str]]]:
    """The application's and the DBA's (keeper's) queries, both running `seconds`, both started now;
    their sessions are ended afterwards."""
    app = await asyncpg.connect(db.dsn(db.app))
    dba = await asyncpg.connect(db.dsn(db.keeper))
    app_query = asyncio.create_task(app.execute(f"SELECT pg_sleep({seconds}) WHERE 'ward 7' <> ''"))
    dba_query = asyncio.create_task(dba.execute(f"SELECT pg_sleep({seconds})"))
    try:
        yield app_query, dba_query
    finally:
        app.terminate()
        dba.terminate()
        await asyncio.gather(app_query, dba_query, return_exceptions=True)


async def test_only_the_named_roles_queries_are_cancelled(database: Database, action_context: ContextFactory) -> None:
    # The DBA's query runs as long as the application's, and nobody listed it in except_users:
    # only_users alone keeps it from being cancelled.
    async with long_queries(database, 20) as (app_query, dba_query):
        await asyncio.sleep(1.2)
        params = CancelLongParams(target="erp", database=database.name, running_for="1s", only_users=(database.app,))
        execution = await CancelLongQueries().run(params, action_context(database.targets()))
        assert execution.detail["cancelled"] == 1 and execution.detail["by_user"] == {database.app: 1}
        with pytest.raises(asyncpg.QueryCanceledError):
            await app_query
        assert not dba_query.done()


async def test_a_role_without_the_needed_privileges_fails_the_precheck(
    database: Database, action_context: ContextFactory
) -> None:
    params = TerminateIdleParams(target="erp", database=database.name)
    reason = await TerminateIdleConnections().precheck(params, action_context(database.targets(database.app)))
    assert reason is not None and "pg_signal_backend" in reason and "pg_read_all_stats" in reason


@pytest.mark.parametrize("name", ["erp'; DROP TABLE patients; --", "erp db", "", "x" * 80])
def test_names_from_alert_labels_are_validated_before_anything_runs(name: str) -> None:
    with pytest.raises(ValidationError):
        TerminateIdleParams(target="erp", database=name)


async def test_diagnostics_put_a_snapshot_with_the_lock_tree_on_the_timeline(
    database: Database, action_context: ContextFactory
) -> None:
    holder = await asyncpg.connect(database.dsn(database.app))
    waiter = await asyncpg.connect(database.dsn(database.app))
    await holder.execute("CREATE TABLE beds (id int)")
    await holder.execute("BEGIN; LOCK TABLE beds IN ACCESS EXCLUSIVE MODE")
    waiting = asyncio.create_task(waiter.execute("SELECT * FROM beds"))
    await asyncio.sleep(0.3)
    ctx = action_context(database.targets())
    execution = await PostgresDiagnostics().run(DiagnosticsParams(target="erp"), ctx)
    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["blocked"] >= 1
    assert isinstance(ctx.timeline, Notes)
    sections = {data["section"]: data["rows"] for _, _, data in ctx.timeline.notes}
    assert set(sections) == {"connections", "longest_queries", "lock_waits", "top_statements", "database_sizes"}
    holder_pid = holder.get_server_pid()
    assert any(holder_pid in row["blocked_by"] for row in sections["lock_waits"])
    assert any(row["database"] == database.name for row in sections["database_sizes"])
    await holder.execute("ROLLBACK")
    await waiting
    holder.terminate()
    waiter.terminate()


async def _equal(found: Awaitable[dict[tuple[str, str], int]], expected: dict[tuple[str, str], int]) -> bool:
    return await found == expected


async def test_a_dry_run_that_cannot_reach_the_database_says_so_instead_of_failing(
    action_context: ContextFactory, unused_tcp_port: int
) -> None:
    """In dry-run the plan lists the sessions it would end; unreachable, it states its criteria."""
    unreachable = {"postgres": {"erp": {"dsn": f"postgresql://nobody@127.0.0.1:{unused_tcp_port}/erp",
                                        "connect_timeout": "1s"}}}
    params = TerminateIdleParams(target="erp", database="erp", idle_for="10m", max_sessions=7)
    (planned,) = await TerminateIdleConnections().plan_calls(params, action_context(unreachable, dry_run=True))
    assert planned.operation == "pg_terminate_backend"
    assert planned.args["max_sessions"] == 7 and planned.args["idle_for"] == 600
    assert str(planned.args["live_state"]).startswith("not read:")
    cancel = CancelLongParams(target="erp", database="erp", running_for="5m")
    (planned,) = await CancelLongQueries().plan_calls(cancel, action_context(unreachable, dry_run=True))
    assert planned.operation == "pg_cancel_backend" and "live_state" in planned.args
