"""Dry-run: every action's `plan_calls` names exactly the calls `run` would make, and makes none
of them (the proxy sees reads only, and moto's state is unchanged); and every precheck, which
dry-run runs as enforce does, only reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from remediator.actions.aws.ec2 import IsolateInstance, SnapshotVolumes
from remediator.actions.aws.ecs import ForceNewDeployment, Rollback, ScaleService
from remediator.actions.aws.elasticache import Failover as CacheFailover
from remediator.actions.aws.elasticache import ScaleNodeType
from remediator.actions.aws.elasticache_restore import RestoreFromSnapshot
from remediator.actions.aws.nat_routes import ReplaceRoute
from remediator.actions.aws.rds import FailoverCluster, GrowStorage, RebootInstance
from remediator.actions.aws.rds_snapshots import CheckSnapshots
from remediator.actions.aws.route53 import UpsertRecord
from remediator.actions.aws.s3 import PreserveEvidence
from remediator.actions.aws.waf import BlockIp, UnblockIp
from remediator.actions.aws.waf_ledger import InMemoryBlockLedger
from remediator.actions.base import AnyAction, ReadOnlyAction
from remediator.actions.registry import default_registry
from remediator.aws.clients import is_read_only
from remediator.cli.iam import PERMISSION
from remediator.clock import FakeClock
from remediator.settings import AwsSettings, ElastiCacheSettings, Settings
from tests.actions import (
    test_ec2,
    test_ecs,
    test_elasticache,
    test_elasticache_restore,
    test_nat_routes,
    test_rds,
    test_route53,
    test_s3,
    test_waf,
)
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy

Expected = list[tuple[str, str, dict[str, Any]]]  # (service, operation, args that must match)
Case = Callable[[MotoClient, FakeClock], Awaitable[tuple[AnyAction, dict[str, Any], Expected]]]
SVC = test_ecs.SVC


@pytest.fixture
def settings(aws_settings: AwsSettings) -> Settings:
    """The actions' settings, with the node types elasticache.scale_node_type may choose."""
    ladder = ElastiCacheSettings(node_types=test_elasticache.LADDER)
    return Settings(aws=aws_settings.model_copy(update={"elasticache": ladder}))


async def ecs_force(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_ecs.make_service(moto)
    return ForceNewDeployment(), SVC, [("ecs", "UpdateService", {**SVC, "forceNewDeployment": True})]


async def ecs_scale(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_ecs.make_service(moto, desired=2)
    raw = {**SVC, "step": 3, "min": 1, "max": 10}
    return ScaleService(), raw, [("ecs", "UpdateService", {**SVC, "desiredCount": 5})]


async def ecs_rollback(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    made = await test_ecs.make_service(moto, revisions=2)
    return Rollback(), SVC, [("ecs", "UpdateService", {**SVC, "taskDefinition": made["arns"][0]})]


async def waf_block(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    arn = await test_waf.make_ip_set(moto, ["192.0.2.1/32"])
    name, set_id = arn.rsplit("/", 2)[1:]
    return BlockIp(), test_waf.block_params(arn, "203.0.113.7"), [("wafv2", "UpdateIPSet", {
        "Name": name, "Scope": "REGIONAL", "Id": set_id, "Addresses": ["192.0.2.1/32", "203.0.113.7/32"]})]


async def waf_unblock(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    arn = await test_waf.make_ip_set(moto, ["192.0.2.1/32", "203.0.113.7/32"])
    name, set_id = arn.rsplit("/", 2)[1:]
    return UnblockIp(), {"ip_set_arn": arn, "address": "203.0.113.7"}, [("wafv2", "UpdateIPSet", {
        "Name": name, "Scope": "REGIONAL", "Id": set_id, "Addresses": ["192.0.2.1/32"]})]


async def rds_failover(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_rds.make_cluster(moto)
    raw = {"cluster_id": test_rds.CLUSTER}
    return FailoverCluster(), raw, [("rds", "FailoverDBCluster", {"DBClusterIdentifier": test_rds.CLUSTER})]


async def rds_reboot(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_rds.make_instance(moto, multi_az=True)
    raw = {"instance_id": "erp-db-single", "force_failover": True}
    return RebootInstance(), raw, [("rds", "RebootDBInstance",
                                    {"DBInstanceIdentifier": "erp-db-single", "ForceFailover": True})]


async def rds_grow(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_rds.make_instance(moto, gib=100)
    raw = {"instance_id": "erp-db-single", "step_gib": 50, "max_gib": 500}
    return GrowStorage(), raw, [("rds", "ModifyDBInstance", {
        "DBInstanceIdentifier": "erp-db-single", "AllocatedStorage": 150, "ApplyImmediately": True})]


async def cache_failover(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_elasticache.make_group(moto)
    return CacheFailover(), test_elasticache.RAW, [("elasticache", "TestFailover", {
        "ReplicationGroupId": test_elasticache.GROUP, "NodeGroupId": "0001"})]


async def cache_scale(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_elasticache.make_group(moto)
    return ScaleNodeType(), test_elasticache.RAW, [("elasticache", "ModifyReplicationGroup", {
        "ReplicationGroupId": test_elasticache.GROUP, "CacheNodeType": "cache.r7g.xlarge", "ApplyImmediately": True})]


async def cache_restore(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_elasticache.make_group(moto)
    await test_elasticache_restore.snapshot(moto, "automatic.erp-sessions-1", clock.now())
    raw = test_elasticache_restore.RAW
    return RestoreFromSnapshot(), raw, [("elasticache", "CreateReplicationGroup", {
        "ReplicationGroupId": raw["new_replication_group_id"], "SnapshotName": "automatic.erp-sessions-1"})]


async def ec2_replace_route(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    net = await test_nat_routes.make_network(moto)
    raw = {"nat_gateway_id": net.standby, "route_table_ids": net.private}
    return ReplaceRoute(), raw, [("ec2", "ReplaceRoute", {"RouteTableId": table, "NatGatewayId": net.standby,
                                                           "DestinationCidrBlock": "0.0.0.0/0"})
                                 for table in net.private]


async def rds_check_snapshots(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_rds.make_instance(moto)
    raw = {"instance_id": "erp-db-single", "max_age": "26h"}
    return CheckSnapshots(), raw, [("rds", "DescribeDBSnapshots", {"DBInstanceIdentifier": "erp-db-single"})]


async def s3_evidence(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    await test_s3.seed(moto, clock, {"alb/1.log": b"one"})
    dest = test_s3.DEST
    return PreserveEvidence(), test_s3.RAW, [
        ("s3", "CopyObject", {"Bucket": "erp-forensics", "Key": dest + "alb/1.log",
                              "CopySource": {"Bucket": test_s3.SOURCE, "Key": "alb/1.log"},
                              "ObjectLockMode": "GOVERNANCE"}),
        ("s3", "PutObject", {"Bucket": "erp-forensics", "Key": dest + "manifest.json"})]


async def ec2_snapshot(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    made = await test_ec2.make_instance(moto)
    volumes = sorted(await test_ec2.volumes_of(moto, made["id"]))
    return SnapshotVolumes(), {"instance_id": made["id"]}, [
        ("ec2", "CreateSnapshot", {"VolumeId": volume}) for volume in volumes]


async def ec2_isolate(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    made = await test_ec2.make_instance(moto)
    raw = {"instance_id": made["id"], "quarantine_group_id": made["quarantine"]}
    return IsolateInstance(), raw, [("ec2", "ModifyInstanceAttribute",
                                     {"InstanceId": made["id"], "Groups": [made["quarantine"]]})]


async def route53_upsert(moto: MotoClient, clock: FakeClock) -> tuple[AnyAction, dict[str, Any], Expected]:
    zone = await test_route53.make_zone(moto)
    name = f"api.{test_route53.ZONE_NAME}."
    raw = {"hosted_zone_id": zone, "name": name, "type": "A", "values": ["198.51.100.20"], "ttl": 30}
    return UpsertRecord(), raw, [("route53", "ChangeResourceRecordSets", {"HostedZoneId": zone})]


CASES: dict[str, Case] = {
    "ecs.force_new_deployment": ecs_force, "ecs.scale_service": ecs_scale, "ecs.rollback": ecs_rollback,
    "waf.block_ip": waf_block, "waf.unblock_ip": waf_unblock, "rds.failover_cluster": rds_failover,
    "rds.reboot_instance": rds_reboot, "rds.grow_storage": rds_grow, "elasticache.failover": cache_failover,
    "s3.preserve_evidence": s3_evidence, "ec2.snapshot_volumes": ec2_snapshot, "ec2.isolate_instance": ec2_isolate,
    "route53.upsert_record": route53_upsert, "elasticache.scale_node_type": cache_scale,
    "elasticache.restore_from_snapshot": cache_restore, "ec2.replace_route": ec2_replace_route,
    "rds.check_snapshots": rds_check_snapshots,
}


def test_every_aws_action_has_a_dry_run_case() -> None:
    aws = [a.type_name for a in default_registry() if any(PERMISSION.match(p) for p in a.permissions)]
    assert sorted(CASES) == sorted(aws)


@pytest.mark.parametrize("type_name", sorted(CASES))
async def test_plan_names_the_exact_calls_and_makes_none(type_name: str, moto: MotoClient, clock: FakeClock,
                                                         ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    action, raw, expected = await CASES[type_name](moto, clock)
    planned = await action.plan_calls(action.Params(**raw), ctx_for(action, raw, dry_run=True))

    assert [(p.service, p.operation) for p in planned] == [(s, o) for s, o, _ in expected]
    for call, (_, _, args) in zip(planned, expected, strict=True):
        assert {k: call.args[k] for k in args} == args
    for hit in proxy.log:
        operation = hit.operation.split(" ")[0] if hit.protocol == "rest-xml" else hit.operation
        assert operation in ("GET", "HEAD") or is_read_only(operation), hit


@pytest.mark.parametrize("type_name", sorted(CASES))
async def test_a_precheck_only_reads(type_name: str, moto: MotoClient, clock: FakeClock, ctx_for: CtxFactory,
                                     proxy: FaultProxy, ledger: InMemoryBlockLedger) -> None:
    action, raw, _ = await CASES[type_name](moto, clock)
    blocks = ledger.entries()
    # An enforce context: nothing but the precheck itself keeps its calls to reads.
    assert await action.precheck(action.Params(**raw), ctx_for(action, raw)) is None
    # A read-only action's run is itself the reading; an action that changes things reads first.
    assert proxy.log or isinstance(action, ReadOnlyAction), "a precheck of an AWS action reads the resource it is about"
    for hit in proxy.log:
        operation = hit.operation.split(" ")[0] if hit.protocol == "rest-xml" else hit.operation
        assert operation in ("GET", "HEAD") or is_read_only(operation), hit
    assert ledger.entries() == blocks


async def test_route53_plan_carries_the_whole_change(moto: MotoClient, clock: FakeClock, ctx_for: CtxFactory) -> None:
    action, raw, _ = await route53_upsert(moto, clock)
    [call] = await action.plan_calls(action.Params(**raw), ctx_for(action, raw, dry_run=True))
    assert call.args["ChangeBatch"]["Changes"] == [{"Action": "UPSERT", "ResourceRecordSet": {
        "Name": raw["name"], "Type": "A", "TTL": 30, "ResourceRecords": [{"Value": "198.51.100.20"}]}}]
