"""`waf.block_ip` and `waf.unblock_ip`: one address into or out of a WAFv2 IP set.

Blocking is where a wrong action locks out a ward, so `block_ip` checks, in this order and
before any AWS call: the never-block ranges (settings plus protected CIDRs; the guardrails
check them too, this is the last line of defence), the ledger that will expire the block, the
duration cap, and the hourly cap; then, on the live set: the address family and the set-size
cap. The never-block check runs once more on the final address list, right before UpdateIPSet.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, field_validator, model_validator

from remediator.actions.aws.common import Refused
from remediator.actions.aws.waf_ipset import (
    IP_SET_ARN,
    WIDEST_PREFIX,
    Change,
    IpSetRef,
    IpSetState,
    Network,
    allow_listed,
    edit_ip_set,
    never_block,
    read_ip_set,
    to_network,
    update_call_args,
    waf_form,
    without,
)
from remediator.actions.aws.waf_ledger import BlockLedger, WafBlock, block_ledger
from remediator.actions.base import Action, ActionContext, ActionParams, PlannedCall
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason, Risk
from remediator.settings import Duration

IpSetArn = Annotated[str, StringConstraints(pattern=IP_SET_ARN.pattern)]
Address = Annotated[Network, BeforeValidator(to_network)]
PERMISSIONS = ("wafv2:GetIPSet", "wafv2:UpdateIPSet")


class IpSetAddress(ActionParams):
    ip_set_arn: IpSetArn
    address: Address = Field(description="an address (/32, /128) or a CIDR as it was blocked")


class UnblockParams(IpSetAddress):
    only_if_expired: bool = Field(False, description="remove it only once remediator's own block of it has "
                                                     "expired (what the daemon's expiry sets)")


class BlockParams(IpSetAddress):
    duration: Duration = Field(description="how long the block stands (the daemon removes it after)")
    allow_prefix: bool = Field(False, description=f"accept a range up to /{WIDEST_PREFIX[4]} or "
                                                  f"/{WIDEST_PREFIX[6]}, not only one address")

    @field_validator("duration")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=30):
            raise ValueError("between 1m and 30d")
        return value

    @model_validator(mode="after")
    def _one_address_unless_allowed(self) -> BlockParams:
        net = self.address
        if net.prefixlen == net.max_prefixlen:
            return self
        if not self.allow_prefix:
            raise ValueError(f"{net} is a range of addresses: set allow_prefix to block a range")
        if net.prefixlen < WIDEST_PREFIX[net.version]:
            raise ValueError(f"{net} is wider than /{WIDEST_PREFIX[net.version]}, the widest range allowed")
        return self


def address_target(net: Network) -> str:
    """The address alone for one host (what protected-target CIDR checks match), else the CIDR."""
    return str(net.network_address) if net.prefixlen == net.max_prefixlen else net.compressed


class BlockIp(Action[BlockParams]):
    """Add an address to a WAFv2 IP set for `duration`; the daemon removes it when that expires.

    Refused (no WAF call at all) for an address overlapping a never-block range. Idempotent: an
    address already in the set is not added twice; if remediator had blocked it, the expiry is
    extended to the later one, and if a person had, it is left alone with no expiry. Concurrent
    edits are detected by the LockToken; the set is re-read and the edit re-applied up to
    `aws.waf.lock_retries` times. The Execution detail has ip_set, address and expires_at.

    ```yaml
    type: waf.block_ip
    params:
      ip_set_arn: arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/erp-blocklist/a1b2c3d4-5678-90ab-cdef-111122223333
      address: "{labels.source_ip}"
      duration: 1h
    ```
    """

    type_name = "waf.block_ip"
    Params = BlockParams
    permissions = PERMISSIONS
    risk = Risk.NORMAL
    follow_ups = ("waf.unblock_ip",)  # run by the daemon when the block expires

    def target(self, params: BlockParams) -> str:
        return address_target(params.address)

    def _ranges(self, ctx: ActionContext) -> list[Network]:
        return never_block(ctx.deps.settings, self.type_name)

    def _refusal(self, params: BlockParams, ctx: ActionContext) -> Refused | None:
        """What forbids the block before anything is read from AWS."""
        allowed = allow_listed(params.address, self._ranges(ctx))
        if allowed is not None:
            return Refused(FailureReason.PRECHECK_FAILED,
                           f"{params.address} is inside the never-block range {allowed}: not blocked")
        cap = ctx.deps.settings.aws.waf.max_duration
        if params.duration > cap:
            return Refused(FailureReason.VALIDATION, f"duration {params.duration} exceeds aws.waf.max_duration {cap}")
        return None

    def _ledger(self, ctx: ActionContext) -> BlockLedger:
        ledger = block_ledger(ctx.deps)
        if ledger is None:
            raise Refused(FailureReason.INTERNAL, "no WAF block ledger in deps: the block could never expire")
        return ledger

    async def _check_hourly_cap(self, params: BlockParams, ctx: ActionContext, ledger: BlockLedger) -> None:
        cap = ctx.deps.settings.aws.waf.max_blocks_per_hour
        added = await ledger.added_since(params.ip_set_arn, ctx.clock.now() - timedelta(hours=1))
        if added >= cap:
            raise Refused(FailureReason.LIMIT_EXCEEDED,
                          f"{added} addresses added to this IP set in the last hour: the cap is {cap}")

    def _adding(self, params: BlockParams, ctx: ActionContext) -> Change:
        size_cap = ctx.deps.settings.aws.waf.max_set_size

        def change(state: IpSetState) -> list[str] | None:
            if state.version != params.address.version:
                raise Refused(FailureReason.VALIDATION,
                              f"the IP set holds IPv{state.version} addresses; {params.address} is not one")
            if state.holds(params.address):
                return None
            if len(state.addresses) >= size_cap:
                raise Refused(FailureReason.LIMIT_EXCEEDED,
                              f"the IP set holds {len(state.addresses)} addresses: the cap is {size_cap}")
            return [*state.addresses, waf_form(params.address)]

        return change

    def refusal(self, params: BlockParams, ctx: ActionContext) -> str | None:
        refused = self._refusal(params, ctx)
        return refused.message if refused is not None else None

    async def precheck(self, params: BlockParams, ctx: ActionContext) -> str | None:
        try:
            await self._check_hourly_cap(params, ctx, self._ledger(ctx))
            state = await read_ip_set(aws_calls(ctx, read_only=True), IpSetRef.from_arn(params.ip_set_arn))
            self._adding(params, ctx)(state)
        except (Refused, AwsCallError) as err:
            return str(err)
        return None

    async def plan_calls(self, params: BlockParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        if self._refusal(params, ctx) is not None:
            return []
        ref = IpSetRef.from_arn(params.ip_set_arn)
        try:
            state = await read_ip_set(aws_calls(ctx, read_only=True), ref)
            addresses = self._adding(params, ctx)(state)
        except (Refused, AwsCallError):
            return []
        if addresses is None:
            return []
        return [PlannedCall("wafv2", "UpdateIPSet", update_call_args(ref, state, addresses))]

    async def run(self, params: BlockParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        ref = IpSetRef.from_arn(params.ip_set_arn)
        where: dict[str, Any] = {"ip_set": params.ip_set_arn, "address": params.address.compressed}
        refusal = self._refusal(params, ctx)
        if refusal is not None:
            return calls.refused(refusal.reason, refusal.message, **where)
        try:
            ledger = self._ledger(ctx)
            await self._check_hourly_cap(params, ctx, ledger)
            state = await read_ip_set(calls, ref)
            adding = self._adding(params, ctx)
            if adding(state) is None:  # also refuses a wrong address family or a full set
                return await self._already_present(params, ctx, ledger, calls, where)
            now = ctx.clock.now()
            # The expiry is written before the address goes in: a crash in between leaves an
            # expiry for an absent address (harmless), never a block without an expiry.
            stored = await ledger.record(WafBlock(
                params.ip_set_arn, params.address.compressed, now, now + params.duration,
                ctx.request.id, ctx.request.incident_id))
            added, conflicts = await edit_ip_set(calls, ref, adding, first=state,
                                                 retries=ctx.deps.settings.aws.waf.lock_retries,
                                                 never_add=self._ranges(ctx))
        except Refused as refused:
            return calls.refused(refused.reason, refused.message, retryable=refused.retryable, **where)
        except AwsCallError as err:
            return calls.failed(err, **where)
        return calls.succeeded(**where, added=added, expires_at=stored.expires_at.isoformat(),
                               lock_conflicts=conflicts)

    async def _already_present(self, params: BlockParams, ctx: ActionContext, ledger: BlockLedger,
                               calls: AwsCalls, where: dict[str, Any]) -> Execution:
        ours = await ledger.get(params.ip_set_arn, params.address.compressed)
        if ours is None:
            # Someone else put it there: leave it, and never schedule its removal.
            return calls.succeeded(**where, added=False, already_present=True, managed=False, expires_at=None)
        stored = await ledger.record(WafBlock(
            params.ip_set_arn, params.address.compressed, ctx.clock.now(), ctx.clock.now() + params.duration,
            ctx.request.id, ctx.request.incident_id))
        return calls.succeeded(**where, added=False, already_present=True, managed=True,
                               expires_at=stored.expires_at.isoformat())


class UnblockIp(Action[UnblockParams]):
    """Remove an address from a WAFv2 IP set (also what the daemon runs when a block expires).

    Idempotent: an address that is not in the set is a success with `removed: false`. Drops the
    block's expiry from the ledger. Same LockToken handling as `waf.block_ip`. With
    `only_if_expired` (the daemon's expiry sets it) it acts only on remediator's own block whose
    expiry has passed, checked under the target's lease: a block extended since, or an address
    remediator did not block, is left alone.

    ```yaml
    type: waf.unblock_ip
    params:
      ip_set_arn: arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/erp-blocklist/a1b2c3d4-5678-90ab-cdef-111122223333
      address: "{labels.source_ip}"
    ```
    """

    type_name = "waf.unblock_ip"
    Params = UnblockParams
    permissions = PERMISSIONS
    risk = Risk.NORMAL
    only_loosens = True

    def target(self, params: UnblockParams) -> str:
        return address_target(params.address)

    async def _not_expired(self, params: UnblockParams, ctx: ActionContext) -> str | None:
        """Why an `only_if_expired` unblock must not act now; None when it may (or was not asked)."""
        if not params.only_if_expired:
            return None
        ledger = block_ledger(ctx.deps)
        if ledger is None:
            return "no WAF block ledger in deps: cannot tell whether the block expired"
        block = await ledger.get(params.ip_set_arn, params.address.compressed)
        if block is None:
            return f"remediator holds no block of {params.address} in this IP set: left alone"
        if block.expires_at > ctx.clock.now():
            return f"the block of {params.address} now expires at {block.expires_at.isoformat()}: not removed yet"
        return None

    async def precheck(self, params: UnblockParams, ctx: ActionContext) -> str | None:
        not_expired = await self._not_expired(params, ctx)
        if not_expired is not None:
            return not_expired
        try:
            await read_ip_set(aws_calls(ctx, read_only=True), IpSetRef.from_arn(params.ip_set_arn))
        except AwsCallError as err:
            return str(err)
        return None

    async def plan_calls(self, params: UnblockParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        if await self._not_expired(params, ctx) is not None:
            return []
        ref = IpSetRef.from_arn(params.ip_set_arn)
        try:
            state = await read_ip_set(aws_calls(ctx, read_only=True), ref)
        except AwsCallError:
            return []
        addresses = without(params.address)(state)
        if addresses is None:
            return []
        return [PlannedCall("wafv2", "UpdateIPSet", update_call_args(ref, state, addresses))]

    async def run(self, params: UnblockParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        where: dict[str, Any] = {"ip_set": params.ip_set_arn, "address": params.address.compressed}
        not_expired = await self._not_expired(params, ctx)
        if not_expired is not None:
            return calls.refused(FailureReason.PRECHECK_FAILED, not_expired, **where)
        try:
            removed, conflicts = await edit_ip_set(
                calls, IpSetRef.from_arn(params.ip_set_arn), without(params.address),
                retries=ctx.deps.settings.aws.waf.lock_retries, never_add=())
        except Refused as refused:
            return calls.refused(refused.reason, refused.message, retryable=refused.retryable, **where)
        except AwsCallError as err:
            return calls.failed(err, **where)
        ledger = block_ledger(ctx.deps)
        if ledger is not None:
            await ledger.forget(params.ip_set_arn, params.address.compressed)
        return calls.succeeded(**where, removed=removed, lock_conflicts=conflicts)
