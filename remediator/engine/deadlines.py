"""Incident deadlines (`incidents.deadlines`), such as the runbook's §8.2 72-hour notification to
the privacy regulator: counted from the incident's opening (when the problem was suspected),
started by a matching policy or by a person, reminded, and escalated when missed.

Each reminder and the deadline itself are durable timers (`deadline:<incident>:<name>:<n>`),
so they survive restarts and fire once across replicas. A timer that fires reads the
incident's timeline first: a deadline a person marked met tells nobody. Closing the incident
does not stop a deadline: a regulator's clock does not stop when the service recovers.
"""

from __future__ import annotations

from collections.abc import Iterable

from remediator.actions.notification import Notification
from remediator.clock import describe_duration
from remediator.deps import Deps
from remediator.engine.escalation import Escalation
from remediator.engine.notifier import Notifier, sent_to
from remediator.engine.timers import TimerLoop
from remediator.incidents.record import fold
from remediator.model import Execution, Incident, TimelineEvent
from remediator.settings.people import IncidentDeadline
from remediator.stores.base import Timer

TIMER_KIND = "deadline"


class Deadlines:
    """Starts, reminds and escalates the deadlines of incidents."""

    def __init__(self, deps: Deps, notifier: Notifier, escalation: Escalation) -> None:
        self.deps = deps
        self.notifier = notifier
        self.escalation = escalation

    def register(self, timers: TimerLoop) -> None:
        timers.register(TIMER_KIND, self.on_timer)

    def matching(self, policies: Iterable[str]) -> list[str]:
        names = set(policies)
        return [name for name, d in self.deps.settings.incidents.deadlines.items() if names & set(d.policies)]

    async def start(self, incident: Incident, name: str, by: str) -> bool:
        """Idempotent: the first start schedules the timers and records `deadline_started`."""
        deadline = self.deps.settings.incidents.deadlines[name]
        due = incident.opened_at + deadline.within
        marks = [*deadline.remind_at, deadline.within]
        fresh = [await self.deps.store.schedule_timer(Timer(
            f"{TIMER_KIND}:{incident.id}:{name}:{n}", TIMER_KIND, incident.opened_at + after,
            {"incident_id": incident.id, "deadline": name, "final": n == len(marks) - 1}))
            for n, after in enumerate(marks)]
        if not fresh[-1]:
            return False
        await self.deps.store.add_events([TimelineEvent(
            incident.id, self.deps.clock.now(), "deadline_started",
            f"deadline {name} started by {by}: {deadline.description}, due {due.isoformat()}",
            data={"deadline": name, "description": deadline.description, "started_at": incident.opened_at.isoformat(),
                  "due_at": due.isoformat(), "by": by})])
        return True

    async def on_timer(self, timer: Timer) -> None:
        incident = await self.deps.store.get_incident(timer.payload["incident_id"])
        name = timer.payload["deadline"]
        deadline = self.deps.settings.incidents.deadlines.get(name)
        if incident is None or deadline is None:
            return
        state = fold(await self.deps.store.timeline(incident.id)).deadlines.get(name)
        if state is None or (state.met is not None and state.met.checked):
            return
        now = self.deps.clock.now()
        final = bool(timer.payload["final"])
        if final:
            reason = f"deadline {name} missed: {deadline.description} was due {state.due_at.isoformat()}"
        else:
            reason = (f"reminder: deadline {name} ({deadline.description}) is due in "
                      f"{describe_duration(state.due_at - now)}, at {state.due_at.isoformat()}; not marked met")
        results = await self._tell(incident, deadline, reason)
        await self.deps.store.add_events([TimelineEvent(
            incident.id, now, "deadline_missed" if final else "deadline_reminder", reason,
            data={"deadline": name, "contacts": deadline.contacts, "targets": sent_to(results)})])
        if final:
            await self.escalation.escalate_now(incident.id, reason)

    async def _tell(self, incident: Incident, deadline: IncidentDeadline, reason: str) -> dict[str, Execution]:
        settings = self.deps.settings.incidents
        targets = dict.fromkeys(settings.contacts.get(c) or settings.notify for c in deadline.contacts)
        notification = Notification(
            title=f"{incident.severity.value} {incident.id}: {deadline.description}", text=reason,
            severity=incident.severity.value,
            link=f"{self.deps.settings.base_url}/api/v1/incidents/{incident.id}/declaration",
            fields=(("incident", incident.id), ("for", ", ".join(deadline.contacts))))
        return {target: await self.notifier.post(target, notification, "deadline") for target in targets if target}
