"""The console in a real headless Chromium, against the daemon as users start it.

`remediator serve` runs in its default process layout (one intake process on the public
listener; the core serves the admin listener itself). Two browser contexts share nothing, like
two people on two machines: alice signs in and approves a held P1 plan, which the daemon runs
against a moto server ECS service; a stranger with no cookie sees only the sign-in form, is never
served alice's CSRF token, and a vote posted with what was copied off alice's page is refused and
changes nothing. Signing out ends the session in the daemon: the old cookie, replayed, is refused.
All of it three ways: without `public_url`, with an http one, and with an https one, where a
TLS-terminating proxy made by the test stands in front of the admin listener.

Set REMEDIATOR_DOCS_SCREENSHOT=docs/approvals.png to keep a screenshot of the page with the
pending approval (the README shows it).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediator.aws.clients import AwsClients
from remediator.settings import AwsSettings
from tests.conftest import T0
from tests.support.alertmanager import webhook_body
from tests.support.browser import chromium
from tests.support.moto import TEST_ENV, create_erp_api, reset_moto
from tests.support.process import DaemonProcess
from tests.support.servers import free_port
from tests.support.tls import TlsTerminator
from tests.web.conftest import API_TOKENS, TOKENS

__all__ = ["chromium"]

pytestmark = [pytest.mark.browser, pytest.mark.integration]

POLICY = """
name: erp-api-redeploy
description: The ERP API answers 5xx on the wards; replace its tasks.
severity: P1
match: {alertname: ErpApiDown}
actions:
  - type: ecs.force_new_deployment
    params: {cluster: erp-prod, service: "{labels.service}"}
"""
REASON = "ward 4 cannot open patient charts; restart agreed with lead"


@dataclass
class Console:
    daemon: DaemonProcess
    url: str  # where a browser reaches the admin listener: itself, or the TLS proxy in front of it
    secure: bool
    ecs: Any  # a client straight to moto, to arrange and read back the service

    @property
    def approvals(self) -> str:
        return f"{self.url}/console/approvals"


@pytest.fixture
async def ecs_service(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    """The ERP API as an ECS service in moto: cluster erp-prod, service erp-api, two tasks."""
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    async with AwsClients(AwsSettings(endpoint_url=moto_url, max_attempts=1)) as direct:
        ecs = await direct.client("ecs")
        await create_erp_api(ecs)
        yield ecs
    reset_moto(moto_url)


@pytest.fixture(params=["no_public_url", "http_public_url", "https_public_url_behind_a_tls_proxy"])
async def console(request: pytest.FixtureRequest, tmp_path: Path, moto_url: str,
                  ecs_service: Any) -> AsyncIterator[Console]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p1.yaml").write_text(POLICY)
    proxy, admin_port, public_url = None, 0, ""
    if request.param.startswith("https"):
        proxy = TlsTerminator(tmp_path)
        public_url = f"https://localhost:{await proxy.start()}"
    elif request.param.startswith("http"):
        admin_port = free_port()
        public_url = f"http://localhost:{admin_port}"
    daemon = DaemonProcess({
        "mode": "enforce", "listen": {"port": 0}, "admin_listen": {"port": admin_port}, "public_url": public_url,
        "policies_dir": str(tmp_path / "policies"), "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
        "alertmanager": {"bearer_tokens": ["am-token"]}, "api": {"tokens": API_TOKENS},
        "aws": {"endpoint_url": moto_url, "max_attempts": 2},
    }, tmp_path, env=TEST_ENV)
    await asyncio.to_thread(daemon.start)
    if proxy is not None:
        proxy.backend_port = int(daemon.admin_url.rsplit(":", 1)[1])
    try:
        yield Console(daemon, public_url or daemon.admin_url, public_url.startswith("https"), ecs_service)
    finally:
        assert await asyncio.to_thread(daemon.terminate) == 0
        if proxy is not None:
            await proxy.close()


async def _deployments(ecs: Any) -> list[str]:
    answer = await ecs.describe_services(cluster="erp-prod", services=["erp-api"])
    return [d["id"] for d in answer["services"][0]["deployments"]]


async def _held_approval(console: Console, http: aiohttp.ClientSession) -> dict[str, Any]:
    body = webhook_body("ErpApiDown", {"service": "erp-api", "ward": "4 <b>cardiology</b>"}, fingerprint="fp-erp",
                        starts_at=T0, summary="5xx on /api/patients")
    async with http.post(f"{console.daemon.url}/webhooks/alertmanager", data=body,
                         headers={"Authorization": "Bearer am-token", "Content-Type": "application/json"}) as answer:
        assert answer.status == 200
    found: list[dict[str, Any]] = []

    async def held() -> bool:
        found[:] = await _approvals(console, http)
        return bool(found)

    await console.daemon.wait_for(held, "the P1 plan to be held for approval")
    return found[0]


async def _approvals(console: Console, http: aiohttp.ClientSession, status: str = "pending") -> list[dict[str, Any]]:
    async with http.get(f"{console.daemon.admin_url}/api/v1/approvals?status={status}",
                        headers={"Authorization": f"Bearer {TOKENS['victor'][0]}"}) as answer:
        assert answer.status == 200
        approvals: list[dict[str, Any]] = (await answer.json())["approvals"]
        return approvals


async def _sign_in(page: Any, console: Console, name: str, token: str) -> None:
    await page.goto(console.approvals)
    assert page.url == f"{console.url}/console/login"  # no session: the sign-in form, nothing else
    await page.fill("#name", name)
    await page.fill("#token", token)
    await page.click("form.login button[type=submit]")


async def test_alice_approves_a_stranger_cannot_and_signing_out_ends_the_session(
    console: Console, chromium: Any
) -> None:
    async with aiohttp.ClientSession() as http:
        approval = await _held_approval(console, http)
        [before] = await _deployments(console.ecs)  # held: ECS was not touched
        alice_context = await chromium.new_context(ignore_https_errors=True)
        stranger_context = await chromium.new_context(ignore_https_errors=True)
        alice, stranger = await alice_context.new_page(), await stranger_context.new_page()

        await _sign_in(alice, console, "alice", TOKENS["alice"][0])
        await alice.wait_for_selector(f"article#{approval['id']}")
        assert TOKENS["alice"][0] not in alice.url and alice.url == console.approvals
        session_cookie = await _session_cookie(alice, alice_context, console)
        card = alice.locator(f"article#{approval['id']}")
        await _shows_the_plan(card, approval)
        if os.environ.get("REMEDIATOR_DOCS_SCREENSHOT") and not public_url_of(console):
            await alice.screenshot(path=os.environ["REMEDIATOR_DOCS_SCREENSHOT"], full_page=True)
        csrf = await card.locator("input[name=csrf]").get_attribute("value")
        assert csrf

        await _a_stranger_sees_only_the_sign_in_form(stranger, stranger_context, console, approval, csrf)
        assert await _approvals(console, http) == [approval]  # nothing recorded: no vote, still pending
        assert await _deployments(console.ecs) == [before]

        await card.locator("input[name=reason]").fill(REASON)
        await card.locator("button.approve").click()
        await alice.wait_for_selector("p.flash")
        assert f"{approval['id']} approved: ecs.force_new_deployment on ecs:service/erp-prod/erp-api ran — " \
            "succeeded" in await alice.inner_text("p.flash")
        deployments = await _deployments(console.ecs)
        assert deployments[0] != before  # run by the daemon, against moto
        [decided] = await _approvals(console, http, "approved")
        assert [(v["by"], v["reason"]) for v in decided["votes"]] == [("alice", REASON)]
        assert decided["outcome"] == "succeeded"

        await alice.click("header form button[type=submit]")
        await alice.wait_for_selector("p.flash")
        assert alice.url.startswith(f"{console.url}/console/login")
        assert "Signed out." in await alice.inner_text("p.flash")
        await _the_old_cookie_is_refused(http, console, session_cookie)
        await alice_context.close()
        await stranger_context.close()


def public_url_of(console: Console) -> str:
    return "" if console.url == console.daemon.admin_url else console.url


async def _session_cookie(page: Any, context: Any, console: Console) -> str:
    """The session cookie: HttpOnly, SameSite=Strict, the console's path, Secure exactly under https."""
    assert await page.evaluate("document.cookie") == ""
    [cookie] = [c for c in await context.cookies() if c["name"] == "remediator_session"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"], cookie["secure"]) == \
        (True, "Strict", "/console", console.secure)
    value: str = cookie["value"]
    return value


async def _shows_the_plan(card: Any, approval: dict[str, Any]) -> None:
    text = await card.inner_text()
    assert "P1" in text and "Run ecs.force_new_deployment on ecs:service/erp-prod/erp-api" in text
    assert "Replace every task of an ECS service with fresh ones" in text
    assert "ward=4 <b>cardiology</b>" in text  # the label shown as text, not as markup
    assert await card.locator("b").count() == 0
    assert "0 of 1" in text and approval["plan"]["hash"] in text


async def _a_stranger_sees_only_the_sign_in_form(page: Any, context: Any, console: Console,
                                                 approval: dict[str, Any], csrf: str) -> None:
    await page.goto(console.approvals)
    assert page.url == f"{console.url}/console/login"
    content = await page.content()
    assert "Signed in as" not in content and approval["id"] not in content and csrf not in content
    assert await page.locator("#token").count() == 1
    # A vote with everything copied off alice's page but her cookie: sent to the sign-in form.
    answer = await context.request.post(f"{console.approvals}/{approval['id']}/decide", headers={
        "Origin": console.url}, form={"csrf": csrf, "plan_hash": approval["plan"]["hash"], "choice": "approve",
                                      "reason": "copied"})
    assert answer.url == f"{console.url}/console/login" and "Signed in as" not in await answer.text()
    # Nor does guessing help: a wrong token leaves it on the form.
    await _sign_in(page, console, "alice", "not-alices-token")
    await page.wait_for_selector("p.flash")
    assert "Sign-in failed" in await page.inner_text("p.flash") and "not-alices-token" not in page.url
    assert await page.locator("#token").count() == 1 and csrf not in await page.content()


async def _the_old_cookie_is_refused(http: aiohttp.ClientSession, console: Console, cookie: str) -> None:
    """Signed out in the daemon, not only in the browser: the old cookie, replayed, opens nothing."""
    headers = {"Cookie": f"remediator_session={cookie}"}
    async with http.get(console.approvals, headers=headers, allow_redirects=False, ssl=False) as answer:
        assert answer.status == 303 and answer.headers["Location"] == "/console/login"
