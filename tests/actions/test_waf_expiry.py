"""The expiry of WAF blocks: removed at expiry (never before), kept for the next tick on failure."""

from __future__ import annotations

from datetime import timedelta

from remediator.actions.waf import BlockIp, UnblockIp
from remediator.actions.waf_expiry import InMemoryBlockLedger, WafExpiry, unblock_params
from remediator.aws import AwsClients
from remediator.clock import FakeClock
from remediator.model import Outcome
from remediator.settings import WafSettings
from tests.actions.test_waf import addresses, block_params, make_ip_set
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy, Rule

BLOCK = BlockIp()


async def test_expiry_removes_the_address_at_expiry_not_before(moto: MotoClient, ctx_for: CtxFactory,
                                                               clients: AwsClients, ledger: InMemoryBlockLedger,
                                                               clock: FakeClock) -> None:
    arn = await make_ip_set(moto, ["192.0.2.1/32"])
    raw = block_params(arn, "203.0.113.7", duration="15m")
    await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))
    expiry = WafExpiry(clients, ledger, WafSettings(), clock)

    clock.advance(timedelta(minutes=14, seconds=59))
    assert await expiry.expire_due() == []
    assert await addresses(moto, arn) == ["192.0.2.1/32", "203.0.113.7/32"]

    clock.advance(timedelta(seconds=1))
    [(block, execution)] = await expiry.expire_due()
    assert block.address == "203.0.113.7/32"
    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["removed"] is True
    assert await addresses(moto, arn) == ["192.0.2.1/32"]
    assert ledger.entries() == []
    assert await expiry.expire_due() == []


async def test_expiry_keeps_the_entry_when_removal_fails(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy,
                                                         clients: AwsClients, ledger: InMemoryBlockLedger,
                                                         clock: FakeClock) -> None:
    arn = await make_ip_set(moto)
    raw = block_params(arn, "203.0.113.7", duration="15m")
    await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))
    clock.advance(timedelta(minutes=20))
    proxy.add(Rule("GetIPSet", times=None, code="WAFInternalErrorException", status=500))
    expiry = WafExpiry(clients, ledger, WafSettings(), clock)

    [(_, failed)] = await expiry.expire_due()
    assert failed.outcome is Outcome.FAILED and failed.retryable is True
    assert len(ledger.entries()) == 1  # tried again on the next tick

    proxy.rules.clear()
    [(_, done)] = await expiry.expire_due()
    assert done.outcome is Outcome.SUCCEEDED
    assert await addresses(moto, arn) == []


async def test_expiry_of_an_address_already_gone(moto: MotoClient, ctx_for: CtxFactory, clients: AwsClients,
                                                 ledger: InMemoryBlockLedger, clock: FakeClock) -> None:
    arn = await make_ip_set(moto)
    raw = block_params(arn, "203.0.113.7", duration="15m")
    await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))
    name, set_id = arn.rsplit("/", 2)[1:]
    waf = await moto("wafv2")
    token = (await waf.get_ip_set(Name=name, Scope="REGIONAL", Id=set_id))["LockToken"]
    await waf.update_ip_set(Name=name, Scope="REGIONAL", Id=set_id, Addresses=[], LockToken=token)
    clock.advance(timedelta(minutes=16))

    [(_, execution)] = await WafExpiry(clients, ledger, WafSettings(), clock).expire_due()
    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["removed"] is False
    assert ledger.entries() == []


async def test_unblock_params_make_a_valid_unblock_request(moto: MotoClient, ctx_for: CtxFactory,
                                                           ledger: InMemoryBlockLedger) -> None:
    """The engine path: a due block becomes a `waf.unblock_ip` request of origin "system"."""
    arn = await make_ip_set(moto)
    raw = block_params(arn, "203.0.113.7")
    await BLOCK.run(BLOCK.Params(**raw), ctx_for(BLOCK, raw))
    [block] = ledger.entries()
    unblock = UnblockIp()
    params = unblock_params(block)
    execution = await unblock.run(unblock.Params(**params), ctx_for(unblock, params))

    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["removed"] is True
    assert ledger.entries() == []
