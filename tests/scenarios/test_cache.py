"""Runbook §6 (Redis) end to end: policies/cache.yaml in an enforcing daemon, ElastiCache and
CloudWatch on moto, the diagnostics on a real Redis."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.scenarios.conftest import Scenario, ScenarioFactory
from tests.support.context import MotoClient

pytestmark = pytest.mark.integration

GROUP = "erp-prod-sessions"
MEMORY_ALARM = "erp-prod-redis-memory-high"


async def sessions_group(moto: MotoClient) -> None:
    await (await moto("elasticache")).create_replication_group(
        ReplicationGroupId=GROUP, ReplicationGroupDescription="ward sessions", Engine="redis",
        CacheNodeType="cache.r6g.large", NumNodeGroups=1, ReplicasPerNodeGroup=1, AutomaticFailoverEnabled=True)


async def node_type(moto: MotoClient) -> str:
    answer = await (await moto("elasticache")).describe_replication_groups(ReplicationGroupId=GROUP)
    return str(answer["ReplicationGroups"][0]["CacheNodeType"])


async def alarm_in_state(moto: MotoClient, name: str, state: str) -> None:
    """The alarm of deploy/sns/alarms.yaml, in the given state (CloudWatch keeps it in ALARM while
    the memory stays high)."""
    cloudwatch = await moto("cloudwatch")
    await cloudwatch.put_metric_alarm(
        AlarmName=name, Namespace="AWS/ElastiCache", MetricName="DatabaseMemoryUsagePercentage",
        Dimensions=[{"Name": "CacheClusterId", "Value": f"{GROUP}-001"}], Statistic="Average", Period=300,
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
