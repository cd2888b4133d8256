"""elasticache.failover: moto lacks TestFailover, so the proxy answers it with AWS's response."""

from __future__ import annotations

from typing import Any

from remediator.actions.aws.elasticache import Failover
from remediator.model import FailureReason, Outcome
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.moto import backend

GROUP = "erp-sessions"
FAILOVER = Failover()
RAW = {"replication_group_id": GROUP}

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


def promote_first_replica() -> None:
    """Play ElastiCache finishing the failover (moto never swaps roles)."""
    group = backend("elasticache").replication_groups[GROUP]
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
