"""`elasticache.restore_from_snapshot`: a replication group's newest automatic snapshot into a new group.

The group that lost its data is left as it is: the restore creates a second group beside it, and
moving the application over stays a person's step (the Execution detail and the timeline say which
endpoint). The new group is tagged with the incident and request, so a retried run recognises the
group it made instead of failing on it, and never adopts a group someone else made.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import Field, model_validator

from remediator.actions.aws.common import (
    CacheIdentifier,
    Refused,
    SecurityGroupId,
    hours,
    not_yet_on_error,
    recorded,
)
from remediator.actions.aws.elasticache import describe_group
from remediator.actions.base import Action, ActionContext, ActionParams, PlannedCall
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason, Risk
from remediator.settings import PositiveDuration

TAG_INCIDENT, TAG_REQUEST, TAG_SOURCE = "remediator:incident-id", "remediator:request-id", "remediator:restored-from"
MAX_SNAPSHOT_PAGES = 10


class RestoreParams(ActionParams):
    replication_group_id: CacheIdentifier = Field(description="the group whose newest automatic snapshot is restored")
    new_replication_group_id: CacheIdentifier = Field(description="the group to create; it must not exist yet")
    security_group_ids: list[SecurityGroupId] = Field(
        [], max_length=5, description="of the new group (default: the VPC's default security group)")
    max_age: PositiveDuration | None = Field(None, description="refuse when the newest automatic snapshot is older")

    @model_validator(mode="after")
    def _another_group(self) -> RestoreParams:
        if self.new_replication_group_id == self.replication_group_id:
            raise ValueError("new_replication_group_id must differ from replication_group_id")
        return self


def snapshot_time(snapshot: dict[str, Any]) -> datetime | None:
    """When the snapshot was taken: the newest of its node snapshots' times."""
    times = [n["SnapshotCreateTime"] for n in snapshot.get("NodeSnapshots", []) if n.get("SnapshotCreateTime")]
    return max(times, default=None)


def endpoint_of(group: dict[str, Any]) -> str | None:
    """Where clients connect: the configuration endpoint (cluster mode) or the primary endpoint."""
    found = group.get("ConfigurationEndpoint") or next(
        (g.get("PrimaryEndpoint") for g in group.get("NodeGroups", []) if g.get("PrimaryEndpoint")), None)
    return f"{found['Address']}:{found['Port']}" if found and found.get("Address") else None


def manual_step(params: RestoreParams, endpoint: str | None) -> str:
    where = endpoint or f"the endpoint of {params.new_replication_group_id} once it is available"
    return (f"point the application at {where} (REDIS_HOST) and redeploy it; "
            f"{params.replication_group_id} is left as it was")


def _optional(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [])}


def create_args(params: RestoreParams, ctx: ActionContext, snapshot: dict[str, Any],
                source: dict[str, Any]) -> dict[str, Any]:
    """CreateReplicationGroup's arguments: the snapshot's shape, the source group's replicas and
    encryption, the policy's security groups, and our tags."""
    members = (source.get("NodeGroups") or [{}])[0].get("NodeGroupMembers", [])
    request = ctx.request
    tags = [{"Key": TAG_INCIDENT, "Value": request.incident_id}, {"Key": TAG_REQUEST, "Value": request.id},
            {"Key": TAG_SOURCE, "Value": params.replication_group_id}]
    return {
        "ReplicationGroupId": params.new_replication_group_id,
        "ReplicationGroupDescription": f"restored by remediator from {snapshot['SnapshotName']}, "
                                       f"incident {request.incident_id}"[:255],
        "SnapshotName": snapshot["SnapshotName"],
        **_optional(CacheNodeType=snapshot.get("CacheNodeType"), Engine=snapshot.get("Engine"),
                    EngineVersion=snapshot.get("EngineVersion"),
                    CacheParameterGroupName=snapshot.get("CacheParameterGroupName"),
                    CacheSubnetGroupName=snapshot.get("CacheSubnetGroupName"), Port=snapshot.get("Port"),
                    NumNodeGroups=snapshot.get("NumNodeGroups"), KmsKeyId=snapshot.get("KmsKeyId"),
                    UserGroupIds=source.get("UserGroupIds"), SecurityGroupIds=list(params.security_group_ids)),
        "ReplicasPerNodeGroup": max(len(members) - 1, 0),
        "AutomaticFailoverEnabled": source.get("AutomaticFailover") == "enabled" and len(members) > 1,
        "MultiAZEnabled": source.get("MultiAZ") == "enabled" and len(members) > 1,
        "TransitEncryptionEnabled": bool(source.get("TransitEncryptionEnabled")),
        "AtRestEncryptionEnabled": bool(source.get("AtRestEncryptionEnabled")),
        "Tags": tags,
    }


class RestoreFromSnapshot(Action[RestoreParams]):
    """Restore a Redis replication group's newest automatic snapshot into a new group (CreateReplicationGroup).

    The snapshot is the newest `available` automatic one of `replication_group_id` (DescribeSnapshots,
    source system); `max_age` refuses an older one. The new group takes the snapshot's node type,
    engine, parameter and subnet groups, the source group's replicas and encryption, and the given
    security groups. Refused when a group of that name exists that this request did not make. The
    detail carries the snapshot, the new endpoint when AWS has assigned it, and the step left to
    people (`manual_step`: point the application at it); once the group is available, verify puts
    the endpoint on the timeline. A source group with an AUTH token gives a new group without one:
    set it before the application connects.

    ```yaml
    type: elasticache.restore_from_snapshot
    params:
      replication_group_id: "{labels.ReplicationGroupId}"
      new_replication_group_id: erp-sessions-restored
      security_group_ids: [sg-0123456789abcdef0]
      max_age: 26h
    ```
    """

    type_name = "elasticache.restore_from_snapshot"
    Params = RestoreParams
    permissions = ("elasticache:DescribeSnapshots", "elasticache:DescribeReplicationGroups",
                   "elasticache:ListTagsForResource", "elasticache:CreateReplicationGroup",
                   "elasticache:AddTagsToResource")
    risk = Risk.HIGH

    def target(self, params: RestoreParams) -> str:
        return f"elasticache:replicationgroup/{params.replication_group_id}"

    async def _newest_snapshot(self, params: RestoreParams, ctx: ActionContext, calls: AwsCalls) -> dict[str, Any]:
        args: dict[str, Any] = {"ReplicationGroupId": params.replication_group_id, "SnapshotSource": "system"}
        found: list[dict[str, Any]] = []
        for _ in range(MAX_SNAPSHOT_PAGES):
            answer = await calls.call("elasticache", "DescribeSnapshots", args)
            found += answer.get("Snapshots", [])
            if not answer.get("Marker"):
                break
            args["Marker"] = answer["Marker"]
        dated = [(taken, s) for s in found if s.get("SnapshotStatus") == "available"
                 and (taken := snapshot_time(s)) is not None]
        if not dated:
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"{params.replication_group_id} has no available automatic snapshot")
        taken, newest = max(dated, key=lambda pair: pair[0])
        age = ctx.clock.now() - taken
        if params.max_age is not None and age > params.max_age:
            raise Refused(FailureReason.PRECHECK_FAILED, f"the newest automatic snapshot of "
                          f"{params.replication_group_id}, {newest['SnapshotName']}, is {hours(age)} old: "
                          f"older than max_age {hours(params.max_age)}")
        return {**newest, "taken": taken.isoformat()}

    async def _ours_already(self, params: RestoreParams, ctx: ActionContext, calls: AwsCalls) -> dict[str, Any] | None:
        """The new group if this request made it already; None if there is none; Refused if it is someone else's."""
        try:
            group = await describe_group(calls, params.new_replication_group_id)
        except AwsCallError as err:
            if err.failure.reason is FailureReason.NOT_FOUND:
                return None
            raise
        answer = await calls.call("elasticache", "ListTagsForResource", {"ResourceName": group["ARN"]})
        tags = {t["Key"]: t["Value"] for t in answer.get("TagList", [])}
        if tags.get(TAG_REQUEST) != ctx.request.id:
            raise Refused(FailureReason.CONFLICT, f"a replication group named {params.new_replication_group_id} "
                          "exists already (not made by this request): choose another new_replication_group_id")
        return group

    async def _planned(self, params: RestoreParams, ctx: ActionContext,
                       calls: AwsCalls) -> tuple[dict[str, Any], dict[str, Any] | None, PlannedCall]:
        snapshot = await self._newest_snapshot(params, ctx, calls)
        existing = await self._ours_already(params, ctx, calls)
        source = await describe_group(calls, params.replication_group_id)
        call = PlannedCall("elasticache", "CreateReplicationGroup", create_args(params, ctx, snapshot, source))
        return snapshot, existing, call

    async def precheck(self, params: RestoreParams, ctx: ActionContext) -> str | None:
        try:
            await self._planned(params, ctx, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: RestoreParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            _, existing, call = await self._planned(params, ctx, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused):
            return []
        return [] if existing is not None else [call]

    async def run(self, params: RestoreParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            snapshot, existing, call = await self._planned(params, ctx, calls)
            group = existing if existing is not None else (await calls.run(call)).get("ReplicationGroup", {})
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        endpoint = endpoint_of(group)
        return calls.succeeded(
            new_replication_group_id=params.new_replication_group_id, snapshot_name=snapshot["SnapshotName"],
            snapshot_time=snapshot["taken"], status=group.get("Status"),
            endpoint=endpoint, already_present=existing is not None, manual_step=manual_step(params, endpoint))

    async def verify(self, params: RestoreParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._available(params, ctx))

    async def _available(self, params: RestoreParams, ctx: ActionContext) -> bool:
        if recorded(ctx, "new_replication_group_id") != params.new_replication_group_id:
            return False  # the run made nothing we can look at
        group = await describe_group(aws_calls(ctx, read_only=True), params.new_replication_group_id)
        endpoint = endpoint_of(group)
        if group.get("Status") != "available" or endpoint is None:
            return False
        await ctx.timeline.note("restored", f"{params.new_replication_group_id} (from "
                                f"{recorded(ctx, 'snapshot_name')}) is available at {endpoint}: "
                                f"{manual_step(params, endpoint)}",
                                {"replication_group_id": params.new_replication_group_id, "endpoint": endpoint})
        return True
