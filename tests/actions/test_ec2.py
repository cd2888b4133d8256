"""EC2 actions against moto: snapshots (idempotent per request) and isolation."""

from __future__ import annotations

from typing import Any

from remediator.actions.aws.ec2 import IsolateInstance, SnapshotVolumes
from remediator.model import FailureReason, Outcome
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy, Rule

SNAPSHOT, ISOLATE = SnapshotVolumes(), IsolateInstance()


async def make_instance(moto: MotoClient, extra_volume: bool = True) -> dict[str, Any]:
    ec2 = await moto("ec2")
    vpc = (await ec2.create_vpc(CidrBlock="10.40.0.0/16"))["Vpc"]["VpcId"]
    subnet = (await ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24"))["Subnet"]["SubnetId"]
    app = (await ec2.create_security_group(GroupName="erp-app", Description="app", VpcId=vpc))["GroupId"]
    admin = (await ec2.create_security_group(GroupName="erp-admin", Description="admin", VpcId=vpc))["GroupId"]
    quarantine = (await ec2.create_security_group(GroupName="quarantine", Description="no traffic",
                                                  VpcId=vpc))["GroupId"]
    instance = (await ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.small",
                                        SubnetId=subnet, SecurityGroupIds=[app, admin]))["Instances"][0]
    if extra_volume:  # a data volume next to the root volume moto creates
        zone = instance["Placement"]["AvailabilityZone"]
        volume = (await ec2.create_volume(Size=20, AvailabilityZone=zone))["VolumeId"]
        await ec2.attach_volume(VolumeId=volume, InstanceId=instance["InstanceId"], Device="/dev/sdf")
    return {"id": instance["InstanceId"], "vpc": vpc, "app": app, "admin": admin, "quarantine": quarantine}


async def volumes_of(moto: MotoClient, instance_id: str) -> set[str]:
    answer = await (await moto("ec2")).describe_instances(InstanceIds=[instance_id])
    instance = answer["Reservations"][0]["Instances"][0]
    return {m["Ebs"]["VolumeId"] for m in instance["BlockDeviceMappings"]}


async def snapshots_tagged(moto: MotoClient, request_id: str) -> list[dict[str, Any]]:
    answer = await (await moto("ec2")).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "tag:remediator:request-id", "Values": [request_id]}])
    return list(answer["Snapshots"])


async def test_snapshots_every_volume_tagged(moto: MotoClient, ctx_for: CtxFactory) -> None:
    made = await make_instance(moto)
    raw = {"instance_id": made["id"]}
    ctx = ctx_for(SNAPSHOT, raw)
    params = SNAPSHOT.Params(**raw)

    assert await SNAPSHOT.precheck(params, ctx) is None
    execution = await SNAPSHOT.run(params, ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    snapshots = await snapshots_tagged(moto, ctx.request.id)
    assert {s["VolumeId"] for s in snapshots} == await volumes_of(moto, made["id"])
    assert len(snapshots) == 2
    for snapshot in snapshots:
        tags = {t["Key"]: t["Value"] for t in snapshot["Tags"]}
        assert tags == {"remediator:incident-id": "inc-0001", "remediator:request-id": ctx.request.id,
                        "remediator:instance-id": made["id"]}
    assert await SNAPSHOT.verify(params, ctx) is True


async def test_a_retried_run_makes_no_second_snapshots(moto: MotoClient, ctx_for: CtxFactory,
                                                       proxy: FaultProxy) -> None:
    made = await make_instance(moto)
    raw = {"instance_id": made["id"]}
    ctx = ctx_for(SNAPSHOT, raw)
    # The first run dies after one snapshot: the second CreateSnapshot is refused.
    proxy.add(Rule("CreateSnapshot", mode="pass", times=1))
    proxy.add(Rule("CreateSnapshot", times=None, status=403, code="UnauthorizedOperation"))

    first = await SNAPSHOT.run(SNAPSHOT.Params(**raw), ctx)
    assert first.outcome is Outcome.FAILED and first.reason is FailureReason.ACCESS_DENIED
    assert len(first.detail["created"]) == 1

    proxy.rules.clear()
    second = await SNAPSHOT.run(SNAPSHOT.Params(**raw), ctx)
    third = await SNAPSHOT.run(SNAPSHOT.Params(**raw), ctx)

    assert second.outcome is Outcome.SUCCEEDED and len(second.detail["created"]) == 1
    assert len(second.detail["already_present"]) == 1
    assert third.detail["created"] == [] and len(third.detail["already_present"]) == 2
    assert len(await snapshots_tagged(moto, ctx.request.id)) == 2


async def test_isolate_replaces_groups_and_records_the_old_ones(moto: MotoClient, ctx_for: CtxFactory) -> None:
    made = await make_instance(moto)
    raw = {"instance_id": made["id"], "quarantine_group_id": made["quarantine"]}
    params = ISOLATE.Params(**raw)
    assert await ISOLATE.precheck(params, ctx_for(ISOLATE, raw)) is None

    execution = await ISOLATE.run(params, ctx_for(ISOLATE, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert {g["GroupId"] for g in execution.detail["previous_groups"]} == {made["app"], made["admin"]}
    assert {g["GroupName"] for g in execution.detail["previous_groups"]} == {"erp-app", "erp-admin"}
    answer = await (await moto("ec2")).describe_instance_attribute(InstanceId=made["id"], Attribute="groupSet")
    assert [g["GroupId"] for g in answer["Groups"]] == [made["quarantine"]]
    assert await ISOLATE.verify(params, ctx_for(ISOLATE, raw, execution=execution)) is True


async def test_isolating_twice_makes_one_call(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    made = await make_instance(moto)
    raw = {"instance_id": made["id"], "quarantine_group_id": made["quarantine"]}
    await ISOLATE.run(ISOLATE.Params(**raw), ctx_for(ISOLATE, raw))
    again = await ISOLATE.run(ISOLATE.Params(**raw), ctx_for(ISOLATE, raw))

    assert again.outcome is Outcome.SUCCEEDED and again.detail["already_isolated"] is True
    assert proxy.operations("ec2").count("ModifyInstanceAttribute") == 1


async def test_isolate_refuses_a_group_of_another_vpc(moto: MotoClient, ctx_for: CtxFactory,
                                                      proxy: FaultProxy) -> None:
    made = await make_instance(moto)
    ec2 = await moto("ec2")
    other_vpc = (await ec2.create_vpc(CidrBlock="10.50.0.0/16"))["Vpc"]["VpcId"]
    elsewhere = (await ec2.create_security_group(GroupName="q2", Description="q", VpcId=other_vpc))["GroupId"]
    raw = {"instance_id": made["id"], "quarantine_group_id": elsewhere}
    execution = await ISOLATE.run(ISOLATE.Params(**raw), ctx_for(ISOLATE, raw))

    assert execution.reason is FailureReason.PRECHECK_FAILED and other_vpc in execution.detail["error"]
    assert "ModifyInstanceAttribute" not in proxy.operations()


async def test_isolate_of_a_missing_group_is_not_found(moto: MotoClient, ctx_for: CtxFactory) -> None:
    made = await make_instance(moto)
    raw = {"instance_id": made["id"], "quarantine_group_id": "sg-0123456789abcdef0"}
    execution = await ISOLATE.run(ISOLATE.Params(**raw), ctx_for(ISOLATE, raw))
    assert execution.reason is FailureReason.NOT_FOUND and execution.detail["code"] == "InvalidGroup.NotFound"
