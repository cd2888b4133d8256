"""What reports about one incident share: its record, times in one zone, the runbook's wording of
severities and durations, and the executive report (runbook §4.2 "경영진 보고 (P1/P2)").

The runbook gives no template for the executive report; this one says what an executive asks
first: how bad, since when, what is affected, who leads, what is being done, what is next.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from remediator.incidents.lifecycle import recovered_at
from remediator.incidents.record import Facts, fold
from remediator.model import Approval, AuditRecord, Incident, Outcome, Severity, TimelineEvent, Verdict
from remediator.plaintext import one_line

# The runbook's §2.1 names.
SEVERITY_NAMES = {Severity.P1: "Critical (긴급)", Severity.P2: "High (높음)", Severity.P3: "Medium (중간)",
                  Severity.P4: "Low (낮음)"}


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """Everything the store knows about one incident. `started_at`: its first alert's own start
    (`startsAt`, a CloudWatch state change's time), earlier than its receipt when delivery lagged."""

    incident: Incident
    timeline: Sequence[TimelineEvent]
    audit: Sequence[AuditRecord]
    approvals: Sequence[Approval]
    started_at: datetime | None = None
    facts: Facts = field(default_factory=Facts)

    @property
    def start(self) -> datetime:
        """When it began: the first alert's `startsAt`, else when it was opened."""
        if self.started_at is not None and self.started_at < self.incident.opened_at:
            return self.started_at
        return self.incident.opened_at

    @classmethod
    def of(cls, incident: Incident, timeline: Sequence[TimelineEvent], audit: Sequence[AuditRecord] = (),
           approvals: Sequence[Approval] = (), started_at: datetime | None = None) -> IncidentRecord:
        return cls(incident, timeline, audit, approvals, started_at, fold(timeline))


def when(value: datetime | None, zone: ZoneInfo) -> str:
    """Every time of a report in one zone, named: `2026-01-12 14:30 KST`."""
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if value else "—"


def korean_duration(delta: timedelta) -> str:
    """The runbook's way: `1시간 15분`, `45분`, `2일 3시간` (rounded down to the minute)."""
    minutes = max(int(delta.total_seconds()) // 60, 0)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}일" if days else "", f"{hours}시간" if hours else "", f"{minutes}분" if minutes else ""]
    return " ".join(p for p in parts if p) or "1분 미만"


def plain(text: str) -> str:
    """Safe in Markdown: one line, no HTML."""
    return html.escape(" ".join(one_line(text).split()))


def actions_line(audit: Sequence[AuditRecord]) -> str:
    ran = [r for r in audit if r.outcome in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.UNKNOWN)]
    succeeded = sum(1 for r in ran if r.outcome is Outcome.SUCCEEDED)
    held = sum(1 for r in audit if r.verdict is Verdict.HOLD)
    denied = sum(1 for r in audit if r.verdict is Verdict.DENY)
    return (f"{len(ran)} ran ({succeeded} succeeded), {held} held for approval, {denied} denied by guardrails, "
            f"{sum(1 for r in audit if r.outcome is Outcome.DRY_RUN)} dry-run")


def person(facts: Facts, role: str) -> str:
    found = facts.roles.get(role)
    return plain(found[0]) if found else "미지정 (not assigned)"


def executive_report(incident: Incident, timeline: Sequence[TimelineEvent], zone: ZoneInfo, now: datetime, *,
                     channel: str = "", audit: Sequence[AuditRecord] = (), started_at: datetime | None = None) -> str:
    """A short Markdown report for executives; times in `zone`."""
    record = IncidentRecord.of(incident, timeline, audit, started_at=started_at)
    facts = record.facts
    end = recovered_at(incident)
    channel = channel or facts.channel
    lines = [
        f"# 경영진 보고 (executive report): {incident.id}",
        "",
        f"- **인시던트**: {plain(incident.title)}",
        f"- **심각도**: {incident.severity.value} ({SEVERITY_NAMES[incident.severity]})",
        f"- **발생일시**: {when(record.start, zone)}",
        f"- **상태**: {incident.status.value}, phase {incident.phase.value}"
        + (f", 해결 {when(end, zone)}" if end else f", {korean_duration(now - record.start)} 경과"),
        "- **영향 범위**: " + (plain(str(facts.fields["scope"])) if "scope" in facts.fields
                              else "확인 중 (being assessed)"),
        f"- **인시던트 커맨더**: {person(facts, 'incident_commander')}",
        f"- **채널**: #{channel}" if channel else "- **채널**: —",
        f"- **자동 조치**: {actions_line(audit)}" if audit else "- **자동 조치**: none yet",
        f"- **근본 원인**: {plain(incident.root_cause)}" if incident.root_cause else "- **근본 원인**: 분석 중 (open)",
        f"- **기한 (deadlines)**: {deadlines_line(facts, zone)}",
    ]
    return "\n".join(lines) + "\n"


def deadlines_line(facts: Facts, zone: ZoneInfo) -> str:
    """Each deadline: due when, met by whom and when (or not)."""
    if not facts.deadlines:
        return "none"
    return "; ".join(f"{plain(d.description)} — due {when(d.due_at, zone)}, "
                     + (f"met ({plain(d.met.by)}, {when(d.met.at, zone)})" if d.met and d.met.checked else "NOT met")
                     for d in facts.deadlines.values())
