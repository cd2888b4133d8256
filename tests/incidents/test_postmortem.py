"""The postmortem draft: the runbook's template (§10.1) section for section, and its §10.2
checklist, filled from the record and from what people set; safe to render."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from remediator.incidents.lifecycle import measure
from remediator.incidents.postmortem import IncidentRecord, draft
from remediator.incidents.record import assign_role, check_item, postmortem_fields, prevention_action
from remediator.model import Incident, IncidentStatus, Phase, Severity, TimelineEvent
from remediator.settings import DEFAULT_TARGETS
from tests.conftest import T0
from tests.support import builders

UTC = ZoneInfo("UTC")
SEOUL = ZoneInfo("Asia/Seoul")
ID = "INC-2026-00007"
# The runbook's §10.1 template's headings, in its order, then §10.2's.
SECTIONS = ["# 인시던트 사후분석 보고서", "## 개요", "## 타임라인", "## 근본 원인 (Root Cause)", "## 영향",
            "## 재발 방지 조치", "## 교훈 (Lessons Learned)", "## 참석자", "## 재발 방지 체크리스트",
            "### 기술적 조치", "### 프로세스 개선", "### 확인"]


BASE = Incident(id=ID, correlation_key="g", title="ApiDown on erp-api", severity=Severity.P2,
                status=IncidentStatus.RESOLVED, phase=Phase.RECOVER, opened_at=T0, updated_at=T0,
                resolved_at=T0 + timedelta(minutes=72), acknowledged_by="alice",
                acknowledged_at=T0 + timedelta(minutes=6), alert_count=3)


def _incident(**changes: Any) -> Incident:
    return dataclasses.replace(BASE, **changes)


def _event(record: Any, at_minutes: int) -> TimelineEvent:
    return TimelineEvent(ID, T0 + timedelta(minutes=at_minutes), record.kind, record.message,
                         data={**record.data, "by": record.by})


def _draft(incident: Incident, timeline: list[TimelineEvent], zone: ZoneInfo = UTC, **record: Any) -> str:
    targets = measure(incident, DEFAULT_TARGETS[incident.severity], zone, T0 + timedelta(hours=3))
    request = builders.request(incident_id=incident.id)
    full = IncidentRecord.of(incident, timeline, [builders.audit(request)],
                             [builders.approval(incident_id=incident.id)], **record)
    return draft(full, targets, zone, T0 + timedelta(hours=3))


def test_the_draft_has_the_runbooks_sections_in_its_order_filled_from_the_record() -> None:
    timeline = [TimelineEvent(ID, T0, "detected", "ApiDown: the API answers 503"),
                TimelineEvent(ID, T0 + timedelta(minutes=6), "acknowledged", "acknowledged by alice")]
    text = _draft(_incident(), timeline)
    lines = text.splitlines()
    assert [line for line in lines if line.startswith("#")] == SECTIONS
    assert "- **인시던트 ID**: INC-2026-00007" in lines
    assert "- **발생일시**: 2026-01-05 09:00 UTC" in lines
    assert "- **해결일시**: 2026-01-05 10:12 UTC" in lines
    assert "- **총 소요시간**: 1시간 12분" in lines
    assert "- **심각도**: P2 (High (높음))" in lines
    assert "| 2026-01-05 09:06 UTC | acknowledged: acknowledged by alice |" in lines
    assert "*What failed, and why?" in text  # no root cause recorded yet: a prompt
    assert text.count("- [ ] ") == 10  # §10.2: four technical, three process, three confirmation items
    assert "| *action* | *owner* | *YYYY-MM-DD* |" in lines


def test_the_start_is_the_first_alerts_starts_at_and_every_time_is_in_one_zone() -> None:
    # The alarm fired at 08:52 UTC; SNS delivered it (and the incident opened) at 09:00.
    timeline = [TimelineEvent(ID, T0, "detected", "ApiDown"),
                TimelineEvent(ID, T0 + timedelta(minutes=6), "acknowledged", "acknowledged by alice")]
    text = _draft(_incident(), timeline, SEOUL, started_at=T0 - timedelta(minutes=8))
    lines = text.splitlines()
    assert "- **발생일시**: 2026-01-05 17:52 KST" in lines
    assert "- **총 소요시간**: 1시간 20분" in lines  # from the alert's start, not its receipt
    assert "| 2026-01-05 17:52 KST | first alert started (startsAt) |" in lines
    assert "| 2026-01-05 18:06 KST | acknowledged: acknowledged by alice |" in lines
    rows = [line for line in lines if line.startswith("| 2026")]
    assert rows and all(" KST |" in row for row in rows)
    assert " UTC" not in text


def test_what_people_set_is_carried_into_the_draft() -> None:
    facts = [
        postmortem_fields("alice", {"scope": "API 응답 지연, 바이탈 입력 실패",
                                    "users_affected": "사용자 약 50명이 15분간 서비스 이용 불가",
                                    "failed_vital_entries": 12, "data_loss": "없음",
                                    "lessons": ["리포트 쿼리 배포 전 실행 계획 검토 필수화",
                                                "알림 임계값 낮춤 (80% → 70%)"],
                                    "participants": ["carol", "dave"]}),
        prevention_action("alice", {"action": "문제 쿼리에 인덱스 추가", "owner": "DBA", "due": "2026-01-13"}),
        prevention_action("alice", {"action": "커넥션 풀 모니터링 알림 추가", "owner": "인프라", "due": "2026-01-14"}),
        assign_role("alice", {"role": "incident_commander", "person": "alice"}),
        assign_role("alice", {"role": "tech_lead", "person": "bob"}),
        check_item("bob", {"list": "prevention", "item": "monitoring"}),
        check_item("bob", {"list": "prevention", "item": "tests"}),
        check_item("bob", {"list": "prevention", "item": "tests", "checked": False}),  # the latest wins
    ]
    text = _draft(_incident(root_cause="slow report query held connections"),
                  [_event(f, n) for n, f in enumerate(facts)])
    lines = text.splitlines()
    assert "- **영향 범위**: API 응답 지연, 바이탈 입력 실패" in lines
    assert "- 사용자 약 50명이 15분간 서비스 이용 불가" in lines
    assert "- 바이탈 입력 실패 건수: 12건" in lines
    assert "- 데이터 손실: 없음" in lines
    assert lines[lines.index("## 재발 방지 조치") + 4:lines.index("## 재발 방지 조치") + 6] == [
        "| 문제 쿼리에 인덱스 추가 | DBA | 2026-01-13 |", "| 커넥션 풀 모니터링 알림 추가 | 인프라 | 2026-01-14 |"]
    assert "1. 리포트 쿼리 배포 전 실행 계획 검토 필수화" in lines and "2. 알림 임계값 낮춤 (80% → 70%)" in lines
    assert "- 인시던트 커맨더: alice" in lines and "- 기술 리드: bob" in lines and "- 참여자: carol, dave" in lines
    assert "- [x] 관련 모니터링/알림 강화 — bob, 2026-01-05 09:05 UTC" in lines
    assert "- [ ] 자동화된 테스트 케이스 추가" in lines
    assert "slow report query held connections" in text


def test_what_alerts_said_cannot_break_the_table_or_inject_html() -> None:
    evil = "x | <script>alert(1)</script>\n| forged | row |"
    text = _draft(_incident(title=evil, root_cause="pgbouncer pool <b>exhausted</b>"),
                  [TimelineEvent(ID, T0, "detected", evil)])
    assert "<script>" not in text and "<b>" not in text
    assert "x \\| &lt;script&gt;alert(1)&lt;/script&gt; \\| forged \\| row \\|" in text
    assert "pgbouncer pool &lt;b&gt;exhausted&lt;/b&gt;" in text
    timeline_rows = [line for line in text.splitlines() if line.startswith("| 2026-01-05 09:00 UTC")]
    assert len(timeline_rows) == 1  # the one event, on one row
    assert not any(line.startswith("| forged") for line in text.splitlines())


def test_an_open_incident_says_so() -> None:
    text = _draft(_incident(status=IncidentStatus.OPEN, resolved_at=None), [])
    assert "- **해결일시**: —" in text and "3시간 (진행 중: still open)" in text
