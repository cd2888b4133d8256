"""The ledger of WAF blocks remediator placed: what `waf.block_ip` promises to take out again.

`waf.block_ip` writes a `WafBlock` to the ledger *before* it adds the address (so a crash
between the two still leaves an expiry behind; removing an absent address is a no-op), and only
for addresses it adds itself: an address a person put in the set is never given an expiry.

The ledger is a small protocol. The daemon keeps it in its store (`remediator.waf_blocks`), which
also schedules one durable expiry timer per entry; when it fires, the engine submits
`waf.unblock_ip` with `unblock_params(block)` as a request of origin "system", so every unblock
passes the guardrails and leaves its audit record. `InMemoryBlockLedger` serves action tests.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from remediator.actions.base import ActionDeps
from remediator.model import WafBlock

__all__ = ["LEDGER_EXTRA", "BlockLedger", "InMemoryBlockLedger", "WafBlock", "block_ledger", "unblock_params"]

LEDGER_EXTRA = "waf_blocks"  # the key of the BlockLedger in `ActionDeps.extras`


@runtime_checkable
class BlockLedger(Protocol):
    """Where blocks and their expiries are kept; one entry per (ip_set_arn, address)."""

    async def record(self, block: WafBlock) -> WafBlock:
        """Insert, or keep the entry and extend it to the later expiry; return what is stored.

        A new entry also counts as an addition for `added_since`. An extension takes the
        request and incident of `block` (the request whose decision now says when it ends)."""

    async def get(self, ip_set_arn: str, address: str) -> WafBlock | None: ...

    async def due(self, now: datetime) -> list[WafBlock]:
        """Entries whose expiry is at or before `now`, oldest first."""

    async def forget(self, ip_set_arn: str, address: str) -> None:
        """Drop the entry (the address is out of the set); addition times stay for the cap."""

    async def added_since(self, ip_set_arn: str, since: datetime) -> int:
        """How many entries were added to this IP set at or after `since` (forgotten ones too)."""


class InMemoryBlockLedger:
    """The ledger in a dict: for tests (it does not survive a restart, and nothing expires it)."""

    def __init__(self) -> None:
        self._blocks: dict[tuple[str, str], WafBlock] = {}
        self._added: list[tuple[str, datetime]] = []

    async def record(self, block: WafBlock) -> WafBlock:
        key = (block.ip_set_arn, block.address)
        current = self._blocks.get(key)
        if current is None:
            self._added.append((block.ip_set_arn, block.blocked_at))
            stored = block
        elif block.expires_at > current.expires_at:
            stored = replace(current, expires_at=block.expires_at, request_id=block.request_id,
                             incident_id=block.incident_id)
        else:
            stored = current
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
    """Params of the `waf.unblock_ip` request that ends `block` when it expires (the engine's path).

    `only_if_expired`: the unblock re-checks the ledger under the target's lease, so a block
    extended in the meantime, or one that is no longer remediator's, is left alone.
    """
    return {"ip_set_arn": block.ip_set_arn, "address": block.address, "only_if_expired": True}
