"""waf.block_ip / waf.unblock_ip and the expiry of blocks, against moto through the fault proxy."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from remediator.actions.aws.common import Refused
from remediator.actions.aws.waf import BlockIp, UnblockIp
from remediator.actions.aws.waf_ipset import IpSetRef, IpSetState, edit_ip_set
from remediator.actions.aws.waf_ledger import LEDGER_EXTRA, InMemoryBlockLedger
from remediator.actions.base import ActionDeps
from remediator.aws.clients import AwsCalls, AwsClients
from remediator.clock import FakeClock
from remediator.model import FailureReason, Outcome
from remediator.settings import ProtectedTargets, Settings
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy, Rule

BLOCK, UNBLOCK = BlockIp(), UnblockIp()


async def make_ip_set(moto: MotoClient, addresses: list[str] | None = None, version: str = "IPV4") -> str:
    waf = await moto("wafv2")
    answer = await waf.create_ip_set(Name=f"erp-blocklist-{version.lower()}", Scope="REGIONAL",
                                     IPAddressVersion=version, Addresses=addresses or [],
                                     Description="blocked by remediator")
    return str(answer["Summary"]["ARN"])


async def addresses(moto: MotoClient, arn: str) -> list[str]:
    name, set_id = arn.rsplit("/", 2)[1:]
    answer = await (await moto("wafv2")).get_ip_set(Name=name, Scope="REGIONAL", Id=set_id)
    return list(answer["IPSet"]["Addresses"])


def with_waf(deps: ActionDeps, **changes: Any) -> None:
    settings: Settings = deps.settings
    waf = settings.aws.waf.model_copy(update=changes)
    deps.settings = settings.model_copy(update={"aws": settings.aws.model_copy(update={"waf": waf})})


def block_params(arn: str, address: str, **extra: Any) -> dict[str, Any]:
    return {"ip_set_arn": arn, "address": address, "duration": "1h", **extra}


async def test_block_adds_the_address_and_records_its_expiry(moto: MotoClient, ctx_for: CtxFactory,
                                                             ledger: InMemoryBlockLedger, clock: FakeClock) -> None:
    arn = await make_ip_set(moto, ["198.51.100.1/32"])
    raw = block_params(arn, "203.0.113.7")
    ctx = ctx_for(BLOCK, raw)

    assert await BLOCK.precheck(BLOCK.Params(**raw), ctx) is None
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert await addresses(moto, arn) == ["198.51.100.1/32", "203.0.113.7/32"]
    assert execution.detail["ip_set"] == arn and execution.detail["address"] == "203.0.113.7/32"
    assert execution.detail["expires_at"] == (clock.now() + timedelta(hours=1)).isoformat()
    [block] = ledger.entries()
    assert block.expires_at == clock.now() + timedelta(hours=1) and block.request_id == ctx.request.id


async def test_block_keeps_the_ip_set_description(moto: MotoClient, ctx_for: CtxFactory) -> None:
    arn = await make_ip_set(moto)
    raw = block_params(arn, "203.0.113.7")
    await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))
    name, set_id = arn.rsplit("/", 2)[1:]
    answer = await (await moto("wafv2")).get_ip_set(Name=name, Scope="REGIONAL", Id=set_id)
    assert answer["IPSet"]["Description"] == "blocked by remediator"


async def test_block_ipv6_is_normalised_to_128(moto: MotoClient, ctx_for: CtxFactory) -> None:
    arn = await make_ip_set(moto, version="IPV6")
    raw = block_params(arn, "2001:DB8:0:1::7")
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert [ipaddress.ip_network(a) for a in await addresses(moto, arn)] == [
        ipaddress.ip_network("2001:db8:0:1::7/128")]


async def test_block_twice_adds_once_and_extends_the_expiry(moto: MotoClient, ctx_for: CtxFactory,
                                                            proxy: FaultProxy, ledger: InMemoryBlockLedger,
                                                            clock: FakeClock) -> None:
    arn = await make_ip_set(moto)
    raw = block_params(arn, "203.0.113.7")
    first = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))
    clock.advance(timedelta(minutes=30))
    second = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert first.detail["added"] is True
    assert second.outcome is Outcome.SUCCEEDED and second.detail["already_present"] is True
    assert second.detail["managed"] is True
    assert second.detail["expires_at"] == (clock.now() + timedelta(hours=1)).isoformat()
    assert await addresses(moto, arn) == ["203.0.113.7/32"]
    assert proxy.operations("wafv2").count("UpdateIPSet") == 1
    assert len(ledger.entries()) == 1


async def test_block_of_an_address_a_person_blocked_leaves_it_without_expiry(
        moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy, ledger: InMemoryBlockLedger) -> None:
    arn = await make_ip_set(moto, ["203.0.113.7/32"])
    raw = block_params(arn, "203.0.113.7")
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert execution.outcome is Outcome.SUCCEEDED
    assert execution.detail["managed"] is False and execution.detail["expires_at"] is None
    assert ledger.entries() == []
    assert "UpdateIPSet" not in proxy.operations()


@pytest.mark.parametrize("address", ["10.20.30.40", "192.168.1.9", "::ffff:10.0.0.5", "100.64.3.3"])
async def test_allow_listed_address_never_reaches_waf(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy,
                                                      address: str) -> None:
    arn = await make_ip_set(moto)
    raw = block_params(arn, address)
    params = BLOCK.Params(**raw)
    ctx = ctx_for(BLOCK, raw)

    refusal = BLOCK.refusal(params, ctx)
    plan = await BLOCK.plan_calls(params, ctx)
    execution = await BLOCK.run(params, ctx)

    assert refusal is not None and "never-block" in refusal
    assert plan == []
    assert execution.outcome is Outcome.FAILED and execution.reason is FailureReason.PRECHECK_FAILED
    assert execution.retryable is False and "never-block range" in execution.detail["error"]
    assert proxy.log == []  # not one WAF call, not even a read
    assert await addresses(moto, arn) == []


async def test_allow_listed_ipv6_in_an_allowed_48(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy,
                                                  deps: ActionDeps) -> None:
    with_waf(deps, never_block=[ipaddress.ip_network("2001:db8:abcd::/48")])
    arn = await make_ip_set(moto, version="IPV6")
    raw = block_params(arn, "2001:db8:abcd:12::1")
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert execution.reason is FailureReason.PRECHECK_FAILED
    assert "2001:db8:abcd::/48" in execution.detail["error"]
    assert proxy.log == []


async def test_protected_cidr_of_the_guardrails_is_honoured_too(moto: MotoClient, ctx_for: CtxFactory,
                                                                proxy: FaultProxy, deps: ActionDeps) -> None:
    protected = [ProtectedTargets(action="waf.*", targets=["198.51.100.0/24", "erp-*"], reason="VPN egress")]
    deps.settings = deps.settings.model_copy(update={
        "guardrails": deps.settings.guardrails.model_copy(update={"protected": protected})})
    arn = await make_ip_set(moto)
    raw = block_params(arn, "198.51.100.77")
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert execution.reason is FailureReason.PRECHECK_FAILED
    assert proxy.log == []


async def test_a_range_overlapping_an_allowed_address_is_refused(moto: MotoClient, ctx_for: CtxFactory,
                                                                 proxy: FaultProxy, deps: ActionDeps) -> None:
    with_waf(deps, never_block=[ipaddress.ip_network("203.0.113.99/32")])
    arn = await make_ip_set(moto)
    raw = block_params(arn, "203.0.113.0/24", allow_prefix=True)
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert execution.reason is FailureReason.PRECHECK_FAILED
    assert proxy.log == []


def test_params_accept_one_address_and_bounded_ranges_only() -> None:
    arn = "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/erp/abc-123"
    with pytest.raises(ValidationError, match="allow_prefix"):
        BLOCK.Params(**block_params(arn, "203.0.113.0/24"))
    with pytest.raises(ValidationError, match="wider than /24"):
        BLOCK.Params(**block_params(arn, "203.0.0.0/16", allow_prefix=True))
    with pytest.raises(ValidationError, match="wider than /48"):
        BLOCK.Params(**block_params(arn, "2001:db8::/32", allow_prefix=True))
    with pytest.raises(ValidationError):
        BLOCK.Params(**block_params(arn, "203.0.113.7/24", allow_prefix=True))  # host bits set
    with pytest.raises(ValidationError):
        BLOCK.Params(**block_params(arn, "not-an-ip"))
    with pytest.raises(ValidationError):
        BLOCK.Params(**block_params(arn, "203.0.113.7", duration="45d"))
    with pytest.raises(ValidationError):
        BLOCK.Params(**block_params("arn:aws:ecs:us-east-1:123456789012:service/x", "203.0.113.7"))
    assert str(BLOCK.Params(**block_params(arn, "203.0.113.0/24", allow_prefix=True)).address) == "203.0.113.0/24"
    assert str(BLOCK.Params(**block_params(arn, "::ffff:203.0.113.7")).address) == "203.0.113.7/32"
    assert BLOCK.target(BLOCK.Params(**block_params(arn, "203.0.113.7"))) == "203.0.113.7"


async def test_lock_conflict_once_rereads_and_succeeds(moto: MotoClient, ctx_for: CtxFactory,
                                                       proxy: FaultProxy) -> None:
    arn = await make_ip_set(moto)
    proxy.add(Rule("UpdateIPSet", code="WAFOptimisticLockException", message="stale lock token"))
    raw = block_params(arn, "203.0.113.7")
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["lock_conflicts"] == 1
    assert proxy.operations("wafv2") == ["GetIPSet", "UpdateIPSet", "GetIPSet", "UpdateIPSet"]
    assert await addresses(moto, arn) == ["203.0.113.7/32"]


async def test_a_real_concurrent_edit_is_kept(moto: MotoClient, ctx_for: CtxFactory, deps: ActionDeps) -> None:
    """Someone adds an address between our read and our write: their address must survive."""
    arn = await make_ip_set(moto)
    name, set_id = arn.rsplit("/", 2)[1:]
    waf = await moto("wafv2")
    action = BLOCK
    raw = block_params(arn, "203.0.113.7")
    ctx = ctx_for(action, raw)
    original = ctx.deps.extras["aws"]

    class Interloper(AwsClients):
        """Right before our first UpdateIPSet (our 2nd WAF call) a person edits the set."""

        waf_calls = 0

        async def client(self, service: str, region: str | None = None) -> Any:
            Interloper.waf_calls += service == "wafv2"
            if service == "wafv2" and Interloper.waf_calls == 2:
                token = (await waf.get_ip_set(Name=name, Scope="REGIONAL", Id=set_id))["LockToken"]
                await waf.update_ip_set(Name=name, Scope="REGIONAL", Id=set_id, Addresses=["192.0.2.55/32"],
                                        LockToken=token)
            return await original.client(service, region)

    interloper = Interloper(deps.settings.aws)
    ctx.deps.extras["aws"] = interloper
    try:
        execution = await action.run(action.Params(**raw), ctx)
    finally:
        ctx.deps.extras["aws"] = original

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["lock_conflicts"] == 1
    assert sorted(await addresses(moto, arn)) == ["192.0.2.55/32", "203.0.113.7/32"]


async def test_lock_conflicts_forever_is_a_retryable_conflict(moto: MotoClient, ctx_for: CtxFactory,
                                                              proxy: FaultProxy, deps: ActionDeps) -> None:
    with_waf(deps, lock_retries=2)
    arn = await make_ip_set(moto)
    proxy.add(Rule("UpdateIPSet", times=None, code="WAFOptimisticLockException"))
    raw = block_params(arn, "203.0.113.7")
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert execution.outcome is Outcome.FAILED
    assert execution.reason is FailureReason.CONFLICT and execution.retryable is True
    assert proxy.operations("wafv2").count("UpdateIPSet") == 3
    assert await addresses(moto, arn) == []


async def test_hourly_cap(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy, deps: ActionDeps,
                          clock: FakeClock) -> None:
    with_waf(deps, max_blocks_per_hour=2)
    arn = await make_ip_set(moto)
    results = []
    for host in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        raw = block_params(arn, host)
        results.append(await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw)))

    assert [r.outcome for r in results] == [Outcome.SUCCEEDED, Outcome.SUCCEEDED, Outcome.FAILED]
    assert results[2].reason is FailureReason.LIMIT_EXCEEDED and "cap is 2" in results[2].detail["error"]
    assert proxy.operations("wafv2").count("UpdateIPSet") == 2
    clock.advance(timedelta(minutes=61))
    raw = block_params(arn, "203.0.113.3")
    assert (await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))).outcome is Outcome.SUCCEEDED


async def test_set_size_cap(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy, deps: ActionDeps,
                            ledger: InMemoryBlockLedger) -> None:
    with_waf(deps, max_set_size=2)
    arn = await make_ip_set(moto, ["192.0.2.1/32", "192.0.2.2/32"])
    raw = block_params(arn, "203.0.113.7")
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert execution.reason is FailureReason.LIMIT_EXCEEDED and execution.retryable is False
    assert "UpdateIPSet" not in proxy.operations()
    assert ledger.entries() == []


async def test_wrong_address_family_and_overlong_duration(moto: MotoClient, ctx_for: CtxFactory,
                                                          deps: ActionDeps, ledger: InMemoryBlockLedger) -> None:
    arn = await make_ip_set(moto)
    raw = block_params(arn, "2001:db8::7")
    assert (await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))).reason is FailureReason.VALIDATION
    assert ledger.entries() == []  # a refused block leaves no expiry and does not count against the cap
    with_waf(deps, max_duration=timedelta(hours=2))
    raw = block_params(arn, "203.0.113.7", duration="3h")
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))
    assert execution.reason is FailureReason.VALIDATION and "max_duration" in execution.detail["error"]
    assert await addresses(moto, arn) == []


async def test_without_a_ledger_nothing_is_blocked(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy,
                                                   deps: ActionDeps) -> None:
    del deps.extras[LEDGER_EXTRA]
    arn = await make_ip_set(moto)
    raw = block_params(arn, "203.0.113.7")
    execution = await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))

    assert execution.outcome is Outcome.FAILED and "never expire" in execution.detail["error"]
    assert proxy.log == []


async def test_block_dry_run_plans_the_exact_update_and_changes_nothing(moto: MotoClient, ctx_for: CtxFactory,
                                                                        proxy: FaultProxy) -> None:
    arn = await make_ip_set(moto, ["192.0.2.1/32"])
    raw = block_params(arn, "203.0.113.7")
    [call] = await BLOCK.plan_calls(BLOCK.Params(**raw), ctx_for(BLOCK, raw, dry_run=True))

    name, set_id = arn.rsplit("/", 2)[1:]
    assert call.operation == "UpdateIPSet"
    assert {k: v for k, v in call.args.items() if k != "LockToken"} == {
        "Name": name, "Scope": "REGIONAL", "Id": set_id, "Addresses": ["192.0.2.1/32", "203.0.113.7/32"],
        "Description": "blocked by remediator"}
    assert proxy.operations() == ["GetIPSet"]
    assert await addresses(moto, arn) == ["192.0.2.1/32"]


async def test_unblock_removes_and_is_idempotent(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy,
                                                 ledger: InMemoryBlockLedger) -> None:
    arn = await make_ip_set(moto)
    raw = block_params(arn, "203.0.113.7")
    await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))
    unblock = {"ip_set_arn": arn, "address": "203.0.113.7"}

    first = await UNBLOCK.run(UNBLOCK.Params(**unblock), ctx_for(UNBLOCK, unblock))
    second = await UNBLOCK.run(UNBLOCK.Params(**unblock), ctx_for(UNBLOCK, unblock))

    assert first.outcome is Outcome.SUCCEEDED and first.detail["removed"] is True
    assert second.outcome is Outcome.SUCCEEDED and second.detail["removed"] is False
    assert await addresses(moto, arn) == []
    assert ledger.entries() == []
    assert proxy.operations("wafv2").count("UpdateIPSet") == 2  # one block, one unblock


async def test_unblock_lock_conflict_once(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    arn = await make_ip_set(moto, ["203.0.113.7/32", "192.0.2.1/32"])
    proxy.add(Rule("UpdateIPSet", code="WAFOptimisticLockException"))
    unblock = {"ip_set_arn": arn, "address": "203.0.113.7/32"}
    execution = await UNBLOCK.run(UNBLOCK.Params(**unblock), ctx_for(UNBLOCK, unblock))

    assert execution.detail["lock_conflicts"] == 1
    assert await addresses(moto, arn) == ["192.0.2.1/32"]


async def test_last_line_of_defence_inside_the_ip_set_edit(moto: MotoClient, proxy: FaultProxy,
                                                           clients: AwsClients) -> None:
    """Even a change that slipped past every earlier check cannot write a never-block address."""
    arn = await make_ip_set(moto)
    ref = IpSetRef.from_arn(arn)
    def sneaky(state: IpSetState) -> list[str]:
        return [*state.addresses, "10.0.0.0/24"]

    with pytest.raises(Refused, match="never-block"):
        await edit_ip_set(AwsCalls(clients), ref, sneaky, retries=1,
                          never_add=[ipaddress.ip_network("10.0.0.0/8")])
    assert proxy.operations() == ["GetIPSet"]
    assert await addresses(moto, arn) == []
