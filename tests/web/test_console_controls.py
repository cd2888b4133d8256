"""The console's controls page over HTTP: kill switch, scoped pauses, maintenance windows, circuits.

The daemon's app with a fake clock and a real SQLite store, a P3 policy that restarts the ERP API
(`test.restart` on `svc:erp-api`). For each control, root (admin) makes the change from the page's
form: the coordination store holds it, the audit log has the same line the JSON API writes, and
an alert that comes in afterwards is recorded and its request denied with the control's reason.
Every refusal (missing reason, bad input, a viewer, a form without its CSRF token or from another
site) is a 4xx page that says why, and the test checks that no control changed and nothing was
audited. The browser test (`test_console_controls_browser.py`) checks the layout on a phone.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Iterator, MutableMapping
from datetime import timedelta
from typing import Any

import pytest
import structlog

from remediator.guardrails.circuit import circuit_key
from remediator.model import DecisionReason
from tests.conftest import T0
from tests.support import builders
from tests.web.conftest import Daemon, DaemonFactory
from tests.web.test_console import _field
from tests.web.test_console_pages import _signed_in

POLICIES = """
policies:
  - name: api-restart
    severity: P3
    match: {alertname: ApiDown}
    actions:
      - type: test.restart
        params: {service: erp-api}
"""
PAGE = "/console/controls"
TARGET = "svc:erp-api"
KEY = circuit_key("test.restart", TARGET)
Logs = list[MutableMapping[str, Any]]
FINGERPRINTS = itertools.count()


@pytest.fixture
def logs() -> Iterator[Logs]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def audited(logs: Logs) -> list[dict[str, Any]]:
    """The controls' audit lines, without structlog's level (kept: event and every field)."""
    return [{k: v for k, v in line.items() if k != "log_level"} for line in logs
            if line.get("event") in {"kill_switch", "paused", "pause_ended", "maintenance_window_set",
                                     "maintenance_window_ended", "circuit_closed"}]


async def signed_in(d: Daemon, who: str = "root") -> str:
    """Sign in; the controls page's CSRF token."""
    await _signed_in(d, who)
    return _field(await page(d), "csrf")


async def page(d: Daemon, status: int = 200) -> str:
    answer = await d.client.get(PAGE, allow_redirects=False)
    text = await answer.text()
    assert answer.status == status, text
    return text


async def post(d: Daemon, path: str, form: dict[str, str], **headers: str) -> tuple[int, str, str]:
    """(status, Location, page text) of a form sent from the controls page."""
    answer = await d.client.post(f"{PAGE}{path}", data=form, allow_redirects=False, headers=headers)
    return answer.status, answer.headers.get("Location", ""), await answer.text()


async def decided(d: Daemon) -> DecisionReason:
    """Deliver a new ApiDown alert; the reason its request was decided with."""
    alert = builders.alert("ApiDown", fingerprint=f"fp-{next(FINGERPRINTS)}", group="api",
                           labels={"service": "erp-api"})
    await d.deliver(alert)
    records = [r for r in await d.deps.store.list_audit(None, 100) if r.alert_id == alert.id]
    assert len(records) == 1, records
    return records[0].decision_reason


async def controls_state(d: Daemon) -> tuple[Any, ...]:
    coordination = d.deps.coordination
    return (await coordination.kill_switch(), await coordination.controls("pause"),
            await coordination.controls("maintenance"), await coordination.circuits())


# -- each control, from the page ---------------------------------------------------------------------------
async def test_the_kill_switch_is_turned_on_and_off_with_a_reason(make_daemon: DaemonFactory, logs: Logs) -> None:
    d = await make_daemon(POLICIES)
    csrf = await signed_in(d)
    assert 'id="kill-switch-state">Off' in await page(d)
    status, location, _ = await post(d, "/killswitch", {"csrf": csrf, "enabled": "on", "reason": "ERP cut-over"})
    assert (status, location) == (303, f"{PAGE}?done=kill_switch_on")
    state = await d.deps.coordination.kill_switch()
    assert (state.enabled, state.by, state.reason, state.at) == (True, "root", "ERP cut-over", T0)
    shown = await page(d)
    assert 'id="kill-switch-state">ON: nothing runs' in shown and "by root" in shown and "ERP cut-over" in shown
    assert await decided(d) is DecisionReason.KILL_SWITCH
    assert d.action.runs == []

    await post(d, "/killswitch", {"csrf": csrf, "enabled": "off", "reason": "cut-over done"})
    assert not (await d.deps.coordination.kill_switch()).enabled
    assert await decided(d) is DecisionReason.ALLOWED
    assert d.action.runs == ["erp-api"]
    assert audited(logs) == [
        {"event": "kill_switch", "enabled": True, "by": "root", "reason": "ERP cut-over"},
        {"event": "kill_switch", "enabled": False, "by": "root", "reason": "cut-over done"}]


async def test_a_paused_policy_is_listed_denies_its_requests_and_ends(make_daemon: DaemonFactory,
                                                                    logs: Logs) -> None:
    d = await make_daemon(POLICIES)
    csrf = await signed_in(d)
    status, location, _ = await post(d, "/pauses", {"csrf": csrf, "scope": "policy", "match": "api-*",
                                                    "reason": "ward 4 network work", "for": "2h", "until": ""})
    assert (status, location) == (303, f"{PAGE}?done=paused")
    shown = await page(d)
    row = re.search(r'<tr class="pause".*?</tr>', shown, re.S)
    assert row is not None
    for text in ["policy", "api-*", "root", "ward 4 network work", "2026-01-05 11:00", 'value="api-*"']:
        assert text in row.group(0), text
    assert await decided(d) is DecisionReason.PAUSED
    assert d.action.runs == [] and len(await d.deps.store.list_audit(None, 100)) == 1  # recorded, denied

    status, location, _ = await post(d, "/pauses/end", {"csrf": csrf, "scope": "policy", "match": "api-*"})
    assert (status, location) == (303, f"{PAGE}?done=pause_ended")
    assert await d.deps.coordination.controls("pause") == {}
    assert "Nothing is paused." in await page(d)
    assert await decided(d) is DecisionReason.ALLOWED
    assert audited(logs) == [
        {"event": "paused", "scope": "policy", "match": "api-*", "by": "root", "reason": "ward 4 network work",
         "until": "2026-01-05T11:00:00+00:00"},
        {"event": "pause_ended", "scope": "policy", "match": "api-*", "by": "root"}]


async def test_a_change_is_audited_exactly_as_the_apis(make_daemon: DaemonFactory, logs: Logs) -> None:
    d = await make_daemon(POLICIES)
    csrf = await signed_in(d)
    pause = {"scope": "target", "match": "svc:*", "reason": "patching", "for": "30m"}
    assert (await d.client.post("/api/v1/pauses", json=pause, headers=d.auth("root"))).status == 201
    assert (await d.client.post("/api/v1/pauses/end", json=pause, headers=d.auth("root"))).status == 200
    through_api = audited(logs)
    logs.clear()
    await post(d, "/pauses", {"csrf": csrf, **pause, "until": ""})
    await post(d, "/pauses/end", {"csrf": csrf, "scope": "target", "match": "svc:*"})
    assert audited(logs) == through_api and len(through_api) == 2


async def test_a_maintenance_window_denies_what_it_covers_until_it_is_ended(make_daemon: DaemonFactory,
                                                                           logs: Logs) -> None:
    d = await make_daemon(POLICIES, guardrails={"time_zone": "Asia/Seoul"})
    csrf = await signed_in(d)
    # 17:00 to 20:00 in Seoul is 08:00 to 11:00 UTC: open at T0 (09:00 UTC).
    status, location, _ = await post(d, "/maintenance", {
        "csrf": csrf, "name": "db-patch", "reason": "RDS minor upgrade", "start": "2026-01-05T17:00",
        "end": "2026-01-05T20:00", "targets": "svc:*, db:*"})
    assert (status, location) == (303, f"{PAGE}?done=window_set")
    await post(d, "/maintenance", {"csrf": csrf, "name": "sunday-backup", "cron": "0 2 * * 0", "duration": "2h",
                                   "actions": "rds.*"})
    shown = await page(d)
    assert "Times without an offset are in Asia/Seoul." in shown
    one_off = re.search(r'<tr class="window"[^>]*data-name="db-patch".*?</tr>', shown, re.S)
    recurring = re.search(r'<tr class="window"[^>]*data-name="sunday-backup".*?</tr>', shown, re.S)
    assert one_off is not None and recurring is not None
    assert "one-off: 2026-01-05T17:00:00 to 2026-01-05T20:00:00 (Asia/Seoul)" in one_off.group(0)
    assert "until 2026-01-05T20:00:00+09:00" in one_off.group(0) and "targets svc:*, db:*" in one_off.group(0)
    assert "recurring: <code>0 2 * * 0</code>" in recurring.group(0) and "closed" in recurring.group(0)
    assert await decided(d) is DecisionReason.MAINTENANCE_WINDOW

    status, location, _ = await post(d, "/maintenance/end", {"csrf": csrf, "name": "db-patch"})
    assert (status, location) == (303, f"{PAGE}?done=window_ended")
    assert set(await d.deps.coordination.controls("maintenance")) == {"sunday-backup"}
    assert await decided(d) is DecisionReason.ALLOWED
    assert [(line["event"], line["name"], line["by"]) for line in audited(logs)] == [
        ("maintenance_window_set", "db-patch", "root"), ("maintenance_window_set", "sunday-backup", "root"),
        ("maintenance_window_ended", "db-patch", "root")]


async def test_an_open_circuit_is_shown_denies_and_is_closed_by_a_person(make_daemon: DaemonFactory,
                                                                        logs: Logs) -> None:
    d = await make_daemon(POLICIES)
    for _ in range(3):  # the default threshold, as the executor counts failed runs
        await d.deps.coordination.count_failure(KEY, T0, 3, "access_denied")
    csrf = await signed_in(d)
    shown = await page(d)
    row = re.search(r'<tr class="circuit open".*?</tr>', shown, re.S)
    assert row is not None and "test.restart" in row.group(0) and TARGET in row.group(0)
    assert "access_denied" in row.group(0) and "2026-01-05T09:30:00+00:00" in row.group(0)
    assert await decided(d) is DecisionReason.CIRCUIT_OPEN

    status, location, _ = await post(d, "/circuits/close", {"csrf": csrf, "action": "test.restart",
                                                            "target": TARGET, "reason": "task role fixed"})
    assert (status, location) == (303, f"{PAGE}?done=circuit_closed")
    assert await d.deps.coordination.circuits() == []
    assert "No failures are counted." in await page(d)
    assert await decided(d) is DecisionReason.ALLOWED
    assert audited(logs) == [{"event": "circuit_closed", "action": "test.restart", "target": TARGET, "by": "root",
                              "reason": "task role fixed"}]


# -- refusals -----------------------------------------------------------------------------------------------
REFUSED = [  # (path, form without csrf, status, what the page says)
    ("/killswitch", {"enabled": "on", "reason": ""}, 400, "reason is required"),
    ("/killswitch", {"enabled": "on", "reason": "   "}, 400, "reason is required"),
    ("/killswitch", {"enabled": "maybe", "reason": "x"}, 400, "expected"),
    ("/pauses", {"scope": "policy", "match": "api-*", "reason": "", "for": "1h"}, 400, "reason"),
    ("/pauses", {"scope": "everything", "match": "*", "reason": "x"}, 400, "scope"),
    ("/pauses", {"scope": "policy", "match": "api-*", "reason": "x", "for": "-5m"}, 400, "'-5m' is not a duration"),
    ("/pauses", {"scope": "policy", "match": "api-*", "reason": "x", "for": "1h",
                 "until": "2026-01-05T12:00:00Z"}, 400, "not both"),
    ("/pauses", {"scope": "policy", "match": "api-*", "reason": "x", "until": "2026-01-05T08:00:00Z"}, 400,
     "in the future"),
    ("/pauses/end", {"scope": "policy", "match": "nothing-*"}, 404, "no pause of policy nothing-*"),
    ("/maintenance", {"name": "half", "start": "2026-01-05T17:00"}, 400,
     "one-off (start and end) or recurring (cron and duration)"),
    ("/maintenance", {"name": "bad-cron", "cron": "every sunday", "duration": "2h"}, 400, "five fields"),
    ("/maintenance", {"name": "nightly", "cron": "0 2 * * *", "duration": "1h"}, 409, "exists"),
    ("/maintenance/end", {"name": "nightly"}, 409, "is in the settings"),
    ("/maintenance/end", {"name": "never-set"}, 404, "no window"),
    ("/circuits/close", {"action": "test.restart", "target": TARGET, "reason": ""}, 400, "reason"),
    ("/circuits/close", {"action": "test.restart", "target": "svc:other", "reason": "x"}, 404,
     "no failures are counted"),
]
SETTINGS_WINDOW = {"maintenance": [{"name": "nightly", "cron": "0 2 * * *", "duration": "1h"}]}


async def test_each_refusal_says_why_and_changes_nothing(make_daemon: DaemonFactory, logs: Logs) -> None:
    d = await make_daemon(POLICIES, guardrails=SETTINGS_WINDOW)
    await d.deps.coordination.count_failure(KEY, T0, 3, "access_denied")
    csrf = await signed_in(d)
    before = await controls_state(d)
    for path, form, status, says in REFUSED:
        got, location, text = await post(d, path, {"csrf": csrf, **form})
        assert (got, location) == (status, ""), (path, form, text)
        flash = re.search(r'<p class="flash bad" role="status">(.*?)</p>', text, re.S)
        said = html.unescape(flash.group(1)) if flash else ""
        assert said.startswith("Not changed: ") and says in said, (path, form, said)
        assert 'id="kill-switch"' in text  # the page itself, to try again
        assert await controls_state(d) == before, (path, form)
    assert audited(logs) == []


async def test_a_viewer_sees_the_controls_and_may_change_none(make_daemon: DaemonFactory, logs: Logs) -> None:
    d = await make_daemon(POLICIES)
    await d.deps.coordination.count_failure(KEY, T0, 3, "access_denied")
    await d.client.post("/api/v1/pauses", json={"scope": "policy", "match": "api-*", "reason": "DBA at work"},
                        headers=d.auth("root"))
    logs.clear()
    csrf = await signed_in(d, "victor")
    shown = await page(d)
    assert "changing them needs the admin role" in shown and "DBA at work" in shown and "test.restart" in shown
    assert "<form" not in shown.split("</header>", 1)[1]  # no control's form, only sign-out in the header
    before = await controls_state(d)
    for path, form in [("/killswitch", {"enabled": "on", "reason": "x"}),
                       ("/pauses", {"scope": "target", "match": "*", "reason": "x"}),
                       ("/pauses/end", {"scope": "policy", "match": "api-*"}),
                       ("/maintenance", {"name": "w", "cron": "0 2 * * *", "duration": "1h"}),
                       ("/circuits/close", {"action": "test.restart", "target": TARGET, "reason": "x"})]:
        status, _, text = await post(d, path, {"csrf": csrf, **form})
        assert status == 403 and "victor may look at the controls; changing them needs the admin role" in text, path
        assert await controls_state(d) == before, path
    assert audited(logs) == []


async def test_a_form_without_its_csrf_token_or_from_another_site_changes_nothing(make_daemon: DaemonFactory,
                                                                                  logs: Logs) -> None:
    d = await make_daemon(POLICIES)
    csrf = await signed_in(d)
    form = {"enabled": "on", "reason": "forged"}
    for sent, headers in [({**form}, {}), ({**form, "csrf": "0" * len(csrf)}, {}),
                          ({**form, "csrf": csrf}, {"Origin": "https://evil.example"})]:
        status, _, text = await post(d, "/killswitch", sent, **headers)
        assert status == 403 and "the form had expired or was not sent from this site" in text, (sent, headers)
        assert not (await d.deps.coordination.kill_switch()).enabled
    assert audited(logs) == []


async def test_without_a_session_the_page_and_its_forms_lead_to_sign_in(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    answer = await d.client.get(PAGE, allow_redirects=False)
    assert (answer.status, answer.headers["Location"]) == (303, "/console/login?next=%2Fconsole%2Fcontrols")
    answer = await d.client.post(f"{PAGE}/killswitch", data={"enabled": "on", "reason": "x"}, allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"].startswith("/console/login")
    assert not (await d.deps.coordination.kill_switch()).enabled


async def test_every_console_page_links_to_the_controls(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await signed_in(d, "alice")
    for path in ["/console/approvals", "/console/incidents", "/console/stats", PAGE]:
        text = await (await d.client.get(path)).text()
        assert f'<a href="{PAGE}">Controls</a>' in text, path


async def test_a_pause_until_a_time_ends_then(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    csrf = await signed_in(d)
    await post(d, "/pauses", {"csrf": csrf, "scope": "action", "match": "test.*", "reason": "x", "for": "",
                              "until": "2026-01-05T19:30:00+09:00"})  # 10:30 UTC
    assert await decided(d) is DecisionReason.PAUSED
    d.clock.advance(timedelta(minutes=90))
    assert "Nothing is paused." in await page(d)
    assert await decided(d) is DecisionReason.ALLOWED


async def test_the_api_refuses_what_the_page_refuses(make_daemon: DaemonFactory, logs: Logs) -> None:
    d = await make_daemon(POLICIES)
    before = await controls_state(d)
    for path, body in [("/api/v1/killswitch", {"enabled": True}), ("/api/v1/killswitch", {"enabled": True,
                                                                                          "reason": " "}),
                       ("/api/v1/pauses", {"scope": "policy", "match": "api-*", "reason": ""}),
                       ("/api/v1/circuits/close", {"action": "test.restart", "target": TARGET, "reason": ""})]:
        answer = await d.client.post(path, json=body, headers=d.auth("root"))
        assert answer.status == 400 and "reason" in (await answer.json())["detail"], (path, body)
        assert await controls_state(d) == before, (path, body)
    assert audited(logs) == []
