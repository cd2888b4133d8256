"""The console's incident pages over HTTP: incidents list, one incident's timeline, statistics.

The daemon's app with a fake clock and a real SQLite store; alerts go through the engine as a
webhook's would. What an alert says is hostile here (markup, quotes, very long values): the pages
show it as text. The browser test (`test_console_pages_browser.py`) checks the layout.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import pytest

from remediator.model import ApprovalStatus
from remediator.web import console_pages
from tests.support import builders
from tests.web.conftest import TOKENS, Daemon, DaemonFactory
from tests.web.test_console import POLICIES, _field

SCRIPT = '<script>alert("x")</script>'
LONG = "ward-" + "x" * 600
HOSTILE = builders.alert("ApiDown", fingerprint="fp-api", group="api",
                         labels={"service": f"erp-api {SCRIPT} {'y' * 300}", "ward": LONG, "quote": "\"'"})
PAGES = ["/console/incidents", "/console/stats", "/console/incidents/INC-2026-00001",
         "/console/incidents/INC-2026-00001/postmortem"]


async def _signed_in(d: Daemon, who: str = "alice") -> None:
    login_page = await (await d.client.get("/console/login")).text()
    answer = await d.client.post("/console/login", data={"name": who, "token": TOKENS[who][0],
                                                        "nonce": _field(login_page, "nonce")},
                                 allow_redirects=False)
    assert answer.status == 303


async def _page(d: Daemon, path: str, status: int = 200) -> str:
    answer = await d.client.get(path, allow_redirects=False)
    text = await answer.text()
    assert answer.status == status, text
    return text


async def _incident(d: Daemon) -> dict[str, Any]:
    answer = await d.client.get("/api/v1/incidents", headers=d.auth("victor"))
    [listed] = (await answer.json())["incidents"]
    detail = await d.client.get(f"/api/v1/incidents/{listed['id']}", headers=d.auth("victor"))
    found: dict[str, Any] = await detail.json()
    return found


async def test_without_a_session_every_page_sends_to_the_sign_in_form(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(HOSTILE)
    incident = await _incident(d)
    for path in [*PAGES, f"/console/incidents/{incident['id']}"]:
        answer = await d.client.get(path, allow_redirects=False)
        assert (answer.status, answer.headers["Location"]) == (303, f"/console/login?next={quote(path, '')}"), path
        assert incident["id"] not in await answer.text() and "erp-api" not in await answer.text()
        form = await d.client.get(answer.headers["Location"])
        assert form.status == 200 and 'type="password"' in await form.text()
        assert "ApiDown" not in await form.text() and "Signed in as" not in await form.text()  # the form only


async def test_signing_in_from_a_notifications_link_leads_back_to_its_page(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(HOSTILE)
    incident = await _incident(d)
    wanted = f"/console/incidents/{incident['id']}"
    login_page = await (await d.client.get(f"/console/login?next={quote(wanted, '')}")).text()
    assert f'name="next" value="{wanted}"' in login_page
    answer = await d.client.post("/console/login", allow_redirects=False, data={
        "name": "alice", "token": TOKENS["alice"][0], "nonce": _field(login_page, "nonce"), "next": wanted})
    assert (answer.status, answer.headers["Location"]) == (303, wanted)


async def test_signing_in_never_leads_off_the_console(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    for wanted in ("//evil.example/console/x", "https://evil.example/", "/console/../api/v1/audit",
                   "/console/incidents/x\n", "/console//evil.example", "/console/logout", "/elsewhere"):
        login_page = await (await d.client.get("/console/login", params={"next": wanted})).text()
        assert 'name="next"' not in login_page, wanted
        answer = await d.client.post("/console/login", allow_redirects=False, data={
            "name": "alice", "token": TOKENS["alice"][0], "nonce": _field(login_page, "nonce"), "next": wanted})
        assert (answer.status, answer.headers["Location"]) == (303, "/console/approvals"), wanted


async def test_the_list_shows_open_incidents_first_with_their_targets_and_waiting_approvals(
    make_daemon: DaemonFactory,
) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(builders.alert("DiskFull", fingerprint="fp-disk", group="disk",
                                   labels={"service": "erp-files"}))
    await d.deliver(builders.alert("DiskFull", status="resolved", fingerprint="fp-disk", group="disk",
                                   labels={"service": "erp-files"}))
    d.clock.advance(timedelta(minutes=1))
    await d.deliver(HOSTILE)
    [approval] = await d.deps.store.list_approvals(ApprovalStatus.PENDING)
    d.clock.advance(timedelta(hours=5))  # past P1's respond (15 min) and recover (4 h) targets
    await _signed_in(d)
    page = await _page(d, "/console/incidents")
    rows = re.findall(r'<tr id="row-(INC-[0-9-]+)" class="incident (\w+)">', page)
    assert [status for _, status in rows] == ["open", "resolved"]  # open first, though opened later
    open_row = page[page.index(f'id="row-{rows[0][0]}"'):page.index(f'id="row-{rows[1][0]}"')]
    assert open_row.count('class="breach"') == 2 and "missed" in open_row
    assert f'href="/console/approvals#{approval.id}"' in open_row
    assert f'href="/console/incidents/{rows[0][0]}"' in open_row
    assert SCRIPT not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "DRY-RUN" not in page and "ENFORCE" in page  # the daemon's mode, on every page


async def _declared(d: Daemon) -> dict[str, Any]:
    """The P1's record once its declaration (a timer, due at once) is on the timeline: its events stop growing."""
    for _ in range(200):
        incident = await _incident(d)
        if any(e["kind"] == "declared" for e in incident["timeline"]):
            return incident
        await asyncio.sleep(0.05)
    raise AssertionError(f"never declared: {incident['timeline']}")


async def test_the_incident_page_draws_one_mark_per_event_and_lists_them(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(HOSTILE)
    d.clock.advance(timedelta(minutes=3))
    incident = await _declared(d)
    note = await d.client.post(f"/api/v1/incidents/{incident['id']}/notes", headers=d.auth("alice"),
                               json={"text": f"ward 4 on paper charts {SCRIPT}"})
    assert note.status == 200
    incident = await _incident(d)
    await _signed_in(d)
    page = await _page(d, f"/console/incidents/{incident['id']}")
    events = incident["timeline"]
    marks = re.findall(r'<circle class="mark (\w+)" data-kind="([a-z_]+)"', page)
    assert len(events) >= 4 and [kind for _, kind in marks] == [e["kind"] for e in events]
    assert ("people", "note") in marks and ("approvals", "approval_requested") in marks
    assert ("decisions", "decided") in marks and ("alerts", "detected") in marks
    assert len(re.findall(r'<tr id="event-\d+">', page)) == len(events)
    assert SCRIPT not in page and "<script" not in page
    assert "ward 4 on paper charts &lt;script&gt;" in page
    [approval] = await d.deps.store.list_approvals(ApprovalStatus.PENDING)
    assert f'href="/console/approvals#{approval.id}"' in page
    assert re.search(r'<rect class="phase detect"', page) and re.search(r'<line class="target respond', page)
    assert "Declaration checklist" in page and "Someone owns it (acknowledged)" in page
    assert f'href="/console/incidents/{incident["id"]}/postmortem"' in page


async def test_an_unknown_incident_is_a_404_page_that_echoes_nothing_unescaped(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await _signed_in(d)
    page = await _page(d, "/console/incidents/INC-<b>9", 404)
    assert "There is no incident INC-&lt;b&gt;9" in page and "<b>9" not in page
    draft = await d.client.get("/console/incidents/INC-2026-00042/postmortem", allow_redirects=False)
    assert draft.status == 404


async def test_the_postmortem_draft_is_plain_text(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(HOSTILE)
    incident = await _incident(d)
    await _signed_in(d)
    answer = await d.client.get(f"/console/incidents/{incident['id']}/postmortem")
    assert answer.status == 200 and answer.content_type == "text/plain"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    text = await answer.text()
    assert text.startswith("# 인시던트 사후분석 보고서") and f"from the record of {incident['id']}" in text


async def test_stats_chart_and_table_count_the_same_incidents(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(HOSTILE)
    d.clock.advance(timedelta(minutes=30))
    await d.deliver(builders.alert("ApiDown", status="resolved", fingerprint="fp-api", group="api",
                                   starts_at=HOSTILE.starts_at, labels=dict(HOSTILE.labels)))
    await _signed_in(d)
    page = await _page(d, "/console/stats")
    month = f"{d.clock.now():%Y-%m}"
    assert re.search(rf"<tr><th>{month}</th><td>1</td><td>0</td><td>0</td><td>0</td></tr>", page)
    assert re.search(rf'<rect class="bar P1" [^>]*><title>{month} P1: 1</title>', page)
    assert re.search(r"<tr><th>P1</th><td>1</td><td>30 min</td><td>30 min</td></tr>", page)
    assert re.search(r'<rect class="bar P1" [^>]*><title>P1 P1: 30 min</title>', page)


async def test_a_bad_period_says_what_is_wrong_and_shows_the_default(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await _signed_in(d)
    page = await _page(d, "/console/stats?since=yesterday", 400)
    assert "since must be a date" in page and "showing the last 365 days" in page
    page = await _page(d, "/console/stats?since=2026-01-01&until=2026-01-31")
    assert 'name="until" value="2026-01-31"' in page  # the last day shown, included


async def test_the_approvals_page_says_dry_run_before_anyone_decides(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES, mode="dry-run")
    await d.deliver(HOSTILE)
    await _signed_in(d)
    page = await _page(d, "/console/approvals")
    assert 'class="mode dry-run"' in page and "DRY-RUN: this daemon decides and records, but touches nothing" in page
    assert page.index('id="mode"') < page.index('class="decide"')


async def test_an_old_open_incident_is_listed_however_many_newer_ones_resolved(
    make_daemon: DaemonFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(console_pages, "LISTED", 2)
    d = await make_daemon(POLICIES)
    await d.deliver(builders.alert("DiskFull", fingerprint="fp-old", group="old"))
    for n in range(3):
        d.clock.advance(timedelta(minutes=10))
        await d.deliver(builders.alert("CpuHigh", fingerprint=f"fp-{n}", group=f"g{n}"))
        await d.deliver(builders.alert("CpuHigh", status="resolved", fingerprint=f"fp-{n}", group=f"g{n}"))
    await _signed_in(d)
    page = await _page(d, "/console/incidents")
    rows = re.findall(r'<tr id="row-(INC-[0-9-]+)" class="incident (\w+)">', page)
    assert rows == [("INC-2026-00001", "open"), ("INC-2026-00004", "resolved")]
    assert "Incidents (2, 1 open)" in page
