"""postgres.terminate_idle_connections and postgres.cancel_long_queries.

Both pick sessions in one statement from pg_stat_activity and signal exactly those, at most N per
run, oldest first. Every value that reaches SQL (database, users, applications, thresholds) is a
bind parameter. Never signalled: superusers, replication roles, background workers (autovacuum,
walsenders), the daemon's own sessions, and the users and application names protected by the
policy or by the target's settings. The report names how many sessions and whose.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from pydantic import Field

from remediator.actions.base import Action, ActionContext, PlannedCall
from remediator.actions.postgres.common import (
    ELIGIBLE,
    TARGET_ERRORS,
    PgName,
    Seconds,
    SessionParams,
    failure,
    missing_privileges,
    protected,
    redact_sql,
    session_view,
)
from remediator.actions.targets import target_connections, unknown_target
from remediator.model import Execution

IdleState = Literal["idle", "idle in transaction", "idle in transaction (aborted)"]

IDLE_SESSIONS = f"""
    SELECT a.pid, a.usename, a.application_name, a.state,
           round(extract(epoch FROM now() - a.state_change))::int AS seconds
    {ELIGIBLE}
      AND a.state = ANY($4::text[]) AND a.state_change < now() - make_interval(secs => $5)
    ORDER BY a.state_change LIMIT $6
"""
LONG_QUERIES = f"""
    SELECT a.pid, a.usename, a.application_name, a.state, a.query,
           round(extract(epoch FROM now() - a.query_start))::int AS seconds
    {ELIGIBLE}
      AND a.state = 'active' AND a.query_start < now() - make_interval(secs => $4)
      AND a.query NOT ILIKE 'autovacuum:%'
      AND (cardinality($6::text[]) = 0 OR a.usename = ANY($6::text[]))
    ORDER BY a.query_start LIMIT $5
"""


class TerminateIdleParams(SessionParams):
    idle_for: Seconds = Field(timedelta(minutes=10), ge=timedelta(seconds=1))
    states: tuple[IdleState, ...] = Field(("idle", "idle in transaction", "idle in transaction (aborted)"),
                                          min_length=1)
    max_sessions: int = Field(50, ge=1, le=1000)


class TerminateIdleConnections(Action[TerminateIdleParams]):
    """Terminate sessions idle (or idle in transaction) longer than `idle_for` in one database.

    ```yaml
    type: postgres.terminate_idle_connections
    params:
      target: erp-primary
      database: "{labels.datname}"
      idle_for: 10m
      states: [idle, idle in transaction]
      max_sessions: 50
      except_users: [erp_migrations]
      except_applications: [pgbouncer]
    ```
    """

    type_name = "postgres.terminate_idle_connections"
    Params = TerminateIdleParams
    # pg_signal_backend: terminate other roles' sessions; pg_read_all_stats: see their state.
    permissions = ("postgres: pg_signal_backend role", "postgres: pg_read_all_stats role",
                   "postgres: CONNECT on the database")

    def target(self, params: TerminateIdleParams) -> str:
        return f"postgres:{params.target}/{params.database}"

    def refusal(self, params: TerminateIdleParams, ctx: ActionContext) -> str | None:
        return unknown_target(ctx.deps.settings.targets, "postgres", params.target)

    async def precheck(self, params: TerminateIdleParams, ctx: ActionContext) -> str | None:
        return await missing_privileges(ctx, params.target)

    def _args(self, params: TerminateIdleParams, ctx: ActionContext) -> list[Any]:
        users, applications = protected(params, ctx)
        return [params.database, users, applications, list(params.states), params.idle_for.total_seconds(),
                params.max_sessions]

    async def plan_calls(self, params: TerminateIdleParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        """The sessions `run` would terminate now (read-only); the criteria when they cannot be read."""
        try:
            pool = await target_connections(ctx.deps).postgres(params.target)
            found = await pool.fetch(IDLE_SESSIONS, *self._args(params, ctx))
        except TARGET_ERRORS as exc:
            return [unread("pg_terminate_backend", params, exc, idle_for=params.idle_for.total_seconds(),
                           states=list(params.states), max_sessions=params.max_sessions)]
        return [PlannedCall("postgres", "pg_terminate_backend", {"target": params.target, **session_view(r)})
                for r in found]

    async def run(self, params: TerminateIdleParams, ctx: ActionContext) -> Execution:
        try:
            pool = await target_connections(ctx.deps).postgres(params.target)
            found = await pool.fetch(
                f"SELECT s.*, pg_terminate_backend(s.pid) AS signalled FROM ({IDLE_SESSIONS}) s",
                *self._args(params, ctx))
        except TARGET_ERRORS as exc:
            return failure(exc, params.target)
        return _report(found, "terminated")


def unread(operation: str, params: SessionParams, exc: BaseException, **criteria: Any) -> PlannedCall:
    """A dry-run plan whose live list could not be read (target unreachable, or `simulate`)."""
    return PlannedCall("postgres", operation, {"target": params.target, "database": params.database, **criteria,
                                               "live_state": f"not read: {exc}"})


class CancelLongParams(SessionParams):
    running_for: Seconds = Field(timedelta(minutes=5), ge=timedelta(seconds=1))
    terminate: bool = False  # end the whole session (pg_terminate_backend) instead of the query
    max_queries: int = Field(20, ge=1, le=500)
    only_users: tuple[PgName, ...] = Field(
        (), max_length=50, description="signal only these roles' queries (the application's); empty: any eligible")


class CancelLongQueries(Action[CancelLongParams]):
    """Cancel queries active longer than `running_for` in one database (or terminate their sessions).

    Autovacuum and other background workers are never touched; with `only_users`, nobody but those
    roles is (the runbook cancels the application's queries, never a DBA's or a migration's).

    ```yaml
    type: postgres.cancel_long_queries
    params:
      target: erp-primary
      database: erp
      running_for: 5m
      max_queries: 10
      only_users: [erp_app]
      except_users: [erp_reporting]
    ```
    """

    type_name = "postgres.cancel_long_queries"
    Params = CancelLongParams
    permissions = ("postgres: pg_signal_backend role", "postgres: pg_read_all_stats role",
                   "postgres: CONNECT on the database")

    def target(self, params: CancelLongParams) -> str:
        return f"postgres:{params.target}/{params.database}"

    def refusal(self, params: CancelLongParams, ctx: ActionContext) -> str | None:
        return unknown_target(ctx.deps.settings.targets, "postgres", params.target)

    async def precheck(self, params: CancelLongParams, ctx: ActionContext) -> str | None:
        return await missing_privileges(ctx, params.target)

    def _args(self, params: CancelLongParams, ctx: ActionContext) -> list[Any]:
        users, applications = protected(params, ctx)
        return [params.database, users, applications, params.running_for.total_seconds(), params.max_queries,
                list(params.only_users)]

    async def plan_calls(self, params: CancelLongParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        operation = "pg_terminate_backend" if params.terminate else "pg_cancel_backend"
        try:
            pool = await target_connections(ctx.deps).postgres(params.target)
            found = await pool.fetch(LONG_QUERIES, *self._args(params, ctx))
        except TARGET_ERRORS as exc:
            return [unread(operation, params, exc, running_for=params.running_for.total_seconds(),
                           max_queries=params.max_queries)]
        return [PlannedCall("postgres", operation, {"target": params.target, **session_view(r),
                                                    "query": redact_sql(r["query"])}) for r in found]

    async def run(self, params: CancelLongParams, ctx: ActionContext) -> Execution:
        try:
            pool = await target_connections(ctx.deps).postgres(params.target)
            found = await pool.fetch(
                f"SELECT s.*, CASE WHEN $7 THEN pg_terminate_backend(s.pid) ELSE pg_cancel_backend(s.pid) END "
                f"AS signalled FROM ({LONG_QUERIES}) s", *self._args(params, ctx), params.terminate)
        except TARGET_ERRORS as exc:
            return failure(exc, params.target)
        return _report(found, "terminated" if params.terminate else "cancelled")


def _report(found: Sequence[Any], verb: str) -> Execution:
    """How many sessions were signalled and whose; a session gone meanwhile counts as skipped."""
    done = [r for r in found if r["signalled"]]
    sessions = [{**session_view(r), **({"query": redact_sql(r["query"])} if "query" in r else {})} for r in done]
    return Execution.succeeded(**{verb: len(done)}, skipped=len(found) - len(done),
                               by_user=dict(Counter(r["usename"] for r in done)), sessions=sessions)
