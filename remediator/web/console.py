"""The /approvals page: sign in with an API token, see what waits, approve or reject with a reason.

No front-end build: server-rendered HTML (`console_html`), forms that POST, redirects after
each POST. Votes go to the engine's approval desk, exactly as through the JSON API. The token
travels once, in the login form's body; it is never put in a URL, a cookie or a log line.
Every POST carries a CSRF token (the login form a double-submitted nonce) and must come from
this site (Origin), on top of SameSite=Strict cookies.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from remediator.errors import StoreUnavailable
from remediator.incidents.approvals import Refusal, is_requester
from remediator.model import Approval, ApprovalStatus, Choice, Vote
from remediator.observability import get_logger
from remediator.web import console_html as ui
from remediator.web.keys import DEPS, ENGINE, SESSIONS
from remediator.web.sessions import LOGIN_COOKIE, PATH, Session
from remediator.web.views import action_summary

log = get_logger("remediator.console")

APPROVAL_ID = re.compile(r"^APR-[0-9A-F]{12}$")
PLAN_HASH = re.compile(r"^[0-9a-f]{64}$")
HISTORY = 20
MESSAGES = {
    "signed_out": ("Signed out.", True),
    "recorded": ("Your approval is recorded; it waits for more approvers.", True),
    "rejected": ("Rejected: nothing will run.", True),
    "no_longer_needed": ("Its alert has resolved: the approval is closed and nothing ran.", True),
    "invalid": ("A reason is required, and the plan must be the one shown.", False),
    "bad_csrf": ("The form had expired; nothing was changed. Please try again.", False),
    "forbidden": ("Your token may view approvals but not decide on them.", False),
    **{r.value: (f"Not taken ({r.value.replace('_', ' ')}): nothing was changed.", False) for r in Refusal},
    Refusal.STALE_PLAN.value: ("The plan changed since you loaded the page: nothing was changed. "
                               "Look at the current plan and decide again.", False),
}


def _secure(response: web.StreamResponse) -> web.StreamResponse:
    response.headers.update({
        "Content-Security-Policy": ui.CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
    })
    return response


def _html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html", charset="utf-8")
    _secure(response)
    return response


def _back(**query: str) -> web.Response:
    """303 back to the page (after a POST), with the outcome's code in the query: never a secret."""
    location = "/approvals" + (f"?{urlencode(query)}" if query else "")
    response = web.Response(status=303, headers={"Location": location})
    _secure(response)
    return response


def _same_site(request: web.Request) -> bool:
    """A POST from a page of this site (browsers send Origin on every cross-site POST)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    public = urlsplit(request.app[DEPS].settings.public_url)
    allowed = {f"{request.scheme}://{request.host}", f"{public.scheme}://{public.netloc}"}
    return origin in allowed


def _now(request: web.Request) -> datetime:
    return request.app[DEPS].clock.now()


async def show(request: web.Request) -> web.Response:
    """GET /approvals: the login form, or the pending approvals and the last decisions."""
    keeper = request.app[SESSIONS]
    session = keeper.read(request, _now(request))
    if session is None:
        response = _html("")
        response.text = ui.page(ui.login_form(keeper.login_nonce(request, response)), None)
        return response
    try:
        body = await _approvals(request, session)
        flash = await _flash(request)
    except StoreUnavailable:
        return _html(ui.page(ui.flash_box("The store cannot be reached; try again shortly.", False), session), 503)
    return _html(ui.page(body, session, flash))


async def _approvals(request: web.Request, session: Session) -> ui.Markup:
    deps = request.app[DEPS]
    store, now = deps.store, _now(request)
    pending = sorted(await store.list_approvals(ApprovalStatus.PENDING, limit=200), key=lambda a: a.expires_at)
    items = []
    for approval in pending:
        may, why = _may_vote(session, approval)
        incident, alert = await store.get_incident(approval.incident_id), await store.get_alert(approval.alert_id)
        policy = deps.policies.by_name(approval.policy)
        items.append(ui.Pending(approval, action_summary(deps.registry, approval.action),
                                f"Policy {approval.policy}: {policy.description.strip()}" if policy and
                                policy.description else "", incident, alert, may, why))
    recent = [a for a in await store.list_approvals(None, limit=200) if not a.open]
    decided = sorted(recent, key=lambda a: a.decided_at or a.created_at, reverse=True)[:HISTORY]
    return ui.approvals_body(items, decided, session, now)


def _may_vote(session: Session, approval: Approval) -> tuple[bool, str]:
    if not session.may_decide:
        return False, "You may view this approval; deciding needs the approver role."
    if is_requester(approval, session.name):
        return False, "You requested this action: someone else must decide."
    if any(v.by == session.name for v in approval.votes):
        waiting = approval.required - len(approval.approvers)
        return False, f"You approved this; it waits for {waiting} more approver(s)."
    return True, ""


async def _flash(request: web.Request) -> ui.Markup:
    code, approval_id = request.query.get("done", ""), request.query.get("approval", "")
    if code == "approved" and APPROVAL_ID.match(approval_id):
        approval = await request.app[DEPS].store.get_approval(approval_id)
        if approval is not None:
            result = approval.outcome.value if approval.outcome else "not known yet"
            return ui.flash_box(f"{approval.id} approved: {approval.action} on {approval.target} ran — "
                                f"{result}. {approval.detail}", approval.outcome is not None)
    message, good = MESSAGES.get(code, ("", True))
    if not message:
        return ui.Markup("")
    return ui.flash_box(f"{approval_id}: {message}" if APPROVAL_ID.match(approval_id) else message, good)


async def login(request: web.Request) -> web.StreamResponse:
    """POST /approvals/login: a token in the form body starts a session (the token is not kept)."""
    keeper = request.app[SESSIONS]
    form = await request.post()
    token, nonce = str(form.get("token", "")), str(form.get("nonce", ""))
    entry = keeper.token_for(token) if token else None
    if not _same_site(request) or not keeper.login_nonce_ok(request, nonce) or entry is None:
        log.warning("console_login_refused", remote=request.remote, known_token=entry is not None)
        response = _html("", 401)
        fresh = ui.login_form(keeper.login_nonce(request, response))
        response.text = ui.page(ui.join([ui.flash_box("Sign-in failed: unknown token, or the form had expired.",
                                                      False), fresh]), None)
        return response
    log.info("console_login", who=entry.name)
    redirect = _back()
    keeper.open(redirect, entry, _now(request))
    redirect.del_cookie(LOGIN_COOKIE, path=PATH)
    return redirect


async def logout(request: web.Request) -> web.StreamResponse:
    keeper = request.app[SESSIONS]
    session = keeper.read(request, _now(request))
    form = await request.post()
    if session is not None and _same_site(request) and keeper.csrf_ok(session, str(form.get("csrf", ""))):
        redirect = _back(done="signed_out")
        keeper.close(redirect)
        return redirect
    return _back()


async def decide(request: web.Request) -> web.StreamResponse:
    """POST /approvals/{id}/decide: approve or reject, naming the plan hash the page showed."""
    keeper = request.app[SESSIONS]
    approval_id = request.match_info["id"]
    session = keeper.read(request, _now(request))
    if session is None:
        return _back()
    form = await request.post()
    if not _same_site(request) or not keeper.csrf_ok(session, str(form.get("csrf", ""))):
        log.warning("console_csrf_refused", who=session.name, remote=request.remote)
        return _back(done="bad_csrf")
    if not session.may_decide:
        return _back(done="forbidden", approval=approval_id)
    reason, plan_hash = str(form.get("reason", "")).strip(), str(form.get("plan_hash", ""))
    choice = {"approve": Choice.APPROVE, "reject": Choice.REJECT}.get(str(form.get("choice", "")))
    if choice is None or not reason or len(reason) > 500 or not PLAN_HASH.match(plan_hash):
        return _back(done="invalid", approval=approval_id)
    vote = Vote(by=session.name, choice=choice, reason=reason, plan_hash=plan_hash, at=_now(request))
    answer = await request.app[ENGINE].approvals.vote(approval_id, vote)
    if answer.refusal is not None:
        return _back(done=answer.refusal.value, approval=approval_id)
    status = answer.approval.status if answer.approval else ApprovalStatus.PENDING
    done = {ApprovalStatus.PENDING: "recorded", ApprovalStatus.APPROVED: "approved",
            ApprovalStatus.REJECTED: "rejected", ApprovalStatus.NO_LONGER_NEEDED: "no_longer_needed"}.get(status, "")
    log.info("console_vote", who=session.name, approval_id=approval_id, choice=choice.value, status=status.value)
    return _back(done=done, approval=approval_id)
