"""What people record on an incident beyond its columns: the runbook's checklists, the roles, the
postmortem's fields. Each is a timeline event (who, when, what); the current state is the
timeline folded in order, the latest event of each item winning. Nothing is overwritten: the
timeline keeps every check, uncheck and correction.

- The declaration checklist (runbook §4.2), attached to every P1/P2 incident.
- The prevention checklist (runbook §10.2), for the postmortem.
- The incident's roles (runbook §3.1/§3.2): commander, tech lead, comms lead, scribe.
- The postmortem's fields (runbook §10.1): scope and impact, prevention actions (action,
  owner, due date), lessons learned, participants.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from remediator.errors import BadRequest
from remediator.incidents.lifecycle import Record
from remediator.model import Severity, TimelineEvent
from remediator.settings.people import INCIDENT_ROLES

# (key, the runbook's words) per section, in the runbook's order.
DECLARATION: dict[str, tuple[tuple[str, str], ...]] = {
    "1. 초기 정보 수집": (
        ("symptoms", "증상 확인 (어떤 문제가 발생했는가?)"),
        ("scope", "영향 범위 (어떤 서비스/사용자가 영향을 받는가?)"),
        ("start_time", "시작 시점 (언제부터 발생했는가?)"),
        ("severity", "심각도 판단 (P1/P2/P3/P4)"),
    ),
    "2. 인시던트 채널 생성": (
        ("channel", "Slack 채널: #incident-YYYY-MM-DD-설명"),
        ("commander", "인시던트 커맨더 지정"),
        ("participants", "참여자 소집"),
    ),
    "3. 초기 조치": (
        ("user_notice", "사용자 공지 (필요시)"),
        ("temporary_fix", "임시 조치 적용 (필요시)"),
        ("timeline", "타임라인 기록 시작"),
    ),
    "4. 에스컬레이션": (
        ("teams_notified", "관련 팀 통보"),
        ("executive_report", "경영진 보고 (P1/P2)"),
    ),
}
PREVENTION: dict[str, tuple[tuple[str, str], ...]] = {
    "기술적 조치": (
        ("fix_deployed", "근본 원인에 대한 수정 배포"),
        ("monitoring", "관련 모니터링/알림 강화"),
        ("tests", "자동화된 테스트 케이스 추가"),
        ("runbook", "문서/Runbook 업데이트"),
    ),
    "프로세스 개선": (
        ("code_review", "코드 리뷰 체크리스트 업데이트"),
        ("predeploy", "배포 전 검증 절차 강화"),
        ("training", "교육/공유 세션 진행"),
    ),
    "확인": (
        ("similar_systems", "유사 시스템에 동일 문제 없는지 확인"),
        ("effect_verified", "개선 조치 효과 검증 완료"),
        ("final_report", "최종 보고서 작성 및 공유"),
    ),
}
CHECKLISTS = {"declaration": DECLARATION, "prevention": PREVENTION}
DECLARED_SEVERITIES = (Severity.P1, Severity.P2)  # the runbook's "경영진 보고 (P1/P2)"

# Postmortem fields (§10.1) people set; text unless said otherwise.
TEXT_FIELDS = {
    "scope": "영향 범위 (overview: what was affected)",
    "users_affected": "영향: users affected and for how long (e.g. 사용자 약 50명이 15분간 서비스 이용 불가)",
    "data_loss": "데이터 손실 (data loss; e.g. 없음)",
}
COUNT_FIELDS = {"failed_vital_entries": "바이탈 입력 실패 건수 (failed vital-sign entries)"}
LIST_FIELDS = {"lessons": "교훈 (lessons learned), in order", "participants": "참여자 (participants besides the roles)"}
MAX_TEXT = 1000
MAX_ITEMS = 20


@dataclass(frozen=True, slots=True)
class Check:
    checked: bool
    by: str
    at: datetime
    note: str = ""


@dataclass(frozen=True, slots=True)
class PreventionAction:
    action: str
    owner: str
    due: date
    by: str
    at: datetime


@dataclass(slots=True)
class DeadlineState:
    """A deadline on the incident: due when, and whether (and by whom) it was met."""

    description: str
    started_at: datetime
    due_at: datetime
    met: Check | None = None


@dataclass(slots=True)
class Facts:
    """The state people recorded, folded from the timeline."""

    checks: dict[str, dict[str, Check]] = field(default_factory=lambda: {name: {} for name in CHECKLISTS})
    roles: dict[str, tuple[str, str, datetime]] = field(default_factory=dict)  # role → person, by, at
    fields: dict[str, Any] = field(default_factory=dict)
    prevention_actions: list[PreventionAction] = field(default_factory=list)
    channel: str = ""
    channel_created: bool = False
    deadlines: dict[str, DeadlineState] = field(default_factory=dict)


def fold(timeline: Sequence[TimelineEvent]) -> Facts:
    facts = Facts()
    for event in timeline:
        data, by = event.data, str(event.data.get("by", ""))
        if event.kind == "checklist" and data.get("list") in facts.checks:
            facts.checks[data["list"]][data["item"]] = Check(bool(data["checked"]), by, event.at,
                                                             str(data.get("note", "")))
        elif event.kind == "role_assigned":
            facts.roles[data["role"]] = (str(data["person"]), by, event.at)
        elif event.kind == "postmortem_fields":
            facts.fields.update(data["fields"])
        elif event.kind == "prevention_action":
            facts.prevention_actions.append(PreventionAction(data["action"], data["owner"],
                                                             date.fromisoformat(data["due"]), by, event.at))
        elif event.kind == "deadline_started" and data["deadline"] not in facts.deadlines:
            facts.deadlines[data["deadline"]] = DeadlineState(str(data["description"]),
                                                              datetime.fromisoformat(data["started_at"]),
                                                              datetime.fromisoformat(data["due_at"]))
        elif event.kind == "deadline_met" and data["deadline"] in facts.deadlines:
            facts.deadlines[data["deadline"]].met = Check(bool(data["met"]), by, event.at, str(data.get("note", "")))
        elif event.kind == "declared":
            facts.channel = str(data.get("channel", ""))
            facts.channel_created = bool(data.get("channel_created", False))
    return facts


def checklist_view(facts: Facts, name: str) -> list[dict[str, Any]]:
    """A checklist for the API: sections in the runbook's order, each item with who checked it, when."""
    found = facts.checks[name]
    return [{"section": section, "items": [
        {"item": key, "text": text, "checked": bool(found.get(key) and found[key].checked),
         "by": found[key].by if key in found else None,
         "at": found[key].at.isoformat() if key in found else None,
         "note": found[key].note if key in found else ""}
        for key, text in items]} for section, items in CHECKLISTS[name].items()]


# -- what people send, checked into `Record` commands -------------------------------------------
def _text(payload: Mapping[str, Any], name: str, max_length: int = MAX_TEXT, required: bool = True) -> str:
    value = payload.get(name, "")
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > max_length:
        need = "a non-empty string" if required else "a string"
        raise BadRequest(400, "invalid_payload", f"{name} must be {need} of at most {max_length} characters")
    return value.strip()


def _one_of(value: object, allowed: Collection[str], what: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise BadRequest(400, "invalid_payload", f"{what} must be one of {', '.join(allowed)}")
    return value


def _flag(payload: Mapping[str, Any], name: str) -> bool:
    value = payload.get(name, True)
    if not isinstance(value, bool):
        raise BadRequest(400, "invalid_payload", f"{name} must be true or false")
    return value


def check_item(by: str, payload: Mapping[str, Any]) -> Record:
    """`{"list": "declaration"|"prevention", "item": ..., "checked": true, "note": ""}`."""
    name = _one_of(payload.get("list", "declaration"), CHECKLISTS, "list")
    items = {key: text for section in CHECKLISTS[name].values() for key, text in section}
    item = _one_of(payload.get("item"), items, f"item of the {name} checklist")
    checked = _flag(payload, "checked")
    note = _text(payload, "note", 500, required=False)
    word = "checked" if checked else "unchecked"
    return Record(by, "checklist", f"{name} checklist: {word} {items[item]} ({by})" + (f": {note}" if note else ""),
                  {"list": name, "item": item, "checked": checked, "note": note})


def assign_role(by: str, payload: Mapping[str, Any]) -> Record:
    """`{"role": "incident_commander", "person": "alice"}`."""
    role = _one_of(payload.get("role"), INCIDENT_ROLES, "role")
    person = _text(payload, "person", 100)
    return Record(by, "role_assigned", f"{INCIDENT_ROLES[role]}: {person} (assigned by {by})",
                  {"role": role, "person": person})


def postmortem_fields(by: str, payload: Mapping[str, Any]) -> Record:
    """Any of the postmortem's fields at once (one event); every one is checked before any is kept."""
    known = {**TEXT_FIELDS, **COUNT_FIELDS, **LIST_FIELDS}
    unknown = sorted(set(payload) - set(known))
    if unknown or not payload:
        raise BadRequest(400, "invalid_payload", f"fields are {', '.join(known)}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    values: dict[str, Any] = {}
    for name, value in payload.items():
        if name in TEXT_FIELDS:
            values[name] = _text(payload, name)
        elif name in COUNT_FIELDS:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000_000:
                raise BadRequest(400, "invalid_payload", f"{name} must be a whole number, 0 or more")
            values[name] = value
        elif (not isinstance(value, list) or len(value) > MAX_ITEMS
              or not all(isinstance(v, str) and v.strip() and len(v) <= 500 for v in value)):
            raise BadRequest(400, "invalid_payload", f"{name} must be a list of at most {MAX_ITEMS} non-empty "
                             "strings of at most 500 characters")
        else:
            values[name] = [v.strip() for v in value]
    return Record(by, "postmortem_fields", f"postmortem fields set by {by}: {', '.join(values)}", {"fields": values})


def prevention_action(by: str, payload: Mapping[str, Any]) -> Record:
    """`{"action": ..., "owner": ..., "due": "2026-01-13"}`: one row of the §10.1 table."""
    action, owner = _text(payload, "action", 300), _text(payload, "owner", 100)
    raw = payload.get("due")
    try:
        due = date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
    except ValueError:
        due = None
    if due is None:
        raise BadRequest(400, "invalid_payload", "due must be a date, e.g. 2026-01-13")
    return Record(by, "prevention_action", f"prevention action: {action} — {owner}, due {due.isoformat()}",
                  {"action": action, "owner": owner, "due": due.isoformat()})


def deadline_met(by: str, payload: Mapping[str, Any], names: Collection[str]) -> Record:
    """`{"deadline": "privacy_regulator", "met": true, "note": "reported, receipt 2026-118"}`."""
    name = _one_of(payload.get("deadline"), sorted(names), "deadline")
    met = _flag(payload, "met")
    note = _text(payload, "note", 500, required=False)
    return Record(by, "deadline_met", f"deadline {name} marked {'met' if met else 'not met'} by {by}"
                  + (f": {note}" if note else ""), {"deadline": name, "met": met, "note": note})


def deadlines_view(facts: Facts, now: datetime) -> dict[str, Any]:
    return {name: {"description": d.description, "started_at": d.started_at.isoformat(),
                   "due_at": d.due_at.isoformat(), "met": bool(d.met and d.met.checked),
                   "overdue": not (d.met and d.met.checked) and now > d.due_at,
                   "by": d.met.by if d.met else None, "at": d.met.at.isoformat() if d.met else None,
                   "note": d.met.note if d.met else ""}
            for name, d in facts.deadlines.items()}
