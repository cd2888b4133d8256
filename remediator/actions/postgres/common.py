"""What the postgres.* actions share: parameter types, failure classification, query redaction."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

import asyncpg
from pydantic import BeforeValidator, Field, PlainSerializer

from remediator.actions.base import ActionContext, ActionParams
from remediator.actions.targets import APPLICATION_NAME, TargetUnavailable, target_connections
from remediator.model import Execution, FailureReason
from remediator.settings import parse_duration

TARGET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
PG_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.$-]{0,62}$"  # database and role names as alerts carry them
# The daemon's own sessions, never signalled whatever a policy says (the store may share the server).
OWN_APPLICATIONS = (APPLICATION_NAME, "remediator", "remediator-liveness")

# A duration in policies (`10m`), stored in requests as seconds (`600s`) so it validates again.
Seconds = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda d: f"{d.total_seconds():g}s", return_type=str, when_used="json"),
]
PgName = Annotated[str, Field(pattern=PG_NAME)]


class SessionParams(ActionParams):
    """A database's sessions on a named target, less the ones a policy protects."""

    target: str = Field(pattern=TARGET_NAME, description="a name under targets.postgres in settings")
    database: PgName
    except_users: tuple[PgName, ...] = Field((), max_length=50)
    except_applications: tuple[Annotated[str, Field(max_length=63)], ...] = Field((), max_length=50)


def protected(params: SessionParams, ctx: ActionContext) -> tuple[list[str], list[str]]:
    """Users and application names never signalled: the policy's, the target's and our own."""
    target = target_connections(ctx.deps).postgres_target(params.target)
    users = sorted({*params.except_users, *target.protected_users})
    applications = sorted({*params.except_applications, *target.protected_applications, *OWN_APPLICATIONS})
    return users, applications


# Sessions a signal may ever reach: client backends (never autovacuum, walsenders or other
# background workers) of ordinary roles (never superusers or replication roles), never our own.
ELIGIBLE = """
    FROM pg_stat_activity a JOIN pg_roles r ON r.oid = a.usesysid
    WHERE a.datname = $1 AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
      AND NOT r.rolsuper AND NOT r.rolreplication
      AND NOT (a.usename = ANY($2::text[])) AND NOT (coalesce(a.application_name, '') = ANY($3::text[]))
"""

PRIVILEGES = """
SELECT r.rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS can_signal,
       r.rolsuper OR pg_has_role(current_user, 'pg_read_all_stats', 'MEMBER') AS can_read
FROM pg_roles r WHERE r.rolname = current_user
"""


async def first_row(ctx: ActionContext, target: str, query: str) -> tuple[Any, str | None]:
    """The first row of a read-only `query` on the target, or why the target cannot be reached."""
    try:
        pool = await target_connections(ctx.deps).postgres(target)
        return await pool.fetchrow(query), None
    except TargetUnavailable as exc:
        return None, str(exc)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return None, f"target {target!r} cannot be reached: {type(exc).__name__}: {exc}"


async def missing_privileges(ctx: ActionContext, target: str) -> str | None:
    """Why the target's role cannot see or signal other sessions, or None."""
    row, unreachable = await first_row(ctx, target, PRIVILEGES)
    if unreachable is not None:
        return unreachable
    missing = [name for name, ok in (("pg_signal_backend", row["can_signal"]), ("pg_read_all_stats", row["can_read"]))
               if not ok]
    return f"the target's role lacks {', '.join(missing)} membership" if missing else None


def failure(exc: BaseException, target: str) -> Execution:
    """An exception from a target, classified: connection trouble retries, the rest does not."""
    if isinstance(exc, TargetUnavailable):
        return Execution.failed(FailureReason.CONNECTION, str(exc), retryable=True)
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return Execution.failed(FailureReason.ACCESS_DENIED, f"{target}: {exc}")
    if isinstance(exc, asyncpg.QueryCanceledError):
        return Execution.failed(FailureReason.TIMEOUT, f"{target}: statement timeout; some signals may have been "
                                "sent, check the target")
    if isinstance(exc, asyncpg.TooManyConnectionsError | asyncpg.CannotConnectNowError |
                  asyncpg.PostgresConnectionError | asyncpg.InterfaceError | OSError | TimeoutError):
        return Execution.failed(FailureReason.CONNECTION, f"{target}: {type(exc).__name__}: {exc}", retryable=True)
    return Execution.failed(FailureReason.INTERNAL, f"{target}: {type(exc).__name__}: {exc}")


TARGET_ERRORS = (TargetUnavailable, OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

_LITERAL = re.compile(r"'(?:[^']|'')*'|\$\$.*?\$\$|\b\d+(?:\.\d+)?\b", re.S)


def redact_sql(text: str | None, limit: int = 160) -> str:
    """A query's shape without its literals: timelines and audit records never hold patient data."""
    if not text:
        return ""
    shape = " ".join(_LITERAL.sub("?", text).split())
    return shape if len(shape) <= limit else shape[: limit - 1] + "…"


def session_view(row: Any) -> dict[str, Any]:
    return {"pid": row["pid"], "user": row["usename"], "application": row["application_name"] or "",
            "state": row["state"], "seconds": row["seconds"]}
