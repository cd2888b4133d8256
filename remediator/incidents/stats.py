"""Incident statistics over a period: volume, recovery, automation, targets missed, approvals.

Pure: the caller reads incidents opened in the period, their audit records and the approvals
created in it, and gets one JSON-ready mapping back (the shape `GET /api/v1/stats` documents).

- Time to recover: from opening to recovery (alerts resolved, or closed by people while firing).
- Auto-remediated: recovered after at least one remediating action ran successfully without
  waiting for people (origin `policy`), and with no approved action; notifications
  (`notify.*`) are not remediation.
- Targets missed: see `incidents.measure` (respond = first acknowledgement by a person; an
  incident that recovered before its respond target needed none). Open incidents count once
  their target has passed.
- The runbook's own two views (§10.3): `monthly`, per month and severity, the count and the
  average and maximum resolution time in minutes (resolution: opening to recovery); and `mttr`,
  the mean resolution time per severity of the incidents opened in the three months before
  `until` that recovered. Every number is a count or minutes, never a boolean.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from remediator.incidents.lifecycle import measure, recovered_at
from remediator.model import Approval, ApprovalStatus, AuditRecord, Incident, Outcome, Severity
from remediator.settings import IncidentSettings


def _seconds(values: Sequence[float]) -> dict[str, float | None]:
    return {"mean_seconds": round(statistics.fmean(values), 1) if values else None,
            "max_seconds": round(max(values), 1) if values else None}


def auto_remediated(incident: Incident, records: Iterable[AuditRecord]) -> bool:
    recovered = recovered_at(incident)
    if recovered is None:
        return False
    succeeded = [r for r in records if r.outcome is Outcome.SUCCEEDED and not r.action.startswith("notify.")]
    automatic = any(r.origin == "policy" and r.at <= recovered for r in succeeded)
    return automatic and not any(r.origin.startswith("approval:") for r in succeeded)


def incident_stats(
    incidents: Sequence[Incident], audit: Sequence[AuditRecord], approvals: Sequence[Approval],
    settings: IncidentSettings, *, now: datetime, since: datetime, until: datetime,
    history: Sequence[Incident] | None = None,
) -> dict[str, Any]:
    """`history`: incidents opened in the three months before `until` (for MTTR), if the period is shorter."""
    by_incident: dict[str, list[AuditRecord]] = defaultdict(list)
    for record in audit:
        by_incident[record.incident_id].append(record)
    months: dict[str, Counter[str]] = defaultdict(Counter)
    durations: dict[Severity, list[float]] = defaultdict(list)
    breaches: dict[Severity, Counter[str]] = {s: Counter() for s in Severity}
    automatic = 0
    for incident in incidents:
        months[incident.opened_at.astimezone(settings.zone).strftime("%Y-%m")][incident.severity.value] += 1
        recovered = recovered_at(incident)
        if recovered is not None:
            durations[incident.severity].append((recovered - incident.opened_at).total_seconds())
            automatic += int(auto_remediated(incident, by_incident[incident.id]))
        measured = measure(incident, settings.targets[incident.severity], settings.zone, now)
            # int(): a Counter's first update stores what it is given, and a boolean is not a count.
        breaches[incident.severity].update(respond=int(measured.respond_breached),
                                           recover=int(measured.recover_breached))
    every_duration = [d for values in durations.values() for d in values]
    return {
        "since": since.isoformat(), "until": until.isoformat(),
        "incidents": {
            "total": len(incidents),
            "by_severity": {s.value: sum(1 for i in incidents if i.severity is s) for s in Severity},
            "by_month": {month: {s.value: counts[s.value] for s in Severity}
                         for month, counts in sorted(months.items())},
        },
        "recovery": {
            "recovered": len(every_duration), **_seconds(every_duration),
            "by_severity": {s.value: {"recovered": len(durations[s]), **_seconds(durations[s])} for s in Severity},
        },
        "auto_remediated": {"count": automatic,
                            "share": round(automatic / len(every_duration), 3) if every_duration else None},
        "sla_breaches": {
            "respond": sum(c["respond"] for c in breaches.values()),
            "recover": sum(c["recover"] for c in breaches.values()),
            "by_severity": {s.value: {"respond": breaches[s]["respond"], "recover": breaches[s]["recover"]}
                            for s in Severity},
        },
        "monthly": monthly(incidents, settings),
        "mttr": mttr(incidents if history is None else history, until),
        "approvals": approval_stats(approvals),
    }


def _minutes(seconds: Sequence[float]) -> tuple[float | None, float | None]:
    if not seconds:
        return None, None
    return round(statistics.fmean(seconds) / 60, 2), round(max(seconds) / 60, 2)


def monthly(incidents: Sequence[Incident], settings: IncidentSettings) -> list[dict[str, Any]]:
    """The runbook's `incident_statistics` view: newest month first, then severity."""
    rows: dict[tuple[str, Severity], list[Incident]] = defaultdict(list)
    for incident in incidents:
        rows[(incident.opened_at.astimezone(settings.zone).strftime("%Y-%m"), incident.severity)].append(incident)
    found = []
    for (month, severity), group in sorted(rows.items(), key=lambda item: (item[0][0], -item[0][1].rank),
                                           reverse=True):
        durations = [(end - i.opened_at).total_seconds() for i in group if (end := recovered_at(i)) is not None]
        average, longest = _minutes(durations)
        found.append({"month": month, "severity": severity.value, "incident_count": len(group),
                      "resolved_count": len(durations), "avg_resolution_minutes": average,
                      "max_resolution_minutes": longest})
    return found


def months_before(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months earlier (the last day of a shorter month)."""
    month_index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(month_index, 12)
    for day in range(moment.day, 27, -1):
        try:
            return moment.replace(year=year, month=month + 1, day=day)
        except ValueError:
            continue
    return moment.replace(year=year, month=month + 1, day=min(moment.day, 28))


def mttr(incidents: Sequence[Incident], until: datetime, months: int = 3) -> dict[str, Any]:
    """The runbook's MTTR: per severity, over the incidents opened in the `months` before `until`."""
    since = months_before(until, months)
    durations: dict[Severity, list[float]] = defaultdict(list)
    for incident in incidents:
        end = recovered_at(incident)
        if end is not None and since <= incident.opened_at < until:
            durations[incident.severity].append((end - incident.opened_at).total_seconds())
    return {"since": since.isoformat(), "until": until.isoformat(), "by_severity": {
        s.value: {"resolved_count": len(durations[s]), "mttr_minutes": _minutes(durations[s])[0]} for s in Severity}}


def approval_stats(approvals: Sequence[Approval]) -> dict[str, Any]:
    """Counts by status, what the approved runs did, and the median time to people's decision."""
    decided = [(a.decided_at - a.created_at).total_seconds() for a in approvals if a.decided_at is not None
               and a.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)]
    runs = Counter(a.outcome.value if a.outcome else "not_yet"
                   for a in approvals if a.status is ApprovalStatus.APPROVED)
    return {
        "total": len(approvals),
        "by_outcome": {s.value: sum(1 for a in approvals if a.status is s) for s in ApprovalStatus},
        "approved_runs": dict(sorted(runs.items())),
        "median_latency_seconds": round(statistics.median(decided), 1) if decided else None,
    }
