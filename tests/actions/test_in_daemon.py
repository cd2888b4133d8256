"""The daemon really runs the AWS actions: an Alertmanager alert in, ECS changed in moto, one record out.

The in-process daemon (shipped registry and app wiring, real SQLite, fake clock) gets its AWS
endpoint from settings (`aws.endpoint_url`, the fault proxy in front of moto), exactly as a
deployment would point it at a VPC endpoint; nothing in the engine is replaced.
"""

from __future__ import annotations

from typing import Any

from remediator.aws.clients import is_read_only
from remediator.clock import FakeClock
from remediator.model import Outcome, Phase, Verdict
from tests.actions.conftest import post_alert
from tests.support.context import MotoClient
from tests.support.daemon import Daemon, DaemonFactory
from tests.support.faultproxy import FaultProxy
from tests.support.moto import create_erp_api

POLICY = """
name: erp-api-redeploy
description: The ERP API answers 5xx on the wards; replace its tasks.
severity: P2
match: {source: alertmanager, alertname: ErpApi5xx}
actions:
  - type: ecs.force_new_deployment
    params: {cluster: erp-prod, service: "{labels.service}"}
"""


async def erp_api(moto: MotoClient) -> Any:
    """The ERP API as an ECS service in moto (cluster erp-prod, service erp-api); its client."""
    ecs = await moto("ecs")
    await create_erp_api(ecs)
    return ecs


async def deployment_ids(ecs: Any) -> list[str]:
    answer = await ecs.describe_services(cluster="erp-prod", services=["erp-api"])
    return [d["id"] for d in answer["services"][0]["deployments"]]


async def api_5xx(daemon: Daemon, clock: FakeClock) -> None:
    await post_alert(daemon, "ErpApi5xx", {"service": "erp-api", "ward": "cardiology"}, fingerprint="fp-api",
                     starts_at=clock.now())


async def test_enforce_an_alert_redeploys_the_service_with_one_audit_record(
        moto: MotoClient, aws_daemon: DaemonFactory, clock: FakeClock, proxy: FaultProxy) -> None:
    ecs = await erp_api(moto)
    [before] = await deployment_ids(ecs)
    daemon: Daemon = await aws_daemon(POLICY, mode="enforce")

    await api_5xx(daemon, clock)

    [after] = await deployment_ids(ecs)
    assert after != before
    [record] = await daemon.deps.store.list_audit()
    assert (record.action, record.mode, record.verdict, record.outcome) == (
        "ecs.force_new_deployment", "enforce", Verdict.ALLOW, Outcome.SUCCEEDED)
    assert record.target == "ecs:service/erp-prod/erp-api"
    assert record.detail["previous_deployment_id"] == before and record.detail["deployment_id"] == after
    incident = await daemon.deps.store.get_incident(record.incident_id)
    assert incident is not None and incident.phase is Phase.CONTAIN
    # The precheck reads the service, the run reads it again (the id it replaces) and updates it, once.
    assert proxy.operations() == ["DescribeServices", "DescribeServices", "UpdateService"]


async def test_dry_run_makes_no_mutating_call_and_records_the_planned_ones(
        moto: MotoClient, aws_daemon: DaemonFactory, clock: FakeClock, proxy: FaultProxy) -> None:
    ecs = await erp_api(moto)
    before = await deployment_ids(ecs)
    daemon: Daemon = await aws_daemon(POLICY, mode="dry-run")

    await api_5xx(daemon, clock)

    assert await deployment_ids(ecs) == before
    assert all(is_read_only(operation) for operation in proxy.operations())
    [record] = await daemon.deps.store.list_audit()
    assert (record.mode, record.verdict, record.outcome) == ("dry-run", Verdict.ALLOW, Outcome.DRY_RUN)
    assert record.detail["would_call"] == [{"service": "ecs", "operation": "UpdateService", "args": {
        "cluster": "erp-prod", "service": "erp-api", "forceNewDeployment": True}}]
    incident = await daemon.deps.store.get_incident(record.incident_id)
    assert incident is not None and incident.phase is Phase.TRIAGE  # nothing was contained
