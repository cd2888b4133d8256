"""Runbook §6 (Redis) end to end: policies/cache.yaml in an enforcing daemon, ElastiCache and
CloudWatch on moto, the diagnostics on a real Redis."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from remediator.clock import FakeClock
from tests.actions.test_elasticache import TEST_FAILOVER_XML, promote_first_replica
from tests.actions.test_elasticache_restore import group
from tests.scenarios.conftest import Scenario, ScenarioFactory
from tests.support.context import MotoClient
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.moto import backend

pytestmark = pytest.mark.integration

GROUP = "erp-prod-sessions"
MEMORY_ALARM = "erp-prod-redis-memory-high"
RESTORED = "erp-prod-sessions-restored"


async def sessions_group(moto: MotoClient) -> None:
    await (await moto("elasticache")).create_replication_group(
        ReplicationGroupId=GROUP, ReplicationGroupDescription="ward sessions", Engine="redis",
        CacheNodeType="cache.r6g.large", NumNodeGroups=1, ReplicasPerNodeGroup=1, AutomaticFailoverEnabled=True)


async def node_type(moto: MotoClient) -> str:
    answer = await (await moto("elasticache")).describe_replication_groups(ReplicationGroupId=GROUP)
    return str(answer["ReplicationGroups"][0]["CacheNodeType"])


async def alarm_in_state(moto: MotoClient, name: str, state: str, *, namespace: str = "AWS/ElastiCache",
                         metric: str = "DatabaseMemoryUsagePercentage") -> None:
    """An alarm of deploy/sns/alarms.yaml, in the given state (CloudWatch keeps it in ALARM while
    the condition lasts)."""
    cloudwatch = await moto("cloudwatch")
    await cloudwatch.put_metric_alarm(
        AlarmName=name, Namespace=namespace, MetricName=metric, Statistic="Average", Period=300,
        EvaluationPeriods=3, Threshold=85.0, ComparisonOperator="GreaterThanThreshold")
    await cloudwatch.set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def sessions_target(redis_url: str) -> dict[str, object]:
    return {"redis": {"sessions": {"url": redis_url, "timeout": "2s"}}}


async def test_6_1_redis_memory_diagnostics_then_held_scale_up_then_the_infra_lead(
        scenario: ScenarioFactory, moto: MotoClient, redis_url: str) -> None:
    await sessions_group(moto)
    await alarm_in_state(moto, MEMORY_ALARM, "ALARM")
    s: Scenario = await scenario("cache.yaml", targets=sessions_target(redis_url))

    await s.sns("cw-redis-memory-high.json")

    # Step 1: the snapshot (memory, eviction policy, biggest keys), nothing scaled.
    assert await s.outcomes() == [("redis.diagnostics", "allow", "succeeded")]
    snapshot = str([e.data for e in await s.timeline("diagnostics")])
    assert "used_memory" in snapshot and "maxmemory_policy" in snapshot
    assert await node_type(moto) == "cache.r6g.large"

    await s.tick(timedelta(minutes=5))  # still in alarm: the scaling is requested, held (risk: high)
    [pending] = await s.pending()
    assert pending["plan"]["action"] == "elasticache.scale_node_type"
    assert await node_type(moto) == "cache.r6g.large"
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer
    assert await node_type(moto) == "cache.r6g.xlarge"  # one step up aws.elasticache.node_types
    assert s.told("infra_lead") == []

    # moto's group is available with the new type at once; the alarm still says ALARM, so the
    # scaling is not verified and the infra lead is told.
    await s.tick(timedelta(minutes=5))
    assert await s.timeline("verified") == []
    assert s.told("infra_lead") == ["erp-prod-redis-memory-high: sessions Redis memory still high"]


async def automatic_snapshot(moto: MotoClient, name: str, taken: datetime) -> None:
    """An automatic snapshot taken at `taken` (moto makes every snapshot manual and timeless)."""
    await (await moto("elasticache")).create_snapshot(ReplicationGroupId=GROUP, SnapshotName=name)
    made = backend("elasticache").snapshots[name]
    made.snapshot_source, made.snapshot_status = "automated", "available"
    made.node_snapshots = [{"cache_cluster_id": f"{GROUP}-001", "node_group_id": "0001", "cache_size": "6 MB",
                            "snapshot_create_time": taken}]


async def test_6_2_redis_data_loss_is_p1_restore_held_infra_lead_told_then_the_new_endpoint(
        scenario: ScenarioFactory, moto: MotoClient, clock: FakeClock) -> None:
    await sessions_group(moto)
    await automatic_snapshot(moto, "automatic.erp-prod-sessions-2026-12-04", clock.now() - timedelta(hours=3))
    s: Scenario = await scenario("cache.yaml")

    await s.alertmanager("am-redis-keys-dropped.json")

    [incident] = await s.daemon.deps.store.list_incidents()
    assert incident.severity.value == "P1"
    [told] = s.sink.to("infra_lead")
    assert told["title"] == "P1 Redis data loss on erp-prod-sessions"
    assert "REDIS_HOST" in told["text"] and "erp-prod-sessions-restored" in told["text"]
    assert await group(moto, RESTORED) is None  # nothing is created before a person approves
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer
    assert await group(moto, RESTORED) is not None

    # moto makes the group available at once: play a restore still running at the first check,
    # so verification checks again, then sees it available and records the endpoint.
    backend("elasticache").replication_groups[RESTORED].status = "creating"
    await s.tick(timedelta(minutes=10))
    assert await s.timeline("restored") == [] and await s.timeline("verified") == []
    backend("elasticache").replication_groups[RESTORED].status = "available"
    await s.tick(timedelta(minutes=10))
    [note] = await s.timeline("restored")
    assert note.data["replication_group_id"] == RESTORED and note.data["endpoint"]
    assert "REDIS_HOST" in note.message
    assert len(await s.timeline("verified")) == 1



async def test_6_1_redis_connection_failure_is_p1_the_failover_held_the_infra_lead_told(
        scenario: ScenarioFactory, moto: MotoClient, proxy: FaultProxy) -> None:
    await sessions_group(moto)
    # moto has no TestFailover: the proxy answers it as ElastiCache does, and the test plays the swap.
    failover = proxy.add(Rule("TestFailover", mode="canned", status=200,
                              body=TEST_FAILOVER_XML.replace(b"erp-sessions", GROUP.encode()),
                              headers={"Content-Type": "text/xml"}))
    s: Scenario = await scenario("cache.yaml")

    await s.alertmanager("am-redis-primary-down.json")

    assert s.told("infra_lead") == ["P1 RedisPrimaryDown: erp-prod-sessions"]
    [pending] = await s.pending()
    assert pending["plan"]["action"] == "elasticache.failover" and failover.fired == 0
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer
    assert failover.fired == 1

    promote_first_replica(GROUP)  # play ElastiCache finishing it
    await s.tick(timedelta(minutes=10))  # verification sees another primary: recovered
    assert [e.message for e in await s.timeline("verified")] == ["recovered after redis-primary-down-failover step 1"]
