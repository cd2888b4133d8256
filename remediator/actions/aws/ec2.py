"""EC2 actions: snapshot an instance's volumes for forensics, isolate an instance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from remediator.actions.aws.common import InstanceId, Refused, SecurityGroupId, not_yet_on_error
from remediator.actions.base import Action, ActionContext, ActionParams, PlannedCall
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason, Risk

TAG_INCIDENT, TAG_REQUEST, TAG_INSTANCE = "remediator:incident-id", "remediator:request-id", "remediator:instance-id"


async def describe_instance(calls: AwsCalls, instance_id: str) -> dict[str, Any]:
    answer = await calls.call("ec2", "DescribeInstances", {"InstanceIds": [instance_id]})
    instances = [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]
    if not instances:
        raise Refused(FailureReason.NOT_FOUND, f"instance {instance_id} not found")
    return dict(instances[0])


class InstanceParams(ActionParams):
    instance_id: InstanceId


class SnapshotVolumes(Action[InstanceParams]):
    """Snapshot every EBS volume of an instance, tagged with the incident, request and instance.

    Idempotent per request: snapshots are found by their `remediator:request-id` tag first, so a
    retried run creates only the ones still missing. Done (verify) when all are `completed`.

    ```yaml
    type: ec2.snapshot_volumes
    params:
      instance_id: "{labels.InstanceId}"
    ```
    """

    type_name = "ec2.snapshot_volumes"
    Params = InstanceParams
    permissions = ("ec2:DescribeInstances", "ec2:DescribeSnapshots", "ec2:CreateSnapshot", "ec2:CreateTags")
    risk = Risk.NORMAL

    def target(self, params: InstanceParams) -> str:
        return f"ec2:instance/{params.instance_id}"

    async def _volumes(self, calls: AwsCalls, params: InstanceParams) -> dict[str, str]:
        """Volume id -> device name of the instance's EBS volumes."""
        instance = await describe_instance(calls, params.instance_id)
        volumes = {m["Ebs"]["VolumeId"]: m.get("DeviceName", "") for m in instance.get("BlockDeviceMappings", [])
                   if "Ebs" in m}
        if not volumes:
            raise Refused(FailureReason.PRECHECK_FAILED, f"instance {params.instance_id} has no EBS volume")
        return volumes

    async def _ours(self, calls: AwsCalls, ctx: ActionContext) -> list[dict[str, Any]]:
        """Snapshots this request already made (found by tag: the key of idempotency)."""
        found: list[dict[str, Any]] = []
        args: dict[str, Any] = {"OwnerIds": ["self"],
                                "Filters": [{"Name": f"tag:{TAG_REQUEST}", "Values": [ctx.request.id]}]}
        while True:
            answer = await calls.call("ec2", "DescribeSnapshots", args)
            found += answer.get("Snapshots", [])
            if not answer.get("NextToken"):
                return found
            args["NextToken"] = answer["NextToken"]

    async def _plan(self, params: InstanceParams, ctx: ActionContext,
                    calls: AwsCalls) -> tuple[list[dict[str, Any]], list[PlannedCall]]:
        volumes = await self._volumes(calls, params)
        existing = await self._ours(calls, ctx)
        done = {s["VolumeId"] for s in existing}
        tags = [{"Key": TAG_INCIDENT, "Value": ctx.request.incident_id}, {"Key": TAG_REQUEST, "Value": ctx.request.id},
                {"Key": TAG_INSTANCE, "Value": params.instance_id}]
        planned = [PlannedCall("ec2", "CreateSnapshot", {
            "VolumeId": volume,
            "Description": f"remediator evidence: {params.instance_id} {device} incident {ctx.request.incident_id}",
            "TagSpecifications": [{"ResourceType": "snapshot", "Tags": tags}]})
            for volume, device in sorted(volumes.items()) if volume not in done]
        return existing, planned

    async def precheck(self, params: InstanceParams, ctx: ActionContext) -> str | None:
        try:
            await self._volumes(aws_calls(ctx, read_only=True), params)
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: InstanceParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            return (await self._plan(params, ctx, aws_calls(ctx, read_only=True)))[1]
        except (AwsCallError, Refused):
            return []

    async def run(self, params: InstanceParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        made: list[dict[str, Any]] = []
        try:
            existing, planned = await self._plan(params, ctx, calls)
            for call in planned:
                answer = await calls.run(call)
                made.append({"volume_id": call.args["VolumeId"], "snapshot_id": answer["SnapshotId"]})
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err, created=made)
        kept = [{"volume_id": s["VolumeId"], "snapshot_id": s["SnapshotId"]} for s in existing]
        return calls.succeeded(created=made, already_present=kept)

    async def verify(self, params: InstanceParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._completed(params, ctx))

    async def _completed(self, params: InstanceParams, ctx: ActionContext) -> bool:
        calls = aws_calls(ctx, read_only=True)
        volumes = await self._volumes(calls, params)
        snapshots = await self._ours(calls, ctx)
        return {s["VolumeId"] for s in snapshots} >= set(volumes) and all(
            s.get("State") == "completed" for s in snapshots)


class IsolateParams(InstanceParams):
    quarantine_group_id: SecurityGroupId


class IsolateInstance(Action[IsolateParams]):
    """Replace an instance's security groups with a quarantine group (ModifyInstanceAttribute).

    The previous groups are recorded in the Execution detail for a person to restore. Refused
    when the quarantine group is missing or in another VPC, or when the instance has more than
    one network interface (the call would change only one; isolate those by hand). Security
    group changes do not cut connections already tracked: pair this with a snapshot first and a
    person's review. Recovered when the quarantine group is the only group.

    ```yaml
    type: ec2.isolate_instance
    params:
      instance_id: "{labels.InstanceId}"
      quarantine_group_id: sg-0123456789abcdef0
    ```
    """

    type_name = "ec2.isolate_instance"
    Params = IsolateParams
    permissions = ("ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:ModifyInstanceAttribute")
    risk = Risk.HIGH

    def target(self, params: IsolateParams) -> str:
        return f"ec2:instance/{params.instance_id}"

    async def _current(self, params: IsolateParams, calls: AwsCalls) -> list[dict[str, str]]:
        """The instance's groups now; Refused when isolating it would not be safe or complete."""
        instance = await describe_instance(calls, params.instance_id)
        state = instance.get("State", {}).get("Name")
        if state in ("shutting-down", "terminated"):
            raise Refused(FailureReason.PRECHECK_FAILED, f"instance {params.instance_id} is {state}")
        if len(instance.get("NetworkInterfaces", [])) > 1:
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"instance {params.instance_id} has several network interfaces: isolate it by hand")
        answer = await calls.call("ec2", "DescribeSecurityGroups", {"GroupIds": [params.quarantine_group_id]})
        group = answer["SecurityGroups"][0]
        vpc = instance.get("VpcId")
        if group.get("VpcId") != vpc:
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"{params.quarantine_group_id} is in {group.get('VpcId')}, the instance in {vpc}")
        groups = instance.get("SecurityGroups", [])
        return [{"GroupId": g["GroupId"], "GroupName": g.get("GroupName", "")} for g in groups]

    def _call(self, params: IsolateParams) -> PlannedCall:
        return PlannedCall("ec2", "ModifyInstanceAttribute",
                           {"InstanceId": params.instance_id, "Groups": [params.quarantine_group_id]})

    def _isolated(self, params: IsolateParams, groups: list[dict[str, str]]) -> bool:
        return [g["GroupId"] for g in groups] == [params.quarantine_group_id]

    async def precheck(self, params: IsolateParams, ctx: ActionContext) -> str | None:
        try:
            await self._current(params, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: IsolateParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            groups = await self._current(params, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused):
            return []
        return [] if self._isolated(params, groups) else [self._call(params)]

    async def run(self, params: IsolateParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            previous = await self._current(params, calls)
            if self._isolated(params, previous):
                return calls.succeeded(already_isolated=True, previous_groups=previous)
            await calls.run(self._call(params))
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        return calls.succeeded(already_isolated=False, previous_groups=previous,
                               quarantine_group_id=params.quarantine_group_id)

    async def verify(self, params: IsolateParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._verified(params, ctx))

    async def _verified(self, params: IsolateParams, ctx: ActionContext) -> bool:
        instance = await describe_instance(aws_calls(ctx, read_only=True), params.instance_id)
        return self._isolated(params, instance.get("SecurityGroups", []))
