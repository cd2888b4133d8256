"""The console's approvals page: see what waits, approve or reject with a reason.

No front-end build: server-rendered HTML (`console_html`), forms that POST, redirects after
each POST. Votes go to the engine's approval desk, exactly as through the JSON API. Signing in,
the session every page needs and the CSRF rules are `console_auth`'s; `console_app` puts the
console's pages under one path prefix, behind its middlewares.
"""

from __future__ import annotations

import re

from aiohttp import web

from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.incidents.approvals import Refusal, is_requester
from remediator.model import Approval, ApprovalStatus, Choice, Vote
from remediator.observability import get_logger
from remediator.web import console_controls, console_pages
from remediator.web import console_html as ui
from remediator.web.console_auth import (
    SESSION,
    THROTTLE,
    SignInThrottle,
    back,
    html,
    now_of,
    require_session,
    same_site,
    sign_in,
    sign_in_form,
    sign_out,
    unavailable_page,
)
from remediator.web.console_incident import show_incident
from remediator.web.keys import DEPS, ENGINE, SESSIONS
from remediator.web.sessions import Session, SessionKeeper
from remediator.web.views import action_summary

log = get_logger("remediator.console")

APPROVAL_ID = re.compile(r"^APR-[0-9A-F]{12}$")
PLAN_HASH = re.compile(r"^[0-9a-f]{64}$")
HISTORY = 20
MESSAGES = {
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


async def show(request: web.Request) -> web.Response:
    """GET <prefix>/approvals: the pending approvals and the last decisions."""
    session = request[SESSION]
    body = await _approvals(request, session)
    return html(ui.page(body, session, await _flash(request), mode=request.config_dict[DEPS].settings.mode.value))


async def _approvals(request: web.Request, session: Session) -> ui.Markup:
    deps = request.config_dict[DEPS]
    store, now = deps.store, now_of(request)
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
        approval = await request.config_dict[DEPS].store.get_approval(approval_id)
        if approval is not None:
            result = approval.outcome.value if approval.outcome else "not known yet"
            return ui.flash_box(f"{approval.id} approved: {approval.action} on {approval.target} ran — "
                                f"{result}. {approval.detail}", approval.outcome is not None)
    message, good = MESSAGES.get(code, ("", True))
    if not message:
        return ui.Markup("")
    return ui.flash_box(f"{approval_id}: {message}" if APPROVAL_ID.match(approval_id) else message, good)


async def decide(request: web.Request) -> web.StreamResponse:
    """POST <prefix>/approvals/{id}/decide: approve or reject, naming the plan hash the page showed."""
    session, approval_id = request[SESSION], request.match_info["id"]
    form = await request.post()
    if not same_site(request) or not request.config_dict[SESSIONS].csrf_ok(session, str(form.get("csrf", ""))):
        log.warning("console_csrf_refused", who=session.name, remote=request.remote)
        return back(done="bad_csrf")
    if not session.may_decide:
        return back(done="forbidden", approval=approval_id)
    reason, plan_hash = str(form.get("reason", "")).strip(), str(form.get("plan_hash", ""))
    choice = {"approve": Choice.APPROVE, "reject": Choice.REJECT}.get(str(form.get("choice", "")))
    if choice is None or not reason or len(reason) > 500 or not PLAN_HASH.match(plan_hash):
        return back(done="invalid", approval=approval_id)
    vote = Vote(by=session.name, choice=choice, reason=reason, plan_hash=plan_hash, at=now_of(request))
    answer = await request.config_dict[ENGINE].approvals.vote(approval_id, vote)
    if answer.refusal is not None:
        return back(done=answer.refusal.value, approval=approval_id)
    status = answer.approval.status if answer.approval else ApprovalStatus.PENDING
    done = {ApprovalStatus.PENDING: "recorded", ApprovalStatus.APPROVED: "approved",
            ApprovalStatus.REJECTED: "rejected", ApprovalStatus.NO_LONGER_NEEDED: "no_longer_needed"}.get(status, "")
    log.info("console_vote", who=session.name, approval_id=approval_id, choice=choice.value, status=status.value)
    return back(done=done, approval=approval_id)


async def home(request: web.Request) -> web.StreamResponse:
    """GET <prefix>/: the approvals page (what may be waiting for the person signing in)."""
    return back()


def console_app(deps: Deps, engine: Engine) -> web.Application:
    """The console, mounted under `sessions.PATH` on the admin listener: every page behind a session."""
    app = web.Application(middlewares=[unavailable_page, require_session])
    app[SESSIONS] = SessionKeeper(deps.settings, deps.coordination)
    app[THROTTLE] = SignInThrottle(deps.coordination, deps.settings.api.sign_in_failures)
    app.router.add_get("/login", sign_in_form, name="sign_in_form")
    app.router.add_post("/login", sign_in, name="sign_in")
    app.router.add_post("/logout", sign_out)
    app.router.add_get("/", home)
    app.router.add_get("/approvals", show)
    app.router.add_post("/approvals/{id}/decide", decide)
    app.router.add_get("/incidents", console_pages.incidents)
    app.router.add_get("/incidents/{id}", console_pages.incident)
    app.router.add_get("/incidents/{id}/postmortem", console_pages.postmortem)
    app.router.add_get("/incidents/{id}/declaration", show_incident)
    app.router.add_get("/stats", console_pages.stats)
    console_controls.add_routes(app)
    return app
