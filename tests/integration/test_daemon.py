"""The daemon as users run it: a separate process, real HTTP on loopback, a real SQLite file.

Covers what only a whole process shows: the README's way of starting it, its answers, its
records and metrics; a kill -9 in the middle of an action (recorded alerts are processed after
the restart, the interrupted action is marked unknown and never re-run, a re-delivery is not
processed twice); and a graceful SIGTERM that finishes the action in flight.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import ROOT, corpus_file
from tests.support.process import DaemonProcess
from tests.support.receiver import Receiver, running_receiver

pytestmark = pytest.mark.integration

TOKEN = "it-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
FIRING = corpus_file("am-v0.25-firing-2-alerts.json").read_bytes()

NOTIFY_POLICY = """
name: page-on-connections
severity: P2
match: {alertname: PostgresTooManyConnections}
actions:
  - type: notify.webhook
    params: {to: oncall, text: "{labels.instance}: {annotations.summary}"}
    guardrails: {cooldown: 0s}
"""


def payload(instance: str, fingerprint: str, group: str = "g") -> bytes:
    """A one-alert Alertmanager body of its own identity."""
    body = json.loads(FIRING)
    alert = body["alerts"][0]
    alert["labels"]["instance"], alert["fingerprint"] = instance, fingerprint
    body["alerts"], body["groupKey"] = [alert], f"{{}}:{{group={group!r}}}"
    return json.dumps(body).encode()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


def notify_daemon(tmp_path: Path, receiver: Receiver, **engine: Any) -> DaemonProcess:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "page.yaml").write_text(NOTIFY_POLICY)
    return DaemonProcess({
        "mode": "enforce", "listen": {"port": 0}, "admin_listen": {"port": 0}, "policies_dir": str(policies),
        "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
        "alertmanager": {"bearer_tokens": [TOKEN]},
        "notify": {"oncall": {"url": receiver.url, "timeout": "30s"}},
        "engine": {"workers": 1, "batch_size": 1, "stop_timeout": "20s"},
    }, tmp_path)


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_started_as_the_readme_says_it_records_decides_and_reports(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    # The README's command: embedded defaults (bundled policies, dry-run), a token from the
    # environment. Only the ports and the SQLite file move, so the test can run anywhere.
    daemon = DaemonProcess({}, tmp_path, env={
        "REMEDIATOR_ALERTMANAGER__BEARER_TOKENS": TOKEN, "REMEDIATOR_LISTEN__PORT": "0",
        "REMEDIATOR_ADMIN_LISTEN__PORT": "0",
        "REMEDIATOR_STORE__URL": f"sqlite:///{tmp_path / 'var' / 'remediator.db'}",
    })
    daemon.settings_path.write_text("")  # no settings file content: the embedded defaults
    daemon.start()
    try:
        assert daemon.events("serving")[0]["mode"] == "dry-run"
        data = (ROOT / "policies" / "fixtures" / "payloads" / "am-pg-too-many-connections.json").read_bytes()
        async with http.post(f"{daemon.url}/webhooks/alertmanager", data=data, headers=BEARER) as response:
            assert response.status == 200 and await response.json() == {"accepted": 2, "duplicates": 0}
        async with http.post(f"{daemon.url}/webhooks/alertmanager", data=b"{}", headers=BEARER) as response:
            assert response.status == 400 and (await response.json())["error"] == "invalid_payload"

        async def decided() -> bool:
            incidents = (await get_json(http, f"{daemon.admin_url}/api/v1/incidents"))["incidents"]
            return bool(incidents) and incidents[0]["phase"] == "triage"

        await daemon.wait_for(decided, "the incident")
        incident = (await get_json(http, f"{daemon.admin_url}/api/v1/incidents"))["incidents"][0]
        detail = await get_json(http, f"{daemon.admin_url}/api/v1/incidents/{incident['id']}")
        assert [e["kind"] for e in detail["timeline"]][:2] == ["detected", "matched"]
        assert detail["audit"] and all(a["mode"] == "dry-run" for a in detail["audit"])
        expected = ['remediator_alerts_received_total{result="accepted",source="alertmanager"} 2.0',
                    'remediator_webhook_rejected_total{reason="bad_request",source="alertmanager"} 1.0',
                    'remediator_alerts_processed_total 2.0']

        async def counted() -> bool:  # intake processes relay their counters to the core every second
            async with http.get(f"{daemon.admin_url}/metrics") as response:
                text = await response.text()
            return all(line in text for line in expected)

        await daemon.wait_for(counted, "the intake's counters in /metrics", timeout=5)
        assert (await get_json(http, f"{daemon.admin_url}/readyz"))["ready"] is True
    finally:
        assert daemon.terminate() == 0


async def test_kill_9_mid_action_then_restart(tmp_path: Path, receiver: Receiver, http: aiohttp.ClientSession) -> None:
    receiver.delay = 60.0  # the first action hangs: the daemon is killed while it runs
    daemon = notify_daemon(tmp_path, receiver).start()
    first, second = payload("db-1:9187", "aaaa000000000001", "g1"), payload("db-2:9187", "aaaa000000000002", "g2")
    try:
        for body in (first, second):
            async with http.post(f"{daemon.url}/webhooks/alertmanager", data=body, headers=BEARER) as response:
                assert response.status == 200
        await daemon.wait_for(lambda: _true(len(receiver.received) == 1), "the first action to start")
        # One worker, busy with the hanging action: the second alert is recorded, not processed.
    finally:
        daemon.kill()
    receiver.delay = 0.0
    restarted = daemon.start()
    try:
        async def both_recorded() -> bool:
            incidents = (await get_json(http, f"{restarted.admin_url}/api/v1/incidents"))["incidents"]
            return len(incidents) == 2 and all(i["phase"] == "contain" or i["title"].endswith("db-1:9187")
                                               for i in incidents)

        await restarted.wait_for(both_recorded, "the recorded alert to be processed after the restart")
        audit = (await get_json(http, f"{restarted.admin_url}/api/v1/audit"))["audit"]
        outcomes = sorted((a["target"], a["outcome"], a["failure_reason"]) for a in audit)
        assert outcomes == [("notify:oncall", "succeeded", None), ("notify:oncall", "unknown", "crashed")]
        # The interrupted action was not re-run: the receiver saw it once, and the other once.
        assert sorted(r["text"].split(":")[0] for r in receiver.received) == ["db-1", "db-2"]
        unknown = next(a for a in audit if a["outcome"] == "unknown")
        incident_url = f"{restarted.admin_url}/api/v1/incidents/{unknown['incident_id']}"
        timeline = (await get_json(http, incident_url))["timeline"]
        assert any(e["kind"] == "escalated" and "will not be re-run" in e["message"] for e in timeline)
        # Alertmanager re-sends after the restart: acknowledged, not processed again.
        async with http.post(f"{restarted.url}/webhooks/alertmanager", data=second, headers=BEARER) as response:
            assert await response.json() == {"accepted": 0, "duplicates": 1}
        await asyncio.sleep(0.5)
        assert len((await get_json(http, f"{restarted.admin_url}/api/v1/audit"))["audit"]) == 2
        assert len(receiver.received) == 2
    finally:
        assert restarted.terminate() == 0


async def test_sigterm_finishes_the_action_in_flight_and_exits_0(
    tmp_path: Path, receiver: Receiver, http: aiohttp.ClientSession
) -> None:
    receiver.delay = 2.0
    daemon = notify_daemon(tmp_path, receiver).start()
    async with http.post(f"{daemon.url}/webhooks/alertmanager", data=payload("db-1", "bbbb000000000001"),
                         headers=BEARER) as response:
        assert response.status == 200
    await daemon.wait_for(lambda: _true(len(receiver.received) == 1), "the action to start")
    code = await asyncio.to_thread(daemon.terminate)
    assert code == 0
    assert daemon.events("stopped"), daemon.lines[-10:]
    restarted = daemon.start()
    try:
        audit = (await get_json(http, f"{restarted.admin_url}/api/v1/audit"))["audit"]
        assert [(a["outcome"], a["verdict"]) for a in audit] == [("succeeded", "allow")]
    finally:
        assert restarted.terminate() == 0


async def _true(value: bool) -> bool:
    return value
