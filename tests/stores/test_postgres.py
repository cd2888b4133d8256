"""What only PostgreSQL has to prove: several processes writing at once (beyond the contract)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import asyncpg
import pytest

from remediator.errors import ClaimLost
from remediator.model import Outcome, Severity
from remediator.settings import StoreSettings
from remediator.stores.base import RequestState
from remediator.stores.postgres.store import PostgresStore
from remediator.stores.schema import migrations
from tests.conftest import T0
from tests.support import builders
from tests.support.harness import eventually
from tests.support.store_calls import claim_request, correlate, finish_request

LEASE = T0 + timedelta(minutes=2)
Replica = Callable[[str], Awaitable[PostgresStore]]


@pytest.fixture
async def replica(pg_dsn: str, pg_schema: str) -> AsyncIterator[Replica]:
    opened: list[PostgresStore] = []
    settings = StoreSettings(url=pg_dsn, schema_name=pg_schema, pool_min=1, pool_max=4)

    async def make(holder: str) -> PostgresStore:
        store = PostgresStore(settings, holder=holder)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


async def test_replicas_starting_together_apply_the_migrations_once(pg_dsn: str, pg_schema: str) -> None:
    settings = StoreSettings(url=pg_dsn, schema_name=pg_schema, pool_min=1, pool_max=2)
    stores = [PostgresStore(settings, holder=f"replica-{i}") for i in range(3)]
    await asyncio.gather(*(s.open() for s in stores))
    conn = await asyncpg.connect(pg_dsn, server_settings={"search_path": pg_schema})
    try:
        applied = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
        assert applied == [m.version for m in migrations("postgres")]
    finally:
        await conn.close()
        for store in stores:
            await store.close()


async def test_alerts_arriving_together_are_committed_together(replica: Replica) -> None:
    store = await replica("replica-a")
    alerts = [builders.alert(fingerprint=f"fp-{i}") for i in range(60)]
    # 60 webhook requests at once, each redelivered once more: one statement per batch, not per request.
    results = await asyncio.gather(*(store.record_alerts([a], LEASE) for a in alerts + alerts))
    assert [r[0] for r in results[:60]] == [True] * 60 and [r[0] for r in results[60:]] == [False] * 60
    assert store.batches <= 3
    assert await store.count_unprocessed() == 60


async def test_two_replicas_correlating_one_group_at_once_open_one_incident(replica: Replica) -> None:
    a, b = await replica("replica-a"), await replica("replica-b")
    alerts = [builders.alert(fingerprint=f"fp-{i}", group="shared") for i in range(20)]
    await a.record_alerts(alerts, LEASE)
    results = await asyncio.gather(*(
        correlate(a if i % 2 else b, alert, Severity.P2, T0) for i, alert in enumerate(alerts)))
    assert sum(r.opened for r in results) == 1
    incidents = await a.list_incidents()
    assert len(incidents) == 1
    assert incidents[0].alert_count == 20 and incidents[0].firing_count == 20  # no update lost


async def test_a_replica_presumed_dead_may_not_start_until_its_liveness_is_back(
    replica: Replica, pg_dsn: str
) -> None:
    cut_off, other = await replica("replica-cut-off"), await replica("replica-other")
    running, waiting = builders.request("req-running"), builders.request("req-waiting")
    assert await claim_request(cut_off, running, T0)
    await cut_off.start_execution(running.id, T0)
    assert await claim_request(cut_off, waiting, T0)
    # The replica's liveness session dies (a partition, a server-side kill): it is presumed dead.
    admin = await asyncpg.connect(pg_dsn)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'remediator-liveness' AND pid IN (SELECT pid FROM pg_locks "
            "WHERE locktype = 'advisory' AND objid = hashtext($1 || ':' || 'replica-cut-off')::oid)",
            cut_off.settings.schema_name)
    finally:
        await admin.close()
    assert killed == 1
    orphans = await eventually(lambda: other.reconcile_running(T0 + timedelta(minutes=1)))
    assert [o.request.id for o in orphans] == [running.id]
    with pytest.raises(ClaimLost):  # its unstarted claim was released: it must not run it
        await cut_off.start_execution(waiting.id, T0)
    assert await claim_request(other, waiting, T0)
    # Its late result goes on the timeline; the UNKNOWN record stays the one audit record.
    await finish_request(cut_off, builders.audit(running, outcome=Outcome.SUCCEEDED))
    record = await other.get_audit(running.id)
    stored = await other.get_request(running.id)
    assert record is not None and record.outcome is Outcome.UNKNOWN
    assert stored is not None and stored.state is RequestState.UNKNOWN
    # The session comes back by itself, and the replica may act again.
    fresh = builders.request("req-fresh")
    assert await claim_request(cut_off, fresh, T0)

    async def started() -> bool:
        try:
            await cut_off.start_execution(fresh.id, T0)
        except ClaimLost:
            return False
        return True

    await eventually(started, timeout=10, interval=0.2)
