"""ECS actions against moto, through the fault proxy."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from remediator.actions.aws.ecs import ForceNewDeployment, Rollback, ScaleService
from remediator.model import FailureReason, Outcome
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy
from tests.support.moto import backend

CLUSTER, SERVICE = "erp-prod", "erp-api"
SVC = {"cluster": CLUSTER, "service": SERVICE}


async def make_service(moto: MotoClient, desired: int = 2, revisions: int = 1) -> dict[str, Any]:
    ecs = await moto("ecs")
    await ecs.create_cluster(clusterName=CLUSTER)
    arns = []
    for _ in range(revisions):
        answer = await ecs.register_task_definition(
            family="erp-api", containerDefinitions=[{"name": "api", "image": "erp/api:1", "memory": 512}])
        arns.append(answer["taskDefinition"]["taskDefinitionArn"])
    service = await ecs.create_service(cluster=CLUSTER, serviceName=SERVICE, taskDefinition=arns[-1],
                                       desiredCount=desired)
    return {"service": service["service"], "arns": arns}


async def read_service(moto: MotoClient) -> dict[str, Any]:
    answer = await (await moto("ecs")).describe_services(cluster=CLUSTER, services=[SERVICE])
    return dict(answer["services"][0])


def complete_rollout() -> None:
    """Play ECS: finish the service's rollout (moto never does)."""
    service = backend("ecs").services[f"{CLUSTER}:{SERVICE}"]
    for deployment in service.deployments:
        deployment["rolloutState"] = "COMPLETED"


async def test_force_new_deployment_starts_a_new_deployment(moto: MotoClient, ctx_for: CtxFactory,
                                                            proxy: FaultProxy) -> None:
    await make_service(moto)
    before = (await read_service(moto))["deployments"][0]["id"]
    action = ForceNewDeployment()
    params = action.Params(**SVC)
    ctx = ctx_for(action, SVC)

    assert await action.precheck(params, ctx) is None
    execution = await action.run(params, ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    after = (await read_service(moto))["deployments"][0]["id"]
    assert after != before
    assert execution.detail["deployment_id"] == after
    assert execution.detail["previous_deployment_id"] == before
    assert proxy.operations("ecs") == ["DescribeServices", "DescribeServices", "UpdateService"]


async def test_force_new_deployment_verify_waits_for_rollout(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_service(moto)
    action = ForceNewDeployment()
    params = action.Params(**SVC)
    execution = await action.run(params, ctx_for(action, SVC))
    verify_ctx = ctx_for(action, SVC, execution=execution)

    assert await action.verify(params, verify_ctx) is False
    complete_rollout()
    assert await action.verify(params, verify_ctx) is True


async def test_force_new_deployment_verify_ignores_a_later_deployment(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_service(moto)
    action = ForceNewDeployment()
    params = action.Params(**SVC)
    execution = await action.run(params, ctx_for(action, SVC))
    await (await moto("ecs")).update_service(cluster=CLUSTER, service=SERVICE, forceNewDeployment=True)
    complete_rollout()

    assert await action.verify(params, ctx_for(action, SVC, execution=execution)) is False


async def test_precheck_refuses_a_missing_service(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await (await moto("ecs")).create_cluster(clusterName=CLUSTER)
    action = ForceNewDeployment()
    reason = await action.precheck(action.Params(**SVC), ctx_for(action, SVC))
    assert reason is not None and "not found" in reason


async def test_scale_up_by_step(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_service(moto, desired=2)
    action = ScaleService()
    raw = {**SVC, "step": 3, "min": 1, "max": 10}
    execution = await action.run(action.Params(**raw), ctx_for(action, raw))

    assert execution.outcome is Outcome.SUCCEEDED
    assert (await read_service(moto))["desiredCount"] == 5
    assert execution.detail["previous_desired_count"] == 2 and execution.detail["clamped"] is False


async def test_scale_is_clamped_to_max(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_service(moto, desired=8)
    action = ScaleService()
    raw = {**SVC, "step": 5, "min": 1, "max": 10}
    execution = await action.run(action.Params(**raw), ctx_for(action, raw))

    assert (await read_service(moto))["desiredCount"] == 10
    assert execution.detail["clamped"] is True


async def test_scale_at_max_refuses_without_calling_update(moto: MotoClient, ctx_for: CtxFactory,
                                                           proxy: FaultProxy) -> None:
    await make_service(moto, desired=10)
    action = ScaleService()
    raw = {**SVC, "step": 1, "min": 1, "max": 10}
    execution = await action.run(action.Params(**raw), ctx_for(action, raw))

    assert execution.outcome is Outcome.FAILED
    assert execution.reason is FailureReason.LIMIT_EXCEEDED and execution.retryable is False
    assert "max 10" in execution.detail["error"]
    assert "UpdateService" not in proxy.operations()
    assert (await read_service(moto))["desiredCount"] == 10


async def test_scale_down_never_below_min(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await make_service(moto, desired=3)
    action = ScaleService()
    raw = {**SVC, "step": -5, "min": 2, "max": 10}
    first = await action.run(action.Params(**raw), ctx_for(action, raw))
    second = await action.run(action.Params(**raw), ctx_for(action, raw))

    assert first.outcome is Outcome.SUCCEEDED and first.detail["desired_count"] == 2
    assert second.reason is FailureReason.LIMIT_EXCEEDED and "min 2" in second.detail["error"]
    assert (await read_service(moto))["desiredCount"] == 2
    assert proxy.operations().count("UpdateService") == 1


async def test_scale_up_never_moves_down_when_above_max(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_service(moto, desired=12)
    action = ScaleService()
    raw = {**SVC, "step": 1, "min": 1, "max": 10}
    execution = await action.run(action.Params(**raw), ctx_for(action, raw))

    assert execution.reason is FailureReason.LIMIT_EXCEEDED
    assert (await read_service(moto))["desiredCount"] == 12


async def test_scale_verify_running_equals_desired(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_service(moto, desired=2)
    action = ScaleService()
    raw = {**SVC, "step": 2, "min": 1, "max": 10}
    params = action.Params(**raw)
    execution = await action.run(params, ctx_for(action, raw))
    ctx = ctx_for(action, raw, execution=execution)

    assert await action.verify(params, ctx) is True  # moto starts the tasks at once
    backend("ecs").services[f"{CLUSTER}:{SERVICE}"].running_count = 3
    assert await action.verify(params, ctx) is False


async def test_rollback_to_previous_revision_passes_full_arn(moto: MotoClient, ctx_for: CtxFactory) -> None:
    made = await make_service(moto, revisions=3)
    action = Rollback()
    params = action.Params(**SVC)
    ctx = ctx_for(action, SVC)

    assert await action.precheck(params, ctx) is None
    execution = await action.run(params, ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert (await read_service(moto))["taskDefinition"] == made["arns"][1]
    assert execution.detail["previous_task_definition"] == made["arns"][2]


async def test_rollback_to_named_revision(moto: MotoClient, ctx_for: CtxFactory) -> None:
    made = await make_service(moto, revisions=3)
    action = Rollback()
    raw = {**SVC, "task_definition": "erp-api:1"}
    execution = await action.run(action.Params(**raw), ctx_for(action, raw))

    assert (await read_service(moto))["taskDefinition"] == made["arns"][0]
    assert execution.detail["task_definition"] == made["arns"][0]


async def test_rollback_refuses_missing_or_current_revision(moto: MotoClient, ctx_for: CtxFactory,
                                                            proxy: FaultProxy) -> None:
    await make_service(moto, revisions=2)
    action = Rollback()
    for revision, expected in (("erp-api:9", "not found"), ("erp-api:2", "already")):
        raw = {**SVC, "task_definition": revision}
        reason = await action.precheck(action.Params(**raw), ctx_for(action, raw))
        assert reason is not None and expected in reason
        execution = await action.run(action.Params(**raw), ctx_for(action, raw))
        assert execution.reason is FailureReason.PRECHECK_FAILED
    assert "UpdateService" not in proxy.operations()


async def test_rollback_refuses_without_an_earlier_revision(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_service(moto, revisions=1)
    action = Rollback()
    reason = await action.precheck(action.Params(**SVC), ctx_for(action, SVC))
    assert reason is not None and "no ACTIVE revision" in reason


async def test_rollback_verify(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_service(moto, revisions=2)
    action = Rollback()
    params = action.Params(**SVC)
    execution = await action.run(params, ctx_for(action, SVC))
    ctx = ctx_for(action, SVC, execution=execution)
    assert await action.verify(params, ctx) is False
    complete_rollout()
    assert await action.verify(params, ctx) is True


async def test_force_new_deployment_verify_without_the_execution(moto: MotoClient, ctx_for: CtxFactory) -> None:
    """No execution passed: the PRIMARY deployment counts only if it began after the request."""
    await make_service(moto)
    action = ForceNewDeployment()
    params = action.Params(**SVC)
    ctx = ctx_for(action, SVC)
    await action.run(params, ctx)
    complete_rollout()
    assert await action.verify(params, ctx) is True

    later = ctx_for(action, SVC)
    later.request = replace(later.request, created_at=later.request.created_at + timedelta(hours=1))
    assert await action.verify(params, later) is False
