"""RDS actions against moto, through the fault proxy."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from remediator.actions.aws.rds import FailoverCluster, GrowStorage, RebootInstance
from remediator.model import FailureReason, Outcome
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy

CLUSTER = "erp-db"
FAILOVER, REBOOT, GROW = FailoverCluster(), RebootInstance(), GrowStorage()


async def make_cluster(moto: MotoClient, members: int = 2) -> list[str]:
    rds = await moto("rds")
    await rds.create_db_cluster(DBClusterIdentifier=CLUSTER, Engine="aurora-postgresql",
                                MasterUsername="erp", MasterUserPassword="not-a-secret-1")
    names = [f"{CLUSTER}-{i}" for i in range(1, members + 1)]
    for name in names:
        await rds.create_db_instance(DBInstanceIdentifier=name, DBInstanceClass="db.r6g.large",
                                     Engine="aurora-postgresql", DBClusterIdentifier=CLUSTER)
    return names


async def writer(moto: MotoClient) -> str:
    cluster = (await (await moto("rds")).describe_db_clusters(DBClusterIdentifier=CLUSTER))["DBClusters"][0]
    return str(next(m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]))


async def make_instance(moto: MotoClient, gib: int = 100, multi_az: bool = False) -> None:
    await (await moto("rds")).create_db_instance(
        DBInstanceIdentifier="erp-db-single", DBInstanceClass="db.m6g.large", Engine="postgres",
        AllocatedStorage=gib, MasterUsername="erp", MasterUserPassword="not-a-secret-1", MultiAZ=multi_az)


async def storage(moto: MotoClient) -> int:
    answer = await (await moto("rds")).describe_db_instances(DBInstanceIdentifier="erp-db-single")
    return int(answer["DBInstances"][0]["AllocatedStorage"])


async def test_failover_moves_the_writer_and_records_the_old_one(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_cluster(moto)
    old = await writer(moto)
    raw = {"cluster_id": CLUSTER}
    params = FAILOVER.Params(**raw)

    assert await FAILOVER.precheck(params, ctx_for(FAILOVER, raw)) is None
    execution = await FAILOVER.run(params, ctx_for(FAILOVER, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["old_writer"] == old
    assert await writer(moto) != old
    assert await FAILOVER.verify(params, ctx_for(FAILOVER, raw, execution=execution)) is True


async def test_failover_to_a_named_reader(moto: MotoClient, ctx_for: CtxFactory) -> None:
    names = await make_cluster(moto, members=3)
    old = await writer(moto)
    target = next(n for n in names if n != old)
    raw = {"cluster_id": CLUSTER, "target_instance": target}
    execution = await FAILOVER.run(FAILOVER.Params(**raw), ctx_for(FAILOVER, raw))

    assert execution.outcome is Outcome.SUCCEEDED
    assert await writer(moto) == target


async def test_failover_verify_is_false_while_the_writer_has_not_moved(moto: MotoClient,
                                                                      ctx_for: CtxFactory) -> None:
    await make_cluster(moto)
    raw = {"cluster_id": CLUSTER}
    execution = await FAILOVER.run(FAILOVER.Params(**raw), ctx_for(FAILOVER, raw))
    # Play a second failover back to the old writer: the recovery we recorded is undone.
    await (await moto("rds")).failover_db_cluster(DBClusterIdentifier=CLUSTER,
                                                  TargetDBInstanceIdentifier=execution.detail["old_writer"])
    assert await FAILOVER.verify(FAILOVER.Params(**raw), ctx_for(FAILOVER, raw, execution=execution)) is False


async def test_failover_refused_without_a_reader(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await make_cluster(moto, members=1)
    raw = {"cluster_id": CLUSTER}
    reason = await FAILOVER.precheck(FAILOVER.Params(**raw), ctx_for(FAILOVER, raw))
    execution = await FAILOVER.run(FAILOVER.Params(**raw), ctx_for(FAILOVER, raw))

    assert reason is not None and "no reader" in reason
    assert execution.reason is FailureReason.PRECHECK_FAILED
    assert "FailoverDBCluster" not in proxy.operations()


async def test_failover_refused_to_a_non_member(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_cluster(moto)
    raw = {"cluster_id": CLUSTER, "target_instance": "some-other-db"}
    reason = await FAILOVER.precheck(FAILOVER.Params(**raw), ctx_for(FAILOVER, raw))
    assert reason is not None and "not a reader" in reason


async def test_failover_of_a_missing_cluster_is_not_found(moto: MotoClient, ctx_for: CtxFactory) -> None:
    raw = {"cluster_id": "no-such-cluster"}
    execution = await FAILOVER.run(FAILOVER.Params(**raw), ctx_for(FAILOVER, raw))
    assert execution.reason is FailureReason.NOT_FOUND and execution.retryable is False
    assert execution.detail["code"] == "DBClusterNotFoundFault"


async def test_reboot_calls_reboot_with_failover(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await make_instance(moto, multi_az=True)
    raw = {"instance_id": "erp-db-single", "force_failover": True}
    params = REBOOT.Params(**raw)
    assert await REBOOT.precheck(params, ctx_for(REBOOT, raw)) is None
    execution = await REBOOT.run(params, ctx_for(REBOOT, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    # moto shows nothing of a reboot: the call itself is the observable effect.
    assert proxy.operations("rds") == ["DescribeDBInstances", "DescribeDBInstances", "RebootDBInstance"]
    assert await REBOOT.verify(params, ctx_for(REBOOT, raw, execution=execution)) is True


async def test_reboot_with_failover_refused_for_a_single_az_instance(moto: MotoClient, ctx_for: CtxFactory,
                                                                     proxy: FaultProxy) -> None:
    await make_instance(moto, multi_az=False)
    raw = {"instance_id": "erp-db-single", "force_failover": True}
    execution = await REBOOT.run(REBOOT.Params(**raw), ctx_for(REBOOT, raw))
    assert execution.reason is FailureReason.PRECHECK_FAILED and "Multi-AZ" in execution.detail["error"]
    assert "RebootDBInstance" not in proxy.operations()


async def test_grow_storage_by_percent(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_instance(moto, gib=100)
    raw: dict[str, Any] = {"instance_id": "erp-db-single", "step_percent": 25, "max_gib": 1000}
    params = GROW.Params(**raw)
    execution = await GROW.run(params, ctx_for(GROW, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert await storage(moto) == 125
    assert execution.detail["previous_gib"] == 100 and execution.detail["clamped"] is False
    assert await GROW.verify(params, ctx_for(GROW, raw, execution=execution)) is True


async def test_grow_storage_is_clamped_to_the_ceiling(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_instance(moto, gib=100)
    raw: dict[str, Any] = {"instance_id": "erp-db-single", "step_gib": 50, "max_gib": 120}
    execution = await GROW.run(GROW.Params(**raw), ctx_for(GROW, raw))

    assert await storage(moto) == 120
    assert execution.detail["clamped"] is True


async def test_grow_storage_at_the_ceiling_is_refused(moto: MotoClient, ctx_for: CtxFactory,
                                                      proxy: FaultProxy) -> None:
    await make_instance(moto, gib=120)
    for ceiling, expected in ((120, "already at the ceiling"), (125, "less than the 10 %")):
        raw: dict[str, Any] = {"instance_id": "erp-db-single", "step_gib": 50, "max_gib": ceiling}
        execution = await GROW.run(GROW.Params(**raw), ctx_for(GROW, raw))
        assert execution.reason is FailureReason.LIMIT_EXCEEDED and expected in execution.detail["error"]
        assert await GROW.plan_calls(GROW.Params(**raw), ctx_for(GROW, raw)) == []
    assert "ModifyDBInstance" not in proxy.operations()
    assert await storage(moto) == 120


def test_grow_storage_params_need_exactly_one_step() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        GROW.Params(instance_id="erp-db", max_gib=100)
    with pytest.raises(ValidationError, match="exactly one"):
        GROW.Params(instance_id="erp-db", max_gib=100, step_gib=10, step_percent=10)
    with pytest.raises(ValidationError):
        GROW.Params(instance_id="erp--db", max_gib=100, step_gib=10)
