"""An incident walked through the runbook with a running daemon, as people would do it.

`remediator serve` runs as its own process (enforce mode, SQLite) with a P1 policy, Slack's Web
API faked on loopback (`tests/support/slack.py`) and a webhook sink for notifications. A P1
alert is posted; the daemon declares the incident (the channel created through
`conversations.create`, the executive report sent); people then use the CLI and the API to
assign roles, check the declaration checklist, move the phases, record the root cause and the
postmortem's fields; the alert resolves; the postmortem draft and the executive report are read
back and checked section for section against the runbook's template.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from remediator.settings import token_digest
from tests.support.alertmanager import webhook_body
from tests.support.engine import WebhookSink
from tests.support.process import DaemonProcess
from tests.support.slack import FakeSlack, running_slack

pytestmark = pytest.mark.integration

ALICE, VICTOR = "alice-incident-token-0123456789", "victor-viewer-token-0123456789"
BOT = "xoxb-fake-bot-token"
SEOUL = ZoneInfo("Asia/Seoul")
POLICY = """
name: erp-api-down
severity: P1
match: {alertname: ApiDown}
actions:
  - {type: notify.webhook, params: {to: ward, text: "ERP API down: wards use paper charts"}}
"""
SECTIONS = ["# 인시던트 사후분석 보고서", "## 개요", "## 타임라인", "## 근본 원인 (Root Cause)", "## 영향",
            "## 재발 방지 조치", "## 교훈 (Lessons Learned)", "## 참석자", "## 재발 방지 체크리스트",
            "### 기술적 조치", "### 프로세스 개선", "### 확인"]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with running_slack(BOT) as fake:
        yield fake


@pytest.fixture
async def daemon(tmp_path: Path, sink: WebhookSink, slack: FakeSlack) -> AsyncIterator[DaemonProcess]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p1.yaml").write_text(POLICY)
    settings: dict[str, Any] = {
        "mode": "enforce",
        "listen": {"host": "127.0.0.1", "port": 0}, "admin_listen": {"host": "127.0.0.1", "port": 0},
        "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
        "policies_dir": str(tmp_path / "policies"),
        "alertmanager": {"bearer_tokens": ["am-token"]},
        "notify": {name: {"url": f"{sink.url}/{name}"} for name in ("oncall", "ward", "execs")},
        "api": {"tokens": [{"name": "alice", "sha256": token_digest(ALICE), "roles": ["approver"]},
                           {"name": "victor", "sha256": token_digest(VICTOR), "roles": ["viewer"]}]},
        "incidents": {"contacts": {"executives": "execs"}, "notify": "oncall", "timezone": "Asia/Seoul",
                      "slack": {"bot_token": BOT, "api_url": slack.url}},
        "engine": {"timer_interval": "100ms"},
        "log": {"level": "info", "format": "json"},
    }
    process = DaemonProcess(settings, tmp_path)
    await asyncio.to_thread(process.start)
    yield process
    assert await asyncio.to_thread(process.terminate) == 0


async def _cli(tmp_path: Path, daemon: DaemonProcess, *args: str) -> tuple[int, str, str]:
    empty = tmp_path / "cli-cwd"
    empty.mkdir(exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remediator", "incidents", *args, cwd=empty,
        env={**daemon.env, "REMEDIATOR_URL": daemon.admin_url, "REMEDIATOR_TOKEN": ALICE},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _post_alert(http: aiohttp.ClientSession, daemon: DaemonProcess, status: str, starts_at: datetime) -> None:
    body = webhook_body("ApiDown", {"service": "erp-api"}, fingerprint="fp-api", starts_at=starts_at, status=status)
    answer = await http.post(f"{daemon.url}/webhooks/alertmanager", data=body,
                             headers={"Authorization": "Bearer am-token", "Content-Type": "application/json"})
    assert answer.status == 200


async def test_an_incident_walks_the_runbook(
    daemon: DaemonProcess, slack: FakeSlack, sink: WebhookSink, tmp_path: Path,
) -> None:
    alice, victor = {"Authorization": f"Bearer {ALICE}"}, {"Authorization": f"Bearer {VICTOR}"}
    # The alert began 8 minutes before it reached the daemon (delivery lag, a slow group_wait).
    starts_at = (datetime.now(UTC) - timedelta(minutes=8)).replace(microsecond=0)
    async with aiohttp.ClientSession() as http:
        await _post_alert(http, daemon, "firing", starts_at)

        async def declared() -> bool:
            answer = await http.get(f"{daemon.admin_url}/api/v1/incidents", headers=victor)
            found = (await answer.json())["incidents"]
            return bool(found) and bool(slack.channels) and bool(sink.to("execs"))

        await daemon.wait_for(declared, "the P1's declaration")
        [incident] = (await (await http.get(f"{daemon.admin_url}/api/v1/incidents", headers=victor)).json())[
            "incidents"]
        incident_id = incident["id"]
        base = f"{daemon.admin_url}/api/v1/incidents/{incident_id}"

        # Declared: the channel of §4.2, made through Slack's API with the bot token; the executive report.
        opened = datetime.fromisoformat(incident["opened_at"]).astimezone(SEOUL)
        channel = f"incident-{opened:%Y-%m-%d}-apidown-on-erp-api-{incident_id.rsplit('-', 1)[1]}"
        assert list(slack.channels) == [channel] and slack.calls == [{"name": channel, "is_private": False}]
        [report] = sink.to("execs")
        assert report["title"].startswith("P1 경영진 보고") and f"#{channel}" in report["text"]

        declaration = await (await http.get(f"{base}/declaration", headers=victor)).json()
        assert declaration["channel"] == f"#{channel}" and declaration["channel_created"] is True
        done = {i["item"]: (i["checked"], i["by"]) for s in declaration["checklists"]["declaration"]
                for i in s["items"] if i["checked"]}
        assert done == {"channel": (True, "remediator"), "timeline": (True, "remediator"),
                        "executive_report": (True, "remediator")}

        # People, through the CLI: roles, checklist items, phases.
        people: tuple[tuple[str, ...], ...] = (
            ("role", incident_id, "incident_commander", "alice"), ("role", incident_id, "tech_lead", "bob"),
            ("check", incident_id, "commander"), ("check", incident_id, "symptoms", "--note", "API 503"),
            ("phase", incident_id, "root_cause", "--note", "DB connections all held"))
        for args in people:
            code, out, err = await _cli(tmp_path, daemon, *args)
            assert code == 0, err
        assert "phase root_cause" in out  # after contain: the ward's notification went out (an action succeeded)
        code, _, err = await _cli(tmp_path, daemon, "phase", incident_id, "contain")
        assert code == 1 and "phases only move forward" in err  # nothing changed
        code, _, err = await _cli(tmp_path, daemon, "phase", incident_id, "postmortem")
        assert code == 1 and "still firing" in err
        code, _, err = await _cli(tmp_path, daemon, "check", incident_id, "no-such-item")
        assert code == 1 and "item of the declaration checklist must be one of" in err
        answer = await http.post(f"{base}/root-cause", headers=alice,
                                 json={"text": "a report query without an index held every DB connection"})
        assert answer.status == 200 and (await answer.json())["phase"] == "root_cause"

        await _post_alert(http, daemon, "resolved", starts_at)

        async def recovered() -> bool:
            return bool((await (await http.get(base, headers=victor)).json())["status"] == "resolved")

        await daemon.wait_for(recovered, "the alert's resolution")
        after: tuple[tuple[str, ...], ...] = (
                     ("phase", incident_id, "verify"), ("phase", incident_id, "postmortem"),
                     ("postmortem-set", incident_id, "--scope", "API 응답 불가, 바이탈 입력 실패",
                      "--users-affected", "사용자 약 50명이 15분간 서비스 이용 불가", "--failed-vital-entries", "12",
                      "--data-loss", "없음", "--lessons", "리포트 쿼리 배포 전 실행 계획 검토 필수화",
                      "--participants", "carol"),
                     ("prevention", incident_id, "문제 쿼리에 인덱스 추가", "--owner", "DBA", "--due", "2026-01-13"),
                     ("check", incident_id, "monitoring", "--list", "prevention"))
        for args in after:
            code, out, err = await _cli(tmp_path, daemon, *args)
            assert code == 0, err

        draft = await (await http.get(f"{base}/postmortem", headers=victor)).text()
        executive = await (await http.get(f"{base}/report", headers=victor)).text()
        answer = await http.post(f"{base}/close", headers=alice, json={"reason": "postmortem held"})
        assert answer.status == 200 and (await answer.json())["phase"] == "closed"
        timeline = (await (await http.get(base, headers=victor)).json())["timeline"]

    lines = draft.splitlines()
    assert [line for line in lines if line.startswith("#")] == SECTIONS
    assert f"- **인시던트 ID**: {incident_id}" in lines
    assert f"- **발생일시**: {starts_at.astimezone(SEOUL):%Y-%m-%d %H:%M} KST" in lines  # the alert's startsAt
    assert "- **심각도**: P1 (Critical (긴급))" in lines
    assert "- **영향 범위**: API 응답 불가, 바이탈 입력 실패" in lines
    assert "- 바이탈 입력 실패 건수: 12건" in lines and "- 데이터 손실: 없음" in lines
    assert "| 문제 쿼리에 인덱스 추가 | DBA | 2026-01-13 |" in lines
    assert "1. 리포트 쿼리 배포 전 실행 계획 검토 필수화" in lines
    assert "- 인시던트 커맨더: alice" in lines and "- 기술 리드: bob" in lines and "- 참여자: carol" in lines
    assert any(line.startswith("- [x] 관련 모니터링/알림 강화 — alice") for line in lines)
    assert "a report query without an index held every DB connection" in draft
    rows = [line for line in lines if line.startswith("| 20")]
    assert rows and all(" KST |" in row for row in rows)  # one zone in the table
    assert executive.startswith(f"# 경영진 보고 (executive report): {incident_id}")
    assert f"- **채널**: #{channel}" in executive and "- **인시던트 커맨더**: alice" in executive

    # Every transition is on the timeline, forward only, ending closed.
    moves = [e["data"]["to"] for e in timeline if e["kind"] == "phase"]
    assert moves[-5:] == ["root_cause", "recover", "verify", "postmortem", "closed"]
    assert moves[:2] == ["triage", "contain"]
    [by_alice] = [e for e in timeline if e["kind"] == "phase" and e["data"]["to"] == "root_cause"]
    assert by_alice["data"]["by"] == "alice" and "DB connections all held" in by_alice["message"]
    assert len(slack.calls) == 1 and len(sink.to("execs")) == 1  # declared once
    assert not any(BOT in line or ALICE in line for line in daemon.lines)  # no secret in the daemon's log
