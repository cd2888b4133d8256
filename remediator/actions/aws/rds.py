"""RDS actions: fail an Aurora cluster over, reboot an instance, grow an instance's storage.

All are `risk: high` (held for approval): each interrupts the database every ward depends on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field, model_validator

from remediator.actions.aws.cloudwatch import ALARM_PERMISSION
from remediator.actions.aws.common import AlarmVerified, DbIdentifier, Refused, alarm_ok, not_yet_on_error, recorded
from remediator.actions.base import Action, ActionContext, PlannedCall
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason, Risk

MIN_GROWTH = 0.10  # RDS refuses a storage increase of less than 10 %


async def describe_cluster(calls: AwsCalls, cluster_id: str) -> dict[str, Any]:
    answer = await calls.call("rds", "DescribeDBClusters", {"DBClusterIdentifier": cluster_id})
    return dict(answer["DBClusters"][0])


async def describe_instance(calls: AwsCalls, instance_id: str) -> dict[str, Any]:
    answer = await calls.call("rds", "DescribeDBInstances", {"DBInstanceIdentifier": instance_id})
    return dict(answer["DBInstances"][0])


def writer_of(cluster: dict[str, Any]) -> str | None:
    return next((m["DBInstanceIdentifier"] for m in cluster.get("DBClusterMembers", [])
                 if m.get("IsClusterWriter")), None)


class FailoverParams(AlarmVerified):
    cluster_id: DbIdentifier
    target_instance: DbIdentifier | None = Field(None, description="the reader to promote; default: RDS picks")


class FailoverCluster(Action[FailoverParams]):
    """Fail an Aurora cluster over: a reader becomes the writer (FailoverDBCluster).

    Refused unless the cluster is `available` and has a reader (the named one, if given).
    The old writer is recorded in the Execution detail; recovered when the writer is another
    instance (the target, if named), the cluster is available, and `verify_alarm` is OK.

    ```yaml
    type: rds.failover_cluster
    params:
      cluster_id: "{labels.DBClusterIdentifier}"
      verify_alarm: erp-db-writer-health
    ```
    """

    type_name = "rds.failover_cluster"
    Params = FailoverParams
    permissions = ("rds:DescribeDBClusters", "rds:FailoverDBCluster", ALARM_PERMISSION)
    risk = Risk.HIGH

    def target(self, params: FailoverParams) -> str:
        return f"rds:cluster/{params.cluster_id}"

    async def _checked_writer(self, params: FailoverParams, calls: AwsCalls) -> str:
        cluster = await describe_cluster(calls, params.cluster_id)
        if cluster.get("Status") != "available":
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"cluster {params.cluster_id} is {cluster.get('Status')}, not available")
        writer = writer_of(cluster)
        members = cluster.get("DBClusterMembers", [])
        readers = [m["DBInstanceIdentifier"] for m in members if not m.get("IsClusterWriter")]
        if not readers:
            raise Refused(FailureReason.PRECHECK_FAILED, f"cluster {params.cluster_id} has no reader to fail over to")
        if params.target_instance is not None and params.target_instance not in readers:
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"{params.target_instance} is not a reader of {params.cluster_id} (readers: {readers})")
        return str(writer)

    def _call(self, params: FailoverParams) -> PlannedCall:
        args = {"DBClusterIdentifier": params.cluster_id}
        if params.target_instance is not None:
            args["TargetDBInstanceIdentifier"] = params.target_instance
        return PlannedCall("rds", "FailoverDBCluster", args)

    async def precheck(self, params: FailoverParams, ctx: ActionContext) -> str | None:
        try:
            await self._checked_writer(params, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: FailoverParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [self._call(params)]

    async def run(self, params: FailoverParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            old_writer = await self._checked_writer(params, calls)
            await calls.run(self._call(params))
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        return calls.succeeded(old_writer=old_writer, target_instance=params.target_instance)

    async def verify(self, params: FailoverParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._moved(params, ctx))

    async def _moved(self, params: FailoverParams, ctx: ActionContext) -> bool:
        calls = aws_calls(ctx, read_only=True)
        cluster = await describe_cluster(calls, params.cluster_id)
        writer, old = writer_of(cluster), recorded(ctx, "old_writer")
        if old is None and params.target_instance is None:
            return False  # nothing to compare with: never claim a recovery we cannot see
        moved = writer != old if params.target_instance is None else writer == params.target_instance
        return moved and cluster.get("Status") == "available" and await alarm_ok(calls, params)


class RebootParams(AlarmVerified):
    instance_id: DbIdentifier
    force_failover: bool = Field(False, description="reboot with failover to the Multi-AZ standby")


class RebootInstance(Action[RebootParams]):
    """Reboot an RDS instance (RebootDBInstance), optionally failing over to its Multi-AZ standby.

    Refused unless the instance is `available` (and Multi-AZ when `force_failover`). Recovered
    when it is available again and `verify_alarm` is OK. RDS may still report `available` for a
    moment right after the call, so name an alarm for a verify that means something.

    ```yaml
    type: rds.reboot_instance
    params:
      instance_id: "{labels.DBInstanceIdentifier}"
      force_failover: true
      verify_alarm: erp-db-connections
    ```
    """

    type_name = "rds.reboot_instance"
    Params = RebootParams
    permissions = ("rds:DescribeDBInstances", "rds:RebootDBInstance", ALARM_PERMISSION)
    risk = Risk.HIGH

    def target(self, params: RebootParams) -> str:
        return f"rds:db/{params.instance_id}"

    async def _check(self, params: RebootParams, calls: AwsCalls) -> None:
        instance = await describe_instance(calls, params.instance_id)
        if instance.get("DBInstanceStatus") != "available":
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"instance {params.instance_id} is {instance.get('DBInstanceStatus')}, not available")
        if params.force_failover and not instance.get("MultiAZ"):
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"instance {params.instance_id} is not Multi-AZ: there is no standby to fail over to")

    def _call(self, params: RebootParams) -> PlannedCall:
        args: dict[str, Any] = {"DBInstanceIdentifier": params.instance_id}
        if params.force_failover:
            args["ForceFailover"] = True
        return PlannedCall("rds", "RebootDBInstance", args)

    async def precheck(self, params: RebootParams, ctx: ActionContext) -> str | None:
        try:
            await self._check(params, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: RebootParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [self._call(params)]

    async def run(self, params: RebootParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            await self._check(params, calls)
            answer = await calls.run(self._call(params))
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        return calls.succeeded(status=answer.get("DBInstance", {}).get("DBInstanceStatus"),
                               force_failover=params.force_failover)

    async def verify(self, params: RebootParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._available(params, ctx))

    async def _available(self, params: RebootParams, ctx: ActionContext) -> bool:
        calls = aws_calls(ctx, read_only=True)
        instance = await describe_instance(calls, params.instance_id)
        return instance.get("DBInstanceStatus") == "available" and await alarm_ok(calls, params)


class GrowStorageParams(AlarmVerified):
    instance_id: DbIdentifier
    step_gib: int | None = Field(None, ge=1, le=16384, description="GiB to add")
    step_percent: int | None = Field(None, ge=10, le=100, description="percent of the current size to add")
    max_gib: int = Field(ge=20, le=65536, description="hard ceiling: never allocate more than this")

    @model_validator(mode="after")
    def _one_step(self) -> GrowStorageParams:
        if (self.step_gib is None) == (self.step_percent is None):
            raise ValueError("give exactly one of step_gib and step_percent")
        return self


class GrowStorage(Action[GrowStorageParams]):
    """Add storage to an RDS instance (ModifyDBInstance AllocatedStorage, ApplyImmediately).

    The new size is clamped to `max_gib`, which is never exceeded. Refused (LIMIT_EXCEEDED, no
    call) when the instance is already at the ceiling, or when the clamped increase is under
    the 10 % RDS requires. Recovered when the instance reports the new size and is available.

    ```yaml
    type: rds.grow_storage
    params:
      instance_id: "{labels.DBInstanceIdentifier}"
      step_percent: 20
      max_gib: 2000
    ```
    """

    type_name = "rds.grow_storage"
    Params = GrowStorageParams
    permissions = ("rds:DescribeDBInstances", "rds:ModifyDBInstance", ALARM_PERMISSION)
    risk = Risk.HIGH

    def target(self, params: GrowStorageParams) -> str:
        return f"rds:db/{params.instance_id}"

    async def _planned(self, params: GrowStorageParams, calls: AwsCalls) -> tuple[int, PlannedCall]:
        instance = await describe_instance(calls, params.instance_id)
        if instance.get("DBInstanceStatus") != "available":
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"instance {params.instance_id} is {instance.get('DBInstanceStatus')}, not available")
        if "AllocatedStorage" in instance.get("PendingModifiedValues", {}):
            raise Refused(FailureReason.PRECHECK_FAILED, "a storage change is already pending")
        current = int(instance["AllocatedStorage"])
        step = params.step_gib or math.ceil(current * (params.step_percent or 0) / 100)
        size = min(current + step, params.max_gib)
        if size <= current:
            raise Refused(FailureReason.LIMIT_EXCEEDED,
                          f"{params.instance_id} has {current} GiB: already at the ceiling of {params.max_gib} GiB")
        if size < math.ceil(current * (1 + MIN_GROWTH)):
            raise Refused(FailureReason.LIMIT_EXCEEDED,
                          f"the ceiling of {params.max_gib} GiB leaves {size - current} GiB to add to {current}: "
                          "less than the 10 % RDS accepts")
        return current, PlannedCall("rds", "ModifyDBInstance", {
            "DBInstanceIdentifier": params.instance_id, "AllocatedStorage": size, "ApplyImmediately": True})

    async def precheck(self, params: GrowStorageParams, ctx: ActionContext) -> str | None:
        try:
            await self._planned(params, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: GrowStorageParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            return [(await self._planned(params, aws_calls(ctx, read_only=True)))[1]]
        except (AwsCallError, Refused):
            return []

    async def run(self, params: GrowStorageParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            current, call = await self._planned(params, calls)
            await calls.run(call)
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        size = call.args["AllocatedStorage"]
        return calls.succeeded(previous_gib=current, allocated_gib=size, clamped=size == params.max_gib)

    async def verify(self, params: GrowStorageParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._grown(params, ctx))

    async def _grown(self, params: GrowStorageParams, ctx: ActionContext) -> bool:
        calls = aws_calls(ctx, read_only=True)
        instance = await describe_instance(calls, params.instance_id)
        wanted = recorded(ctx, "allocated_gib")
        if wanted is not None and int(instance.get("AllocatedStorage", 0)) < wanted:
            return False
        return instance.get("DBInstanceStatus") == "available" and await alarm_ok(calls, params)
