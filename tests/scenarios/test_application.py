"""Runbook §7 (API) end to end: policies/application.yaml in an enforcing daemon, ECS and
CloudWatch on moto."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.actions.test_ecs import complete_rollout
from tests.scenarios.conftest import Scenario, ScenarioFactory
from tests.scenarios.test_cache import alarm_in_state
from tests.support.context import MotoClient
from tests.support.moto import create_erp_api

pytestmark = pytest.mark.integration


async def erp_api_on_revision_2(moto: MotoClient) -> Any:
    """The API service (cluster erp-prod) running erp-api:2, with erp-api:1 to roll back to."""
    ecs = await moto("ecs")
    await create_erp_api(ecs)
    second = await ecs.register_task_definition(
        family="erp-api", containerDefinitions=[{"name": "api", "image": "erp/api:42", "memory": 512}])
    await ecs.update_service(cluster="erp-prod", service="erp-api",
                             taskDefinition=second["taskDefinition"]["taskDefinitionArn"])
    return ecs


async def service(ecs: Any) -> dict[str, Any]:
    return dict((await ecs.describe_services(cluster="erp-prod", services=["erp-api"]))["services"][0])


async def test_7_1_memory_leak_restart_then_held_rollback_then_the_dev_lead(
        scenario: ScenarioFactory, moto: MotoClient) -> None:
    ecs = await erp_api_on_revision_2(moto)
    before = {d["id"] for d in (await service(ecs))["deployments"]}
    await alarm_in_state(moto, "erp-prod-api-memory-high", "ALARM", namespace="AWS/ECS", metric="MemoryUtilization")
    s: Scenario = await scenario("application.yaml")

    await s.sns("cw-api-memory-high.json")

    # Step 2 of the runbook: a rolling restart, at once (P2).
    assert await s.outcomes() == [("ecs.force_new_deployment", "allow", "succeeded")]
    running = await service(ecs)
    assert {d["id"] for d in running["deployments"]} != before
    assert running["taskDefinition"].endswith("erp-api:2")

    # The memory alarm stays in ALARM: not recovered, so the rollback is requested, held (risk: high).
    await s.tick(timedelta(minutes=15))
    [pending] = await s.pending()
    assert pending["plan"]["action"] == "ecs.rollback"
    assert (await service(ecs))["taskDefinition"].endswith("erp-api:2")
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer
    assert (await service(ecs))["taskDefinition"].endswith("erp-api:1")
    assert s.told("dev_lead") == []

    await s.tick(timedelta(minutes=15))  # still in alarm after the rollback: the dev lead
    assert s.told("dev_lead") == [
        "erp-prod-api-memory-high: API memory still high after a restart and a rollback"]


async def test_7_2_api_down_is_p1_the_redeploy_runs_after_approval_and_is_verified(
        scenario: ScenarioFactory, moto: MotoClient) -> None:
    ecs = await erp_api_on_revision_2(moto)
    before = {d["id"] for d in (await service(ecs))["deployments"]}
    await alarm_in_state(moto, "erp-prod-api-down", "ALARM", namespace="AWS/ApplicationELB",
                         metric="HealthyHostCount")
    s: Scenario = await scenario("application.yaml")

    await s.sns("cw-api-down.json")

    [incident] = await s.daemon.deps.store.list_incidents()
    assert incident.severity.value == "P1"
    assert sorted(await s.outcomes()) == [("ecs.force_new_deployment", "hold", "not_run"),
                                          ("notify.webhook", "allow", "succeeded")]
    assert s.told("dev_lead") == ["P1 erp-prod-api-down: no healthy API task"]
    assert {d["id"] for d in (await service(ecs))["deployments"]} == before  # nothing before approval
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer
    assert {d["id"] for d in (await service(ecs))["deployments"]} != before

    # The new tasks pass the health check: the rollout completes (moto never finishes one; the
    # test plays ECS) and the alarm is OK again, so no rollback is requested.
    complete_rollout()
    await alarm_in_state(moto, "erp-prod-api-down", "OK", namespace="AWS/ApplicationELB", metric="HealthyHostCount")
    await s.tick(timedelta(minutes=5))
    assert [e.message for e in await s.timeline("verified")] == ["recovered after api-down-redeploy step 1"]
    assert await s.pending() == []
    assert (await service(ecs))["taskDefinition"].endswith("erp-api:2")


async def test_7_1_cpu_overload_scales_the_api_out_by_two_tasks(scenario: ScenarioFactory, moto: MotoClient) -> None:
    ecs = await erp_api_on_revision_2(moto)
    assert (await service(ecs))["desiredCount"] == 2
    s: Scenario = await scenario("application.yaml")

    await s.alertmanager("am-api-high-latency.json")

    assert await s.outcomes() == [("ecs.scale_service", "allow", "succeeded")]
    assert (await service(ecs))["desiredCount"] == 4  # the runbook's manual scale-out, 2 tasks at a time
