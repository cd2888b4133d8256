"""The ledger of WAF blocks remediator placed, and the expiry that removes them when due.

`waf.block_ip` writes a `WafBlock` to the ledger *before* it adds the address (so a crash
between the two still leaves an expiry behind; removing an absent address is a no-op), and only
for addresses it adds itself: an address a person put in the set is never given an expiry.

The ledger is a small protocol so the daemon can keep it in its store (one row per
(ip_set_arn, address) plus the addition times for the hourly cap); `InMemoryBlockLedger` serves
tests and the single-process mode. The daemon's timer loop calls `WafExpiry.expire_due()` (or
submits `unblock_params(block)` as a `waf.unblock_ip` request of origin "system").
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from remediator.actions.aws_common import Refused
from remediator.actions.base import ActionDeps
from remediator.actions.waf_ipset import IpSetRef, remove_address, to_network
from remediator.aws import AwsCallError, AwsCalls, AwsClients
from remediator.clock import Clock
from remediator.model import Execution, FailureReason, WafBlock
from remediator.settings import WafSettings

__all__ = ["LEDGER_EXTRA", "BlockLedger", "InMemoryBlockLedger", "WafBlock", "WafExpiry", "block_ledger",
           "unblock_params"]

LEDGER_EXTRA = "waf_blocks"  # the key of the BlockLedger in `ActionDeps.extras`


@runtime_checkable
class BlockLedger(Protocol):
    """Where blocks and their expiries are kept; one entry per (ip_set_arn, address)."""

    async def record(self, block: WafBlock) -> WafBlock:
        """Insert, or keep the entry and extend it to the later expiry; return what is stored.

        A new entry also counts as an addition for `added_since`."""

    async def get(self, ip_set_arn: str, address: str) -> WafBlock | None: ...

    async def due(self, now: datetime) -> list[WafBlock]:
        """Entries whose expiry is at or before `now`, oldest first."""

    async def forget(self, ip_set_arn: str, address: str) -> None:
        """Drop the entry (the address is out of the set); addition times stay for the cap."""

    async def added_since(self, ip_set_arn: str, since: datetime) -> int:
        """How many entries were added to this IP set at or after `since` (forgotten ones too)."""


class InMemoryBlockLedger:
    """The ledger in a dict: for tests and one process (it does not survive a restart)."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[str, str], WafBlock] = {}
        self._added: list[tuple[str, datetime]] = []

    async def record(self, block: WafBlock) -> WafBlock:
        key = (block.ip_set_arn, block.address)
        current = self._blocks.get(key)
        if current is None:
            self._added.append((block.ip_set_arn, block.blocked_at))
            stored = block
        else:
            stored = replace(current, expires_at=max(current.expires_at, block.expires_at))
        self._blocks[key] = stored
        return stored

    async def get(self, ip_set_arn: str, address: str) -> WafBlock | None:
        return self._blocks.get((ip_set_arn, address))

    async def due(self, now: datetime) -> list[WafBlock]:
        return sorted((b for b in self._blocks.values() if b.expires_at <= now), key=lambda b: b.expires_at)

    async def forget(self, ip_set_arn: str, address: str) -> None:
        self._blocks.pop((ip_set_arn, address), None)

    async def added_since(self, ip_set_arn: str, since: datetime) -> int:
        return sum(1 for arn, at in self._added if arn == ip_set_arn and at >= since)

    def entries(self) -> list[WafBlock]:
        return list(self._blocks.values())


def block_ledger(deps: ActionDeps) -> BlockLedger | None:
    """The ledger in `deps.extras["waf_blocks"]`, if the app put one there."""
    ledger = deps.extras.get(LEDGER_EXTRA)
    return ledger if isinstance(ledger, BlockLedger) else None


def unblock_params(block: WafBlock) -> dict[str, Any]:
    """Params of the `waf.unblock_ip` request that removes `block` (for the engine path)."""
    return {"ip_set_arn": block.ip_set_arn, "address": block.address}


class WafExpiry:
    """Removes expired blocks: called by the daemon's timer loop with its clock.

    An address leaves the set only once its expiry has passed (never before); the ledger entry
    is dropped after the removal succeeded or found the address already gone. A failed removal
    stays in the ledger and is tried again on the next tick.
    """

    def __init__(self, clients: AwsClients, ledger: BlockLedger, settings: WafSettings, clock: Clock) -> None:
        self.clients = clients
        self.ledger = ledger
        self.settings = settings
        self.clock = clock

    async def due(self) -> list[WafBlock]:
        return await self.ledger.due(self.clock.now())

    async def unblock(self, block: WafBlock) -> Execution:
        calls = AwsCalls(self.clients)
        if block.expires_at > self.clock.now():
            return calls.refused(FailureReason.PRECHECK_FAILED, "block has not expired yet", **block.as_dict())
        try:
            changed, conflicts = await remove_address(
                calls, IpSetRef.from_arn(block.ip_set_arn), to_network(block.address), self.settings.lock_retries)
        except AwsCallError as err:
            return calls.failed(err, **block.as_dict())
        except Refused as refused:
            return calls.refused(refused.reason, refused.message, retryable=refused.retryable, **block.as_dict())
        await self.ledger.forget(block.ip_set_arn, block.address)
        return calls.succeeded(removed=changed, lock_conflicts=conflicts, **block.as_dict())

    async def expire_due(self) -> list[tuple[WafBlock, Execution]]:
        """Unblock everything due now; returns each block with what became of it."""
        return [(block, await self.unblock(block)) for block in await self.due()]
