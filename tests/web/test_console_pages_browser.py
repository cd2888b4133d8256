"""The console's incident pages in a real headless Chromium on a 390 px phone, against the whole daemon.

`remediator serve` runs as users start it, in dry-run, with a P1 policy that holds an ECS
redeploy (the ERP API in a moto server) for approval. Two incidents come in through the webhook:
the P1 one, and one whose labels are hostile (a `<script>`, quotes, a 300-character word). Then:

- a stranger (no cookie) who opens any of the pages gets the sign-in form and nothing else;
- alice follows the P1 incident's link (as a notification gives it), signs in, lands on that
  incident's page, and on her phone-sized screen opens the incidents list, the P1 incident, the
  hostile incident, the statistics and the approvals page: none has an element wider than the
  screen or scrolls sideways; the timeline has exactly one mark per event of the incident's
  record (as the JSON API returns it); the hostile text is shown as text; the approvals page says
  DRY-RUN above the form anyone decides with. The sign-in form and the page of an incident that
  does not exist fit too. Each page is screenshotted.

The README's screenshot of an incident page comes from `test_console_timeline_browser.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import T0
from tests.support.alertmanager import webhook_body
from tests.support.browser import chromium
from tests.support.moto import TEST_ENV
from tests.support.process import DaemonProcess
from tests.web.conftest import API_TOKENS, TOKENS
from tests.web.test_console_browser import POLICY, ecs_service

__all__ = ["chromium", "ecs_service"]

pytestmark = [pytest.mark.browser, pytest.mark.integration]

PHONE = {"width": 390, "height": 844}
SCRIPT = '<script>document.title="owned"</script>'
HOSTILE = {"service": f'billing "quoted" \'single\' {SCRIPT} {"z" * 300}', "ward": "w" * 500}
NOTE = f"ward 4 is on paper charts; {SCRIPT}"
# Every element's box inside the viewport; what is not (tag, id, class) is the answer.
TOO_WIDE = """() => {
  const width = document.documentElement.clientWidth, wide = [];
  for (const el of document.querySelectorAll('body *')) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && (box.right > width + 0.5 || box.left < -0.5))
      wide.push(`${el.tagName}#${el.id}.${el.getAttribute('class')} ${Math.round(box.left)}..${Math.round(box.right)}`);
  }
  return {width, scroll: document.documentElement.scrollWidth, wide};
}"""


@pytest.fixture
async def daemon(tmp_path: Path, moto_url: str, ecs_service: Any) -> AsyncIterator[DaemonProcess]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p1.yaml").write_text(POLICY)
    process = DaemonProcess({
        "mode": "dry-run", "listen": {"port": 0}, "admin_listen": {"port": 0},
        "policies_dir": str(tmp_path / "policies"), "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
        "alertmanager": {"bearer_tokens": ["am-token"]}, "api": {"tokens": API_TOKENS},
        "aws": {"endpoint_url": moto_url, "max_attempts": 2},
    }, tmp_path, env=TEST_ENV)
    await asyncio.to_thread(process.start)
    try:
        yield process
    finally:
        assert await asyncio.to_thread(process.terminate) == 0


async def _api(http: aiohttp.ClientSession, daemon: DaemonProcess, path: str, who: str = "victor",
               body: dict[str, str] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {TOKENS[who][0]}"}
    call = http.post(f"{daemon.admin_url}{path}", json=body, headers=headers) if body is not None else \
        http.get(f"{daemon.admin_url}{path}", headers=headers)
    async with call as answer:
        assert answer.status == 200, await answer.text()
        return await answer.json()


async def _alert(http: aiohttp.ClientSession, daemon: DaemonProcess, name: str, labels: dict[str, str]) -> None:
    body = webhook_body(name, labels, fingerprint=f"fp-{name}", starts_at=T0, summary=f"{name} on the wards")
    async with http.post(f"{daemon.url}/webhooks/alertmanager", data=body,
                         headers={"Authorization": "Bearer am-token", "Content-Type": "application/json"}) as answer:
        assert answer.status == 200


async def _incidents(http: aiohttp.ClientSession, daemon: DaemonProcess) -> dict[str, dict[str, Any]]:
    """The incidents by alert name, once both are there and the P1 plan is held."""
    found: dict[str, dict[str, Any]] = {}

    async def ready() -> bool:
        listed = (await _api(http, daemon, "/api/v1/incidents"))["incidents"]
        found.update({i["title"].split(" ")[0]: i for i in listed})
        pending = (await _api(http, daemon, "/api/v1/approvals?status=pending"))["approvals"]
        return len(found) == 2 and len(pending) == 1

    await daemon.wait_for(ready, "both incidents, and the P1 plan held for approval")
    return found


async def _fits(page: Any, path: str, shots: Path) -> None:
    layout = await page.evaluate(TOO_WIDE)
    assert layout["width"] == PHONE["width"] and layout["scroll"] <= layout["width"], (path, layout)
    assert layout["wide"] == [], (path, layout["wide"])
    shot = shots / f"{path.strip('/').replace('/', '_')}.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 1000


async def test_every_incident_page_fits_a_phone_and_shows_hostile_text_as_text(
    daemon: DaemonProcess, chromium: Any, tmp_path: Path,
) -> None:
    async with aiohttp.ClientSession() as http:
        await _alert(http, daemon, "ErpApiDown", {"service": "erp-api", "ward": HOSTILE["ward"], "note": SCRIPT})
        await _alert(http, daemon, "BillingSlow", HOSTILE)
        incidents = await _incidents(http, daemon)
        p1, hostile = incidents["ErpApiDown"]["id"], incidents["BillingSlow"]["id"]
        await _api(http, daemon, f"/api/v1/incidents/{p1}/notes", "alice", {"text": NOTE})
        await _api(http, daemon, f"/api/v1/incidents/{p1}/acknowledge", "alice", {"note": "on it"})
        # A P1's declaration (channel, executive report) lands on its timeline a timer tick later:
        # read the record once it has stopped growing, so the page and the API show the same events.
        record = await _api(http, daemon, f"/api/v1/incidents/{p1}")
        for _ in range(20):
            await asyncio.sleep(1.5)
            again = await _api(http, daemon, f"/api/v1/incidents/{p1}")
            if len(again["timeline"]) == len(record["timeline"]):
                break
            record = again
        [approval] = (await _api(http, daemon, "/api/v1/approvals?status=pending"))["approvals"]
    pages = ["/console/incidents", f"/console/incidents/{p1}", f"/console/incidents/{hostile}", "/console/stats",
             "/console/approvals"]

    stranger = await chromium.new_context(viewport=PHONE)
    page = await stranger.new_page()
    for path in pages:
        await page.goto(f"{daemon.admin_url}{path}")
        assert page.url.startswith(f"{daemon.admin_url}/console/login"), path
        content = await page.content()
        assert "ErpApiDown" not in content and "Signed in as" not in content  # the form, nothing of the record
        assert await page.locator("#token").count() == 1 and await page.locator("main > *").count() == 2
    await _fits(page, "/console/login", tmp_path)
    await stranger.close()

    alice = await chromium.new_context(viewport=PHONE)
    page = await alice.new_page()
    await page.goto(f"{daemon.admin_url}/console/incidents/{p1}")  # a notification's link, not signed in yet
    await page.fill("#name", "alice")
    await page.fill("#token", TOKENS["alice"][0])
    await page.click("form.login button[type=submit]")
    await page.wait_for_selector("#mode")
    assert page.url == f"{daemon.admin_url}/console/incidents/{p1}"  # back to the page the link named
    for path in pages:
        await page.goto(f"{daemon.admin_url}{path}")
        assert page.url == f"{daemon.admin_url}{path}"
        assert await page.title() != "owned"  # no script from an alert ran
        await _fits(page, path, tmp_path)

        if path == "/console/incidents":
            assert await page.locator(f"#row-{p1} a.approval").inner_text() == approval["id"]
        if path == f"/console/incidents/{p1}":
            marks = page.locator("svg.timeline circle.mark")
            assert await marks.count() == len(record["timeline"])
            assert [await m.get_attribute("data-kind") for m in await marks.all()] == \
                [e["kind"] for e in record["timeline"]]
            assert await page.locator("table.events tbody tr").count() == len(record["timeline"])
            assert NOTE in await page.locator("table.events").inner_text()
            assert await page.locator(f'#approvals a[href="/console/approvals#{approval["id"]}"]').count() == 1
        if path == f"/console/incidents/{hostile}":
            assert HOSTILE["service"] in await page.locator("#incident h2").inner_text()
            assert await page.locator("#incident script").count() == 0
        if path == "/console/stats":
            assert await page.locator("svg.bars rect.bar.P1").count() == 1
        if path == "/console/approvals":
            banner = await page.locator("#mode").bounding_box()
            form = await page.locator("form.decide").bounding_box()
            assert "DRY-RUN" in await page.locator("#mode").inner_text() and banner["y"] < form["y"]
            assert f"note={SCRIPT}" in await page.locator(f"article#{approval['id']}").inner_text()

    await page.goto(f"{daemon.admin_url}/console/incidents/INC-{'9' * 300}")
    assert "There is no incident" in await page.inner_text("main")
    await _fits(page, "/console/incidents/missing", tmp_path)

    await alice.close()
