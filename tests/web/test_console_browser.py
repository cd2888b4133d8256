"""The /approvals page in a real headless Chromium: sign in, see a pending P1, approve it, see it run.

The daemon runs in this process on a real port with the shipped action registry; the alert
arrives through the Alertmanager webhook like any other; the approved plan is
`ecs.force_new_deployment`, executed by the daemon against a moto server ECS service. Set
REMEDIATOR_DOCS_SCREENSHOT=docs/approvals.png to keep a screenshot of the page with the pending
approval (the README shows it).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from remediator.aws.clients import AwsClients
from remediator.daemon.app import build_app, build_deps
from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.model import ApprovalStatus, Outcome
from remediator.settings import AwsSettings
from remediator.web.keys import ENGINE
from tests.conftest import T0
from tests.support.alertmanager import webhook_body
from tests.support.browser import browser_page
from tests.support.engine import WebhookSink, harness_settings
from tests.support.moto import TEST_ENV, create_erp_api, moto_server, reset_moto
from tests.web.conftest import API_TOKENS, TOKENS

__all__ = ["browser_page"]

pytestmark = [pytest.mark.browser, pytest.mark.integration]

POLICIES = """
policies:
  - name: erp-api-redeploy
    description: The ERP API answers 5xx on the wards; replace its tasks.
    severity: P1
    match: {alertname: ErpApiDown}
    actions:
      - type: ecs.force_new_deployment
        params: {cluster: erp-prod, service: "{labels.service}"}
"""


@dataclass
class Served:
    url: str
    deps: Deps
    engine: Engine
    ecs: Any  # a client straight to moto, to arrange and read back the service


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


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


async def _deployments(ecs: Any) -> list[str]:
    answer = await ecs.describe_services(cluster="erp-prod", services=["erp-api"])
    return [d["id"] for d in answer["services"][0]["deployments"]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def served(tmp_path: Path, sink: WebhookSink, moto_url: str, ecs_service: Any) -> AsyncIterator[Served]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = harness_settings(tmp_path, sink.url, POLICIES, public_url=url, api={"tokens": API_TOKENS},
                                alertmanager={"bearer_tokens": ["am-token"]},
                                aws={"endpoint_url": moto_url, "max_attempts": 2})
    deps = build_deps(settings)  # the shipped registry: the real ECS action, wired by the app
    app = build_app(settings, deps)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield Served(url, deps, app[ENGINE], ecs_service)
    finally:
        await runner.cleanup()


async def _alert(served: Served) -> None:
    body = webhook_body("ErpApiDown", {"service": "erp-api", "ward": "4 <b>cardiology</b>"}, fingerprint="fp-erp",
                        starts_at=T0, summary="5xx on /api/patients")
    async with aiohttp.ClientSession() as http:
        answer = await http.post(f"{served.url}/webhooks/alertmanager", data=body,
                                 headers={"Authorization": "Bearer am-token", "Content-Type": "application/json"})
        assert answer.status == 200
    await served.engine.drain()


async def test_sign_in_see_a_pending_p1_approve_it_and_see_it_run(served: Served, browser_page: Any) -> None:
    page = browser_page
    await _alert(served)
    [approval] = await served.deps.store.list_approvals(ApprovalStatus.PENDING)
    [before] = await _deployments(served.ecs)  # held: ECS was not touched

    await page.goto(f"{served.url}/approvals")
    await page.fill("#token", TOKENS["alice"][0])
    await page.click("form.login button[type=submit]")
    await page.wait_for_selector(f"article#{approval.id}")
    assert TOKENS["alice"][0] not in page.url and page.url == f"{served.url}/approvals"
    assert await page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly

    card = page.locator(f"article#{approval.id}")
    text = await card.inner_text()
    assert "P1" in text and "Run ecs.force_new_deployment on ecs:service/erp-prod/erp-api" in text
    assert "Replace every task of an ECS service with fresh ones" in text
    assert "ward=4 <b>cardiology</b>" in text  # the label shown as text, not as markup
    assert await card.locator("b").count() == 0
    assert "0 of 1" in text and approval.plan_hash in text
    if os.environ.get("REMEDIATOR_DOCS_SCREENSHOT"):
        await page.screenshot(path=os.environ["REMEDIATOR_DOCS_SCREENSHOT"], full_page=True)

    await card.locator("input[name=reason]").fill("ward 4 cannot open patient charts; restart agreed with lead")
    await card.locator("button.approve").click()
    await page.wait_for_selector("p.flash")

    flash = await page.inner_text("p.flash")
    assert f"{approval.id} approved: ecs.force_new_deployment on ecs:service/erp-prod/erp-api ran — succeeded" \
        in flash
    # Executed by the daemon against moto: the service has a new primary deployment, the one recorded.
    deployments = await _deployments(served.ecs)
    assert deployments[0] != before
    stored = await served.deps.store.get_approval(approval.id)
    assert stored is not None and stored.outcome is Outcome.SUCCEEDED
    run = await served.deps.store.get_audit(stored.run_request_id)
    assert run is not None and run.detail["deployment_id"] == deployments[0]
    assert run.detail["previous_deployment_id"] == before and run.origin == f"approval:{approval.id}"
    row = page.locator(f"#history-{approval.id}")
    assert await row.locator("td.status").inner_text() == "approved"
    assert "alice approved: ward 4 cannot open patient charts" in await row.inner_text()
    assert "Nothing is waiting for a decision." in await page.inner_text("#pending")


async def test_a_wrong_token_stays_on_the_login_form(served: Served, browser_page: Any) -> None:
    page = browser_page
    await page.goto(f"{served.url}/approvals")
    await page.fill("#token", "not-a-token")
    await page.click("form.login button[type=submit]")
    await page.wait_for_selector("p.flash")
    assert "Sign-in failed" in await page.inner_text("p.flash")
    assert "not-a-token" not in page.url and await page.locator("#token").count() == 1
