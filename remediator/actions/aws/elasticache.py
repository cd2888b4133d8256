"""ElastiCache actions on a Redis replication group: fail a node group over, scale its node type.

Both are `risk: high` (held for approval): the sessions of every ward live in that group.
"""

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
from remediator.settings.aws import CacheNodeType


class FailoverParams(AlarmVerified):
    replication_group_id: CacheIdentifier
    node_group_id: NodeGroupId = Field("0001", description="the shard; 0001 when cluster mode is off")


async def describe_group(calls: AwsCalls, group_id: str) -> dict[str, Any]:
    answer = await calls.call("elasticache", "DescribeReplicationGroups", {"ReplicationGroupId": group_id})
    return dict(answer["ReplicationGroups"][0])


async def available_group(calls: AwsCalls, group_id: str) -> dict[str, Any]:
    """The group, when it is `available`; Refused while it is creating, modifying, snapshotting ..."""
    group = await describe_group(calls, group_id)
    if group.get("Status") != "available":
        raise Refused(FailureReason.PRECHECK_FAILED, f"{group_id} is {group.get('Status')}, not available")
    return group


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

    async def _checked_primary(self, params: FailoverParams, calls: AwsCalls) -> str:
        group = await available_group(calls, params.replication_group_id)
        name = params.replication_group_id
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
        group = await describe_group(calls, params.replication_group_id)
        primaries = member_with_role(node_group(group, params.node_group_id), "primary")
        return (bool(primaries) and old not in primaries and group.get("Status") == "available"
                and await alarm_ok(calls, params))


class ScaleParams(AlarmVerified):
    replication_group_id: CacheIdentifier
    node_type: CacheNodeType | None = Field(
        None, description="the node type to scale to; default: the next one up aws.elasticache.node_types")


class ScaleNodeType(Action[ScaleParams]):
    """Scale a Redis replication group up to a larger node type (ModifyReplicationGroup, ApplyImmediately).

    The node types a group may move to are listed in settings, smallest first
    (`aws.elasticache.node_types`): without `node_type` the group moves one step up that list;
    a `node_type` given must be on it and above the current one. Never down, never off the list.
    Refused unless the group is `available`. The previous and new types are recorded in the
    Execution detail; recovered when the group is available with the new type and `verify_alarm`
    is OK. ElastiCache replaces the nodes one by one, which takes minutes per node.

    ```yaml
    type: elasticache.scale_node_type
    params:
      replication_group_id: "{labels.ReplicationGroupId}"
      verify_alarm: erp-sessions-redis-memory
    ```
    """

    type_name = "elasticache.scale_node_type"
    Params = ScaleParams
    permissions = ("elasticache:DescribeReplicationGroups", "elasticache:ModifyReplicationGroup", ALARM_PERMISSION)
    risk = Risk.HIGH

    def target(self, params: ScaleParams) -> str:
        return f"elasticache:replicationgroup/{params.replication_group_id}"

    async def _planned(self, params: ScaleParams, ctx: ActionContext, calls: AwsCalls) -> tuple[str, PlannedCall]:
        group = await available_group(calls, params.replication_group_id)
        current = str(group.get("CacheNodeType"))
        wanted = larger_node_type(ctx.deps.settings.aws.elasticache.node_types, current, params.node_type)
        return current, PlannedCall("elasticache", "ModifyReplicationGroup", {
            "ReplicationGroupId": params.replication_group_id, "CacheNodeType": wanted, "ApplyImmediately": True})

    def refusal(self, params: ScaleParams, ctx: ActionContext) -> str | None:
        allowed = ctx.deps.settings.aws.elasticache.node_types
        if not allowed:
            return "aws.elasticache.node_types is empty: list the node types this action may choose"
        if params.node_type is not None and params.node_type not in allowed:
            return f"{params.node_type} is not in aws.elasticache.node_types"
        return None

    async def precheck(self, params: ScaleParams, ctx: ActionContext) -> str | None:
        try:
            await self._planned(params, ctx, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: ScaleParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            return [(await self._planned(params, ctx, aws_calls(ctx, read_only=True)))[1]]
        except (AwsCallError, Refused):
            return []

    async def run(self, params: ScaleParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            current, call = await self._planned(params, ctx, calls)
            answer = await calls.run(call)
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        return calls.succeeded(previous_node_type=current, node_type=call.args["CacheNodeType"],
                               status=answer.get("ReplicationGroup", {}).get("Status"))

    async def verify(self, params: ScaleParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._scaled(params, ctx))

    async def _scaled(self, params: ScaleParams, ctx: ActionContext) -> bool:
        wanted = recorded(ctx, "node_type") or params.node_type
        if wanted is None:
            return False  # nothing to compare with: never claim a recovery we cannot see
        calls = aws_calls(ctx, read_only=True)
        group = await describe_group(calls, params.replication_group_id)
        return (group.get("CacheNodeType") == wanted and group.get("Status") == "available"
                and await alarm_ok(calls, params))


def larger_node_type(allowed: Sequence[str], current: str, wanted: str | None) -> str:
    """The node type to scale `current` to; Refused when the list does not allow a step up."""
    if not allowed:
        raise Refused(FailureReason.PRECHECK_FAILED,
                      "aws.elasticache.node_types is empty: list the node types this action may choose")
    if wanted is not None and wanted not in allowed:
        raise Refused(FailureReason.PRECHECK_FAILED, f"{wanted} is not in aws.elasticache.node_types")
    if current not in allowed:
        if wanted is None:
            raise Refused(FailureReason.PRECHECK_FAILED, f"the group's node type {current} is not in "
                          "aws.elasticache.node_types: name the node_type to scale to")
        return wanted
    step = allowed.index(current) + 1
    if wanted is None:
        if step == len(allowed):
            raise Refused(FailureReason.LIMIT_EXCEEDED,
                          f"{current} is the largest of aws.elasticache.node_types already")
        return allowed[step]
    if allowed.index(wanted) < step:
        raise Refused(FailureReason.PRECHECK_FAILED,
                      f"{wanted} is not larger than the group's {current}: this action only scales up")
    return wanted
