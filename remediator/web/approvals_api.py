"""The approvals API: list them, and approve or reject one by naming the plan hash you saw.

Votes are taken by the engine's approval desk in this process (the daemon), never by a client:
the CLI and the console both come through here or through the same desk.
"""

from __future__ import annotations

import re

from aiohttp import web

from remediator.errors import BadRequest, StoreUnavailable
from remediator.incidents.approvals import REFUSAL_STATUS
from remediator.model import ApprovalStatus, Choice, Vote
from remediator.observability import get_logger
from remediator.web.common import STORE_DOWN, authorize, error_response, json_response, read_json_object, text_field
from remediator.web.keys import DEPS, ENGINE
from remediator.web.views import approval_view

log = get_logger("remediator.api.approvals")

PLAN_HASH = re.compile(r"^[0-9a-f]{64}$")
MAX_LIMIT = 1000


def _status_filter(request: web.Request) -> ApprovalStatus | None:
    raw = request.query.get("status", "pending")
    if raw == "all":
        return None
    try:
        return ApprovalStatus(raw)
    except ValueError:
        allowed = ", ".join(["all", *(s.value for s in ApprovalStatus)])
        raise BadRequest(400, "invalid_query", f"status must be one of {allowed}") from None


async def list_approvals(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        authorize(request, deps.settings.api, "viewer")
        status = _status_filter(request)
        raw = request.query.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
            raise BadRequest(400, "invalid_query", f"limit must be a whole number from 1 to {MAX_LIMIT}")
        found = await deps.store.list_approvals(status, incident_id=request.query.get("incident"), limit=int(raw))
    except BadRequest as error:
        return error_response(error)
    except StoreUnavailable:
        return json_response(STORE_DOWN, 503)
    return json_response({"approvals": [approval_view(a, deps.registry) for a in found]})


async def get_approval(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        authorize(request, deps.settings.api, "viewer")
        approval = await deps.store.get_approval(request.match_info["id"])
    except BadRequest as error:
        return error_response(error)
    except StoreUnavailable:
        return json_response(STORE_DOWN, 503)
    if approval is None:
        return json_response({"error": "not_found", "detail": "no such approval"}, 404)
    return json_response(approval_view(approval, deps.registry))


async def approve(request: web.Request) -> web.Response:
    return await _decide(request, Choice.APPROVE)


async def reject(request: web.Request) -> web.Response:
    return await _decide(request, Choice.REJECT)


async def _decide(request: web.Request, choice: Choice) -> web.Response:
    deps, desk = request.app[DEPS], request.app[ENGINE].approvals
    approval_id = request.match_info["id"]
    try:
        who = authorize(request, deps.settings.api, "approver")
        payload = await read_json_object(request)
        plan_hash = text_field(payload, "plan_hash", max_length=64)
        if not PLAN_HASH.match(plan_hash):
            raise BadRequest(400, "invalid_payload", "plan_hash must be the 64-character hex hash of the plan shown")
        reason = text_field(payload, "reason", max_length=500)
        vote = Vote(by=who, choice=choice, reason=reason, plan_hash=plan_hash, at=deps.clock.now())
        answer = await desk.vote(approval_id, vote)
    except BadRequest as error:
        return error_response(error)
    except StoreUnavailable:
        return json_response(STORE_DOWN, 503)
    if answer.refusal is not None:
        log.info("vote_refused", approval_id=approval_id, by=who, refusal=answer.refusal.value)
        return json_response({"error": answer.refusal.value, "detail": answer.detail},
                             REFUSAL_STATUS[answer.refusal])
    assert answer.approval is not None
    return json_response(approval_view(answer.approval, deps.registry))
