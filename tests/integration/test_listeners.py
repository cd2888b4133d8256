"""The daemon's two listeners, as `remediator serve` opens them in its default process layout.

The public webhook listener (served by the intake process) answers webhooks and /healthz and
nothing else; the admin listener (served by the core) answers the API, the console, /metrics
and /readyz, and no webhook. Console sign-in is throttled per client address and per token
name; every failure is counted and logged, never with the token.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from remediator.settings import token_digest
from tests.conftest import corpus_file
from tests.support.process import DaemonProcess

pytestmark = pytest.mark.integration

AM_TOKEN = "listeners-am-token"
ALICE, BOB = "alice-listeners-token-0123", "bob-listeners-token-4567"
WRONG = [f"guess-{n}-of-alices-token" for n in range(5)]  # api.sign_in_failures: 5 per minute by default
FIRING = corpus_file("am-v0.25-firing-2-alerts.json").read_bytes()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    (tmp_path / "policies").mkdir()
    process = DaemonProcess({
        "listen": {"port": 0}, "admin_listen": {"port": 0}, "policies_dir": str(tmp_path / "policies"),
        "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"}, "alertmanager": {"bearer_tokens": [AM_TOKEN]},
        "api": {"tokens": [{"name": "alice", "sha256": token_digest(ALICE), "roles": ["approver"]},
                           {"name": "bob", "sha256": token_digest(BOB), "roles": ["approver"]}]},
    }, tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.terminate()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session


async def _answer(http: aiohttp.ClientSession, method: str, url: str, data: bytes = b"",
                  headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with http.request(method, url, data=data or None, headers=headers, allow_redirects=False) as answer:
        return answer.status, await answer.text()


NOT_PUBLIC = [("GET", "/api/v1/incidents"), ("GET", "/api/v1/approvals"), ("POST", "/api/v1/killswitch"),
              ("GET", "/console/approvals"), ("GET", "/console/login"), ("POST", "/console/login"),
              ("GET", "/console/incidents"), ("GET", "/console/incidents/INC-2026-00001"), ("GET", "/console/stats"),
              ("GET", "/approvals"), ("GET", "/metrics"), ("GET", "/readyz"), ("POST", "/internal/record"),
              ("POST", "/internal/counters")]


async def test_the_public_listener_serves_webhooks_and_healthz_only(daemon: DaemonProcess,
                                                                   http: aiohttp.ClientSession) -> None:
    for method, path in NOT_PUBLIC:
        status, text = await _answer(http, method, daemon.url + path, data=b'{"alerts": []}')
        assert (status, json.loads(text)["error"]) == (404, "not_found"), (method, path)
    assert (await _answer(http, "GET", daemon.url + "/healthz"))[0] == 200
    status, text = await _answer(http, "POST", daemon.url + "/webhooks/alertmanager", FIRING,
                                 {"Authorization": f"Bearer {AM_TOKEN}"})
    assert (status, json.loads(text)) == (200, {"accepted": 2, "duplicates": 0})
    assert daemon.events("intake_ready")  # answered by the intake process


async def test_the_admin_listener_serves_the_api_console_and_metrics_and_no_webhook(
    daemon: DaemonProcess, http: aiohttp.ClientSession
) -> None:
    alice = {"Authorization": f"Bearer {ALICE}"}
    assert (await _answer(http, "GET", daemon.admin_url + "/api/v1/incidents", headers=alice))[0] == 200
    assert (await _answer(http, "GET", daemon.admin_url + "/api/v1/incidents"))[0] == 401  # tokens are configured
    for path in ("/metrics", "/readyz", "/healthz", "/console/login"):
        assert (await _answer(http, "GET", daemon.admin_url + path))[0] == 200, path
    status, location = await _redirect(http, daemon.admin_url + "/console/approvals")
    assert (status, location) == (303, "/console/login")
    status, text = await _answer(http, "POST", daemon.admin_url + "/webhooks/alertmanager", FIRING,
                                 {"Authorization": f"Bearer {AM_TOKEN}"})
    assert (status, json.loads(text)["error"]) == (404, "not_found")
    serving = daemon.events("serving")[0]
    assert serving["port"] != serving["admin_port"] and serving["admin_host"] == "127.0.0.1"


async def _redirect(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False) as answer:
        return answer.status, answer.headers.get("Location", "")


async def _sign_in(daemon: DaemonProcess, name: str, token: str, source: str = "127.0.0.1") -> aiohttp.ClientResponse:
    """One sign-in from `source` (any address of 127/8 reaches the daemon over loopback)."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        async with session.get(f"{daemon.admin_url}/console/login") as form:
            nonce = re.search(r'name="nonce" value="([^"]+)"', await form.text())
        assert nonce is not None
        async with session.post(f"{daemon.admin_url}/console/login", allow_redirects=False,
                                data={"name": name, "token": token, "nonce": nonce.group(1)},
                                headers={"Cookie": f"remediator_login={nonce.group(1)}"}) as answer:
            await answer.read()
            return answer


async def _failures(http: aiohttp.ClientSession, daemon: DaemonProcess, reason: str) -> float:
    async with http.get(f"{daemon.admin_url}/metrics") as answer:
        text = await answer.text()
    found = re.search(rf'^remediator_console_sign_in_failures_total{{reason="{reason}"}} ([0-9.]+)$', text, re.M)
    return float(found.group(1)) if found else -1.0


async def test_sign_in_is_throttled_per_address_and_per_token_name(daemon: DaemonProcess,
                                                                   http: aiohttp.ClientSession) -> None:
    assert await _failures(http, daemon, "unknown_token") == 0.0  # the series exists before any failure
    for guess in WRONG:
        assert (await _sign_in(daemon, "alice", guess)).status == 401
    throttled = await _sign_in(daemon, "alice", ALICE)  # even the right token: nothing is compared now
    assert throttled.status == 429 and 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert "remediator_session" not in throttled.headers.get("Set-Cookie", "")
    # Per token name: alice's name is throttled from another address too …
    assert (await _sign_in(daemon, "alice", ALICE, source="127.0.0.2")).status == 429
    # … per address: this address may not try bob's name either; elsewhere bob signs in.
    assert (await _sign_in(daemon, "bob", BOB)).status == 429
    signed_in = await _sign_in(daemon, "bob", BOB, source="127.0.0.2")
    assert signed_in.status == 303 and "remediator_session=" in signed_in.headers.get("Set-Cookie", "")
    assert (await _failures(http, daemon, "unknown_token"), await _failures(http, daemon, "throttled")) == (5.0, 3.0)
    refused = daemon.events("console_login_refused")
    assert [e["reason"] for e in refused] == ["unknown_token"] * 5 + ["throttled"] * 3
    assert {e["remote"] for e in refused} == {"127.0.0.1", "127.0.0.2"} and refused[0]["name"] == "alice"
    log = "\n".join(daemon.lines)
    assert not any(secret in log for secret in [*WRONG, ALICE, BOB])
