"""The bundled brute-force policy tells security what really happened (issue 11 part 4, issue 13).

`remediator serve` runs as users run it (a separate process, enforce mode) with the bundled
`login-brute-force-block` policy (only its IP set ARN is moto's), AWS on moto behind the fault
proxy, and security's notify target on a receiver in the test. "Blocked X for 1h" is sent only
after the WAF block took effect; when the block is denied (a protected address), refused by the
action (a never-block address) or fails (AccessDenied), security is told it did NOT happen and
why, and no "Blocked" message is sent at all.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiobotocore.session import get_session
from aiohttp import web

from tests.conftest import ROOT
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.process import DaemonProcess
from tests.support.sns import RecordingProxy

pytestmark = pytest.mark.integration

TOKEN = "bf-token"
POLICY = "login-brute-force-block"


class SecurityChannel:
    """security's webhook: each message, with the WAF calls the proxy had answered when it came."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.messages: list[dict[str, Any]] = []
        self.waf_calls_before: list[list[str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.waf_calls_before.append(self.proxy.operations("wafv2"))
        self.messages.append(await request.json())
        return web.json_response({"ok": True})


@pytest.fixture
async def security(moto_proxy: RecordingProxy) -> AsyncIterator[SecurityChannel]:
    channel = SecurityChannel(moto_proxy)
    app = web.Application()
    app.router.add_post("/security", channel.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    channel.url = f"http://127.0.0.1:{runner.addresses[0][1]}/security"
    yield channel
    await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def blocklist(moto: str) -> str:
    """The WAF IP set in moto (eu-west-1, empty); its ARN."""
    async with get_session().create_client("wafv2", region_name="eu-west-1", endpoint_url=moto) as waf:
        answer = await waf.create_ip_set(Name="erp-prod-blocklist", Scope="REGIONAL", IPAddressVersion="IPV4",
                                         Addresses=[])
    arn: str = answer["Summary"]["ARN"]
    return arn


async def blocked(moto: str, arn: str) -> list[str]:
    name, set_id = arn.split("/")[-2:]
    async with get_session().create_client("wafv2", region_name="eu-west-1", endpoint_url=moto) as waf:
        answer = await waf.get_ip_set(Name=name, Scope="REGIONAL", Id=set_id)
    return list(answer["IPSet"]["Addresses"])


def bundled_policy(arn: str) -> dict[str, Any]:
    """The bundled brute-force policy, unchanged but for the IP set (moto makes its own id)."""
    bundled = yaml.safe_load((ROOT / "policies" / "security.yaml").read_text())["policies"]
    policy: dict[str, Any] = next(p for p in bundled if p["name"] == POLICY)
    policy["actions"][0]["params"]["ip_set_arn"] = arn
    return policy


def start(tmp_path: Path, arn: str, security: SecurityChannel, proxy: FaultProxy) -> DaemonProcess:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "security.yaml").write_text(yaml.safe_dump({"policies": [bundled_policy(arn)]}))
    return DaemonProcess({
        "mode": "enforce", "listen": {"port": 0}, "admin_listen": {"port": 0},
        "policies_dir": str(tmp_path / "policies"), "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
        "alertmanager": {"bearer_tokens": [TOKEN]},
        "notify": {"security": {"url": security.url, "format": "json"}},
        "aws": {"endpoint_url": proxy.url, "region": "eu-west-1", "max_attempts": 2},
        "guardrails": {"protected": [{"action": "waf.*", "targets": ["198.51.100.0/28"],
                                      "reason": "the hospital's public egress"}]},
    }, tmp_path).start()


def brute_force(address: str) -> bytes:
    """The bundled fixture's alert (policies/fixtures/payloads), from `address`."""
    body = json.loads((ROOT / "policies" / "fixtures" / "payloads" / "am-login-brute-force.json").read_text())
    alert = body["alerts"][0]
    alert["labels"]["source_ip"] = address
    alert["annotations"]["summary"] = f"{address} failed 184 logins in 5 minutes"
    body["alerts"] = [alert]
    return json.dumps(body).encode()


async def respond(http: aiohttp.ClientSession, daemon: DaemonProcess, address: str) -> list[dict[str, Any]]:
    """Post the alert; once all three steps are recorded, the policy's audit records (in order)."""
    async with http.post(f"{daemon.url}/webhooks/alertmanager", data=brute_force(address),
                         headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200, await response.text()
    found: list[dict[str, Any]] = []

    async def recorded() -> bool:
        nonlocal found
        async with http.get(f"{daemon.admin_url}/api/v1/incidents") as answer:
            incidents = (await answer.json())["incidents"]
        if not incidents:
            return False
        async with http.get(f"{daemon.admin_url}/api/v1/incidents/{incidents[0]['id']}") as answer:
            detail = await answer.json()
        found = [a for a in detail["audit"] if a["policy"] == POLICY]  # in the order recorded
        found.append({"timeline": detail["timeline"]})
        return len(found) == 4

    await daemon.wait_for(recorded, "the three steps' records")
    return found


def steps(records: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    return [(r["action"], r["verdict"], r["decision_reason"], r["outcome"]) for r in records[:3]]


async def test_the_blocked_message_is_sent_after_the_block_took_effect(
    tmp_path: Path, moto: str, moto_proxy: RecordingProxy, security: SecurityChannel, http: aiohttp.ClientSession,
) -> None:
    arn = await blocklist(moto)
    moto_proxy.add(Rule("UpdateIPSet", mode="delay", delay=1.0, times=None))  # a slow WAF: order must hold
    daemon = start(tmp_path, arn, security, moto_proxy)
    try:
        records = await respond(http, daemon, "203.0.113.45")
    finally:
        assert daemon.terminate() == 0
    assert [m["title"] for m in security.messages] == ["Blocked 203.0.113.45 for 1h"]
    assert "UpdateIPSet" in security.waf_calls_before[0]  # the block was done when security heard of it
    assert await blocked(moto, arn) == ["203.0.113.45/32"]
    assert steps(records) == [("waf.block_ip", "allow", "allowed", "succeeded"),
                              ("notify.webhook", "deny", "skipped", "not_run"),
                              ("notify.webhook", "allow", "allowed", "succeeded")]
    assert records[1]["params"]["title"] == "NOT blocked: 203.0.113.45"
    timeline = [e["message"] for e in records[3]["timeline"] if e["kind"] == "decided"]
    assert any("deny (skipped) — the previous step waf.block_ip (step 1) succeeded" in m for m in timeline)


@pytest.mark.parametrize(("address", "fault", "why"), [
    ("198.51.100.7", None, "denied (protected_target): 198.51.100.7 is protected by 198.51.100.0/28 "
                           "(the hospital's public egress)"),
    ("10.20.30.40", None, "failed (precheck_failed): 10.20.30.40/32 is inside the never-block range 10.0.0.0/8"),
    ("203.0.113.45", Rule("UpdateIPSet", times=None, code="AccessDeniedException", message="not authorized"),
     "failed (access_denied)"),
], ids=["protected-address", "never-block-address", "access-denied"])
async def test_a_block_that_did_not_happen_is_reported_as_not_done_and_never_as_blocked(
    tmp_path: Path, moto: str, moto_proxy: RecordingProxy, security: SecurityChannel, http: aiohttp.ClientSession,
    address: str, fault: Rule | None, why: str,
) -> None:
    arn = await blocklist(moto)
    if fault is not None:
        moto_proxy.add(fault)
    daemon = start(tmp_path, arn, security, moto_proxy)
    try:
        records = await respond(http, daemon, address)
    finally:
        assert daemon.terminate() == 0
    # Sent: "NOT blocked", with the reason; not sent: any "Blocked" message. The IP set is unchanged.
    [message] = security.messages
    assert message["title"] == f"NOT blocked: {address}"
    assert message["text"].startswith(f"The WAF block of {address} did not take effect: {why}")
    assert await blocked(moto, arn) == []
    assert records[0]["outcome"] != "succeeded"
    assert steps(records)[1:] == [("notify.webhook", "deny", "skipped", "not_run"),
                                  ("notify.webhook", "allow", "allowed", "succeeded")]
    assert records[1]["params"]["title"] == f"Blocked {address} for 1h"  # the message that was not sent
    assert "did not take effect" in records[1]["decision_detail"]
