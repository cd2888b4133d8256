"""The controls page in a real headless Chromium on a 390 px phone, against the whole daemon.

`remediator serve` runs as users start it (dry-run, SQLite), with a maintenance window set through
the JSON API beforehand (long globs, so the table has something to wrap). root, an admin, opens
the controls page, signs in, lands back on it, pauses the policy `api-restart` from the page's
form, sees the pause listed with who, why and until when (and the JSON API lists the same pause),
then ends it from its row: the page says nothing is paused and the API agrees. At each step no
element is wider than the screen and nothing scrolls sideways; each step is screenshotted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.browser import chromium
from tests.support.process import DaemonProcess
from tests.web.conftest import API_TOKENS, TOKENS
from tests.web.test_console_pages_browser import PHONE, _fits

__all__ = ["chromium"]

pytestmark = [pytest.mark.browser, pytest.mark.integration]

POLICY = """
policies:
  - name: api-restart
    severity: P3
    match: {alertname: ErpApiDown}
    actions:
      - type: notify.webhook
        params: {to: oncall, text: "the ERP API is down"}
"""
WINDOW = {"name": "ward-systems-quarterly-patching", "reason": "RDS minor version upgrade, agreed with the wards",
          "cron": "0 2 * * 0", "duration": "2h", "targets": [f"erp-prod-{'database-cluster-' * 4}*"]}


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[DaemonProcess]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "api.yaml").write_text(POLICY)
    process = DaemonProcess({
        "mode": "dry-run", "listen": {"port": 0}, "admin_listen": {"port": 0},
        "policies_dir": str(tmp_path / "policies"), "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
        "alertmanager": {"bearer_tokens": ["am-token"]}, "api": {"tokens": API_TOKENS},
        "notify": {"oncall": {"url": "http://127.0.0.1:9/oncall"}},
        "guardrails": {"time_zone": "Asia/Seoul"},
    }, tmp_path)
    await asyncio.to_thread(process.start)
    try:
        yield process
    finally:
        assert await asyncio.to_thread(process.terminate) == 0


async def _api(daemon: DaemonProcess, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    async with aiohttp.ClientSession() as http, http.request(
            method, f"{daemon.admin_url}{path}", json=body,
            headers={"Authorization": f"Bearer {TOKENS['root'][0]}"}) as answer:
        assert answer.status in (200, 201), await answer.text()
        return await answer.json()


async def test_an_admin_pauses_a_policy_sees_it_listed_and_ends_it_on_a_phone(
    daemon: DaemonProcess, chromium: Any, tmp_path: Path,
) -> None:
    await _api(daemon, "POST", "/api/v1/maintenance", WINDOW)
    root = await chromium.new_context(viewport=PHONE)
    page = await root.new_page()
    await page.goto(f"{daemon.admin_url}/console/controls")
    await page.fill("#name", "root")
    await page.fill("#token", TOKENS["root"][0])
    await page.click("form.login button[type=submit]")
    await page.wait_for_selector("#kill-switch-state")
    assert page.url == f"{daemon.admin_url}/console/controls"
    assert "Nothing is paused." in await page.locator("#pauses").inner_text()
    assert WINDOW["name"] in await page.locator("#maintenance").inner_text()
    assert "Asia/Seoul" in await page.locator("#maintenance").inner_text()
    await _fits(page, "/console/controls/before", tmp_path)

    form = page.locator("#pause-form")
    await form.locator("select[name=scope]").select_option("policy")
    await form.locator("input[name=match]").fill("api-restart")
    await form.locator("input[name=reason]").fill("ward 4 network work, DBA on call")
    await form.locator("input[name=for]").fill("2h")
    await form.locator("button[type=submit]").click()
    await page.wait_for_selector("tr.pause")
    assert page.url == f"{daemon.admin_url}/console/controls?done=paused"
    row = await page.locator("tr.pause").inner_text()
    for text in ["policy", "api-restart", "root", "ward 4 network work, DBA on call"]:
        assert text in row, (text, row)
    [listed] = (await _api(daemon, "GET", "/api/v1/pauses"))["pauses"]
    assert (listed["scope"], listed["match"], listed["by"]) == ("policy", "api-restart", "root")
    await _fits(page, "/console/controls/paused", tmp_path)

    await page.locator("tr.pause button[type=submit]").click()
    await page.wait_for_selector("text=Nothing is paused.")
    assert page.url == f"{daemon.admin_url}/console/controls?done=pause_ended"
    assert await page.locator("tr.pause").count() == 0
    assert (await _api(daemon, "GET", "/api/v1/pauses"))["pauses"] == []
    await _fits(page, "/console/controls/ended", tmp_path)
    await root.close()
