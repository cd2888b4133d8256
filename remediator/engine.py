"""The engine: recorded alerts in, incidents, decisions and actions out (DESIGN.md §1).

`process` is the whole pipeline for one alert and reads top to bottom. Around it: a bounded
queue, a fixed number of workers, a backlog feeder that reads what the queue could not hold (and
what a previous process left unprocessed) back from the store, durable timers, and `drain()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta

from remediator.actions.base import ActionContext
from remediator.deps import Deps
from remediator.errors import CoordinationUnavailable, StoreUnavailable
from remediator.execution import Executor, HoldHandler, IncidentNotes, Pending
from remediator.model import Alert, Execution, Incident, IncidentStatus, Outcome, Phase, TimelineEvent
from remediator.observability import get_logger
from remediator.policy.match import Match, incident_severity
from remediator.policy.plan import PlannedStep, plan_step
from remediator.stores.base import Observation, Timer
from remediator.timers import TimerLoop

log = get_logger("remediator.engine")

MAX_ATTEMPTS = 3  # an alert whose processing failed this often is set aside, with a log line


class Engine:
    """Workers over a bounded queue of recorded alerts."""

    def __init__(self, deps: Deps, on_hold: HoldHandler | None = None) -> None:
        self.deps = deps
        self.executor = Executor(deps, on_hold)
        self.timers = TimerLoop(deps)
        self.timers.register("verify", self.on_verify)
        self.queue: asyncio.Queue[Alert] = asyncio.Queue(deps.settings.engine.queue_size)
        self._queued: set[str] = set()
        self._failures: dict[str, int] = {}
        self._more_backlog = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._overflow: list[str] = []
        self.accepting = False

    # -- the pipeline -----------------------------------------------------------------------------
    async def process(self, alerts: Sequence[Alert]) -> None:
        """The pipeline for alerts taken off the queue together: correlate, match, respond, done."""
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
            if incident is not None and found and not correlation.stale:
                flaps = await self._flap_count(alert)
                work += [(step, alert, flaps) for match in found for step in self.plan(match, incident)]
        if work:
            await self.settle(await self.executor.respond(work))
        await self.deps.store.mark_processed([a.id for a in alerts], self.deps.clock.now())

    def plan(self, match: Match, incident: Incident) -> list[PlannedStep]:
        """A policy's steps: all of them in order, or only the first when the policy verifies."""
        count = 1 if match.policy.verify else len(match.policy.actions)
        now = self.deps.clock.now()
        return [plan_step(match, i, incident, self.deps.registry, now) for i in range(count)]

    async def settle(self, done: Sequence[Pending]) -> None:
        """After actions: a success contains the incident; a policy that verifies gets its timer."""
        for item in done:
            record = item.record
            if record is None:
                continue
            if record.outcome is Outcome.SUCCEEDED:
                await self.deps.store.update_phase(record.incident_id, Phase.CONTAIN, record.at)
            policy = self.deps.policies.by_name(record.policy)
            if policy and policy.verify and record.outcome in (Outcome.SUCCEEDED, Outcome.DRY_RUN):
                await self.deps.store.schedule_timer(Timer(
                    f"verify:{record.request_id}", "verify", record.at + policy.verify.after,
                    {"request_id": record.request_id, "alert_id": record.alert_id,
                     "incident_id": record.incident_id, "policy": record.policy,
                     "step": item.planned.request.step}))

    async def _flap_count(self, alert: Alert) -> int:
        flap = self.deps.settings.guardrails.flap
        try:
            return await self.deps.coordination.record_change(f"flap:{alert.fingerprint}", flap.window,
                                                             self.deps.clock.now())
        except CoordinationUnavailable:
            self.deps.metrics.coordination_errors.inc()
            return 0  # the quotas will deny what needs coordination

    # -- verification ---------------------------------------------------------------------------
    async def on_verify(self, timer: Timer) -> None:
        """After a step: recovered → verified; otherwise the policy's next step, or escalation."""
        p = timer.payload
        store, now = self.deps.store, self.deps.clock.now()
        incident = await store.get_incident(p["incident_id"])
        if incident is None:
            return
        recovered = incident.status is not IncidentStatus.OPEN or await self._action_recovered(p["request_id"])
        if recovered:
            self.deps.metrics.verifications.labels("recovered").inc()
            event = TimelineEvent(incident.id, now, "verified", f"recovered after {p['policy']} step {p['step'] + 1}",
                                  request_id=p["request_id"])
            await store.update_phase(incident.id, Phase.VERIFY, now, [event])
            return
        policy = self.deps.policies.by_name(p["policy"])
        alert = await store.get_alert(p["alert_id"])
        next_step = p["step"] + 1
        if policy is not None and alert is not None and next_step < len(policy.actions):
            self.deps.metrics.verifications.labels("next_step").inc()
            await store.add_events([TimelineEvent(incident.id, now, "not_recovered",
                                                  f"not recovered; running step {next_step + 1} of {policy.name}",
                                                  request_id=p["request_id"])])
            planned = plan_step(Match(policy, alert), next_step, incident, self.deps.registry, now)
            await self.settle(await self.executor.respond([(planned, alert, 0)]))
            return
        self.deps.metrics.verifications.labels("escalated").inc()
        await self.escalate(incident.id, f"not recovered after the last step of {p['policy']}")

    async def _action_recovered(self, request_id: str) -> bool:
        stored = await self.deps.store.get_request(request_id)
        action = self.deps.registry.get(stored.request.action) if stored else None
        if stored is None or action is None:
            return False
        audit = await self.deps.store.get_audit(request_id)
        execution = Execution(audit.outcome, reason=audit.failure_reason, detail=audit.detail) if audit else None
        ctx = ActionContext(stored.request, self.deps.actions, IncidentNotes(self.deps, stored.request),
                            log.bind(request_id=request_id), self.deps.dry_run, execution=execution)
        try:
            params = action.Params.model_validate(stored.request.params)
            async with asyncio.timeout(self.deps.settings.engine.action_timeout.total_seconds()):
                return await action.verify(params, ctx) is True
        except Exception:
            log.exception("verify_failed", request_id=request_id)
            return False

    async def escalate(self, incident_id: str, reason: str) -> None:
        """Tell people: a timeline event and an error log line (the escalation matrix builds on this)."""
        log.error("escalated", incident_id=incident_id, reason=reason)
        await self.deps.store.add_events([TimelineEvent(incident_id, self.deps.clock.now(), "escalated", reason)])

    # -- intake and workers -----------------------------------------------------------------------
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
        now = self.deps.clock.now()
        for orphan in await self.deps.store.reconcile_running(now):
            request = orphan.request
            self.deps.metrics.actions.labels(request.action, Outcome.UNKNOWN.value).inc()
            await self.escalate(request.incident_id, f"{request.action} on {request.target} was running when "
                                f"{orphan.holder} stopped; its outcome is unknown and it will not be re-run")
        self.accepting = True
        self._tasks = [asyncio.create_task(self._worker(i), name=f"engine-worker-{i}")
                       for i in range(self.deps.settings.engine.workers)]
        self._tasks.append(asyncio.create_task(self._feed_backlog(), name="engine-backlog"))
        self._tasks.append(asyncio.create_task(self.timers.run(), name="engine-timers"))
        self._more_backlog.set()

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
            log.warning("alerts_deferred", count=len(batch), error=str(exc))  # recorded: the backlog retries
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
        """Read back what is recorded but not processed: after a restart, an overflow or a dead replica."""
        interval = 1.0
        while True:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancellation of stop().
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._more_backlog.wait()
            self._more_backlog.clear()
            room = self.queue.maxsize - self.queue.qsize()
            if room <= 0:
                continue
            now = self.deps.clock.now()
            lease = now + self.deps.settings.engine.alert_lease
            try:
                if self._overflow:
                    overflow, self._overflow = self._overflow, []
                    await self.deps.store.release_alerts(overflow)
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

    async def stop(self) -> None:
        """Stop intake, let in-flight alerts finish (bounded), hand the rest back to the store."""
        self.accepting = False
        handed_back = []
        while not self.queue.empty():
            handed_back.append(self.queue.get_nowait().id)
            self.queue.task_done()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.deps.settings.engine.stop_timeout.total_seconds()):
                await self._idle.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if handed_back:
            with contextlib.suppress(StoreUnavailable):
                await self.deps.store.release_alerts(handed_back)
        log.info("engine_stopped", handed_back=len(handed_back), unfinished=self._busy)
