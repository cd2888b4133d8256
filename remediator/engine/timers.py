"""Durable timers: stored wake-ups fired once, by one replica, even across restarts.

Verification, escalation, approval reminders and expiry, and WAF unblocking all schedule a
`Timer` in the store. The loop claims due timers (a claim has a lease, so a timer whose replica
died is fired by another one later) and hands each to the handler registered for its kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from remediator.deps import Deps
from remediator.errors import StoreUnavailable
from remediator.observability import get_logger
from remediator.stores.base import Timer

log = get_logger("remediator.timers")

TimerHandler = Callable[[Timer], Awaitable[None]]


class TimerLoop:
    """Claims due timers and runs their handlers."""

    def __init__(self, deps: Deps, lease: timedelta = timedelta(minutes=2)) -> None:
        self.deps = deps
        self.lease = lease
        self.handlers: dict[str, TimerHandler] = {}

    def register(self, kind: str, handler: TimerHandler) -> None:
        if kind in self.handlers:
            raise ValueError(f"timer kind {kind!r} has a handler already")
        self.handlers[kind] = handler

    async def fire_due(self, limit: int = 100) -> int:
        """Fire what is due now; how many fired. Tests call this after moving a fake clock."""
        now = self.deps.clock.now()
        timers = await self.deps.store.claim_due_timers(now, now + self.lease, limit)
        fired = 0
        for timer in timers:
            handler = self.handlers.get(timer.kind)
            if handler is None:
                log.error("timer_without_handler", timer_id=timer.id, kind=timer.kind)
                continue
            try:
                await handler(timer)
            except Exception:
                # Left claimed: it fires again when the claim's lease runs out.
                log.exception("timer_failed", timer_id=timer.id, kind=timer.kind)
                continue
            await self.deps.store.complete_timer(timer.id, self.deps.clock.now())
            self.deps.metrics.timers_fired.labels(timer.kind).inc()
            fired += 1
        return fired

    async def run(self) -> None:
        interval = self.deps.settings.engine.timer_interval.total_seconds()
        while True:
            try:
                await self.fire_due()
            except StoreUnavailable as exc:
                log.warning("timers_store_unavailable", error=str(exc))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer_loop_failed")
            await self.deps.clock.sleep(interval)
