"""The engine: recorded alerts in, incidents, decisions and actions out (DESIGN.md §1).

`process` is the whole pipeline for the alerts a worker took off the queue together, and reads
top to bottom. Around it: a bounded
queue, a fixed number of workers, a backlog feeder that reads what the queue could not hold (and
what a previous process left unprocessed) back from the store, durable timers, and `drain()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from datetime import timedelta

from remediator.deps import Deps
from remediator.engine.approval_desk import ApprovalDesk
from remediator.engine.deadlines import Deadlines
from remediator.engine.declaration import Declaration
from remediator.engine.escalation import Escalation
from remediator.engine.executor import Executor, HoldHandler
from remediator.engine.notifier import Notifier
from remediator.engine.recovery import Recovery
from remediator.engine.sequence import Sequencer, Settled
from remediator.engine.timers import TimerLoop
from remediator.engine.verification import Verifier
from remediator.engine.waf_blocks import BlockExpiry
from remediator.errors import CoordinationUnavailable, StoreUnavailable
from remediator.guardrails.circuit import CircuitCounter
from remediator.guardrails.flap import counts_for_flapping, current_flap_count, record_state_change
from remediator.incidents.lifecycle import measure
from remediator.model import ActionRequest, Alert, AlertStatus, Approval, AuditRecord, Incident
from remediator.observability import get_logger
from remediator.policy.match import Match, incident_severity
from remediator.policy.plan import PlannedStep, plan_step
from remediator.stores.base import Correlation, Observation

log = get_logger("remediator.engine")

MAX_ATTEMPTS = 3  # an alert whose processing failed this often is set aside, with a log line


class RecentIds:
    """A bounded memory of ids seen recently (oldest forgotten first)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: dict[str, None] = {}

    def remember(self, item: str) -> bool:
        """Remember `item`; whether it was remembered already."""
        if item in self._ids:
            return True
        self._ids[item] = None
        if len(self._ids) > self.size:
            del self._ids[next(iter(self._ids))]
        return False

    def forget(self, items: Iterable[str]) -> None:
        for item in items:
            self._ids.pop(item, None)


class Engine:
    """Workers over a bounded queue of recorded alerts."""

    def __init__(self, deps: Deps, on_hold: HoldHandler | None = None) -> None:
        self.deps = deps
        self.notifier = Notifier(deps)
        self.escalation = Escalation(deps, self.notifier)
        self.declaration = Declaration(deps, self.notifier)
        self.deadlines = Deadlines(deps, self.notifier, self.escalation)
        self.verifier = Verifier(deps, self.run_step, self.escalate)
        circuits = CircuitCounter(deps.coordination, deps.settings.guardrails.circuit_breaker, self.escalate)
        # One executor for policy steps and approved runs: it owns the audit records a store outage
        # defers, and the backlog loop and stop() flush them, whichever path ran the action.
        self.executor = Executor(deps, on_hold, circuits)
        self.approvals = ApprovalDesk(deps, self.executor, self.escalation, self.notifier, self.after_step,
                                      after_decided=self.after_approval)
        self.executor.on_hold = on_hold or self.approvals.on_hold
        self.sequence = Sequencer(deps, self.executor)
        # It also knows every request this process is deciding: recovery leaves those be.
        self.recovery = Recovery(deps, self.executor, self.escalate, self.after_step, self.flap_count)
        self.waf_blocks = BlockExpiry(deps, self.executor, self.escalate)
        # A timer's claim outlasts the longest action its handler may run, so it never fires twice.
        self.timers = TimerLoop(deps, lease=deps.settings.engine.action_timeout + timedelta(minutes=2))
        for part in (self.verifier, self.escalation, self.declaration, self.deadlines, self.approvals,
                     self.waf_blocks):
            part.register(self.timers)
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(deps.settings.engine.queue_size)
        self._queued: set[str] = set()
        self._failures: dict[str, int] = {}
        self._more_backlog = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._feeder: asyncio.Task[None] | None = None
        self._feeding = False
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._overflow: list[str] = []
        self._requested = RecentIds(100_000)
        self._late: set[asyncio.Future[list[bool]]] = set()  # writes that outlived their sender's wait
        self.accepting = False

    # -- the pipeline -----------------------------------------------------------------------------
    async def process(self, alerts: Sequence[Alert]) -> None:
        """Correlate into incidents, match policies, plan, respond (guardrails → actions → audit)."""
        now = self.deps.clock.now()
        matches = [self.deps.policies.match(a) if a.actionable else [] for a in alerts]
        observations = [Observation(a, incident_severity(m, a), tuple(x.policy.name for x in m))
                        for a, m in zip(alerts, matches, strict=True)]
        correlations = await self.deps.store.correlate_many(observations, now)
        work: list[tuple[PlannedStep, Alert, int]] = []
        for alert, found, correlation in zip(alerts, matches, correlations, strict=True):
            incident = correlation.incident
            if correlation.opened and incident is not None:
                self.deps.metrics.incidents_opened.labels(incident.severity.value).inc()
            await self._follow(correlation, alert)
            if incident is None or correlation.stale:
                continue
            if found:
                await self._start_deadlines(incident, alert, found)
            flaps = await self.flap_count(alert) if counts_for_flapping(alert, self.deps.policies, bool(found)) else 0
            work += [(step, alert, flaps) for match in found for step in self.plan(match, incident)]
        planned_work = list(work)
        try:
            work = await self._new_requests(work)
            done = await self.executor.respond(work) if work else []
        except BaseException:
            # Maybe not recorded: a replay must decide them, not take them for requested already.
            self._requested.forget(planned.request.id for planned, _, _ in planned_work)
            raise
        for item in done:
            if item.record is not None:
                await self.after_step(item.planned.request, item.alert, item.record)
        await self.deps.store.mark_processed([a.id for a in alerts], self.deps.clock.now())

    async def _new_requests(self, work: list[tuple[PlannedStep, Alert, int]]) -> list[tuple[PlannedStep, Alert, int]]:
        """Drop plans their incident has requested already: the alert joins that request (see
        `plan.request_id`). Recent request ids are remembered; the store answers for the others."""
        fresh: list[tuple[PlannedStep, Alert, int]] = []
        for item in work:
            if not self._requested.remember(item[0].request.id):
                fresh.append(item)
        existing = await self.deps.store.existing_requests([i[0].request.id for i in fresh]) if fresh else set()
        for item in fresh:
            if item[0].request.id in existing:
                await self.executor.hold_again(item[0])  # a hold recorded before a crash gets its approval
                for later in await self.sequence.resume(item[0].request):  # and a chain cut short goes on
                    await self.after_step(*later)
        joined = len(work) - len(fresh) + len(existing)
        if joined:
            self.deps.metrics.duplicates.labels("request").inc(joined)
        return [item for item in fresh if item[0].request.id not in existing]

    def plan(self, match: Match, incident: Incident) -> list[PlannedStep]:
        """The policy's steps that start at once: those without `when` (only the first when it verifies).
        The others wait for the step before them (`after_step`)."""
        now = self.deps.clock.now()
        cooldown = self.deps.settings.guardrails.default_cooldown
        return [plan_step(match, i, incident, self.deps.registry, now, default_cooldown=cooldown)
                for i in match.policy.first_steps]

    async def run_step(self, match: Match, index: int, incident: Incident, flap_count: int = 0) -> AuditRecord | None:
        """One step on its own (verification's next step)."""
        planned = plan_step(match, index, incident, self.deps.registry, self.deps.clock.now(),
                            default_cooldown=self.deps.settings.guardrails.default_cooldown)
        record = await self.executor.respond_one(planned, match.alert, flap_count)
        if record is not None:
            await self.after_step(planned.request, match.alert, record)
        return record

    async def after_step(self, request: ActionRequest, alert: Alert, record: AuditRecord) -> None:
        """A step was decided or ran: verification follows it up, and the steps that waited for it
        run or are recorded as skipped (engine/sequence.py), and so on down the chain."""
        await self.verifier.follow_up(request, alert, record)
        for later in await self.sequence.after(Settled.of(request, record)):
            await self.after_step(*later)

    async def after_approval(self, approval: Approval) -> None:
        """A held step's approval closed without running it, or its run was recorded by an earlier
        attempt: the steps that waited for it go on (idempotent)."""
        for later in await self.sequence.after_approval(approval):
            await self.after_step(*later)

    async def _follow(self, correlation: Correlation, alert: Alert) -> None:
        """What a correlation means for the escalation matrix and for approvals waiting on this alert.

        Idempotent, because a replayed alert (`correlation.replayed`) runs it again.
        """
        incident = correlation.incident
        if incident is None or correlation.stale:
            return
        if incident.recovered:
            if correlation.resolved or correlation.replayed:
                await self.escalation.stop(incident.id)
                self._count_recovery_breach(incident)
        elif correlation.opened or correlation.severity_raised or correlation.replayed:
            await self.escalation.schedule(incident)
            await self.declaration.schedule(incident)
        if alert.status is AlertStatus.RESOLVED and alert.actionable:
            await self.approvals.alert_resolved(incident.id, alert.fingerprint)

    async def _start_deadlines(self, incident: Incident, alert: Alert, found: Sequence[Match]) -> None:
        """A firing alert of a policy that starts a deadline (e.g. a suspected leak's 72 hours) starts it."""
        if alert.status is AlertStatus.FIRING:
            for match in found:
                for name in self.deadlines.matching([match.policy.name]):
                    await self.deadlines.start(incident, name, f"policy:{match.policy.name}")

    def _count_recovery_breach(self, incident: Incident) -> None:
        target = self.deps.settings.incidents.targets[incident.severity]
        settings = self.deps.settings.incidents
        if measure(incident, target, settings.zone, self.deps.clock.now()).recover_breached:
            self.deps.metrics.sla_breaches.labels(incident.severity.value, "recover").inc()

    async def flap_count(self, alert: Alert, *, record: bool = True) -> int:
        """The alert's state changes within the flap window, this one counted first when `record`."""
        count = record_state_change if record else current_flap_count
        try:
            return await count(self.deps.coordination, alert, self.deps.settings.guardrails.flap, self.deps.clock.now())
        except CoordinationUnavailable:
            self.deps.metrics.coordination_errors.inc()
            return 0  # the quotas will deny what needs coordination

    async def escalate(self, incident_id: str, reason: str) -> None:
        """Tell people now, through the escalation matrix (see `Escalation.escalate_now`)."""
        await self.escalation.escalate_now(incident_id, reason)

    # -- intake and workers -----------------------------------------------------------------------
    async def record(self, alerts: Sequence[Alert]) -> list[bool]:
        """Record alerts durably (deduplicated), claimed by this process, and queue the new ones.

        Raises StoreUnavailable once `store.ack_timeout` has passed (the sender gets 503 and
        retries); the write itself goes on, and what it recorded is queued as it would have been.
        """
        recording = asyncio.ensure_future(self._record(alerts))
        recording.add_done_callback(_consume)  # whoever stops waiting (a timeout, a cancelled handler)
        try:
            async with asyncio.timeout(self.deps.settings.store.ack_timeout.total_seconds()):
                return await asyncio.shield(recording)
        except TimeoutError:
            self._late.add(recording)
            recording.add_done_callback(self._late.discard)
            raise StoreUnavailable(f"not stored within store.ack_timeout "
                                   f"({self.deps.settings.store.ack_timeout.total_seconds():g}s)") from None

    async def _record(self, alerts: Sequence[Alert]) -> list[bool]:
        lease_until = self.deps.clock.now() + self.deps.settings.engine.alert_lease
        try:
            fresh = await self.deps.store.record_alerts(alerts, lease_until)
        except StoreUnavailable:
            # The commit may have happened (only its answer was lost): whatever it stored is claimed
            # by this live holder, so hand the claims back for the backlog once the store answers.
            self._overflow += [alert.id for alert in alerts]
            self._more_backlog.set()
            raise
        self.submit([alert for alert, is_new in zip(alerts, fresh, strict=True) if is_new])
        return fresh

    def submit(self, alerts: Sequence[Alert]) -> None:
        """Queue freshly recorded alerts; what does not fit stays in the store for the backlog feeder."""
        for index, alert in enumerate(alerts):
            if alert.id in self._queued:
                continue
            try:
                self.queue.put_nowait(alert)
            except asyncio.QueueFull:
                # Claimed by us at ingest: hand them back so the feeder (or another replica) takes them.
                self._overflow += [a.id for a in alerts[index:]]
                self._more_backlog.set()
                break
            self._queued.add(alert.id)
        self.deps.metrics.queue_depth.set(self.queue.qsize())

    async def start(self) -> None:
        await self.recovery.sweep()
        self.accepting = True
        self._tasks = [asyncio.create_task(self._worker(i), name=f"engine-worker-{i}")
                       for i in range(self.deps.settings.engine.workers)]
        self._feeding = True
        self._feeder = asyncio.create_task(self._feed_backlog(), name="engine-backlog")
        self._tasks.append(self._feeder)
        self._tasks.append(asyncio.create_task(self.timers.run(), name="engine-timers"))
        self._tasks.append(asyncio.create_task(self.recovery.run(), name="engine-recovery"))
        self._more_backlog.set()

    async def reconcile(self) -> int:
        """Requests a dead replica left running: recorded UNKNOWN, escalated, never re-run (see `Recovery`)."""
        return await self.recovery.reconcile()

    async def _worker(self, number: int) -> None:
        batch_size = self.deps.settings.engine.batch_size
        while True:
            batch = [await self.queue.get()]
            while len(batch) < batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self._busy += 1
            self._idle.clear()
            try:
                await self._process_batch(batch)
            finally:
                self._busy -= 1
                if not self._busy:
                    self._idle.set()
                for alert in batch:
                    self._queued.discard(alert.id)
                    self.queue.task_done()

    async def _process_batch(self, batch: list[Alert]) -> None:
        try:
            await self.process(batch)
            self.deps.metrics.alerts_processed.inc(len(batch))
        except StoreUnavailable as exc:
            # Recorded and claimed by this live holder: hand them back for the backlog to take again
            # as soon as the store answers (not when their lease ends).
            log.warning("alerts_deferred", count=len(batch), error=str(exc))
            self._overflow += [alert.id for alert in batch]
            self._more_backlog.set()
        except Exception:
            if len(batch) > 1:  # find the one that fails; the others go through
                for alert in batch:
                    await self._process_batch([alert])
                return
            await self._failed(batch[0])

    async def _failed(self, alert: Alert) -> None:
        self.deps.metrics.pipeline_errors.inc()
        failures = self._failures[alert.id] = self._failures.get(alert.id, 0) + 1
        log.exception("alert_failed", alert_id=alert.id, attempt=failures)
        if failures >= MAX_ATTEMPTS:
            self._failures.pop(alert.id, None)
            with contextlib.suppress(StoreUnavailable):
                await self.deps.store.mark_processed([alert.id], self.deps.clock.now())
            log.error("alert_set_aside", alert_id=alert.id, attempts=failures)

    async def _feed_backlog(self) -> None:
        """Read back what is recorded but not processed: what intake processes recorded, what did not
        fit the queue, what a previous process or a dead replica left."""
        interval = self.deps.settings.engine.backlog_poll.total_seconds()
        while self._feeding:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancellation of stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._more_backlog.wait()
            self._more_backlog.clear()
            if not self._feeding:
                return
            room = self.queue.maxsize - self.queue.qsize()
            if room <= 0:
                continue
            now = self.deps.clock.now()
            lease = now + self.deps.settings.engine.alert_lease
            try:
                if self.executor.unrecorded:
                    await self.executor.flush_unrecorded()
                if self._overflow:
                    handing_back = list(self._overflow)  # what is added meanwhile waits for the next round
                    await self.deps.store.release_alerts(handing_back)
                    del self._overflow[: len(handing_back)]
                alerts = await self.deps.store.claim_backlog(now, lease, min(room, 1000), self._queued)
            except StoreUnavailable as exc:
                log.warning("backlog_store_unavailable", error=str(exc))
                continue
            self.submit(alerts)
            if len(alerts) == min(room, 1000):
                self._more_backlog.set()

    async def drain(self, poll: timedelta = timedelta(milliseconds=20)) -> None:
        """Return once every recorded alert has been processed (tests, `simulate`)."""
        while True:
            await self.queue.join()
            if not self._queued and await self.deps.store.count_unprocessed() == 0:
                return
            self._more_backlog.set()
            await asyncio.sleep(poll.total_seconds())

    async def _stop_feeding(self) -> None:
        """Let the backlog feeder finish the claim it is making, rather than cancel it mid-way.

        A claim cancelled after it was sent still commits (the store finishes the write), and the
        alerts it took would then be claimed by this holder without ever being queued: nobody
        would process them until their lease ran out (with a fake clock, never: a hang).
        """
        self._feeding = False
        self._more_backlog.set()
        if self._feeder is not None:
            # Neither cancels nor raises: what the feeder ended with is gathered with the other tasks.
            await asyncio.wait({self._feeder}, timeout=self.deps.settings.engine.stop_timeout.total_seconds())
            self._feeder = None

    async def stop(self) -> None:
        """Stop intake, let in-flight alerts finish (bounded), hand the rest back to the store."""
        self.accepting = False
        await self._stop_feeding()
        handed_back = []
        while not self.queue.empty():
            handed_back.append(self.queue.get_nowait().id)
            self.queue.task_done()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.deps.settings.engine.stop_timeout.total_seconds()):
                await self._idle.wait()
        await self.approvals.stop(self.deps.settings.engine.stop_timeout.total_seconds())
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        # Always, even with nothing to hand back: a backlog claim cancelled above may still be queued
        # in the store's writer and run later, claiming alerts recorded after this stop for a whole
        # lease. Writes run in order, so once this one is done that claim has run too.
        with contextlib.suppress(StoreUnavailable):
            await self.deps.store.release_alerts(handed_back)
        unrecorded = await self.executor.flush_unrecorded()
        if unrecorded:
            # Their requests stay open under this holder; once it is gone, reconcile takes over.
            log.error("audit_records_lost_at_stop", count=unrecorded)
        log.info("engine_stopped", handed_back=len(handed_back), unfinished=self._busy)


def _consume(done: asyncio.Future[list[bool]]) -> None:
    """A write nobody waits for any more failed (answered with 503 already): read it so asyncio does
    not log it as never retrieved."""
    if not done.cancelled():
        done.exception()
