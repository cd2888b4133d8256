"""An hour of a P1 incident, played on a fake clock, and its page in headless Chromium.

The daemon's app (real SQLite store, real HTTP on loopback, the test action) with a fake clock,
so that the incident's events spread over its targets as they would at 3 a.m.: the alert at
09:00, a note at 09:09, the escalation matrix at 09:16 (the P1 respond target, 15 minutes, is
missed: nobody acknowledged), bob acknowledging at 09:18, alice approving the held restart at
09:20 (it runs), the alert resolving at 09:28 (inside the 1 hour recover target), the root cause
at 09:50. On a phone and on a laptop the page fits its screen, the timeline has one mark per event
the API lists, the missed respond target is drawn red and the met recover target is not.

REMEDIATOR_DOCS_INCIDENT_SCREENSHOT=docs/incident-page.png keeps the laptop-sized page for the README.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import builders
from tests.support.browser import chromium
from tests.web.conftest import TOKENS, Daemon, DaemonFactory
from tests.web.test_console import POLICIES
from tests.web.test_console_pages_browser import PHONE, TOO_WIDE

__all__ = ["chromium"]

pytestmark = [pytest.mark.browser]

LAPTOP = {"width": 1000, "height": 900}
DOWN = builders.alert("ApiDown", fingerprint="fp-api", group="api",
                      labels={"service": "erp-api", "ward": "4 <b>cardiology</b>"})


async def _post(d: Daemon, path: str, who: str, body: dict[str, Any]) -> None:
    answer = await d.client.post(path, json=body, headers=d.auth(who))
    assert answer.status == 200, await answer.text()


async def _an_hour_of_a_p1_incident(d: Daemon) -> str:
    await d.deliver(DOWN)
    [incident] = await d.deps.store.list_incidents()
    [approval] = await d.deps.store.list_approvals()
    d.clock.advance(timedelta(minutes=9))
    await _post(d, f"/api/v1/incidents/{incident.id}/notes", "bob", {"text": "ward 4 on paper charts"})
    d.clock.advance(timedelta(minutes=7))
    await d.engine.timers.fire_due()  # the escalation matrix's first step (unless the timer loop was first)
    assert "escalated" in [e.kind for e in await d.deps.store.timeline(incident.id)]
    d.clock.advance(timedelta(minutes=2))
    await _post(d, f"/api/v1/incidents/{incident.id}/acknowledge", "bob", {"note": "looking"})
    d.clock.advance(timedelta(minutes=2))
    await _post(d, f"/api/v1/approvals/{approval.id}/approve", "alice",
                {"plan_hash": approval.plan_hash, "reason": "charts down on ward 4; restart agreed"})
    assert d.action.runs == ["erp-api"]
    d.clock.advance(timedelta(minutes=8))  # resolved before the matrix's next step (30 minutes) is due
    await d.deliver(builders.alert("ApiDown", status="resolved", fingerprint="fp-api", group="api",
                                   labels=dict(DOWN.labels)))
    d.clock.advance(timedelta(minutes=22))
    await d.engine.timers.fire_due()
    await _post(d, f"/api/v1/incidents/{incident.id}/root-cause", "bob", {"text": "connection pool exhausted"})
    return incident.id


async def test_an_hour_long_incident_on_a_phone_and_a_laptop(make_daemon: DaemonFactory, chromium: Any,
                                                            tmp_path: Path) -> None:
    d = await make_daemon(POLICIES)
    incident_id = await _an_hour_of_a_p1_incident(d)
    record = await (await d.client.get(f"/api/v1/incidents/{incident_id}", headers=d.auth("victor"))).json()
    kinds = [e["kind"] for e in record["timeline"]]
    assert {"escalated", "acknowledged", "approval_approved", "executed", "resolved", "root_cause"} <= set(kinds)
    assert kinds.count("escalated") == 1  # resolved before the next step
    url = str(d.client.make_url(f"/console/incidents/{incident_id}"))

    context = await chromium.new_context(viewport=PHONE)
    page = await context.new_page()
    await page.goto(url)
    await page.fill("#name", "victor")
    await page.fill("#token", TOKENS["victor"][0])
    await page.click("form.login button[type=submit]")
    await page.wait_for_selector("svg.timeline")
    assert page.url == url
    for size in (PHONE, LAPTOP):
        await page.set_viewport_size(size)
        layout = await page.evaluate(TOO_WIDE)
        assert layout["wide"] == [] and layout["scroll"] <= layout["width"] == size["width"], layout
        marks = page.locator("svg.timeline circle.mark")
        assert [await m.get_attribute("data-kind") for m in await marks.all()] == kinds
        await page.screenshot(path=str(tmp_path / f"incident-{size['width']}.png"), full_page=True)
    assert await page.locator("line.target.respond.breached").count() == 1
    assert await page.locator("line.target.recover").get_attribute("class") == "target recover"
    assert await page.locator("line.now").count() == 0  # recovered: no "now" on its picture
    assert "missed" in await page.locator("#incident dd.breach").inner_text()
    assert "connection pool exhausted" in await page.locator("#postmortem").inner_text()
    if os.environ.get("REMEDIATOR_DOCS_INCIDENT_SCREENSHOT"):
        await page.screenshot(path=os.environ["REMEDIATOR_DOCS_INCIDENT_SCREENSHOT"], full_page=True)
    await context.close()
