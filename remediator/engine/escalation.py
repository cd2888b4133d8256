"""The escalation matrix: who hears about an incident that does not recover, and when.

Each step of the incident's severity is a durable timer (`escalation:<incident>:<severity>:<n>`,
due `opened_at + after`), scheduled when the incident opens or its severity rises, so the
matrix survives restarts and fires once across replicas. A step that fires checks the incident
first: recovered (or superseded by a higher severity's steps) means nobody is disturbed.

`escalate_now` is for what cannot wait for the clock (an execution left unknown by a crash, an
approval that expired, a verification that failed): it tells whoever the matrix says is
responsible at that moment.
"""

from __future__ import annotations

from datetime import datetime

from remediator.actions.notification import Notification
from remediator.clock import describe_duration
from remediator.deps import Deps
from remediator.engine.notifier import Notifier, sent_to
from remediator.engine.timers import TimerLoop
from remediator.model import Execution, Incident, Severity, TimelineEvent
from remediator.observability import get_logger
from remediator.plaintext import one_line
from remediator.settings import EscalationStep
from remediator.stores.base import Timer

log = get_logger("remediator.escalation")

TIMER_KIND = "escalation"


def timer_prefix(incident_id: str, severity: Severity | None = None) -> str:
    return f"escalation:{incident_id}:" + (f"{severity.value}:" if severity else "")


class Escalation:
    """Schedules, fires and cancels the matrix's steps; tells contacts through their notify targets."""

    def __init__(self, deps: Deps, notifier: Notifier) -> None:
        self.deps = deps
        self.notifier = notifier

    def register(self, timers: TimerLoop) -> None:
        timers.register(TIMER_KIND, self.on_step)

    def steps(self, severity: Severity) -> list[EscalationStep]:
        return self.deps.settings.incidents.escalation.get(severity, [])

    def timers_for(self, incident: Incident) -> list[Timer]:
        """One timer per step of the incident's current severity, due from when it opened."""
        return [Timer(f"{timer_prefix(incident.id, incident.severity)}{n}", TIMER_KIND, incident.opened_at + step.after,
                      {"incident_id": incident.id, "severity": incident.severity.value, "step": n})
                for n, step in enumerate(self.steps(incident.severity))]

    async def schedule(self, incident: Incident) -> None:
        """Idempotent: call it when the incident opens, its severity rises, or a replay may have missed it.

        Steps of a raised severity whose time has passed already fire at once: a P3 that became
        a P1 after 20 minutes is a P1 nobody has been told about for 20 minutes.
        """
        for lower in Severity:
            if lower.rank > incident.severity.rank:
                await self.deps.store.cancel_timers(timer_prefix(incident.id, lower))
        for timer in self.timers_for(incident):
            await self.deps.store.schedule_timer(timer)

    async def stop(self, incident_id: str) -> None:
        """The incident recovered or was closed: its pending steps will not be needed."""
        await self.deps.store.cancel_timers(timer_prefix(incident_id))

    async def on_step(self, timer: Timer) -> None:
        incident = await self.deps.store.get_incident(timer.payload["incident_id"])
        if incident is None or incident.recovered:
            return
        if incident.severity.value != timer.payload["severity"]:
            return  # the severity rose: that severity's own steps are in charge now
        steps = self.steps(incident.severity)
        number = int(timer.payload["step"])
        if number >= len(steps):
            log.warning("escalation_step_gone", incident_id=incident.id, step=number)  # settings changed
            return
        step = steps[number]
        reason = f"{'reminder: ' if step.reminder else ''}not recovered after {describe_duration(step.after)}"
        await self._tell(incident, step.contacts, reason + (f"; {step.note}" if step.note else ""), level=number + 1)

    def responsible(self, incident: Incident, now: datetime) -> tuple[int, list[str]]:
        """The matrix level in charge at `now` (its last step due, else its first) and its contacts."""
        steps = self.steps(incident.severity)
        due = [n for n, step in enumerate(steps) if incident.opened_at + step.after <= now]
        level = due[-1] if due else 0
        return (level + 1, list(steps[level].contacts)) if steps else (0, [])

    async def escalate_now(self, incident_id: str, reason: str) -> None:
        """Tell people at once, whatever the matrix's clock says; a timeline event either way."""
        incident = await self.deps.store.get_incident(incident_id)
        if incident is None:
            await self._tell_without_incident(incident_id, reason)
            return
        level, contacts = self.responsible(incident, self.deps.clock.now())
        await self._tell(incident, contacts, reason, level)

    async def _tell_without_incident(self, incident_id: str, reason: str) -> None:
        """No incident record to read a matrix from: the general target hears, the timeline says so."""
        log.error("escalated_without_incident", incident_id=incident_id, reason=reason)
        target = self.deps.settings.incidents.notify
        results = {}
        if target:
            notification = Notification(title=f"{incident_id} escalated", text=one_line(reason),
                                        link=f"{self.deps.settings.base_url}/console/incidents/{incident_id}")
            results[target] = await self.notifier.post(target, notification, "escalation")
        await self.deps.store.add_events([TimelineEvent(
            incident_id, self.deps.clock.now(), "escalated", reason,
            data={"level": 0, "contacts": [], "targets": sent_to(results), "reason": reason})])

    async def _tell(self, incident: Incident, contacts: list[str], reason: str, level: int) -> None:
        settings = self.deps.settings.incidents
        targets: dict[str, list[str]] = {}
        unreachable = []
        for contact in contacts:
            target = settings.contacts.get(contact) or settings.notify
            if target:
                targets.setdefault(target, []).append(contact)
            else:
                unreachable.append(contact)
        if not contacts and settings.notify:
            targets[settings.notify] = []  # no step for this severity: the general target still hears
        notification = self._notification(incident, contacts, reason)
        results: dict[str, Execution] = {}
        for target in targets:
            results[target] = await self.notifier.post(target, notification, "escalation")
        who = ", ".join(contacts) or "nobody (no escalation step for this severity)"
        message = f"escalated to {who}: {reason}"
        if unreachable:
            message += f" — no notify target for {', '.join(unreachable)}"
        now = self.deps.clock.now()
        await self.deps.store.add_events([TimelineEvent(
            incident.id, now, "escalated", message,
            data={"level": level, "contacts": contacts, "targets": sent_to(results), "unreachable": unreachable,
                  "reason": reason})])
        self.deps.metrics.escalations.labels(incident.severity.value).inc()
        log.error("escalated", incident_id=incident.id, severity=incident.severity.value, level=level,
                  contacts=contacts, reason=reason)

    def _notification(self, incident: Incident, contacts: list[str], reason: str) -> Notification:
        open_for = describe_duration(self.deps.clock.now() - incident.opened_at)
        return Notification(
            title=f"{incident.severity.value} {incident.id} escalated: {incident.title}",
            text=f"{one_line(reason)}. Open for {open_for}, phase {incident.phase.value}"
                 + (f", acknowledged by {one_line(incident.acknowledged_by)}" if incident.acknowledged_by
                    else ", not acknowledged") + ".",
            severity=incident.severity.value,
            link=f"{self.deps.settings.base_url}/console/incidents/{incident.id}",
            fields=(("incident", incident.id), ("for", ", ".join(contacts))),
        )
