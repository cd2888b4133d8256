"""Declaring a P1/P2 incident, as the runbook's checklist (§4.2) asks: its channel, the executive
report, the timeline started.

A durable timer (`declaration:<incident>:`) is scheduled when an incident opens as, or rises to,
P1 or P2; the timer fires once across replicas and restarts. Its handler:

- names the channel `incident-YYYY-MM-DD-<slug>` (the day the incident opened, in
  `incidents.timezone`; the slug from its title and number) and, with `incidents.slack.bot_token`
  set, creates it through Slack's `conversations.create` (a name already taken is the channel of
  an earlier attempt: kept);
- sends the executive report (`incidents.reports.executive_report`) to the `executives` contact
  (its notify target, else `incidents.notify`);
- records a `declared` event and checks, as `remediator`, the items it did itself (timeline
  started, channel created, executive report sent). The rest of the checklist is for people.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import aiohttp

from remediator.actions.notification import Notification
from remediator.deps import Deps
from remediator.engine.notifier import Notifier, sent_to
from remediator.engine.timers import TimerLoop
from remediator.incidents.record import DECLARED_SEVERITIES
from remediator.incidents.summary import executive_report
from remediator.model import Incident, TimelineEvent
from remediator.observability import get_logger
from remediator.stores.base import Timer

log = get_logger("remediator.declaration")

TIMER_KIND = "declaration"
DAEMON = "remediator"
MAX_CHANNEL = 80  # Slack's limit on a channel name


def channel_name(incident: Incident, opened_local: datetime) -> str:
    """`incident-2026-01-12-api-down-on-erp-api-00001`: lowercase letters, digits and hyphens only."""
    number = incident.id.rsplit("-", 1)[-1].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", incident.title.lower()).strip("-")
    head = f"incident-{opened_local:%Y-%m-%d}-"
    room = MAX_CHANNEL - len(head) - len(number) - 1
    slug = slug[:room].rstrip("-")
    return f"{head}{slug}-{number}" if slug else f"{head}{number}"


class Declaration:
    """Schedules and performs the declaration of P1/P2 incidents."""

    def __init__(self, deps: Deps, notifier: Notifier) -> None:
        self.deps = deps
        self.notifier = notifier

    def register(self, timers: TimerLoop) -> None:
        timers.register(TIMER_KIND, self.on_timer)

    async def schedule(self, incident: Incident) -> None:
        """Idempotent: once per incident, the first time it is P1 or P2."""
        if incident.severity in DECLARED_SEVERITIES:
            await self.deps.store.schedule_timer(Timer(f"{TIMER_KIND}:{incident.id}:", TIMER_KIND,
                                                       self.deps.clock.now(), {"incident_id": incident.id}))

    async def stop(self, incident_id: str) -> None:
        """People closed the incident before it was declared: nobody is told of a closed incident."""
        await self.deps.store.cancel_timers(f"{TIMER_KIND}:{incident_id}:")

    async def on_timer(self, timer: Timer) -> None:
        incident = await self.deps.store.get_incident(timer.payload["incident_id"])
        if incident is None:
            return
        timeline = await self.deps.store.timeline(incident.id)
        if any(e.kind == "declared" for e in timeline):
            return  # a replica declared it before its claim ran out
        settings = self.deps.settings.incidents
        channel = channel_name(incident, incident.opened_at.astimezone(settings.zone))
        created, channel_detail = await self._create_channel(channel)
        report = await self._send_report(incident, channel)
        now = self.deps.clock.now()
        events = [TimelineEvent(incident.id, now, "declared",
                                f"{incident.severity.value} declared: channel #{channel} ({channel_detail}); "
                                f"executive report {', '.join(f'{k}: {v}' for k, v in report.items()) or 'not sent'}",
                                data={"channel": channel, "channel_created": created, "channel_detail": channel_detail,
                                      "executive_report": report, "by": DAEMON})]
        done = {"timeline": True, "channel": created,
                "executive_report": "succeeded" in report.values()}  # a dry-run sent nothing
        events += [TimelineEvent(incident.id, now, "checklist", f"declaration checklist: checked {item} ({DAEMON})",
                                 data={"list": "declaration", "item": item, "checked": True, "by": DAEMON,
                                       "note": "done by remediator"})
                   for item, ok in done.items() if ok]
        await self.deps.store.add_events(events)
        log.info("incident_declared", incident_id=incident.id, channel=channel, created=created)

    async def _create_channel(self, name: str) -> tuple[bool, str]:
        """(created or already there, what happened) — never raises: a failure is on the timeline."""
        slack = self.deps.settings.incidents.slack
        if slack.bot_token is None:
            return False, "not created: no incidents.slack.bot_token"
        if self.deps.dry_run:
            return False, "not created: dry-run"
        http = self.deps.actions.http
        if http is None:
            return False, "not created: no HTTP client"
        answer: dict[str, Any]
        try:
            async with http.post(f"{slack.api_url.rstrip('/')}/conversations.create",
                                 json={"name": name, "is_private": slack.private},
                                 headers={"Authorization": f"Bearer {slack.bot_token.get_secret_value()}"},
                                 timeout=aiohttp.ClientTimeout(total=slack.timeout.total_seconds()),
                                 allow_redirects=False) as response:
                answer = await response.json(content_type=None) if response.status == 200 else {
                    "ok": False, "error": f"HTTP {response.status}"}
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return False, f"not created: {type(exc).__name__}"
        if answer.get("ok") is True:
            return True, f"created {answer.get('channel', {}).get('id', '')}".strip()
        if answer.get("error") == "name_taken":
            return True, "exists already"
        return False, f"not created: Slack answered {answer.get('error', 'without ok')}"

    async def _send_report(self, incident: Incident, channel: str) -> dict[str, str]:
        settings = self.deps.settings.incidents
        target = settings.contacts.get("executives") or settings.notify
        if not target:
            return {}
        timeline = await self.deps.store.timeline(incident.id)
        text = executive_report(incident, timeline, settings.zone, self.deps.clock.now(), channel=channel)
        notification = Notification(
            title=f"{incident.severity.value} 경영진 보고 (executive report): {incident.title}", text=text,
            severity=incident.severity.value,
            link=f"{self.deps.settings.base_url}/api/v1/incidents/{incident.id}/report",
            fields=(("incident", incident.id), ("channel", f"#{channel}")))
        result = await self.notifier.post(target, notification, "executive_report")
        return sent_to({target: result})
