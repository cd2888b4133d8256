"""The approvals JSON API: who may do what, and bad input refused with nothing changed."""

from __future__ import annotations

from typing import Any

import pytest

from remediator.model import ApprovalStatus
from tests.support import builders
from tests.web.conftest import Daemon, DaemonFactory

POLICIES = """
policies:
  - name: api-restart
    severity: P1
    match: {alertname: ApiDown}
    actions:
      - type: test.restart
        params: {service: "{labels.service}"}
"""
DOWN = builders.alert("ApiDown", fingerprint="fp-api", group="api", labels={"service": "erp-api"})


async def _pending(d: Daemon) -> dict[str, Any]:
    await d.deliver(DOWN)
    answer = await d.client.get("/api/v1/approvals", headers=d.auth("victor"))
    assert answer.status == 200
    [approval] = (await answer.json())["approvals"]
    return dict(approval)


async def test_list_shows_the_plan_in_plain_words(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    approval = await _pending(d)
    assert approval["status"] == "pending" and approval["severity"] == "P1"
    assert approval["plan"]["action"] == "test.restart" and approval["plan"]["target"] == "svc:erp-api"
    assert approval["plan"]["params"] == {"service": "erp-api"}
    assert approval["plan"]["summary"].startswith("Restart a service")
    assert approval["requested_by"] == "policy:api-restart" and approval["required"] == 1
    one = await d.client.get(f"/api/v1/approvals/{approval['id']}", headers=d.auth("victor"))
    assert (await one.json())["plan"]["hash"] == approval["plan"]["hash"]


async def test_approve_runs_the_plan_and_answers_with_its_outcome(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    approval = await _pending(d)
    answer = await d.client.post(f"/api/v1/approvals/{approval['id']}/approve", headers=d.auth("alice"),
                                 json={"plan_hash": approval["plan"]["hash"], "reason": "ward 4 cannot chart"})
    body = await answer.json()
    assert answer.status == 200, body
    assert body["status"] == "approved" and body["outcome"] == "succeeded" and body["approvers"] == ["alice"]
    assert d.action.runs == ["erp-api"]
    history = await d.client.get("/api/v1/approvals?status=all", headers=d.auth("victor"))
    assert [a["status"] for a in (await history.json())["approvals"]] == ["approved"]


async def test_reject_closes_it(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    approval = await _pending(d)
    answer = await d.client.post(f"/api/v1/approvals/{approval['id']}/reject", headers=d.auth("bob"),
                                 json={"plan_hash": approval["plan"]["hash"], "reason": "restarting hides the leak"})
    assert answer.status == 200 and (await answer.json())["status"] == "rejected" and d.action.runs == []


@pytest.mark.parametrize(("who", "body", "status", "error"), [
    (None, {"plan_hash": "0" * 64, "reason": "x"}, 401, "unauthorized"),
    ("victor", {"plan_hash": "0" * 64, "reason": "x"}, 403, "forbidden"),
    ("alice", "not json", 400, "malformed_json"),
    ("alice", ["a list"], 400, "invalid_payload"),
    ("alice", {"plan_hash": "PLAN", "reason": "ok"}, 400, "invalid_payload"),
    ("alice", {"reason": "ok"}, 400, "invalid_payload"),
    ("alice", {"plan_hash": "{hash}", "reason": "   "}, 400, "invalid_payload"),
    ("alice", {"plan_hash": "{hash}", "reason": "x" * 501}, 400, "invalid_payload"),
    ("alice", {"plan_hash": "0" * 64, "reason": "I saw another plan"}, 409, "stale_plan"),
])
async def test_refused_votes_change_nothing(make_daemon: DaemonFactory, who: str | None, body: Any, status: int,
                                            error: str) -> None:
    d = await make_daemon(POLICIES)
    approval = await _pending(d)
    if isinstance(body, dict) and body.get("plan_hash") == "{hash}":
        body = {**body, "plan_hash": approval["plan"]["hash"]}
    headers = d.auth(who) if who else {}
    if isinstance(body, str):
        answer = await d.client.post(f"/api/v1/approvals/{approval['id']}/approve", headers=headers, data=body)
    else:
        answer = await d.client.post(f"/api/v1/approvals/{approval['id']}/approve", headers=headers, json=body)
    assert answer.status == status
    assert (await answer.json())["error"] == error
    # What must not have happened: a vote recorded, a status changed, the action run.
    stored = await d.deps.store.get_approval(approval["id"])
    assert stored is not None and stored.status is ApprovalStatus.PENDING and stored.votes == ()
    assert d.action.runs == []


async def test_a_second_vote_of_the_same_person_is_refused(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES, approvals={"approvers_by_severity": {"P1": 2}})
    approval = await _pending(d)
    vote = {"plan_hash": approval["plan"]["hash"], "reason": "checked"}
    first = await d.client.post(f"/api/v1/approvals/{approval['id']}/approve", headers=d.auth("alice"), json=vote)
    assert (await first.json())["status"] == "pending"
    again = await d.client.post(f"/api/v1/approvals/{approval['id']}/approve", headers=d.auth("alice"), json=vote)
    assert again.status == 409 and (await again.json())["error"] == "already_voted"
    assert d.action.runs == []
    second = await d.client.post(f"/api/v1/approvals/{approval['id']}/approve", headers=d.auth("bob"), json=vote)
    assert (await second.json())["outcome"] == "succeeded" and d.action.runs == ["erp-api"]


async def test_unknown_approval_and_bad_queries(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    missing = await d.client.post("/api/v1/approvals/APR-000000000000/approve", headers=d.auth("alice"),
                                  json={"plan_hash": "0" * 64, "reason": "x"})
    assert missing.status == 404
    assert (await d.client.get("/api/v1/approvals/APR-000000000000", headers=d.auth("alice"))).status == 404
    bad = await d.client.get("/api/v1/approvals?status=maybe", headers=d.auth("alice"))
    assert bad.status == 400 and "status must be one of all, pending" in (await bad.json())["detail"]
