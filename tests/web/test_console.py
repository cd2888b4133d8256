"""The console over HTTP, on the admin listener: sessions, CSRF, escaping, headers (the browser test drives it too)."""

from __future__ import annotations

import re

import pytest
from aiohttp import ClientResponse

from remediator.errors import CoordinationUnavailable
from remediator.model import ApprovalStatus
from remediator.web.console_html import CSP
from tests.support import builders
from tests.web.conftest import TOKENS, Daemon, DaemonFactory

POLICIES = """
policies:
  - name: api-restart
    severity: P1
    match: {alertname: ApiDown}
    actions:
      - type: test.restart
        params: {service: erp-api}
"""
EVIL = '<img src=x onerror="alert(1)">'
DOWN = builders.alert("ApiDown", fingerprint="fp-api", group="api", labels={"service": "erp-api", "note": EVIL})


def _field(page: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', page)
    assert found, f"no {name} field"
    return found.group(1)


async def _sign_in(d: Daemon, who: str) -> str:
    login_page = await (await d.client.get("/console/login")).text()
    answer = await d.client.post("/console/login", data={"name": who, "token": TOKENS[who][0],
                                                        "nonce": _field(login_page, "nonce")},
                                 allow_redirects=False)
    assert answer.status == 303, await answer.text()
    return await (await d.client.get("/console/approvals")).text()


async def test_signing_in_sets_a_strict_httponly_secure_session_cookie(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES, public_url="https://remediator.hospital.example")
    login_page = await d.client.get("/console/login")
    assert 'type="password"' in await login_page.text()
    assert login_page.headers["Content-Security-Policy"] == CSP
    nonce = _field(await login_page.text(), "nonce")
    # Over https the browser would send the Secure login cookie back; this client needs telling.
    answer = await d.client.post("/console/login", allow_redirects=False, data={
        "name": "alice", "token": TOKENS["alice"][0], "nonce": nonce}, headers={"Cookie": f"remediator_login={nonce}"})
    assert answer.status == 303
    [cookie] = [c for c in answer.headers.getall("Set-Cookie") if c.startswith("remediator_session=")]
    for flag in ("HttpOnly", "SameSite=Strict", "Secure", "Path=/console"):
        assert flag in cookie
    assert TOKENS["alice"][0] not in cookie
    assert answer.headers["Location"] == "/console/approvals"  # no token in any URL


async def test_over_plain_http_the_cookie_is_not_marked_secure(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    login_page = await d.client.get("/console/login")
    assert "Secure" not in login_page.headers["Set-Cookie"]


async def test_a_wrong_token_or_a_forged_login_form_is_refused(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    nonce = _field(await (await d.client.get("/console/login")).text(), "nonce")
    wrong = await d.client.post("/console/login", data={"name": "alice", "token": "guess", "nonce": nonce},
                                allow_redirects=False)
    assert wrong.status == 401 and "Sign-in failed" in await wrong.text()
    # A genuine token under another person's name is no sign-in either.
    swapped = await d.client.post("/console/login", data={"name": "bob", "token": TOKENS["alice"][0],
                                                          "nonce": nonce}, allow_redirects=False)
    assert swapped.status == 401 and "remediator_session" not in swapped.headers.get("Set-Cookie", "")
    forged = await d.client.post("/console/login", data={"name": "alice", "token": TOKENS["alice"][0],
                                                         "nonce": "forged"}, allow_redirects=False)
    assert forged.status == 401 and "remediator_session" not in forged.headers.get("Set-Cookie", "")
    elsewhere = await d.client.post("/console/login", data={"name": "alice", "token": TOKENS["alice"][0],
                                                            "nonce": nonce},
                                    headers={"Origin": "https://evil.example"}, allow_redirects=False)
    assert elsewhere.status == 401
    counted = {reason: d.deps.metrics.registry.get_sample_value(
        "remediator_console_sign_in_failures_total", {"reason": reason}) for reason in
        ("unknown_token", "expired_form", "cross_site")}
    assert counted == {"unknown_token": 2, "expired_form": 1, "cross_site": 1}


async def test_what_alerts_say_is_escaped(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(DOWN)
    page = await _sign_in(d, "alice")
    assert EVIL not in page
    assert "note=&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page


async def test_a_decision_without_the_sessions_csrf_token_changes_nothing(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(DOWN)
    page = await _sign_in(d, "alice")
    [approval] = await d.deps.store.list_approvals()
    form = {"plan_hash": approval.plan_hash, "reason": "ok", "choice": "approve"}
    for csrf in ("", "0" * 43):
        answer = await d.client.post(f"/console/approvals/{approval.id}/decide", data={**form, "csrf": csrf},
                                     allow_redirects=False)
        assert answer.status == 303 and "bad_csrf" in answer.headers["Location"]
    cross = await d.client.post(f"/console/approvals/{approval.id}/decide", allow_redirects=False,
                                data={**form, "csrf": _field(page, "csrf")}, headers={"Origin": "https://evil.example"})
    assert "bad_csrf" in cross.headers["Location"]
    stored = await d.deps.store.get_approval(approval.id)
    assert stored is not None and stored.status is ApprovalStatus.PENDING and stored.votes == ()
    assert d.action.runs == []


async def test_a_viewer_sees_but_cannot_decide(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(DOWN)
    page = await _sign_in(d, "victor")
    assert "deciding needs the approver role" in page and 'value="approve"' not in page
    [approval] = await d.deps.store.list_approvals()
    answer = await d.client.post(f"/console/approvals/{approval.id}/decide", allow_redirects=False, data={
        "csrf": _field(page, "csrf"), "plan_hash": approval.plan_hash, "reason": "me too", "choice": "approve"})
    assert "forbidden" in answer.headers["Location"] and d.action.runs == []


async def test_approving_from_the_page_runs_the_plan(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(DOWN)
    page = await _sign_in(d, "alice")
    [approval] = await d.deps.store.list_approvals()
    answer: ClientResponse = await d.client.post(f"/console/approvals/{approval.id}/decide", data={
        "csrf": _field(page, "csrf"), "plan_hash": _field(page, "plan_hash"), "reason": "ward 4 is down",
        "choice": "approve"})
    text = await answer.text()
    assert f"{approval.id} approved: test.restart on svc:erp-api ran — succeeded" in text
    assert d.action.runs == ["erp-api"]
    assert "Nothing is waiting for a decision." in text and "alice approved: ward 4 is down" in text


async def test_a_removed_token_ends_its_sessions(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await _sign_in(d, "alice")
    keeper_settings = d.deps.settings.api
    object.__setattr__(keeper_settings, "tokens", [t for t in keeper_settings.tokens if t.name != "alice"])
    page = await (await d.client.get("/console/approvals")).text()
    assert 'type="password"' in page  # back to the sign-in form


async def test_without_its_sessions_store_the_console_says_so_and_lets_nobody_in(
    make_daemon: DaemonFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(DOWN)
    await _sign_in(d, "alice")

    async def unreachable(*args: object) -> None:
        raise CoordinationUnavailable("redis find session: no answer within 0.5s")

    monkeypatch.setattr(d.deps.coordination, "find_session", unreachable)
    answer = await d.client.get("/console/approvals", allow_redirects=False)
    # 503: a retry can work once the store is back; nothing of the page is shown meanwhile.
    assert answer.status == 503 and "try again" in await answer.text()
    assert "APR-" not in await answer.text() and "Signed in as" not in await answer.text()


async def test_the_console_home_and_what_the_admin_listener_does_not_serve(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    home = await d.client.get("/console/", allow_redirects=False)
    assert (home.status, home.headers["Location"]) == (303, "/console/login")  # no session yet
    await _sign_in(d, "alice")
    assert (await d.client.get("/console/", allow_redirects=False)).headers["Location"] == "/console/approvals"
    for path in ("/approvals", "/webhooks/alertmanager", "/internal/record"):
        missing = await d.client.post(path, data=b"{}")
        assert (missing.status, (await missing.json())["error"]) == (404, "not_found"), path
