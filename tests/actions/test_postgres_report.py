"""postgres.report against a real server: the runbook's freshness check and audit-log query, and
what a report must never do (write, run on, read without bound, run a report nobody configured)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from pydantic import ValidationError

from remediator.actions.postgres.report import PostgresReport, ReportParams
from remediator.clock import FakeClock
from remediator.model import FailureReason, Outcome
from remediator.settings import Settings, load_settings
from tests.actions.conftest import ContextFactory, Notes, post_alert
from tests.actions.test_postgres_actions import Database, database  # noqa: F401  (the fixture)
from tests.conftest import ROOT
from tests.support.daemon import Daemon, DaemonFactory

pytestmark = pytest.mark.integration
REPORT = PostgresReport()

# The runbook's integrity check after a failover (5.1) and its DB audit-log query (8.2), exactly
# as docs/settings.example.yaml writes them.
EXAMPLE_REPORTS = load_settings(ROOT / "docs" / "settings.example.yaml", environ={}).targets.postgres[
    "erp-primary"].reports
FRESHNESS = EXAMPLE_REPORTS["patient-data-freshness"].model_dump(mode="json")
AUDIT = EXAMPLE_REPORTS["audit-bulk-reads"].model_dump(mode="json")


@pytest.fixture
async def erp(database: Database) -> AsyncIterator[Database]:  # noqa: F811
    """The ERP's tables the reports read, owned by the application role (which could write them)."""
    conn = await asyncpg.connect(database.dsn(database.app))
    try:
        await conn.execute("""
            CREATE SCHEMA patient; CREATE SCHEMA room; CREATE SCHEMA audit;
            CREATE TABLE patient.patients (id serial, name text, created_at timestamptz NOT NULL);
            CREATE TABLE room.vitals (id serial, patient_id int, recorded_at timestamptz NOT NULL);
            CREATE TABLE audit.access_logs (id serial, user_id text, action text, affected_rows int,
                                            created_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO patient.patients (name, created_at) VALUES
                ('Kim', '2026-01-12 02:50:00+00'), ('Lee', '2026-01-12 02:58:00+00');
            INSERT INTO room.vitals (patient_id, recorded_at) VALUES
                (1, '2026-01-12 02:10:00+00'), (2, '2026-01-12 02:20:00+00');
            INSERT INTO audit.access_logs (user_id, action, affected_rows) VALUES
                ('nurse-0042', 'SELECT', 3), ('clerk-0007', 'SELECT', 4200), ('clerk-0007', 'UPDATE', 900);
        """)
    finally:
        await conn.close()
    yield database


def targets(db: Database, **reports: dict[str, Any]) -> dict[str, Any]:
    return {"postgres": {"erp": {"dsn": db.dsn(db.app), "reports": reports}}}


async def count(db: Database, table: str) -> int:
    conn = await asyncpg.connect(db.dsn(db.app))
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await conn.close()


def notes(ctx: Any) -> list[tuple[str, str, dict[str, Any]]]:
    assert isinstance(ctx.timeline, Notes)
    return ctx.timeline.notes


async def test_freshness_within_the_bound_is_recorded_and_succeeds(erp: Database,
                                                                   action_context: ContextFactory) -> None:
    ctx = action_context(targets(erp, freshness=FRESHNESS))
    params = ReportParams(target="erp", report="freshness", gap_since="2026-01-12T03:00:00Z", max_gap="2h")

    assert REPORT.refusal(params, ctx) is None and await REPORT.precheck(params, ctx) is None
    execution = await REPORT.run(params, ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    columns = execution.detail["freshness"]["columns"]
    assert columns == {"newest_patient": {"newest": "2026-01-12T02:58:00+00:00", "gap_seconds": 120.0},
                       "newest_vital": {"newest": "2026-01-12T02:20:00+00:00", "gap_seconds": 2400.0}}
    [(kind, message, data)] = notes(ctx)
    assert kind == "report" and data["report"] == "freshness" and data["row_count"] == 1
    assert data["rows"] == [{"newest_patient": "2026-01-12T02:58:00+00:00",
                             "newest_vital": "2026-01-12T02:20:00+00:00"}]
    assert "newest_vital is 0h40m00s behind" in message and "within 2h00m00s" in message


async def test_a_gap_above_the_bound_fails_the_run_so_the_policy_can_escalate(
        erp: Database, action_context: ContextFactory) -> None:
    """Vital signs stopped 40 minutes before the failover: more than the report's 15 minutes."""
    ctx = action_context(targets(erp, freshness=FRESHNESS))
    params = ReportParams(target="erp", report="freshness", gap_since="2026-01-12T03:00:00Z")

    execution = await REPORT.run(params, ctx)

    assert execution.outcome is Outcome.FAILED and execution.reason is FailureReason.CHECK_FAILED
    assert execution.retryable is False
    assert execution.detail["freshness"]["stale"] == ["newest_vital"]
    assert execution.detail["freshness"]["max_gap_seconds"] == 900.0
    assert "stale: more than 0h15m00s" in execution.detail["error"]
    [(_, message, data)] = notes(ctx)  # recorded on the timeline all the same
    assert data["freshness"]["stale"] == ["newest_vital"] and "stale" in message


async def test_a_passed_check_verifies_as_recovered_a_failed_one_never_and_a_plain_report_has_no_say(
        erp: Database, action_context: ContextFactory) -> None:
    ctx = action_context(targets(erp, freshness=FRESHNESS, audit=AUDIT))
    fresh = ReportParams(target="erp", report="freshness", gap_since="2026-01-12T03:00:00Z", max_gap="2h")
    stale = ReportParams(target="erp", report="freshness", gap_since="2026-01-12T03:00:00Z")
    plain = ReportParams(target="erp", report="audit")
    for params, recovered in ((fresh, True), (stale, False), (plain, None)):
        execution = await REPORT.run(params, ctx)
        assert await REPORT.verify(params, replace(ctx, execution=execution)) is recovered, params


async def test_an_empty_table_has_no_newest_row_and_is_stale(erp: Database, action_context: ContextFactory) -> None:
    conn = await asyncpg.connect(erp.dsn(erp.app))
    await conn.execute("DELETE FROM room.vitals")
    await conn.close()
    ctx = action_context(targets(erp, freshness=FRESHNESS))
    execution = await REPORT.run(ReportParams(target="erp", report="freshness", max_gap="1d",
                                              gap_since="2026-01-12T03:00:00Z"), ctx)
    assert execution.reason is FailureReason.CHECK_FAILED
    assert execution.detail["freshness"]["columns"]["newest_vital"] == {"newest": None, "gap_seconds": None}
    assert "newest_vital has no value" in execution.detail["error"]


async def test_the_audit_log_query_binds_typed_arguments(erp: Database, action_context: ContextFactory) -> None:
    """Arguments rendered from alert labels arrive as text; they are bound as the report declares."""
    ctx = action_context(targets(erp, audit=AUDIT))
    execution = await REPORT.run(ReportParams(target="erp", report="audit", args={"min_rows": "100"}), ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["row_count"] == 1 and execution.detail["columns"] == [
        "id", "user_id", "action", "affected_rows", "created_at"]
    [(_, _, data)] = notes(ctx)
    assert [(r["user_id"], r["affected_rows"]) for r in data["rows"]] == [("clerk-0007", 4200)]


@pytest.mark.parametrize(("args", "why"), [
    ({"min_rows": "100; DELETE FROM audit.access_logs"}, "is not a int"),
    ({"min_rows": "lots"}, "is not a int"),
    ({"lookback": "yesterday"}, "is not a duration"),
    ({"user": "clerk-0007"}, "declares no parameter user"),
])
async def test_arguments_that_do_not_fit_the_declaration_are_refused_before_any_sql(
        erp: Database, action_context: ContextFactory, args: dict[str, Any], why: str) -> None:
    ctx = action_context(targets(erp, audit=AUDIT))
    params = ReportParams(target="erp", report="audit", args=args)

    reason = REPORT.refusal(params, ctx)
    execution = await REPORT.run(params, ctx)

    assert reason is not None and why in reason
    assert execution.reason is FailureReason.PRECHECK_FAILED and notes(ctx) == []
    assert await count(erp, "audit.access_logs") == 3


async def test_a_report_that_tries_to_write_is_refused_by_the_read_only_transaction(
        erp: Database, action_context: ContextFactory) -> None:
    """A misconfigured report run by the table's owner: it could write, the transaction does not let it."""
    wiping = {"sql": "WITH gone AS (DELETE FROM audit.access_logs RETURNING id) SELECT count(*) FROM gone"}
    ctx = action_context(targets(erp, wiping=wiping))

    execution = await REPORT.run(ReportParams(target="erp", report="wiping"), ctx)

    assert execution.outcome is Outcome.FAILED and execution.reason is FailureReason.VALIDATION
    assert execution.retryable is False
    assert "tried to write" in execution.detail["error"] and "read-only transaction" in execution.detail["error"]
    assert await count(erp, "audit.access_logs") == 3 and notes(ctx) == []


async def test_a_report_on_a_table_that_is_not_there_is_not_retried(erp: Database,
                                                                    action_context: ContextFactory) -> None:
    missing = {"sql": "SELECT max(admitted_at) AS newest FROM patient.admissions"}
    execution = await REPORT.run(ReportParams(target="erp", report="missing"),
                                 action_context(targets(erp, missing=missing)))
    assert execution.reason is FailureReason.VALIDATION and execution.retryable is False
    assert 'relation "patient.admissions" does not exist' in execution.detail["error"]


async def test_the_statement_timeout_stops_a_slow_report_on_the_server(
        erp: Database, action_context: ContextFactory) -> None:
    slow = {"sql": "SELECT pg_sleep(30) AS slept", "timeout": "300ms"}
    ctx = action_context(targets(erp, slow=slow))

    execution = await REPORT.run(ReportParams(target="erp", report="slow"), ctx)

    assert execution.reason is FailureReason.TIMEOUT and execution.retryable is False
    assert "ran past its timeout of 0.3s" in execution.detail["error"]
    conn = await asyncpg.connect(erp.admin_dsn)
    try:
        still = await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(30)%' "
                                    "AND state = 'active'")
    finally:
        await conn.close()
    assert still == 0  # cancelled by the server, not merely abandoned by the client


async def test_at_most_max_rows_are_read_and_the_rest_is_reported_as_truncated(
        erp: Database, action_context: ContextFactory) -> None:
    many = {"sql": "SELECT n FROM generate_series(1, 5000) AS n ORDER BY n", "max_rows": 10}
    ctx = action_context(targets(erp, many=many))

    execution = await REPORT.run(ReportParams(target="erp", report="many"), ctx)

    assert execution.outcome is Outcome.SUCCEEDED
    assert execution.detail["row_count"] == 10 and execution.detail["truncated"] is True
    [(_, message, data)] = notes(ctx)
    assert [r["n"] for r in data["rows"]] == list(range(1, 11))
    assert "truncated at max_rows 10" in message


async def test_an_unknown_report_is_refused_at_plan_time_without_touching_the_database(
        action_context: ContextFactory, unused_tcp_port: int) -> None:
    """The target is unreachable: had the action tried to connect, it would fail on the connection."""
    nowhere = {"postgres": {"erp": {"dsn": f"postgresql://nobody@127.0.0.1:{unused_tcp_port}/erp",
                                    "connect_timeout": "1s", "reports": {"freshness": FRESHNESS}}}}
    params = ReportParams(target="erp", report="freshnes")

    reason = REPORT.refusal(params, action_context(nowhere))
    planned = await REPORT.plan_calls(params, action_context(nowhere, dry_run=True))
    execution = await REPORT.run(params, action_context(nowhere))

    assert reason == "no report 'freshnes' under targets.postgres.erp.reports (it has: freshness)"
    assert planned == []
    assert execution.reason is FailureReason.PRECHECK_FAILED and execution.detail["error"] == reason


async def test_the_dry_run_plan_shows_the_sql_and_the_bound_values(action_context: ContextFactory) -> None:
    ctx = action_context({"postgres": {"erp": {"dsn": "postgresql://nobody@127.0.0.1:1/erp",
                                               "reports": {"audit": AUDIT}}}}, dry_run=True)
    [planned] = await REPORT.plan_calls(ReportParams(target="erp", report="audit", args={"min_rows": "500"}), ctx)
    assert planned.args["sql"].startswith("SELECT * FROM audit.access_logs")
    assert planned.args["args"] == {"min_rows": 500, "lookback": 86400.0}
    assert planned.args["read_only"] is True and planned.args["max_rows"] == 200 and planned.args["timeout"] == 10.0


async def test_a_timestamp_without_time_zone_is_not_guessed(erp: Database, action_context: ContextFactory) -> None:
    naive = {**FRESHNESS, "sql": "SELECT max(created_at)::timestamp AS newest_patient, "
                                 "max(created_at) AS newest_vital FROM patient.patients"}
    execution = await REPORT.run(ReportParams(target="erp", report="naive"),
                                 action_context(targets(erp, naive=naive)))
    assert execution.reason is FailureReason.VALIDATION
    assert "newest_patient' is a timestamp without time zone" in execution.detail["error"]


@pytest.mark.parametrize(("report", "why"), [
    ({"sql": "DELETE FROM audit.access_logs"}, "starting with SELECT, WITH, VALUES or TABLE"),
    ({"sql": "SELECT * FROM audit.access_logs WHERE affected_rows > $1"}, "uses $1 but params declares none"),
    ({"sql": "SELECT $1::int", "params": [{"name": "a"}, {"name": "b"}]}, "uses $1 but params declares $1, $2"),
    ({"sql": "SELECT $1::int", "params": [{"name": "a", "type": "int", "default": "many"}]}, "is not a int"),
    ({"sql": "SELECT 1", "timeout": "10m"}, "at most 0:05:00"),
    ({"sql": "SELECT 1", "timeout": "0s"}, "longer than zero"),
    ({"sql": "SELECT now() AS t", "freshness": {"columns": ["t"], "max_gap": "0s"}}, "longer than zero"),
])
def test_settings_refuse_a_report_that_cannot_be_run_safely(report: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why.replace("$", r"\$")):
        Settings.model_validate({"targets": {"postgres": {"erp": {"dsn": "postgresql://x@h/erp",
                                                                  "reports": {"bad": report}}}}})


def test_params_refuse_what_is_not_a_name_or_a_value() -> None:
    with pytest.raises(ValidationError):
        ReportParams(target="erp", report="a report; DROP TABLE x")
    with pytest.raises(ValidationError):
        ReportParams(target="erp", report="audit", args={"min rows": 1})
    with pytest.raises(ValidationError):
        ReportParams(target="erp", report="freshness", gap_since="2026-01-12T03:00:00")  # no zone
    with pytest.raises(ValidationError):
        ReportParams(target="erp", report="freshness", max_gap="0s")


DAEMON_POLICY = """
name: erp-db-integrity-after-failover
description: After the failover, how far the newest rows lie behind it (runbook 5.1).
severity: P2
match: {source: alertmanager, alertname: ErpDbFailedOver}
actions:
  - type: postgres.report
    params: {target: erp-primary, report: patient-data-freshness, gap_since: "{labels.failed_over_at}"}
"""


@pytest.mark.parametrize(("failed_over_at", "outcome"), [
    ("2026-01-12T03:00:00Z", Outcome.FAILED),    # vital signs 40 minutes behind: more than 15 minutes
    ("2026-01-12T02:30:00Z", Outcome.SUCCEEDED),  # at most 10 minutes behind
])
async def test_in_the_daemon_the_report_lands_on_the_incident_timeline_and_in_the_audit(
        erp: Database, start_daemon: DaemonFactory, clock: FakeClock, failed_over_at: str, outcome: Outcome) -> None:
    """The example settings' report, run by the daemon itself on an alert: what people read afterwards."""
    daemon: Daemon = await start_daemon(DAEMON_POLICY, mode="enforce", targets={"postgres": {"erp-primary": {
        "dsn": erp.dsn(erp.app), "reports": {"patient-data-freshness": FRESHNESS}}}})

    await post_alert(daemon, "ErpDbFailedOver", {"failed_over_at": failed_over_at}, fingerprint="fp-db",
                     starts_at=clock.now())

    [record] = await daemon.deps.store.list_audit()
    assert (record.action, record.outcome) == ("postgres.report", outcome)
    assert record.failure_reason is (FailureReason.CHECK_FAILED if outcome is Outcome.FAILED else None)
    [event] = [e for e in await daemon.deps.store.timeline(record.incident_id) if e.kind == "report"]
    assert event.request_id == record.request_id
    assert event.data["rows"] == [{"newest_patient": "2026-01-12T02:58:00+00:00",
                                   "newest_vital": "2026-01-12T02:20:00+00:00"}]
    assert event.data["freshness"]["stale"] == (["newest_vital"] if outcome is Outcome.FAILED else [])
