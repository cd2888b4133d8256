"""Runbook §5 (database) end to end: policies/database.yaml in an enforcing daemon, RDS on moto,
the integrity check on a real PostgreSQL database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from remediator.settings import load_settings
from tests.actions.test_postgres_actions import Database, database, long_queries  # noqa: F401  (the fixture)
from tests.conftest import ROOT
from tests.scenarios.conftest import Scenario, ScenarioFactory
from tests.support.context import MotoClient
from tests.support.moto import backend

pytestmark = pytest.mark.integration

# The runbook's freshness report exactly as docs/settings.example.yaml writes it (max_gap 15m).
EXAMPLE = load_settings(ROOT / "docs" / "settings.example.yaml", environ={}).targets.postgres["erp-primary"]
CLUSTER = "erp-prod-cluster"


async def erp_tables(db: Database, newest_patient: datetime, newest_vital: datetime) -> None:
    """The ERP's patient and vital-sign tables, with the newest rows at the given times."""
    conn = await asyncpg.connect(db.dsn(db.app))
    try:
        await conn.execute("""
            CREATE SCHEMA patient; CREATE SCHEMA room;
            CREATE TABLE patient.patients (id serial, name text, created_at timestamptz NOT NULL);
            CREATE TABLE room.vitals (id serial, patient_id int, recorded_at timestamptz NOT NULL);""")
        await conn.execute("INSERT INTO patient.patients (name, created_at) VALUES ('Kim', $1)", newest_patient)
        await conn.execute("INSERT INTO room.vitals (patient_id, recorded_at) VALUES (1, $1)", newest_vital)
    finally:
        await conn.close()


def erp_primary(db: Database) -> dict[str, Any]:
    reports = {name: r.model_dump(mode="json") for name, r in EXAMPLE.reports.items()}
    return {"postgres": {"erp-primary": {"dsn": db.dsn(db.operator), "statement_timeout": "5s",
                                         "reports": reports}}}


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:  # noqa: F811
    admin = await asyncpg.connect(database.admin_dsn.rsplit("/", 1)[0] + f"/{database.name}")
    try:
        yield database
    finally:
        await admin.close()


async def grant_reads(db: Database) -> None:
    conn = await asyncpg.connect(db.dsn(db.app))
    try:
        await conn.execute(f"GRANT USAGE ON SCHEMA patient, room TO {db.operator}; "
                           f"GRANT SELECT ON ALL TABLES IN SCHEMA patient, room TO {db.operator}")
    finally:
        await conn.close()


async def aurora_cluster(moto: MotoClient) -> str:
    rds = await moto("rds")
    await rds.create_db_cluster(DBClusterIdentifier=CLUSTER, Engine="aurora-postgresql",
                                MasterUsername="erp", MasterUserPassword="not-a-secret-1")
    for name in (f"{CLUSTER}-1", f"{CLUSTER}-2"):
        await rds.create_db_instance(DBInstanceIdentifier=name, DBInstanceClass="db.r6g.large",
                                     Engine="aurora-postgresql", DBClusterIdentifier=CLUSTER)
    return await writer(moto)


async def writer(moto: MotoClient) -> str:
    cluster = (await (await moto("rds")).describe_db_clusters(DBClusterIdentifier=CLUSTER))["DBClusters"][0]
    return str(next(m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]))


async def test_5_1_primary_down_cluster_fails_over_after_approval_then_the_data_is_fresh(
        scenario: ScenarioFactory, moto: MotoClient, db: Database) -> None:
    old_writer = await aurora_cluster(moto)
    now = datetime.now().astimezone()
    await erp_tables(db, newest_patient=now - timedelta(minutes=1), newest_vital=now - timedelta(minutes=3))
    await grant_reads(db)
    s: Scenario = await scenario("database.yaml", targets=erp_primary(db))

    await s.alertmanager("am-pg-primary-down-cluster.json")

    # P1: the failover waits for a person; the DBA is told at once; nothing moved yet.
    assert sorted(await s.outcomes()) == [("notify.webhook", "allow", "succeeded"),
                                          ("rds.failover_cluster", "hold", "not_run")]
    assert s.told("dba") == ["P1 PostgresPrimaryDown: erp-prod-cluster-1"]
    assert await writer(moto) == old_writer
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer
    assert await writer(moto) != old_writer

    await s.tick(timedelta(minutes=2))
    assert [e.message for e in await s.timeline("verified")] == [
        "recovered after pg-primary-down-failover-cluster step 1"]

    # RDS says the failover completed: the integrity check runs, finds the data fresh, nobody is paged.
    await s.sns("sns-rds-cluster-failover-erp.json")
    [report] = [r for r in await s.audit() if r.action == "postgres.report"]
    assert report.outcome.value == "succeeded" and report.detail["freshness"]["stale"] == [], report.detail
    await s.tick(timedelta(minutes=1))
    assert [r.action for r in await s.audit()].count("notify.webhook") == 1  # only the first DBA notice
    assert len(s.told("dba")) == 1


async def test_5_1_primary_down_instance_reboots_with_failover_then_a_data_gap_escalates_to_the_dba(
        scenario: ScenarioFactory, moto: MotoClient, db: Database) -> None:
    await (await moto("rds")).create_db_instance(
        DBInstanceIdentifier="erp-prod-db", DBInstanceClass="db.m6g.large", Engine="postgres",
        AllocatedStorage=100, MasterUsername="erp", MasterUserPassword="not-a-secret-1", MultiAZ=True)
    now = datetime.now().astimezone()
    # Vital signs stopped 2 hours before the failover: far beyond the report's 15 minutes.
    await erp_tables(db, newest_patient=now - timedelta(minutes=1), newest_vital=now - timedelta(hours=2))
    await grant_reads(db)
    s: Scenario = await scenario("database.yaml", targets=erp_primary(db))

    await s.alertmanager("am-pg-primary-down.json")
    [pending] = await s.pending()
    assert pending["plan"]["action"] == "rds.reboot_instance"
    assert pending["plan"]["params"]["instance_id"] == "erp-prod-db"
    assert pending["plan"]["params"]["force_failover"] is True
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer

    # moto reports the instance available at once; play AWS's part of a standby that does not come
    # up, so verification sees it not recovered, checks again until the timeout, then escalates.
    backend("rds").databases["erp-prod-db"].status = "rebooting"
    await s.tick(timedelta(minutes=2))
    assert await s.timeline("verified") == []
    for _ in range(4):
        await s.tick(timedelta(minutes=2))
    # The P1 row of the runbook's matrix reads 팀장 → 본부장: the team lead hands it to the head of department.
    assert [e.message for e in await s.timeline("escalated")] == [
        "escalated to head_of_department: not recovered after pg-primary-down-failover step 1; "
        "no step of pg-primary-down-failover is left"]
    backend("rds").databases["erp-prod-db"].status = "available"

    await s.sns("sns-rds-failover-erp.json")

    [report] = [r for r in await s.audit() if r.action == "postgres.report"]
    assert (report.outcome.value, report.failure_reason.value if report.failure_reason else None) == (
        "failed", "check_failed")
    assert report.detail["freshness"]["stale"] == ["newest_vital"]
    [noted] = await s.timeline("report")
    assert noted.data["report"] == "patient-data-freshness" and noted.data["row_count"] == 1
    assert s.told("dba")[-1] == "Data gap after the failover of erp-prod-db"


async def test_5_1_disk_full_tells_the_dba_at_once_and_grows_the_storage_after_approval(
        scenario: ScenarioFactory, moto: MotoClient) -> None:
    rds = await moto("rds")
    await rds.create_db_instance(DBInstanceIdentifier="erp-prod-db", DBInstanceClass="db.m6g.large",
                                 Engine="postgres", AllocatedStorage=500, MasterUsername="erp",
                                 MasterUserPassword="not-a-secret-1")
    s: Scenario = await scenario("storage.yaml")

    await s.sns("sns-rds-storage-full-erp.json")

    assert sorted(await s.outcomes()) == [("notify.webhook", "allow", "succeeded"),
                                          ("rds.grow_storage", "hold", "not_run")]
    assert s.told("dba") == ["P1 storage full on erp-prod-db"]
    assert (await rds.describe_db_instances(DBInstanceIdentifier="erp-prod-db"))["DBInstances"][0][
        "AllocatedStorage"] == 500  # nothing grows before a person approves
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer
    assert (await rds.describe_db_instances(DBInstanceIdentifier="erp-prod-db"))["DBInstances"][0][
        "AllocatedStorage"] == 600


async def test_5_2_slow_queries_diagnostics_then_the_apps_queries_cancelled_then_the_dba(
        scenario: ScenarioFactory, database: Database) -> None:  # noqa: F811
    targets = erp_primary(database)  # the DBA's role (keeper) is neither listed nor protected here
    # PostgreSQL measures a query's age in real time: the test waits 2 seconds, not 2 minutes; the
    # application's role is the test database's.
    s: Scenario = await scenario("database.yaml", edits={"running_for: 2m": "running_for: 2s",
                                                         "only_users: [erp_app]": f"only_users: [{database.app}]"},
                                 targets=targets)
    async with long_queries(database, 60) as (report, maintenance):
        await asyncio.sleep(2.5)
        await s.alertmanager("am-pg-long-running-queries.json", datname=database.name)

        # Step 1, diagnostics only: the slow query is on the timeline and still running.
        assert await s.outcomes() == [("postgres.diagnostics", "allow", "succeeded")]
        assert any("pg_sleep" in str(e.data) for e in await s.timeline("diagnostics"))
        assert not report.done()

        await s.tick(timedelta(minutes=2))  # still firing: step 2 cancels the application's query
        [cancel] = [r for r in await s.audit() if r.action == "postgres.cancel_long_queries"]
        assert cancel.outcome.value == "succeeded", cancel.detail
        assert cancel.detail["by_user"] == {database.app: 1}
        with pytest.raises(asyncpg.QueryCanceledError):
            await report
        assert not maintenance.done()  # the DBA's session is never signalled
        assert s.told("dba") == []

        await s.tick(timedelta(minutes=2))  # still firing: step 3 escalates to the DBAs
        assert s.told("dba") == [f"PostgresLongRunningQueries on erp-prod-db ({database.name})"]


async def test_5_1_pool_exhaustion_terminates_idle_sessions_and_tells_the_dba(
        scenario: ScenarioFactory, database: Database) -> None:  # noqa: F811
    # The policy's database is erp and it waits for 10 idle minutes: here the test's database, and
    # one idle second (PostgreSQL measures idleness in real time).
    s: Scenario = await scenario("database.yaml", edits={"database: erp,": f"database: {database.name},",
                                                         "idle_for: 10m": "idle_for: 1s"},
                                 targets=erp_primary(database))
    idle = [await asyncpg.connect(database.dsn(database.app)) for _ in range(3)]
    reports = await asyncpg.connect(database.dsn(database.app, application="erp-nightly-reports"))
    try:
        await asyncio.sleep(1.5)
        await s.alertmanager("am-pg-too-many-connections.json")

        [terminate] = [r for r in await s.audit() if r.action == "postgres.terminate_idle_connections"]
        assert terminate.outcome.value == "succeeded", terminate.detail
        assert terminate.detail["terminated"] == 3  # the nightly reports' session is never touched
        assert [await _alive(conn) for conn in idle] == [False, False, False]
        assert await _alive(reports)
        assert s.told("dba") == ["PostgresTooManyConnections on erp-prod-db:9187"]
        assert await s.timeline("diagnostics")
        # The replica's alert matched nothing: only the primary's sessions are terminated.
        assert [r.policy for r in await s.audit()].count("pg-too-many-connections") == 1
    finally:
        for conn in [*idle, reports]:
            conn.terminate()


async def _alive(conn: asyncpg.Connection) -> bool:
    try:
        return bool(await conn.fetchval("SELECT 1") == 1)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        return False
