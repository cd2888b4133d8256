"""postgres.diagnostics: a read-only snapshot of a database server onto the incident timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from remediator.actions.base import ActionContext, ActionParams, PlannedCall, ReadOnlyAction
from remediator.actions.postgres.common import TARGET_ERRORS, TARGET_NAME, failure, first_row, redact_sql
from remediator.actions.targets import target_connections, unknown_target
from remediator.model import Execution

CONNECTIONS = """
SELECT coalesce(datname, '') AS database, coalesce(usename, '') AS user, coalesce(state, backend_type) AS state,
       count(*)::int AS sessions
FROM pg_stat_activity GROUP BY 1, 2, 3 ORDER BY sessions DESC, 1, 2, 3 LIMIT 50
"""
LONGEST = """
SELECT pid, coalesce(datname, '') AS database, coalesce(usename, '') AS user, state, wait_event_type, wait_event,
       round(extract(epoch FROM now() - query_start))::int AS seconds, query
FROM pg_stat_activity
WHERE state <> 'idle' AND query_start IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY query_start LIMIT $1
"""
# Every session waiting on a lock, with the sessions it waits for: the blocking tree's edges.
BLOCKED = """
SELECT pid, pg_blocking_pids(pid) AS blocked_by, coalesce(usename, '') AS user, state,
       round(extract(epoch FROM now() - query_start))::int AS seconds, query
FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0 ORDER BY query_start LIMIT 50
"""
STATEMENTS_SCHEMA = "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace " \
                    "WHERE e.extname = 'pg_stat_statements'"
SIZES = "SELECT datname AS database, pg_database_size(datname) AS bytes FROM pg_database WHERE datallowconn " \
        "ORDER BY bytes DESC LIMIT 50"


class DiagnosticsParams(ActionParams):
    target: str = Field(pattern=TARGET_NAME, description="a name under targets.postgres in settings")
    top: int = Field(10, ge=1, le=50, description="how many queries and statements to list")


class PostgresDiagnostics(ReadOnlyAction[DiagnosticsParams]):
    """Snapshot a PostgreSQL server onto the incident timeline; changes nothing.

    Connections by database, user and state; the longest running queries; the blocking lock tree;
    the top statements from pg_stat_statements when it is installed; database sizes. Query texts
    are recorded without their literals.

    ```yaml
    type: postgres.diagnostics
    params: {target: erp-primary, top: 10}
    ```
    """

    type_name = "postgres.diagnostics"
    Params = DiagnosticsParams
    permissions = ("postgres: pg_read_all_stats role", "postgres: CONNECT on the database")

    def target(self, params: DiagnosticsParams) -> str:
        return f"postgres:{params.target}"

    def refusal(self, params: DiagnosticsParams, ctx: ActionContext) -> str | None:
        return unknown_target(ctx.deps.settings.targets, "postgres", params.target)

    async def precheck(self, params: DiagnosticsParams, ctx: ActionContext) -> str | None:
        return (await first_row(ctx, params.target, "SELECT 1"))[1]

    async def plan_calls(self, params: DiagnosticsParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [PlannedCall("postgres", "SELECT", {"target": params.target, "view": view}) for view in
                ("pg_stat_activity by state", "longest queries", "pg_blocking_pids", "pg_stat_statements",
                 "pg_database_size")]

    async def run(self, params: DiagnosticsParams, ctx: ActionContext) -> Execution:
        try:
            snapshot = await self._snapshot(params, ctx)
        except TARGET_ERRORS as exc:
            return failure(exc, params.target)
        notes = [
            ("connections", f"{sum(r['sessions'] for r in snapshot['connections'])} sessions on {params.target}"),
            ("longest_queries", f"{len(snapshot['longest'])} longest running queries"),
            ("lock_waits", f"{len(snapshot['blocked'])} sessions waiting on locks"),
            ("top_statements", f"{len(snapshot['statements'])} top statements" if snapshot["statements"] is not None
             else "pg_stat_statements is not installed"),
            ("database_sizes", f"{len(snapshot['sizes'])} databases"),
        ]
        for name, message in notes:
            await ctx.timeline.note("diagnostics", f"postgres {params.target}: {message}",
                                    {"target": params.target, "section": name, "rows": snapshot[_KEYS[name]]})
        return Execution.succeeded(sections=[name for name, _ in notes],
                                   sessions=sum(r["sessions"] for r in snapshot["connections"]),
                                   blocked=len(snapshot["blocked"]))

    async def _snapshot(self, params: DiagnosticsParams, ctx: ActionContext) -> dict[str, Any]:
        pool = await target_connections(ctx.deps).postgres(params.target)
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            snapshot: dict[str, Any] = {
                "connections": [dict(r) for r in await conn.fetch(CONNECTIONS)],
                "longest": [_with_shape(r) for r in await conn.fetch(LONGEST, params.top)],
                "blocked": [_with_shape(r) for r in await conn.fetch(BLOCKED)],
                "sizes": [dict(r) for r in await conn.fetch(SIZES)],
                "statements": None,
            }
            schema = await conn.fetchval(STATEMENTS_SCHEMA)
            if schema is not None:
                # The extension's schema is an identifier that cannot be a bind parameter.
                quoted = await conn.fetchval("SELECT quote_ident($1)", schema)
                found = await conn.fetch(
                    f"SELECT queryid::text, calls, round(total_exec_time)::bigint AS total_ms, "  # noqa: S608
                    f"round(mean_exec_time::numeric, 2)::float AS mean_ms, rows, query "
                    f"FROM {quoted}.pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1", params.top)
                snapshot["statements"] = [_with_shape(r) for r in found]
        return snapshot


_KEYS = {"connections": "connections", "longest_queries": "longest", "lock_waits": "blocked",
         "top_statements": "statements", "database_sizes": "sizes"}


def _with_shape(row: Any) -> dict[str, Any]:
    values = dict(row)
    values["query"] = redact_sql(values.get("query"))
    return values
