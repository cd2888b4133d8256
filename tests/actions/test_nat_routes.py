"""ec2.replace_route against moto, through the fault proxy: a VPC with two private route tables on
a failing NAT gateway, a public one on the internet gateway, and a standby NAT gateway.

moto makes NAT gateways `available` at once: the tests play the other states on its backend
(docs/testing-aws.md §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from remediator.actions.aws.nat_routes import ReplaceRoute
from remediator.actions.base import ActionContext
from remediator.model import FailureReason, Outcome
from tests.support.context import CtxFactory, MotoClient, RecordingTimeline
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.moto import backend

REPLACE = ReplaceRoute()


@dataclass
class Network:
    vpc: str
    failing: str  # the NAT gateway the private tables use now
    standby: str
    private: list[str]
    public: str


async def nat_gateway(ec2: Any, subnet: str) -> str:
    allocation = (await ec2.allocate_address(Domain="vpc"))["AllocationId"]
    return str((await ec2.create_nat_gateway(SubnetId=subnet, AllocationId=allocation))["NatGateway"]["NatGatewayId"])


async def route_table(ec2: Any, vpc: str, tier: str, **route: str) -> str:
    table = (await ec2.create_route_table(VpcId=vpc, TagSpecifications=[{"ResourceType": "route-table", "Tags": [
        {"Key": "tier", "Value": tier}, {"Key": "env", "Value": "prod"}]}]))["RouteTable"]["RouteTableId"]
    if route:
        await ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", **route)
    return str(table)


@pytest.fixture
async def network(moto: MotoClient) -> Network:
    return await make_network(moto)


async def make_network(moto: MotoClient) -> Network:
    ec2 = await moto("ec2")
    vpc = (await ec2.create_vpc(CidrBlock="10.20.0.0/16"))["Vpc"]["VpcId"]
    public_a = (await ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.0.0/24"))["Subnet"]["SubnetId"]
    public_c = (await ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24"))["Subnet"]["SubnetId"]
    igw = (await ec2.create_internet_gateway())["InternetGateway"]["InternetGatewayId"]
    await ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    failing, standby = await nat_gateway(ec2, public_a), await nat_gateway(ec2, public_c)
    private = [await route_table(ec2, vpc, "private", NatGatewayId=failing) for _ in range(2)]
    public = await route_table(ec2, vpc, "public", GatewayId=igw)
    return Network(vpc, failing, standby, private, public)


def by_tags(net: Network, **extra: Any) -> dict[str, Any]:
    return {"nat_gateway_id": net.standby, "route_table_tags": {"tier": "private", "env": "prod"}, **extra}


async def targets(moto: MotoClient, tables: list[str]) -> dict[str, str]:
    answer = await (await moto("ec2")).describe_route_tables(RouteTableIds=tables)
    return {t["RouteTableId"]: next(r.get("NatGatewayId") or r.get("GatewayId") for r in t["Routes"]
                                    if r["DestinationCidrBlock"] == "0.0.0.0/0") for t in answer["RouteTables"]}


def notes(ctx: ActionContext) -> list[tuple[str, str, Mapping[str, Any]]]:
    assert isinstance(ctx.timeline, RecordingTimeline)
    return ctx.timeline.notes


def nat_state(nat: str, state: str) -> None:
    backend("ec2").nat_gateways[nat].state = state


async def test_the_private_default_routes_move_to_the_standby(network: Network, moto: MotoClient,
                                                               ctx_for: CtxFactory) -> None:
    raw = by_tags(network)
    ctx = ctx_for(REPLACE, raw)

    assert await REPLACE.precheck(REPLACE.Params(**raw), ctx) is None
    execution = await REPLACE.run(REPLACE.Params(**raw), ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert sorted(execution.detail["replaced"]) == sorted(network.private)
    assert execution.detail["previous"] == {t: network.failing for t in network.private}
    assert await targets(moto, network.private) == {t: network.standby for t in network.private}
    assert (await targets(moto, [network.public]))[network.public].startswith("igw-")  # never touched
    assert await REPLACE.verify(REPLACE.Params(**raw), ctx_for(REPLACE, raw, execution=execution)) is True


async def test_the_state_before_the_change_goes_onto_the_timeline(network: Network, ctx_for: CtxFactory) -> None:
    nat_state(network.failing, "failed")  # what a broken NAT gateway may show
    raw = by_tags(network)
    ctx = ctx_for(REPLACE, raw)
    await REPLACE.run(REPLACE.Params(**raw), ctx)

    [(kind, message, data)] = notes(ctx)
    assert kind == "diagnostics"
    assert {(t["route_table_id"], t["route_target"], t["route_state"]) for t in data["route_tables"]} == {
        (t, network.failing, "active") for t in network.private}
    assert {(g["nat_gateway_id"], g["state"]) for g in data["nat_gateways"]} == {
        (network.standby, "available"), (network.failing, "failed")}
    assert f"via {network.failing} (active)" in message and f"{network.failing} failed" in message


async def test_verify_is_false_while_the_standby_is_not_available_or_a_route_moved_back(
        network: Network, moto: MotoClient, ctx_for: CtxFactory) -> None:
    raw = by_tags(network)
    execution = await REPLACE.run(REPLACE.Params(**raw), ctx_for(REPLACE, raw))
    verify_ctx = ctx_for(REPLACE, raw, execution=execution)

    nat_state(network.standby, "failed")
    assert await REPLACE.verify(REPLACE.Params(**raw), verify_ctx) is False
    nat_state(network.standby, "available")
    await (await moto("ec2")).replace_route(RouteTableId=network.private[0], DestinationCidrBlock="0.0.0.0/0",
                                            NatGatewayId=network.failing)
    assert await REPLACE.verify(REPLACE.Params(**raw), verify_ctx) is False


async def test_refused_while_the_standby_is_not_available(network: Network, moto: MotoClient,
                                                          ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    nat_state(network.standby, "pending")
    raw = by_tags(network)
    reason = await REPLACE.precheck(REPLACE.Params(**raw), ctx_for(REPLACE, raw))
    execution = await REPLACE.run(REPLACE.Params(**raw), ctx_for(REPLACE, raw))

    assert reason == f"the standby NAT gateway {network.standby} is pending, not available"
    assert execution.reason is FailureReason.PRECHECK_FAILED
    assert "ReplaceRoute" not in proxy.operations()
    assert await targets(moto, network.private) == {t: network.failing for t in network.private}


async def test_an_unknown_standby_is_not_found(network: Network, ctx_for: CtxFactory) -> None:
    raw = by_tags(network, nat_gateway_id="nat-0123456789abcdef0")
    execution = await REPLACE.run(REPLACE.Params(**raw), ctx_for(REPLACE, raw))
    assert execution.reason is FailureReason.NOT_FOUND
    assert "nat-0123456789abcdef0 not found" in execution.detail["error"]


@pytest.mark.parametrize(("selection", "why"), [
    ({"route_table_tags": {"tier": "public"}}, "a public route table is never moved to a NAT gateway"),
    ({"route_table_tags": {"tier": "nowhere"}}, "no route table carries the tags {'tier': 'nowhere'}"),
    ({"route_table_tags": {"env": "prod"}}, "a public route table is never moved"),
    ({"route_table_tags": {"tier": "private"}, "max_tables": 1}, "more than max_tables (1)"),
])
async def test_refused_selections_change_nothing(network: Network, moto: MotoClient, ctx_for: CtxFactory,
                                                 proxy: FaultProxy, selection: dict[str, Any], why: str) -> None:
    raw = {"nat_gateway_id": network.standby, **selection}
    execution = await REPLACE.run(REPLACE.Params(**raw), ctx_for(REPLACE, raw))
    assert execution.outcome is Outcome.FAILED and why in execution.detail["error"]
    assert "ReplaceRoute" not in proxy.operations()
    assert await targets(moto, network.private) == {t: network.failing for t in network.private}
    assert (await targets(moto, [network.public]))[network.public].startswith("igw-")


async def test_a_table_without_a_default_route_or_in_another_vpc_is_refused(
        network: Network, moto: MotoClient, ctx_for: CtxFactory) -> None:
    ec2 = await moto("ec2")
    bare = await route_table(ec2, network.vpc, "isolated")
    other_vpc = (await ec2.create_vpc(CidrBlock="10.30.0.0/16"))["Vpc"]["VpcId"]
    elsewhere = await route_table(ec2, other_vpc, "private")
    for table, why in ((bare, f"{bare} has no route to 0.0.0.0/0 to replace"),
                       (elsewhere, f"{elsewhere} is in {other_vpc}, the standby NAT gateway")):
        raw = {"nat_gateway_id": network.standby, "route_table_ids": [network.private[0], table]}
        reason = await REPLACE.precheck(REPLACE.Params(**raw), ctx_for(REPLACE, raw))
        assert reason is not None and why in reason


async def test_a_table_already_on_the_standby_is_left_alone(network: Network, moto: MotoClient,
                                                            ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await (await moto("ec2")).replace_route(RouteTableId=network.private[1], DestinationCidrBlock="0.0.0.0/0",
                                            NatGatewayId=network.standby)
    raw = {"nat_gateway_id": network.standby, "route_table_ids": network.private}
    [planned] = await REPLACE.plan_calls(REPLACE.Params(**raw), ctx_for(REPLACE, raw, dry_run=True))
    execution = await REPLACE.run(REPLACE.Params(**raw), ctx_for(REPLACE, raw))

    assert planned.args == {"RouteTableId": network.private[0], "DestinationCidrBlock": "0.0.0.0/0",
                            "NatGatewayId": network.standby}
    assert execution.detail["replaced"] == [network.private[0]]
    assert execution.detail["already_on_standby"] == [network.private[1]]
    assert proxy.operations().count("ReplaceRoute") == 1


async def test_the_dry_run_plans_every_replace_and_changes_nothing(network: Network, moto: MotoClient,
                                                                   ctx_for: CtxFactory) -> None:
    raw = by_tags(network)
    planned = await REPLACE.plan_calls(REPLACE.Params(**raw), ctx_for(REPLACE, raw, dry_run=True))
    assert sorted(c.args["RouteTableId"] for c in planned) == sorted(network.private)
    assert {c.operation for c in planned} == {"ReplaceRoute"}
    assert await targets(moto, network.private) == {t: network.failing for t in network.private}


async def test_access_denied_changes_nothing_and_is_not_retried(network: Network, moto: MotoClient,
                                                                ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    proxy.add(Rule("ReplaceRoute", times=None, status=403, code="UnauthorizedOperation"))
    raw = by_tags(network)
    ctx = ctx_for(REPLACE, raw)
    execution = await REPLACE.run(REPLACE.Params(**raw), ctx)

    assert execution.reason is FailureReason.ACCESS_DENIED and execution.retryable is False
    assert execution.detail["replaced"] == [] and [h.status for h in proxy.log if h.operation == "ReplaceRoute"] == [
        403]
    assert await targets(moto, network.private) == {t: network.failing for t in network.private}
    assert [kind for kind, _, _ in notes(ctx)] == ["diagnostics"]  # what was seen is kept all the same


async def test_a_failure_midway_says_which_tables_moved_and_where_they_pointed(
        network: Network, moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    proxy.add(Rule("ReplaceRoute", mode="pass", times=1))
    proxy.add(Rule("ReplaceRoute", times=None, status=503, code="Unavailable"))
    raw = {"nat_gateway_id": network.standby, "route_table_ids": network.private}
    execution = await REPLACE.run(REPLACE.Params(**raw), ctx_for(REPLACE, raw))

    assert execution.reason is FailureReason.SERVER_ERROR and execution.retryable is True
    moved = execution.detail["replaced"]
    assert len(moved) == 1 and execution.detail["previous"] == {t: network.failing for t in network.private}
    assert (await targets(moto, moved))[moved[0]] == network.standby


async def test_throttled_twice_then_moved(network: Network, moto: MotoClient, ctx_for: CtxFactory,
                                          proxy: FaultProxy) -> None:
    proxy.add(Rule("ReplaceRoute", times=2, status=503, code="RequestLimitExceeded"))
    raw = {"nat_gateway_id": network.standby, "route_table_ids": network.private[:1]}
    execution = await REPLACE.run(REPLACE.Params(**raw), ctx_for(REPLACE, raw))

    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["retry_attempts"] == 2
    assert (await targets(moto, network.private[:1]))[network.private[0]] == network.standby


def test_params_select_tables_one_way() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        REPLACE.Params(nat_gateway_id="nat-0123456789abcdef0")
    with pytest.raises(ValidationError, match="exactly one"):
        REPLACE.Params(nat_gateway_id="nat-0123456789abcdef0", route_table_ids=["rtb-0123456789abcdef0"],
                       route_table_tags={"tier": "private"})
    with pytest.raises(ValidationError):
        REPLACE.Params(nat_gateway_id="igw-0123456789abcdef0", route_table_ids=["rtb-0123456789abcdef0"])
