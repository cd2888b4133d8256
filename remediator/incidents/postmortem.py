"""A postmortem draft in Markdown, section for section the runbook's template (§10.1), with its
prevention checklist (§10.2), filled from the incident's record.

개요 (ID, 발생일시 = the first alert's `startsAt`, 해결일시, 총 소요시간, 심각도, 영향 범위), 타임라인,
근본 원인, 영향 (users, failed vital-sign entries, data loss), 재발 방지 조치 (조치, 담당자, 완료일),
교훈, 참석자 (commander, tech lead, others), then the §10.2 checklist. What the record knows is
filled in, what people set through the API or CLI (`incidents.record`) is carried in, and what
only people know is left as a prompt in italics. Every time is in one zone (`incidents.timezone`).
Text from alerts is attacker-influenced: it is escaped so it can neither break the tables nor
become HTML where the draft is rendered.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from remediator.incidents.lifecycle import Targets, recovered_at
from remediator.incidents.record import PREVENTION, Facts
from remediator.incidents.summary import (
    SEVERITY_NAMES,
    IncidentRecord,
    actions_line,
    deadlines_line,
    korean_duration,
    person,
    plain,
    when,
)
from remediator.model import Approval
from remediator.plaintext import one_line

__all__ = ["IncidentRecord", "cell", "draft"]


def cell(text: str) -> str:
    """Safe inside a Markdown table cell: one line, no pipes, no HTML, no terminal controls."""
    return html.escape(" ".join(one_line(text).split())).replace("|", "\\|")


def _field(facts: Facts, name: str, prompt: str) -> str:
    return plain(str(facts.fields[name])) if name in facts.fields else f"*{prompt}*"


def draft(record: IncidentRecord, targets: Targets, zone: ZoneInfo, now: datetime) -> str:
    """The Markdown draft, ready to edit."""
    incident, facts = record.incident, record.facts
    lines = [
        "# 인시던트 사후분석 보고서",
        "",
        f"> Draft written by remediator on {when(now, zone)} from the record of {incident.id} "
        f"({cell(incident.title)}). Replace every *italic prompt*; keep the facts, correct them where",
        "> the record is wrong. Blameless: describe what the system and the process allowed, not who erred.",
        "",
        *_overview(record, targets, zone, now),
        "",
        "## 타임라인",
        "",
        f"모든 시간은 {zone.key} ({when(now, zone).rsplit(' ', 1)[-1]}).",
        "",
        "| 시간 | 이벤트 |",
        "| ----- | ----------------------------------- |",
        *_timeline(record, zone),
        "",
        "## 근본 원인 (Root Cause)",
        "",
        plain(incident.root_cause) if incident.root_cause else
        "*What failed, and why? Ask \"why\" until you reach something a change can prevent.*",
        "",
        "## 영향",
        "",
        f"- {_field(facts, 'users_affected', '사용자 약 N명이 M분간 서비스 이용 불가')}",
        "- 바이탈 입력 실패 건수: " + (f"{facts.fields['failed_vital_entries']}건"
                                  if "failed_vital_entries" in facts.fields else "*N건 (이후 수동 입력?)*"),
        f"- 데이터 손실: {_field(facts, 'data_loss', '없음 / 있음 (무엇이, 얼마나)')}",
        "",
        "## 재발 방지 조치",
        "",
        "| 조치 | 담당자 | 완료일 |",
        "| ------------------------------ | ------ | ---------- |",
        *([f"| {cell(a.action)} | {cell(a.owner)} | {a.due.isoformat()} |" for a in facts.prevention_actions]
          or ["| *action* | *owner* | *YYYY-MM-DD* |"]),
        "",
        "## 교훈 (Lessons Learned)",
        "",
        *([f"{n}. {plain(lesson)}" for n, lesson in enumerate(facts.fields.get("lessons", []), 1)]
          or ["1. *What went well, what went wrong, where we got lucky*"]),
        "",
        "## 참석자",
        "",
        f"- 인시던트 커맨더: {person(facts, 'incident_commander')}",
        f"- 기술 리드: {person(facts, 'tech_lead')}",
        "- 참여자: " + (", ".join(plain(p) for p in _participants(facts)) or "*OOO, OOO*"),
        "",
        *_prevention_checklist(facts, zone),
    ]
    return "\n".join(lines) + "\n"


def _overview(record: IncidentRecord, targets: Targets, zone: ZoneInfo, now: datetime) -> list[str]:
    incident, facts = record.incident, record.facts
    end = recovered_at(incident)
    duration = korean_duration((end or now) - record.start) + ("" if end else " (진행 중: still open)")
    missed = [name for name, breached in (("respond", targets.respond_breached),
                                          ("recover", targets.recover_breached)) if breached]
    acknowledged = (f"{cell(incident.acknowledged_by)} at {when(incident.acknowledged_at, zone)}"
                    if incident.acknowledged_at else "nobody")
    return [
        "## 개요",
        "",
        f"- **인시던트 ID**: {incident.id}",
        f"- **발생일시**: {when(record.start, zone)}",
        f"- **해결일시**: {when(end, zone)}",
        f"- **총 소요시간**: {duration}",
        f"- **심각도**: {incident.severity.value} ({SEVERITY_NAMES[incident.severity]})",
        f"- **영향 범위**: {_field(facts, 'scope', 'Who could not do what? (wards, nurse stations, admissions)')}",
        "",
        "From the record (remediator):",
        "",
        f"- Targets: respond by {when(targets.respond_due, zone)}, recover by {when(targets.recover_due, zone)}; "
        + (f"missed: {', '.join(missed)}" if missed else "met"),
        f"- Received: {when(incident.opened_at, zone)}; acknowledged: {acknowledged}",
        f"- Alerts: {incident.alert_count}; automatic actions: {actions_line(record.audit)}",
        f"- Approvals: {_approvals_line(record.approvals)}",
        f"- Channel: #{facts.channel}" if facts.channel else "- Channel: —",
        f"- Deadlines: {deadlines_line(facts, zone)}",
        f"- Status: {incident.status.value}, phase {incident.phase.value}",
    ]


def _timeline(record: IncidentRecord, zone: ZoneInfo) -> list[str]:
    rows = []
    if record.start < record.incident.opened_at:
        rows.append(f"| {when(record.start, zone)} | first alert started (startsAt) |")
    rows += [f"| {when(e.at, zone)} | {cell(e.kind)}: {cell(e.message)} |" for e in record.timeline]
    return rows


def _participants(facts: Facts) -> list[str]:
    named = {facts.roles[r][0] for r in ("incident_commander", "tech_lead") if r in facts.roles}
    others = [facts.roles[r][0] for r in ("comms_lead", "scribe") if r in facts.roles]
    return [p for p in dict.fromkeys([*others, *facts.fields.get("participants", [])]) if p not in named]


def _prevention_checklist(facts: Facts, zone: ZoneInfo) -> list[str]:
    found = facts.checks["prevention"]
    lines = ["## 재발 방지 체크리스트"]
    for section, items in PREVENTION.items():
        lines += ["", f"### {section}", ""]
        for key, text in items:
            check = found.get(key)
            done = check is not None and check.checked
            by = f" — {cell(check.by)}, {when(check.at, zone)}" if done and check else ""
            lines.append(f"- [{'x' if done else ' '}] {text}{by}")
    return lines


def _approvals_line(approvals: Sequence[Approval]) -> str:
    if not approvals:
        return "none"
    return "; ".join(f"{a.id} {cell(a.action)} on {cell(a.target)}: {a.status.value}"
                     + (f" ({', '.join(cell(v) for v in a.approvers)})" if a.approvers else "")
                     + (f", run {a.outcome.value}" if a.outcome else "") for a in approvals)
