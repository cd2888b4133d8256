"""`route53.upsert_record`: point a simple DNS record at a standby value with a short TTL."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from remediator.actions.aws.common import HostedZoneId, Refused, not_yet_on_error, recorded
from remediator.actions.base import Action, ActionContext, ActionParams, PlannedCall
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason, Risk

HOSTNAME = re.compile(r"^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\.$")


def dns_name(value: str) -> str:
    """Lower case, with the trailing dot Route 53 answers with."""
    name = value.strip().lower()
    name = name if name.endswith(".") else name + "."
    if len(name) > 254 or not HOSTNAME.match(name):
        raise ValueError(f"{value!r} is not a DNS name")
    return name


class RecordParams(ActionParams):
    hosted_zone_id: HostedZoneId
    name: str = Field(description="the record's name, inside the hosted zone")
    type: Literal["A", "AAAA", "CNAME"]
    values: list[str] = Field(min_length=1, max_length=8)
    ttl: int = Field(60, ge=10, le=300, description="short, so the change can be undone quickly")

    @field_validator("hosted_zone_id")
    @classmethod
    def _bare_id(cls, value: str) -> str:
        return value.removeprefix("/hostedzone/")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return dns_name(value)

    @field_validator("values")
    @classmethod
    def _values_fit_type(cls, values: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("type")
        if kind == "CNAME":
            if len(values) != 1:
                raise ValueError("a CNAME has exactly one value")
            return [dns_name(values[0])]
        version = 4 if kind == "A" else 6
        parsed = [ipaddress.ip_address(v.strip()) for v in values]
        if any(p.version != version for p in parsed):
            raise ValueError(f"{kind} records hold IPv{version} addresses")
        return [str(p) for p in parsed]


class UpsertRecord(Action[RecordParams]):
    """UPSERT a simple A/AAAA/CNAME record to standby values with a short TTL.

    Refused when the hosted zone does not exist, the name lies outside it, or the record
    uses a routing policy or alias (those are changed by hand). The previous values are
    recorded in the Execution detail. Recovered when Route 53 reports the change INSYNC and
    the record holds the new values.

    ```yaml
    type: route53.upsert_record
    params:
      hosted_zone_id: Z0123456789ABCDEFGHIJ
      name: api.erp.example-hospital.org
      type: CNAME
      values: ["api-standby.erp.example-hospital.org"]
      ttl: 60
    ```
    """

    type_name = "route53.upsert_record"
    Params = RecordParams
    permissions = ("route53:GetHostedZone", "route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets",
                   "route53:GetChange")
    risk = Risk.HIGH

    def target(self, params: RecordParams) -> str:
        return f"route53:hostedzone/{params.hosted_zone_id}/{params.name}{params.type}"

    async def _current(self, calls: AwsCalls, params: RecordParams) -> dict[str, Any] | None:
        answer = await calls.call("route53", "ListResourceRecordSets", {
            "HostedZoneId": params.hosted_zone_id, "StartRecordName": params.name,
            "StartRecordType": params.type, "MaxItems": "1"})
        found = answer.get("ResourceRecordSets", [])
        if found and found[0]["Name"].lower() == params.name and found[0]["Type"] == params.type:
            return dict(found[0])
        return None

    async def _previous(self, params: RecordParams, calls: AwsCalls) -> dict[str, Any] | None:
        """The record as it is (None: absent); Refused when this action must not change it."""
        zone = (await calls.call("route53", "GetHostedZone", {"Id": params.hosted_zone_id}))["HostedZone"]
        zone_name = dns_name(zone["Name"])
        if params.name != zone_name and not params.name.endswith("." + zone_name):
            raise Refused(FailureReason.PRECHECK_FAILED, f"{params.name} is not inside the zone {zone_name}")
        current = await self._current(calls, params)
        if current is not None and ("AliasTarget" in current or "SetIdentifier" in current):
            raise Refused(FailureReason.PRECHECK_FAILED,
                          f"{params.name} {params.type} is an alias or routing-policy record: change it by hand")
        return current

    def _call(self, params: RecordParams, ctx: ActionContext) -> PlannedCall:
        record = {"Name": params.name, "Type": params.type, "TTL": params.ttl,
                  "ResourceRecords": [{"Value": v} for v in params.values]}
        return PlannedCall("route53", "ChangeResourceRecordSets", {
            "HostedZoneId": params.hosted_zone_id,
            "ChangeBatch": {"Comment": f"remediator request {ctx.request.id} incident {ctx.request.incident_id}"[:256],
                            "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]}})

    async def precheck(self, params: RecordParams, ctx: ActionContext) -> str | None:
        try:
            await self._previous(params, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: RecordParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [self._call(params, ctx)]

    async def run(self, params: RecordParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            previous = await self._previous(params, calls)
            answer = await calls.run(self._call(params, ctx))
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        before = None if previous is None else {
            "ttl": previous.get("TTL"), "values": [r["Value"] for r in previous.get("ResourceRecords", [])]}
        return calls.succeeded(previous=before, values=params.values, ttl=params.ttl,
                               change_id=answer["ChangeInfo"]["Id"], status=answer["ChangeInfo"]["Status"])

    async def verify(self, params: RecordParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._in_sync(params, ctx))

    async def _in_sync(self, params: RecordParams, ctx: ActionContext) -> bool:
        calls = aws_calls(ctx, read_only=True)
        change_id = recorded(ctx, "change_id")
        if change_id is not None:
            change = await calls.call("route53", "GetChange", {"Id": change_id})
            if change["ChangeInfo"]["Status"] != "INSYNC":
                return False
        current = await self._current(calls, params)
        values = [r["Value"].lower() for r in (current or {}).get("ResourceRecords", [])]
        if params.type == "CNAME":
            values = [v if v.endswith(".") else v + "." for v in values]
        return current is not None and sorted(values) == sorted(params.values)
