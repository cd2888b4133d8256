"""elasticache.failover and elasticache.scale_node_type against moto, through the fault proxy.

moto lacks TestFailover, so the proxy answers it with AWS's response. moto applies a node type
change at once and never shows the group `modifying`: the tests play that part on its backend
(docs/testing-aws.md §2).
"""

from __future__ import annotations

from typing import Any

import pytest

from remediator.actions.aws.common import Refused
from remediator.actions.aws.elasticache import Failover, ScaleNodeType, larger_node_type
from remediator.model import FailureReason, Outcome
from remediator.settings import AwsSettings, Settings
from remediator.settings.aws import ElastiCacheSettings
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.moto import backend

GROUP = "erp-sessions"
FAILOVER = Failover()
SCALE = ScaleNodeType()
RAW = {"replication_group_id": GROUP}
LADDER = ["cache.r7g.large", "cache.r7g.xlarge", "cache.r7g.2xlarge"]


@pytest.fixture
def settings(aws_settings: AwsSettings) -> Settings:
    """The actions' settings, with the node types scale_node_type may choose."""
    return Settings(aws=aws_settings.model_copy(update={"elasticache": ElastiCacheSettings(node_types=LADDER)}))

# TestFailover's answer as AWS sends it (query protocol): the group, now failing over.
TEST_FAILOVER_XML = f"""<TestFailoverResponse xmlns="http://elasticache.amazonaws.com/doc/2015-02-02/">
  <TestFailoverResult><ReplicationGroup>
    <ReplicationGroupId>{GROUP}</ReplicationGroupId><Status>available</Status>
    <AutomaticFailover>enabled</AutomaticFailover>
  </ReplicationGroup></TestFailoverResult>
  <ResponseMetadata><RequestId>5b0cae2e-1c1a-4b50-9c3c-7f1a9d0e0a11</RequestId></ResponseMetadata>
</TestFailoverResponse>""".encode()


async def make_group(moto: MotoClient, replicas: int = 2, failover: bool = True) -> None:
    await (await moto("elasticache")).create_replication_group(
        ReplicationGroupId=GROUP, ReplicationGroupDescription="ward sessions", Engine="redis",
        CacheNodeType="cache.r7g.large", NumNodeGroups=1, ReplicasPerNodeGroup=replicas,
        AutomaticFailoverEnabled=failover)


def canned_failover(proxy: FaultProxy) -> Rule:
    return proxy.add(Rule("TestFailover", mode="canned", status=200, body=TEST_FAILOVER_XML,
                          headers={"Content-Type": "text/xml"}))


def promote_first_replica(group_id: str = GROUP) -> None:
    """Play ElastiCache finishing the failover (moto never swaps roles)."""
    group = backend("elasticache").replication_groups[group_id]
    members: list[dict[str, Any]] = group.node_groups[0]["node_group_members"]
    for member in members:
        member["current_role"] = "replica"
    members[1]["current_role"] = "primary"


async def test_failover_calls_test_failover_and_verify_sees_the_new_primary(
        moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await make_group(moto)
    rule = canned_failover(proxy)
    params = FAILOVER.Params(**RAW)

    assert await FAILOVER.precheck(params, ctx_for(FAILOVER, RAW)) is None
    execution = await FAILOVER.run(params, ctx_for(FAILOVER, RAW))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["old_primary"] == f"{GROUP}-001"
    assert rule.fired == 1
    assert [h for h in proxy.log if h.operation == "TestFailover"] == [
        ("elasticache", "query", "TestFailover", 200)]
    verify_ctx = ctx_for(FAILOVER, RAW, execution=execution)
    assert await FAILOVER.verify(params, verify_ctx) is False
    promote_first_replica()
    assert await FAILOVER.verify(params, verify_ctx) is True


async def test_failover_refused_without_a_replica(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await make_group(moto, replicas=0, failover=True)
    canned_failover(proxy)
    execution = await FAILOVER.run(FAILOVER.Params(**RAW), ctx_for(FAILOVER, RAW))
    assert execution.reason is FailureReason.PRECHECK_FAILED and "no replica" in execution.detail["error"]
    assert "TestFailover" not in proxy.operations()


async def test_failover_refused_without_automatic_failover(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_group(moto, failover=False)
    reason = await FAILOVER.precheck(FAILOVER.Params(**RAW), ctx_for(FAILOVER, RAW))
    assert reason is not None and "automatic failover" in reason


async def test_failover_refused_for_an_unknown_node_group(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_group(moto)
    raw = {**RAW, "node_group_id": "0007"}
    reason = await FAILOVER.precheck(FAILOVER.Params(**raw), ctx_for(FAILOVER, raw))
    assert reason is not None and "no node group 0007" in reason


async def test_failover_limit_reached_is_not_retried(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await make_group(moto)
    proxy.add(Rule("TestFailover", code="TestFailoverNotAvailableFault", message="too many failovers today"))
    execution = await FAILOVER.run(FAILOVER.Params(**RAW), ctx_for(FAILOVER, RAW))
    assert execution.reason is FailureReason.LIMIT_EXCEEDED and execution.retryable is False
    assert proxy.operations().count("TestFailover") == 1


async def current_node_type(moto: MotoClient) -> str:
    answer = await (await moto("elasticache")).describe_replication_groups(ReplicationGroupId=GROUP)
    return str(answer["ReplicationGroups"][0]["CacheNodeType"])


def set_status(status: str) -> None:
    """Play ElastiCache's part that moto skips: a group busy replacing its nodes."""
    backend("elasticache").replication_groups[GROUP].status = status


async def test_scale_moves_one_step_up_the_configured_node_types(moto: MotoClient, ctx_for: CtxFactory,
                                                                 proxy: FaultProxy) -> None:
    await make_group(moto)
    params = SCALE.Params(**RAW)

    assert await SCALE.precheck(params, ctx_for(SCALE, RAW)) is None
    execution = await SCALE.run(params, ctx_for(SCALE, RAW))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["previous_node_type"] == "cache.r7g.large"
    assert execution.detail["node_type"] == "cache.r7g.xlarge"
    assert await current_node_type(moto) == "cache.r7g.xlarge"
    assert proxy.operations("elasticache") == ["DescribeReplicationGroups", "DescribeReplicationGroups",
                                               "ModifyReplicationGroup"]


async def test_scale_verify_waits_until_the_group_is_available_with_the_new_type(
        moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_group(moto)
    execution = await SCALE.run(SCALE.Params(**RAW), ctx_for(SCALE, RAW))
    verify_ctx = ctx_for(SCALE, RAW, execution=execution)

    set_status("modifying")
    assert await SCALE.verify(SCALE.Params(**RAW), verify_ctx) is False
    set_status("available")
    assert await SCALE.verify(SCALE.Params(**RAW), verify_ctx) is True
    # A person scaling it back down meanwhile: what the run recorded is no longer so.
    await (await moto("elasticache")).modify_replication_group(ReplicationGroupId=GROUP,
                                                               CacheNodeType="cache.r7g.large", ApplyImmediately=True)
    assert await SCALE.verify(SCALE.Params(**RAW), verify_ctx) is False


async def test_scale_to_a_named_larger_type(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_group(moto)
    raw = {**RAW, "node_type": "cache.r7g.2xlarge"}
    execution = await SCALE.run(SCALE.Params(**raw), ctx_for(SCALE, raw))
    assert execution.outcome is Outcome.SUCCEEDED and await current_node_type(moto) == "cache.r7g.2xlarge"


@pytest.mark.parametrize(("node_type", "why"), [
    ("cache.r7g.large", "not larger than the group's cache.r7g.large"),
    ("cache.m7g.large", "not in aws.elasticache.node_types"),
])
async def test_scale_refuses_a_type_that_is_not_a_step_up_and_calls_nothing(
        moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy, node_type: str, why: str) -> None:
    await make_group(moto)
    raw = {**RAW, "node_type": node_type}
    reason = await SCALE.precheck(SCALE.Params(**raw), ctx_for(SCALE, raw))
    execution = await SCALE.run(SCALE.Params(**raw), ctx_for(SCALE, raw))

    assert reason is not None and why in reason
    assert execution.reason is FailureReason.PRECHECK_FAILED
    assert await SCALE.plan_calls(SCALE.Params(**raw), ctx_for(SCALE, raw, dry_run=True)) == []
    assert "ModifyReplicationGroup" not in proxy.operations()
    assert await current_node_type(moto) == "cache.r7g.large"


async def test_scale_refused_while_the_group_is_not_available(moto: MotoClient, ctx_for: CtxFactory,
                                                              proxy: FaultProxy) -> None:
    await make_group(moto)
    set_status("snapshotting")
    execution = await SCALE.run(SCALE.Params(**RAW), ctx_for(SCALE, RAW))
    assert execution.reason is FailureReason.PRECHECK_FAILED
    assert "snapshotting, not available" in execution.detail["error"]
    assert "ModifyReplicationGroup" not in proxy.operations()


async def test_scale_dry_run_plans_the_call_and_changes_nothing(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_group(moto)
    [planned] = await SCALE.plan_calls(SCALE.Params(**RAW), ctx_for(SCALE, RAW, dry_run=True))
    assert planned.as_dict() == {"service": "elasticache", "operation": "ModifyReplicationGroup", "args": {
        "ReplicationGroupId": GROUP, "CacheNodeType": "cache.r7g.xlarge", "ApplyImmediately": True}}
    assert await current_node_type(moto) == "cache.r7g.large"


async def test_scale_access_denied_is_not_retried_and_changes_nothing(moto: MotoClient, ctx_for: CtxFactory,
                                                                      proxy: FaultProxy) -> None:
    await make_group(moto)
    proxy.add(Rule("ModifyReplicationGroup", times=None, status=403, code="AccessDenied"))
    execution = await SCALE.run(SCALE.Params(**RAW), ctx_for(SCALE, RAW))

    assert execution.reason is FailureReason.ACCESS_DENIED and execution.retryable is False
    assert "elasticache:ModifyReplicationGroup" in execution.detail["error"]
    assert [h.status for h in proxy.log if h.operation == "ModifyReplicationGroup"] == [403]
    assert await current_node_type(moto) == "cache.r7g.large"


async def test_scale_throttled_twice_then_done(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await make_group(moto)
    proxy.add(Rule("ModifyReplicationGroup", times=2, code="Throttling"))
    execution = await SCALE.run(SCALE.Params(**RAW), ctx_for(SCALE, RAW))

    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["retry_attempts"] == 2
    assert [h.status for h in proxy.log if h.operation == "ModifyReplicationGroup"] == [400, 400, 200]


async def test_scale_throttled_throughout_is_retryable_for_the_engine(moto: MotoClient, ctx_for: CtxFactory,
                                                                      proxy: FaultProxy) -> None:
    await make_group(moto)
    proxy.add(Rule("DescribeReplicationGroups", times=None, code="Throttling"))
    execution = await SCALE.run(SCALE.Params(**RAW), ctx_for(SCALE, RAW))
    assert execution.reason is FailureReason.THROTTLED and execution.retryable is True
    assert "ModifyReplicationGroup" not in proxy.operations()


@pytest.mark.parametrize(("allowed", "current", "wanted", "expected"), [
    (LADDER, "cache.r7g.large", None, "cache.r7g.xlarge"),
    (LADDER, "cache.r7g.xlarge", None, "cache.r7g.2xlarge"),
    (LADDER, "cache.r7g.large", "cache.r7g.2xlarge", "cache.r7g.2xlarge"),
    (LADDER, "cache.t4g.small", "cache.r7g.large", "cache.r7g.large"),  # off the list: a named type may be chosen
    (LADDER, "cache.r7g.2xlarge", None, "is the largest"),
    (LADDER, "cache.r7g.xlarge", "cache.r7g.large", "only scales up"),
    (LADDER, "cache.t4g.small", None, "name the node_type"),
    ([], "cache.r7g.large", "cache.r7g.xlarge", "is empty"),
])
def test_which_node_type_is_next(allowed: list[str], current: str, wanted: str | None, expected: str) -> None:
    if expected.startswith("cache."):
        assert larger_node_type(allowed, current, wanted) == expected
        return
    with pytest.raises(Refused, match=expected):
        larger_node_type(allowed, current, wanted)
