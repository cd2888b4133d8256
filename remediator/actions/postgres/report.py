"""postgres.report: a named query from the settings, read-only, onto the incident timeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import asyncpg
from pydantic import AwareDatetime, Field

from remediator.actions.base import ActionContext, ActionParams, PlannedCall, ReadOnlyAction
from remediator.actions.postgres.common import TARGET_ERRORS, TARGET_NAME, Seconds, failure, first_row
from remediator.actions.postgres.report_rows import Freshness, ReportMisfit, cell, freshness, rows_view
from remediator.actions.targets import target_connections
from remediator.model import Execution, FailureReason, Outcome
from remediator.settings.base import IDENTIFIER_RE
from remediator.settings.reports import MAX_TEXT, REPORT_NAME, BindValue, NamedReport, bind_value
from remediator.settings.targets import TargetSettings

ArgValue = bool | int | float | Annotated[str, Field(max_length=MAX_TEXT)]


class ReportParams(ActionParams):
    target: str = Field(pattern=TARGET_NAME, description="a name under targets.postgres in settings")
    report: str = Field(pattern=REPORT_NAME, description="a name under that target's reports")
    args: dict[Annotated[str, Field(pattern=IDENTIFIER_RE)], ArgValue] = Field(
        {}, max_length=20, description="values of the bind parameters the report declares")
    gap_since: AwareDatetime | None = Field(
        None, description="reference time of the report's freshness check (default: when it runs)")
    max_gap: Seconds | None = Field(None, ge=timedelta(seconds=1),
                                    description="instead of the report's freshness.max_gap")


class ReportRefused(Exception):
    """The request does not fit the settings: an unknown target or report, arguments it does not declare."""


@dataclass(frozen=True, slots=True)
class ResolvedReport:
    """A report with its bind values, ready to run."""

    name: str
    report: NamedReport
    values: list[BindValue]

    def plan(self, target: str) -> PlannedCall:
        report = self.report
        return PlannedCall("postgres", "report", {
            "target": target, "report": self.name, "sql": report.sql.strip(),
            "args": {p.name: cell(v) for p, v in zip(report.params, self.values, strict=True)},
            "read_only": True, "timeout": report.timeout.total_seconds(), "max_rows": report.max_rows})


def resolve(params: ReportParams, targets: TargetSettings) -> ResolvedReport:
    """The named report with its arguments validated into their declared types; ReportRefused if not."""
    target = targets.postgres.get(params.target)
    if target is None:
        raise ReportRefused(f"no PostgreSQL target named {params.target!r} under targets.postgres")
    report = target.reports.get(params.report)
    if report is None:
        known = ", ".join(sorted(target.reports)) or "none"
        raise ReportRefused(f"no report {params.report!r} under targets.postgres.{params.target}.reports "
                            f"(it has: {known})")
    declared = {p.name for p in report.params}
    if unknown := sorted(set(params.args) - declared):
        raise ReportRefused(f"report {params.report!r} declares no parameter {', '.join(unknown)}")
    if report.freshness is None and (params.gap_since or params.max_gap):
        raise ReportRefused(f"report {params.report!r} has no freshness check: gap_since and max_gap mean nothing")
    values: list[BindValue] = []
    for param in report.params:
        given = params.args.get(param.name, param.default)
        if given is None:
            raise ReportRefused(f"report {params.report!r} needs a value for {param.name}")
        try:
            values.append(bind_value(param, given))
        except ValueError as exc:
            raise ReportRefused(f"report {params.report!r}: {exc}") from None
    return ResolvedReport(params.report, report, values)


def configuration_problem(params: ReportParams, targets: TargetSettings) -> str | None:
    """Why these params cannot run with these settings (what `remediator test` reports), or None."""
    try:
        resolve(params, targets)
    except ReportRefused as exc:
        return str(exc)
    return None


class PostgresReport(ReadOnlyAction[ReportParams]):
    """Run a named read-only query from the settings and put its rows on the incident timeline.

    The SQL is the report's, under `targets.postgres.<target>.reports` in settings; a policy names
    the report and may pass values for the bind parameters it declares (validated into their types:
    never SQL). It runs in a READ ONLY transaction under the report's statement timeout, and at most
    `max_rows` rows are read (the rest is reported as truncated). With a `freshness` check in the
    report, the newest value of each named timestamp column is compared with a reference time
    (`gap_since`, default: when it runs): a gap above `max_gap` fails the run (check_failed), so the
    policy's next step can escalate; a check that passed verifies as recovered. Rows land on the
    timeline and in no notification: a report must not select patient data.

    ```yaml
    type: postgres.report
    params:
      target: erp-primary
      report: patient-data-freshness
      max_gap: 10m
    ```
    """

    type_name = "postgres.report"
    Params = ReportParams
    permissions = ("postgres: CONNECT on the database", "postgres: SELECT on what the reports read")

    def target(self, params: ReportParams) -> str:
        return f"postgres:{params.target}"

    def refusal(self, params: ReportParams, ctx: ActionContext) -> str | None:
        return configuration_problem(params, ctx.deps.settings.targets)

    async def precheck(self, params: ReportParams, ctx: ActionContext) -> str | None:
        """The target answers (so a dry run records what enforce would: an unreachable database)."""
        return (await first_row(ctx, params.target, "SELECT 1"))[1]

    async def plan_calls(self, params: ReportParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            return [resolve(params, ctx.deps.settings.targets).plan(params.target)]
        except ReportRefused:
            return []  # nothing would run: the precheck refuses it

    async def run(self, params: ReportParams, ctx: ActionContext) -> Execution:
        try:
            resolved = resolve(params, ctx.deps.settings.targets)
        except ReportRefused as exc:
            return Execution.failed(FailureReason.PRECHECK_FAILED, str(exc))
        try:
            rows, truncated = await self._read(resolved, params.target, ctx)
        except TARGET_ERRORS as exc:
            return report_failure(exc, params.target, resolved)
        check = resolved.report.freshness
        try:
            fresh = freshness(check, rows, params.gap_since or ctx.clock.now(), params.max_gap) if check else None
        except ReportMisfit as exc:
            return Execution.failed(FailureReason.VALIDATION, f"report {resolved.name!r}: {exc}")
        return await self._record(resolved, params.target, ctx, (rows, truncated), fresh)

    async def verify(self, params: ReportParams, ctx: ActionContext) -> bool | None:
        """A freshness check that passed leaves nothing to recover (a policy's next step is for a
        gap); one that failed never recovers. A report without a check has no condition of its own."""
        if configuration_problem(params, ctx.deps.settings.targets) is not None:
            return None
        if resolve(params, ctx.deps.settings.targets).report.freshness is None:
            return None
        return ctx.execution is not None and ctx.execution.outcome is Outcome.SUCCEEDED

    async def _read(self, resolved: ResolvedReport, target: str,
                    ctx: ActionContext) -> tuple[list[asyncpg.Record], bool]:
        """At most `max_rows` rows, read through a cursor; True when more were there."""
        report = resolved.report
        seconds = report.timeout.total_seconds()
        pool = await target_connections(ctx.deps).postgres(target)
        async with pool.acquire() as conn, conn.transaction(readonly=True):
            await conn.execute("SELECT set_config('statement_timeout', $1, true)", f"{round(seconds * 1000)}ms")
            # The server's timeout fires first; the client's bound is only for a server that does not answer.
            cursor = await conn.cursor(report.sql, *resolved.values, timeout=seconds + 1)
            rows = await cursor.fetch(report.max_rows + 1, timeout=seconds + 1)
        return rows[: report.max_rows], len(rows) > report.max_rows

    async def _record(self, resolved: ResolvedReport, target: str, ctx: ActionContext,
                      read: tuple[list[asyncpg.Record], bool], fresh: Freshness | None) -> Execution:
        rows, truncated = read
        count = f"{len(rows)} row{'' if len(rows) == 1 else 's'}" + (
            f" (truncated at max_rows {resolved.report.max_rows})" if truncated else "")
        message = f"postgres {target} report {resolved.name}: {count}" + (f"; {fresh.summary()}" if fresh else "")
        columns = list(rows[0].keys()) if rows else []
        detail: dict[str, Any] = {"report": resolved.name, "row_count": len(rows), "truncated": truncated,
                                  "columns": columns}
        if fresh is not None:
            detail["freshness"] = fresh.as_dict()
        await ctx.timeline.note("report", message, {
            "target": target, "description": resolved.report.description, **detail, "rows": rows_view(rows)})
        if fresh is not None and fresh.stale:
            return Execution.failed(FailureReason.CHECK_FAILED, message, **detail)
        return Execution.succeeded(**detail)


def report_failure(exc: BaseException, target: str, resolved: ResolvedReport) -> Execution:
    """A report's failure, in the words that fit a report (never retried when the report is at fault)."""
    name = resolved.name
    if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
        return Execution.failed(FailureReason.VALIDATION, f"{target}: report {name!r} tried to write; the "
                                f"read-only transaction refused it ({exc}). Fix the report's SQL")
    if isinstance(exc, asyncpg.QueryCanceledError):
        return Execution.failed(FailureReason.TIMEOUT, f"{target}: report {name!r} ran past its timeout of "
                                f"{resolved.report.timeout.total_seconds():g}s and was cancelled")
    if isinstance(exc, asyncpg.PostgresSyntaxError | asyncpg.UndefinedTableError | asyncpg.UndefinedColumnError
                  | asyncpg.DataError):
        return Execution.failed(FailureReason.VALIDATION, f"{target}: report {name!r}: {exc}")
    return failure(exc, target)
