"""`elasticache.failover`: promote a replica of one node group of a Redis replication group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import Field

from remediator.actions.aws.cloudwatch import ALARM_PERMISSION
from remediator.actions.aws.common import (
    AlarmVerified,
    CacheIdentifier,
    NodeGroupId,
    Refused,
    alarm_ok,
    not_yet_on_error,
    recorded,
)
from remediator.actions.base import Action, ActionContext, PlannedCall
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason, Risk


class FailoverParams(AlarmVerified):
    replication_group_id: CacheIdentifier
    node_group_id: NodeGroupId = Field("0001", description="the shard; 0001 when cluster mode is off")


def node_group(group: dict[str, Any], node_group_id: str) -> dict[str, Any]:
    found = next((g for g in group.get("NodeGroups", []) if g.get("NodeGroupId") == node_group_id), None)
    if found is None:
        raise Refused(FailureReason.PRECHECK_FAILED,
                      f"{group.get('ReplicationGroupId')} has no node group {node_group_id}")
    return dict(found)


def member_with_role(shard: dict[str, Any], role: str) -> list[str]:
    return [m["CacheClusterId"] for m in shard.get("NodeGroupMembers", []) if m.get("CurrentRole") == role]


class Failover(Action[FailoverParams]):
    """Fail a Redis node group over to one of its replicas (TestFailover).

    Refused unless the replication group is `available`, has automatic failover enabled, and
    the node group has a replica. The old primary is recorded in the Execution detail;
    recovered when another member is primary, the group is available, and `verify_alarm` is OK.
    (TestFailover is also what AWS offers for a real failover of one shard; AWS limits how
    often it may be called, which comes back as LIMIT_EXCEEDED.)

    ```yaml
    type: elasticache.failover
    params:
      replication_group_id: "{labels.ReplicationGroupId}"
      node_group_id: "0001"
      verify_alarm: erp-sessions-redis-health
    ```
    """

    type_name = "elasticache.failover"
    Params = FailoverParams
    permissions = ("elasticache:DescribeReplicationGroups", "elasticache:TestFailover", ALARM_PERMISSION)
    risk = Risk.HIGH

    def target(self, params: FailoverParams) -> str:
        return f"elasticache:replicationgroup/{params.replication_group_id}"

    async def _group(self, calls: AwsCalls, params: FailoverParams) -> dict[str, Any]:
        answer = await calls.call("elasticache", "DescribeReplicationGroups",
                                  {"ReplicationGroupId": params.replication_group_id})
        return dict(answer["ReplicationGroups"][0])

    async def _checked_primary(self, params: FailoverParams, calls: AwsCalls) -> str:
        group = await self._group(calls, params)
        name = params.replication_group_id
        if group.get("Status") != "available":
            raise Refused(FailureReason.PRECHECK_FAILED, f"{name} is {group.get('Status')}, not available")
        if group.get("AutomaticFailover") != "enabled":
            raise Refused(FailureReason.PRECHECK_FAILED, f"{name} does not have automatic failover enabled")
        shard = node_group(group, params.node_group_id)
        primaries, replicas = member_with_role(shard, "primary"), member_with_role(shard, "replica")
        if not replicas or not primaries:
            missing = "replica to fail over to" if not replicas else "primary to fail over from"
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"node group {params.node_group_id} of {name} has no {missing}")
        return primaries[0]

    def _call(self, params: FailoverParams) -> PlannedCall:
        return PlannedCall("elasticache", "TestFailover",
                           {"ReplicationGroupId": params.replication_group_id, "NodeGroupId": params.node_group_id})

    async def precheck(self, params: FailoverParams, ctx: ActionContext) -> str | None:
        try:
            await self._checked_primary(params, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: FailoverParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [self._call(params)]

    async def run(self, params: FailoverParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            old_primary = await self._checked_primary(params, calls)
            answer = await calls.run(self._call(params))
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        return calls.succeeded(old_primary=old_primary,
                               status=answer.get("ReplicationGroup", {}).get("Status"))

    async def verify(self, params: FailoverParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._promoted(params, ctx))

    async def _promoted(self, params: FailoverParams, ctx: ActionContext) -> bool:
        calls = aws_calls(ctx, read_only=True)
        old = recorded(ctx, "old_primary")
        if old is None:
            return False  # nothing to compare with: never claim a recovery we cannot see
        group = await self._group(calls, params)
        primaries = member_with_role(node_group(group, params.node_group_id), "primary")
        return (bool(primaries) and old not in primaries and group.get("Status") == "available"
                and await alarm_ok(calls, params))
