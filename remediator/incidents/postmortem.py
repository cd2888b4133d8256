"""A postmortem draft in Markdown, in the runbook's template, filled from the incident's record.

Overview (ID, start, end, duration, severity, impact), the timeline table from the incident's
events, root cause and lessons learned as prompts for people, and the prevention checklist.
What the record knows is filled in; what only people know is left as a prompt in italics.
Text from alerts is attacker-influenced: it is escaped so it can neither break the tables nor
become HTML where the draft is rendered.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from remediator.clock import describe_duration
from remediator.incidents.lifecycle import Targets, recovered_at
from remediator.model import Approval, AuditRecord, Incident, Outcome, TimelineEvent, Verdict
from remediator.plaintext import one_line

PREVENTION_CHECKLIST = (
    "Monitoring: did an alert fire early enough, and did it reach the right people? Tune thresholds.",
    "Runbook: update the section for this failure (symptoms, checks, the fix that worked).",
    "Automation: add or tune the remediation policy (`remediator check policies/`), or say why not.",
    "Capacity and configuration: fix the limit or setting that ran out (connections, memory, scaling).",
    "Resilience: remove the single point of failure, or add a fallback for the wards affected.",
    "Follow-up tickets: every action item above has an owner and a due date.",
)


def cell(text: str) -> str:
    """Safe inside a Markdown table cell: one line, no pipes, no HTML, no terminal controls."""
    return html.escape(" ".join(one_line(text).split())).replace("|", "\\|")


def _when(value: datetime | None, zone: ZoneInfo) -> str:
    return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z") if value else "—"


def _actions_line(audit: Sequence[AuditRecord]) -> str:
    ran = [r for r in audit if r.outcome in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.UNKNOWN)]
    succeeded = sum(1 for r in ran if r.outcome is Outcome.SUCCEEDED)
    held = sum(1 for r in audit if r.verdict is Verdict.HOLD)
    denied = sum(1 for r in audit if r.verdict is Verdict.DENY)
    return (f"{len(ran)} ran ({succeeded} succeeded), {held} held for approval, {denied} denied by guardrails, "
            f"{sum(1 for r in audit if r.outcome is Outcome.DRY_RUN)} dry-run")


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """Everything the store knows about one incident."""

    incident: Incident
    timeline: Sequence[TimelineEvent]
    audit: Sequence[AuditRecord]
    approvals: Sequence[Approval]


def draft(record: IncidentRecord, targets: Targets, zone: ZoneInfo, now: datetime) -> str:
    """The Markdown draft, ready to edit."""
    incident = record.incident
    lines = [
        f"# Postmortem: {incident.id} — {cell(incident.title)}",
        "",
        f"> Draft written by remediator on {_when(now, zone)} from the incident's record. Replace every",
        "> *italic prompt*; keep the facts, correct them where the record is wrong. Blameless: describe",
        "> what the system and the process allowed, not who erred.",
        "",
        *_overview(record, targets, zone, now),
        "",
        "## Timeline",
        "",
        f"Times in {zone.key}.",
        "",
        "| Time | Event | Details |",
        "|---|---|---|",
        *[f"| {_when(e.at, zone)} | {cell(e.kind)} | {cell(e.message)} |" for e in record.timeline],
        "",
        "## Root cause",
        "",
        cell(incident.root_cause) if incident.root_cause else
        "*What failed, and why? Ask \"why\" until you reach something a change can prevent.*",
        "",
        "## Lessons learned",
        "",
        "- What went well: *detection, automation, communication that worked*",
        "- What went wrong: *what slowed detection, diagnosis or recovery*",
        "- Where we got lucky: *what could have made this worse*",
        "",
        "## Prevention checklist",
        "",
        *[f"- [ ] {item}" for item in PREVENTION_CHECKLIST],
    ]
    return "\n".join(lines) + "\n"


def _overview(record: IncidentRecord, targets: Targets, zone: ZoneInfo, now: datetime) -> list[str]:
    incident = record.incident
    end = recovered_at(incident)
    duration = describe_duration((end or now) - incident.opened_at) + ("" if end else " so far (still open)")
    missed = [name for name, breached in (("respond", targets.respond_breached),
                                          ("recover", targets.recover_breached)) if breached]
    acknowledged = (f"{cell(incident.acknowledged_by)} at {_when(incident.acknowledged_at, zone)}"
                    if incident.acknowledged_at else "nobody")
    return [
        "## Overview",
        "",
        "| | |",
        "|---|---|",
        f"| Incident | {incident.id} |",
        f"| Start | {_when(incident.opened_at, zone)} |",
        f"| End | {_when(end, zone)} |",
        f"| Duration | {duration} |",
        f"| Severity | {incident.severity.value} (respond by {_when(targets.respond_due, zone)}, recover by "
        f"{_when(targets.recover_due, zone)}; " + (f"missed: {', '.join(missed)}" if missed else "targets met") + ") |",
        "| Impact | *Who could not do what, for how long? (wards, nurse stations, admissions, pharmacy, "
        "billing; patients affected; workarounds used)* |",
        f"| Acknowledged | {acknowledged} |",
        f"| Alerts | {incident.alert_count} |",
        f"| Automatic actions | {_actions_line(record.audit)} |",
        f"| Approvals | {_approvals_line(record.approvals)} |",
        f"| Status | {incident.status.value}, phase {incident.phase.value} |",
    ]


def _approvals_line(approvals: Sequence[Approval]) -> str:
    if not approvals:
        return "none"
    return "; ".join(f"{a.id} {cell(a.action)} on {cell(a.target)}: {a.status.value}"
                     + (f" ({', '.join(cell(v) for v in a.approvers)})" if a.approvers else "")
                     + (f", run {a.outcome.value}" if a.outcome else "") for a in approvals)
