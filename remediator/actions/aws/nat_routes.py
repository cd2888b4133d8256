"""`ec2.replace_route`: the private route tables' default route to a standby NAT gateway.

When a NAT gateway fails (port allocation errors, dropped packets), the private subnets lose their
way out: the API cannot reach external services. The runbook replaces the default route of each
private route table with one through a standby NAT gateway kept `available` in another zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Annotated, Any

from pydantic import Field, StringConstraints, model_validator

from remediator.actions.aws.common import Refused, not_yet_on_error
from remediator.actions.base import Action, ActionContext, ActionParams, PlannedCall
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason, Risk

RouteTableId = Annotated[str, StringConstraints(pattern=r"^rtb-([0-9a-f]{8}|[0-9a-f]{17})$")]
NatGatewayId = Annotated[str, StringConstraints(pattern=r"^nat-([0-9a-f]{8}|[0-9a-f]{17})$")]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
TagValue = Annotated[str, StringConstraints(max_length=256, pattern=r"^[^\x00-\x1f]*$")]
ROUTE_TARGETS = ("NatGatewayId", "GatewayId", "TransitGatewayId", "NetworkInterfaceId", "InstanceId",
                 "VpcPeeringConnectionId", "LocalGatewayId", "CarrierGatewayId", "VpcEndpointId")


class ReplaceRouteParams(ActionParams):
    nat_gateway_id: NatGatewayId = Field(description="the standby NAT gateway the routes move to")
    route_table_ids: list[RouteTableId] = Field([], max_length=20, description="the private route tables")
    route_table_tags: dict[TagKey, TagValue] = Field(
        {}, max_length=5, description="or: the route tables carrying all these tags")
    destination: IPv4Network = Field(IPv4Network("0.0.0.0/0"), description="the route to move")
    max_tables: int = Field(10, ge=1, le=50, description="refuse when the tags select more route tables")

    @model_validator(mode="after")
    def _one_selection(self) -> ReplaceRouteParams:
        if bool(self.route_table_ids) == bool(self.route_table_tags):
            raise ValueError("give exactly one of route_table_ids and route_table_tags")
        return self


def route_target(route: dict[str, Any]) -> str:
    return next((str(route[key]) for key in ROUTE_TARGETS if route.get(key)), "none")


@dataclass(slots=True)
class Survey:
    """The selected route tables and the standby NAT gateway as they are now."""

    params: ReplaceRouteParams
    tables: list[dict[str, Any]]
    standby: dict[str, Any]
    current_gateways: list[dict[str, Any]] = field(default_factory=list)

    def route(self, table: dict[str, Any]) -> dict[str, Any]:
        destination = str(self.params.destination)
        return next(r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == destination)

    def previous(self) -> dict[str, str]:
        """Where each table's route pointed before the change (for a person to revert)."""
        return {t["RouteTableId"]: route_target(self.route(t)) for t in self.tables}

    def to_move(self) -> list[str]:
        return [t for t, target in self.previous().items() if target != self.params.nat_gateway_id]

    def moved(self) -> bool:
        nat = self.params.nat_gateway_id
        return self.standby.get("State") == "available" and all(
            route_target(self.route(t)) == nat and self.route(t).get("State") == "active" for t in self.tables)

    def calls(self) -> list[PlannedCall]:
        return [PlannedCall("ec2", "ReplaceRoute", {"RouteTableId": table, "DestinationCidrBlock": str(
            self.params.destination), "NatGatewayId": self.params.nat_gateway_id}) for table in self.to_move()]

    def diagnostics(self) -> dict[str, Any]:
        tables = [{"route_table_id": t["RouteTableId"], "vpc_id": t.get("VpcId"), "route_target":
                   route_target(self.route(t)), "route_state": self.route(t).get("State")} for t in self.tables]
        gateways = [_gateway(g) for g in [self.standby, *self.current_gateways]]
        return {"route_tables": tables, "nat_gateways": gateways}

    def summary(self) -> str:
        routes = ", ".join(f"{t['route_table_id']} via {t['route_target']} ({t['route_state']})"
                           for t in self.diagnostics()["route_tables"])
        gateways = ", ".join(f"{g['nat_gateway_id']} {g['state']}" for g in self.diagnostics()["nat_gateways"])
        return f"before the change: {self.params.destination} of {routes}; NAT gateways: {gateways}"


def _gateway(gateway: dict[str, Any]) -> dict[str, Any]:
    return {"nat_gateway_id": gateway.get("NatGatewayId"), "state": gateway.get("State"),
            "subnet_id": gateway.get("SubnetId"), "failure": gateway.get("FailureMessage")}


async def _tables(calls: AwsCalls, params: ReplaceRouteParams) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"RouteTableIds": list(params.route_table_ids)} if params.route_table_ids else {
        "Filters": [{"Name": f"tag:{key}", "Values": [value]} for key, value in params.route_table_tags.items()]}
    found: list[dict[str, Any]] = []
    while True:
        answer = await calls.call("ec2", "DescribeRouteTables", args)
        found += answer.get("RouteTables", [])
        if not answer.get("NextToken") or len(found) > params.max_tables:
            return found
        args["NextToken"] = answer["NextToken"]


async def _nat_gateways(calls: AwsCalls, ids: Sequence[str]) -> list[dict[str, Any]]:
    answer = await calls.call("ec2", "DescribeNatGateways", {"NatGatewayIds": list(ids)})
    return list(answer.get("NatGateways", []))


def _check_tables(params: ReplaceRouteParams, tables: list[dict[str, Any]], vpc: str) -> None:
    if not tables:
        raise Refused(FailureReason.PRECHECK_FAILED, f"no route table carries the tags {params.route_table_tags}")
    if len(tables) > params.max_tables:
        raise Refused(FailureReason.LIMIT_EXCEEDED, f"the tags select more than max_tables ({params.max_tables}) "
                      "route tables")
    destination = str(params.destination)
    for table in tables:
        name = table["RouteTableId"]
        if table.get("VpcId") != vpc:
            raise Refused(FailureReason.PRECHECK_FAILED, f"{name} is in {table.get('VpcId')}, the standby NAT "
                          f"gateway {params.nat_gateway_id} in {vpc}")
        route = next((r for r in table.get("Routes", []) if r.get("DestinationCidrBlock") == destination), None)
        if route is None:
            raise Refused(FailureReason.PRECHECK_FAILED, f"{name} has no route to {destination} to replace")
        if route_target(route).startswith("igw-"):
            # A public subnet's table (a NAT gateway's own, maybe): through a NAT it would lose its way out.
            raise Refused(FailureReason.PRECHECK_FAILED, f"{name} routes {destination} to the internet gateway "
                          f"{route_target(route)}: a public route table is never moved to a NAT gateway")


async def survey(calls: AwsCalls, params: ReplaceRouteParams) -> Survey:
    """The tables and the standby, checked: Refused unless the standby is available and every
    table is in its VPC with a route to replace."""
    gateways = await _nat_gateways(calls, [params.nat_gateway_id])
    if not gateways:
        raise Refused(FailureReason.NOT_FOUND, f"NAT gateway {params.nat_gateway_id} not found")
    standby = gateways[0]
    if standby.get("State") != "available":
        raise Refused(FailureReason.PRECHECK_FAILED, f"the standby NAT gateway {params.nat_gateway_id} is "
                      f"{standby.get('State')}, not available")
    tables = await _tables(calls, params)
    _check_tables(params, tables, str(standby.get("VpcId")))
    return Survey(params, tables, standby)


class ReplaceRoute(Action[ReplaceRouteParams]):
    """Point the private route tables' default route at a standby NAT gateway (ReplaceRoute).

    The route tables are given by id or selected by tags (at most `max_tables`). Refused unless the
    standby NAT gateway is `available` and every table is in its VPC and has a route to
    `destination` (0.0.0.0/0) to replace. Before the change the route tables and the NAT gateways
    they point at (with their states) go onto the timeline; the previous targets are recorded in the
    Execution detail for a person to move back. Tables already on the standby are left alone.
    Recovered when every route points at the standby, is active, and the standby is available.

    ```yaml
    type: ec2.replace_route
    params:
      nat_gateway_id: nat-0123456789abcdef0
      route_table_tags: {tier: private, env: prod}
    ```
    """

    type_name = "ec2.replace_route"
    Params = ReplaceRouteParams
    permissions = ("ec2:DescribeNatGateways", "ec2:DescribeRouteTables", "ec2:ReplaceRoute")
    risk = Risk.HIGH

    def target(self, params: ReplaceRouteParams) -> str:
        chosen = ",".join(sorted(params.route_table_ids)) or ",".join(
            f"tag:{k}={v}" for k, v in sorted(params.route_table_tags.items()))
        return f"ec2:route-tables/{chosen}"

    async def precheck(self, params: ReplaceRouteParams, ctx: ActionContext) -> str | None:
        try:
            await survey(aws_calls(ctx, read_only=True), params)
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: ReplaceRouteParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            return (await survey(aws_calls(ctx, read_only=True), params)).calls()
        except (AwsCallError, Refused):
            return []

    async def run(self, params: ReplaceRouteParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            found = await survey(calls, params)
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        await self._note_before(found, calls, ctx)
        replaced: list[str] = []
        try:
            for call in found.calls():
                await calls.run(call)
                replaced.append(call.args["RouteTableId"])
        except AwsCallError as err:
            return calls.failed(err, replaced=replaced, previous=found.previous())
        return calls.succeeded(replaced=replaced, already_on_standby=sorted(set(found.previous()) - set(replaced)),
                               previous=found.previous(), nat_gateway_id=params.nat_gateway_id)

    async def _note_before(self, found: Survey, calls: AwsCalls, ctx: ActionContext) -> None:
        """The route tables and NAT gateways as they were, onto the timeline (a failing NAT gateway
        may be gone already: its description is a finding, never a reason not to act)."""
        current = sorted({t for t in found.previous().values() if t.startswith("nat-")} - {found.params.nat_gateway_id})
        try:
            found.current_gateways = await _nat_gateways(calls, current) if current else []
        except AwsCallError as err:
            found.current_gateways = [{"NatGatewayId": ",".join(current), "State": "unknown",
                                       "FailureMessage": str(err)}]
        await ctx.timeline.note("diagnostics", f"ec2.replace_route {found.summary()}", found.diagnostics())

    async def verify(self, params: ReplaceRouteParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._moved(params, ctx))

    async def _moved(self, params: ReplaceRouteParams, ctx: ActionContext) -> bool:
        return (await survey(aws_calls(ctx, read_only=True), params)).moved()
