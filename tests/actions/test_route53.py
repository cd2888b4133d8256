"""route53.upsert_record against moto."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from remediator.actions.aws.route53 import UpsertRecord
from remediator.model import FailureReason, Outcome
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy

ZONE_NAME = "erp.example-hospital.org"
UPSERT = UpsertRecord()


async def make_zone(moto: MotoClient, record: dict[str, Any] | None = None) -> str:
    route53 = await moto("route53")
    zone = (await route53.create_hosted_zone(Name=ZONE_NAME, CallerReference="erp-1"))["HostedZone"]["Id"]
    zone_id = str(zone).removeprefix("/hostedzone/")
    if record is not None:
        await route53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={
            "Changes": [{"Action": "CREATE", "ResourceRecordSet": record}]})
    return zone_id


async def record_values(moto: MotoClient, zone_id: str, name: str, kind: str) -> tuple[list[str], int]:
    answer = await (await moto("route53")).list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=name, StartRecordType=kind, MaxItems="1")
    found = answer["ResourceRecordSets"][0]
    return [r["Value"] for r in found["ResourceRecords"]], int(found["TTL"])


async def test_upsert_points_the_record_at_the_standby(moto: MotoClient, ctx_for: CtxFactory) -> None:
    zone = await make_zone(moto, {"Name": f"api.{ZONE_NAME}.", "Type": "A", "TTL": 300,
                                  "ResourceRecords": [{"Value": "198.51.100.10"}]})
    raw = {"hosted_zone_id": zone, "name": f"api.{ZONE_NAME}", "type": "A", "values": ["198.51.100.20"]}
    params = UPSERT.Params(**raw)

    assert await UPSERT.precheck(params, ctx_for(UPSERT, raw)) is None
    execution = await UPSERT.run(params, ctx_for(UPSERT, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert await record_values(moto, zone, f"api.{ZONE_NAME}.", "A") == (["198.51.100.20"], 60)
    assert execution.detail["previous"] == {"ttl": 300, "values": ["198.51.100.10"]}
    assert await UPSERT.verify(params, ctx_for(UPSERT, raw, execution=execution)) is True


async def test_upsert_creates_a_missing_cname(moto: MotoClient, ctx_for: CtxFactory) -> None:
    zone = await make_zone(moto)
    raw = {"hosted_zone_id": f"/hostedzone/{zone}", "name": f"web.{ZONE_NAME}.", "type": "CNAME",
           "values": [f"Web-Standby.{ZONE_NAME}"], "ttl": 30}
    params = UPSERT.Params(**raw)
    execution = await UPSERT.run(params, ctx_for(UPSERT, raw))

    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["previous"] is None
    values, ttl = await record_values(moto, zone, f"web.{ZONE_NAME}.", "CNAME")
    assert [v.rstrip(".") for v in values] == [f"web-standby.{ZONE_NAME}"] and ttl == 30
    assert await UPSERT.verify(params, ctx_for(UPSERT, raw, execution=execution)) is True


async def test_verify_is_false_when_the_record_was_changed_back(moto: MotoClient, ctx_for: CtxFactory) -> None:
    record = {"Name": f"api.{ZONE_NAME}.", "Type": "A", "TTL": 300, "ResourceRecords": [{"Value": "198.51.100.10"}]}
    zone = await make_zone(moto, record)
    raw = {"hosted_zone_id": zone, "name": f"api.{ZONE_NAME}", "type": "A", "values": ["198.51.100.20"]}
    execution = await UPSERT.run(UPSERT.Params(**raw), ctx_for(UPSERT, raw))
    await (await moto("route53")).change_resource_record_sets(HostedZoneId=zone, ChangeBatch={
        "Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]})
    assert await UPSERT.verify(UPSERT.Params(**raw), ctx_for(UPSERT, raw, execution=execution)) is False


async def test_refuses_a_name_outside_the_zone(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    zone = await make_zone(moto)
    raw = {"hosted_zone_id": zone, "name": "api.other-hospital.org", "type": "A", "values": ["198.51.100.20"]}
    execution = await UPSERT.run(UPSERT.Params(**raw), ctx_for(UPSERT, raw))
    assert execution.reason is FailureReason.PRECHECK_FAILED and "not inside the zone" in execution.detail["error"]
    assert not any(op.startswith("POST") for op in proxy.operations())


async def test_refuses_a_weighted_record(moto: MotoClient, ctx_for: CtxFactory) -> None:
    zone = await make_zone(moto, {"Name": f"api.{ZONE_NAME}.", "Type": "A", "TTL": 60, "SetIdentifier": "blue",
                                  "Weight": 100, "ResourceRecords": [{"Value": "198.51.100.10"}]})
    raw = {"hosted_zone_id": zone, "name": f"api.{ZONE_NAME}", "type": "A", "values": ["198.51.100.20"]}
    reason = await UPSERT.precheck(UPSERT.Params(**raw), ctx_for(UPSERT, raw))
    assert reason is not None and "routing-policy" in reason


async def test_missing_zone_is_not_found(moto: MotoClient, ctx_for: CtxFactory) -> None:
    raw = {"hosted_zone_id": "Z0000000000000NOZONE", "name": f"api.{ZONE_NAME}", "type": "A", "values": ["192.0.2.1"]}
    reason = await UPSERT.precheck(UPSERT.Params(**raw), ctx_for(UPSERT, raw))
    execution = await UPSERT.run(UPSERT.Params(**raw), ctx_for(UPSERT, raw))
    assert reason is not None and "NoSuchHostedZone" in reason
    assert execution.reason is FailureReason.NOT_FOUND


def test_values_must_fit_the_type() -> None:
    base = {"hosted_zone_id": "Z1", "name": f"api.{ZONE_NAME}"}
    with pytest.raises(ValidationError, match="IPv4"):
        UPSERT.Params(**base, type="A", values=["2001:db8::1"])
    with pytest.raises(ValidationError, match="exactly one"):
        UPSERT.Params(**base, type="CNAME", values=["a.example.org", "b.example.org"])
    with pytest.raises(ValidationError):
        UPSERT.Params(**base, type="A", values=["198.51.100.1"], ttl=3600)
    with pytest.raises(ValidationError):
        UPSERT.Params(hosted_zone_id="Z1", name="not a name", type="A", values=["198.51.100.1"])
    with pytest.raises(ValidationError):
        UPSERT.Params(**base, type="MX", values=["10 mail.example.org"])
