"""Runbook §9 (network) end to end: policies/network.yaml in an enforcing daemon, EC2 and Route 53
on moto."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.actions.test_nat_routes import make_network, targets
from tests.actions.test_route53 import make_zone, record_values
from tests.scenarios.conftest import Scenario, ScenarioFactory
from tests.support.context import MotoClient
from tests.support.moto import backend

pytestmark = pytest.mark.integration

STANDBY = "nat-0f1e2d3c4b5a69788"  # the estate's standby NAT gateway, as the policy names it


async def test_9_1_nat_failure_moves_the_private_routes_to_the_standby_after_approval(
        scenario: ScenarioFactory, moto: MotoClient) -> None:
    net = await make_network(moto)
    # moto chooses NAT gateway ids: the policy's standby id becomes the one moto made.
    s: Scenario = await scenario("network.yaml", edits={STANDBY: net.standby})

    await s.sns("cw-nat-port-allocation-errors.json")

    [incident] = await s.daemon.deps.store.list_incidents()
    assert incident.severity.value == "P1"
    assert s.told("infra_lead") == ["P1 erp-prod-nat-port-allocation-errors on nat-0a1b2c3d4e5f60718"]
    [pending] = await s.pending()
    assert pending["plan"]["action"] == "ec2.replace_route"
    assert await targets(moto, net.private) == {t: net.failing for t in net.private}  # nothing moved yet
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer
    assert await targets(moto, net.private) == {t: net.standby for t in net.private}
    assert await targets(moto, [net.public]) == {net.public: (await targets(moto, [net.public]))[net.public]}
    # The runbook's diagnostics (route tables, NAT gateways and their states) went on the timeline first.
    before = str([e.data for e in await s.timeline()])
    assert net.failing in before and all(t in before for t in net.private)

    # moto reports the standby available at once; play it failing at the first check, so the check
    # repeats, then recovering before the timeout.
    backend("ec2").nat_gateways[net.standby].state = "failed"
    await s.tick(timedelta(minutes=5))
    assert await s.timeline("verified") == []
    backend("ec2").nat_gateways[net.standby].state = "available"
    await s.tick(timedelta(minutes=5))
    assert [e.message for e in await s.timeline("verified")] == [
        "recovered after nat-gateway-failing-replace-route step 1"]


async def test_9_2_dns_health_check_failing_points_the_name_at_the_standby_after_approval(
        scenario: ScenarioFactory, moto: MotoClient) -> None:
    zone = await make_zone(moto, {"Name": "api.erp.example-hospital.org.", "Type": "CNAME", "TTL": 300,
                                  "ResourceRecords": [{"Value": "erp-prod-alb.eu-west-1.elb.amazonaws.com"}]})
    # moto chooses hosted zone ids: the policy's zone id becomes the one moto made.
    s: Scenario = await scenario("network.yaml", edits={"Z0123456789ABCDEFGHIJ": zone})

    await s.sns("cw-api-health-check.json")

    assert s.told("infra_lead") == [
        "P1 erp-prod-api-health-check: api.erp.example-hospital.org failing its health check"]
    name = "api.erp.example-hospital.org."
    assert await record_values(moto, zone, name, "CNAME") == (["erp-prod-alb.eu-west-1.elb.amazonaws.com"], 300)
    [answer] = await s.approve_all()
    assert answer["outcome"] == "succeeded", answer
    values, ttl = await record_values(moto, zone, name, "CNAME")
    assert [v.rstrip(".") for v in values] == ["api-standby.erp.example-hospital.org"] and ttl == 60
