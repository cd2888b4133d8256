"""WAF blocks in the daemon: their ledger in the store, and their expiry through the engine.

`waf.block_ip` records each block in the ledger (`StoreBlockLedger`, in `ActionDeps.extras`),
and the store schedules, in the same transaction, a durable timer due at its expiry (one per
entry; a re-block that extends it replaces it). When the timer fires, `BlockExpiry` submits a
`waf.unblock_ip` request of origin "system" to the Executor, so the unblock passes the
guardrails and leaves exactly one audit record and its timeline events, like any other action.

Guardrails: an expiry only lifts remediator's own restriction, on the schedule people (or the
policy) agreed to when the block was decided. So it passes the kill switch and a protection of
the address added since, and is never held for approval (`Action.only_loosens`; the audit
record's decision notes what it passed); every other guardrail applies. A kill switch that
stopped expiries would silently turn a 15-minute block, perhaps of a clinic's shared address,
into one that lasts as long as the switch is on.

An unblock that did not remove the entry (failed, denied, or taken by a process that died)
leaves it due: the next attempt is a new timer (and a new request) after a growing delay, and
people are told once the third attempt has failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from remediator.actions.aws.waf_ledger import unblock_params
from remediator.actions.base import ActionParams
from remediator.deps import Deps
from remediator.engine.executor import Executor
from remediator.engine.timers import TimerLoop
from remediator.model import ActionRequest, Alert, AlertStatus, Risk, Severity, WafBlock, stable_id
from remediator.observability import get_logger
from remediator.policy.model import ActionStep, StepGuardrails
from remediator.policy.plan import PlannedStep, plan_hash
from remediator.stores.base import WAF_EXPIRY_TIMER, Timer, waf_expiry_timer
from remediator.stores.waf_ledger import WafBlockStore

log = get_logger("remediator.waf_blocks")

UNBLOCK = "waf.unblock_ip"
ESCALATE_AT_ATTEMPT = 3  # people hear of a block that would not come out after this many attempts
MAX_RETRY_DELAY = timedelta(minutes=30)
# An expiry is not a policy's step: no cooldown of its own (a retry must not wait 10 minutes).
EXPIRY_STEP_GUARDRAILS = StepGuardrails(cooldown=timedelta(0))

Escalate = Callable[[str, str], Awaitable[None]]


class StoreBlockLedger:
    """The `BlockLedger` of `waf.block_ip`, kept in the store (and so shared by every replica)."""

    def __init__(self, store: WafBlockStore) -> None:
        self.store = store

    async def record(self, block: WafBlock) -> WafBlock:
        return await self.store.record_waf_block(block)

    async def get(self, ip_set_arn: str, address: str) -> WafBlock | None:
        return await self.store.get_waf_block(ip_set_arn, address)

    async def due(self, now: datetime) -> list[WafBlock]:
        return await self.store.due_waf_blocks(now)

    async def forget(self, ip_set_arn: str, address: str) -> None:
        await self.store.forget_waf_block(ip_set_arn, address)

    async def added_since(self, ip_set_arn: str, since: datetime) -> int:
        return await self.store.count_waf_blocks_added(ip_set_arn, since)


def retry_delay(attempt: int) -> timedelta:
    """How long after failed attempt `attempt` the next one is due: 1, 2, 4 ... minutes, at most 30."""
    return min(timedelta(minutes=2 ** min(attempt - 1, 5)), MAX_RETRY_DELAY)


class BlockExpiry:
    """Fires the expiry timers of WAF blocks: an unblock request through the Executor."""

    def __init__(self, deps: Deps, executor: Executor, escalate: Escalate) -> None:
        self.deps = deps
        self.executor = executor
        self.escalate = escalate

    def register(self, timers: TimerLoop) -> None:
        timers.register(WAF_EXPIRY_TIMER, self.on_expiry)

    async def on_expiry(self, timer: Timer) -> None:
        """Unblock the timer's entry if it is (still) remediator's and due; else do nothing."""
        store, now = self.deps.store, self.deps.clock.now()
        arn, address = str(timer.payload["ip_set_arn"]), str(timer.payload["address"])
        block = await store.get_waf_block(arn, address)
        if block is None or block.expires_at > now:
            return  # unblocked already, or extended since (the extension has its own timer)
        attempt = int(timer.payload.get("attempt", 1))
        planned, alert = await self.plan(block, timer, attempt)
        await self.executor.respond_one(planned, alert)
        left = await store.get_waf_block(arn, address)
        if left is None or left.expires_at != block.expires_at:
            return  # unblocked and forgotten, or re-blocked meanwhile (its own timer ends it)
        await store.schedule_timer(waf_expiry_timer(block, attempt + 1, now + retry_delay(attempt)))
        log.warning("waf_block_not_expired", ip_set=arn, address=address, attempt=attempt,
                    request_id=planned.request.id)
        if attempt == ESCALATE_AT_ATTEMPT:
            await self.escalate(block.incident_id, f"the WAF block of {address} in {arn} expired at "
                                f"{block.expires_at.isoformat()} and is still in place after {attempt} attempts to "
                                "remove it; remediator keeps trying, or remove it by hand")

    async def plan(self, block: WafBlock, timer: Timer, attempt: int) -> tuple[PlannedStep, Alert]:
        """The unblock request: one per timer, tied to the alert, incident and policy of the block."""
        stored = await self.deps.store.get_request(block.request_id)
        origin = stored.request if stored is not None else None
        alert = await self.deps.store.get_alert(origin.alert_id) if origin is not None else None
        if alert is None:
            log.error("waf_block_without_its_alert", request_id=block.request_id, address=block.address)
            alert = self._stand_in_alert(block, timer)
        params, error = unblock_params(block), ""
        validated: ActionParams | None = None
        action = self.deps.registry.get(UNBLOCK)
        try:
            if action is None:
                raise ValueError(f"unknown action {UNBLOCK!r}")
            validated = action.Params.model_validate(params)
        except ValueError as exc:  # a ValidationError too: then the record says what is wrong
            error = f"the block cannot be ended: {exc}"
        target = action.target(validated) if action is not None and validated is not None else block.address
        dumped = validated.model_dump(mode="json") if validated is not None else params
        request = ActionRequest(
            id=stable_id(timer.id), alert_id=alert.id, incident_id=block.incident_id,
            policy=origin.policy if origin is not None else "waf-block-expiry",
            step=origin.step if origin is not None else 0, action=UNBLOCK, target=target, params=dumped,
            severity=origin.severity if origin is not None else Severity.P4,
            risk=action.risk if action is not None else Risk.NORMAL,
            plan_hash=plan_hash(UNBLOCK, target, dumped), created_at=self.deps.clock.now(), origin="system")
        log.info("waf_block_expiring", ip_set=block.ip_set_arn, address=block.address, attempt=attempt,
                 request_id=request.id)
        step = ActionStep(type=UNBLOCK, params=params, guardrails=EXPIRY_STEP_GUARDRAILS)
        return PlannedStep(request, step, validated, error), alert

    def _stand_in_alert(self, block: WafBlock, timer: Timer) -> Alert:
        """An alert to carry the request when the block's own alert is gone from the store."""
        now = self.deps.clock.now()
        return Alert(source="remediator", name="WafBlockExpired", status=AlertStatus.FIRING,
                     fingerprint=stable_id(block.ip_set_arn, block.address), dedup_keys=(f"remediator:{timer.id}",),
                     group_key=f"waf-block:{block.ip_set_arn}:{block.address}", starts_at=block.expires_at,
                     received_at=now, labels={"address": block.address}, summary="a WAF block expired")
