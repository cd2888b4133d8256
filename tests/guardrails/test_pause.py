"""Scoped pause: the kill switch for one policy, action type or target, with who, why and until
when; set and ended through the API and `remediator pauses`, obeyed by the guardrails."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from typing import Any

import orjson
import pytest

from remediator.clock import FakeClock
from remediator.guardrails.pause import KIND, Pause
from remediator.model import DecisionReason, Verdict
from tests.conftest import ROOT, T0, corpus_file
from tests.guardrails.test_circuits_api import ADMIN, TOKENS, VIEWER, bearer
from tests.guardrails.test_guardrails import NOTIFY, guard_input, rails
from tests.support.daemon import Daemon, DaemonFactory

PAYLOAD = corpus_file("am-v0.25-firing-2-alerts.json").read_bytes()
AM = {"Authorization": "Bearer am-secret"}


async def paused(coordination: Any, scope: str, match: str, until: timedelta | None = None) -> None:
    pause = Pause.model_validate({"scope": scope, "match": match, "reason": "ward 4 network work", "by": "alice",
                                  "at": T0, "until": T0 + until if until else None})
    await coordination.put_control(KIND, pause.name, pause.model_dump_json().encode())


@pytest.mark.parametrize(("scope", "match", "request_fields", "covered"), [
    ("policy", "pg-*", {}, True),  # the builders' request is of policy pg-conns on notify:oncall
    ("policy", "api-*", {}, False),
    ("action", "notify.*", {}, True),
    ("action", "ecs.*", {}, False),
    ("target", "notify:oncall", {}, True),
    ("target", "notify:oncall", {"target": "notify:dba"}, False),
])
async def test_a_pause_denies_what_its_scope_matches(clock: FakeClock, scope: str, match: str,
                                                    request_fields: dict[str, Any], covered: bool) -> None:
    guardrails, coordination = rails()
    await paused(coordination, scope, match)
    decision = await guardrails.evaluate(guard_input(clock, action=NOTIFY, **request_fields))
    if covered:
        assert (decision.verdict, decision.reason) == (Verdict.DENY, DecisionReason.PAUSED)
        assert decision.detail == f"{scope} {match} paused by alice until ended: ward 4 network work"
    else:
        assert decision.verdict is Verdict.ALLOW


async def test_a_pause_ends_at_its_until(clock: FakeClock) -> None:
    guardrails, coordination = rails()
    await paused(coordination, "policy", "pg-*", until=timedelta(hours=1))
    assert (await guardrails.evaluate(guard_input(clock, action=NOTIFY))).reason is DecisionReason.PAUSED
    clock.advance(timedelta(hours=1))
    assert (await guardrails.evaluate(guard_input(clock, action=NOTIFY))).verdict is Verdict.ALLOW


async def deny_reasons(daemon: Daemon) -> set[str]:
    records = await daemon.deps.store.list_audit(None, 100)
    return {r.decision_reason.value for r in records}


async def test_through_the_api_a_paused_policy_records_alerts_and_acts_on_nothing(
        start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon(api={"tokens": TOKENS})
    pause = {"scope": "policy", "match": "pg-too-many-*", "reason": "DBA at work", "for": "2h"}
    refused = [
        await daemon.admin.post("/api/v1/pauses", json=pause, headers=bearer(VIEWER)),
        await daemon.admin.post("/api/v1/pauses", json={**pause, "until": "2026-01-05T12:00:00Z"},
                                headers=bearer(ADMIN)),
        await daemon.admin.post("/api/v1/pauses", json={**pause, "for": "-5m"}, headers=bearer(ADMIN)),
        await daemon.admin.post("/api/v1/pauses", json={**pause, "scope": "everything"}, headers=bearer(ADMIN)),
        await daemon.admin.post("/api/v1/pauses", json={**pause, "reason": ""}, headers=bearer(ADMIN)),
        await daemon.admin.post("/api/v1/pauses", json={**pause, "for": None, "until": "2026-01-05T08:00:00Z"},
                                headers=bearer(ADMIN)),  # in the past
    ]
    assert [r.status for r in refused] == [403, 400, 400, 400, 400, 400]
    assert await daemon.deps.coordination.controls(KIND) == {}  # none of them paused anything
    added = await daemon.admin.post("/api/v1/pauses", json=pause, headers=bearer(ADMIN))
    assert added.status == 201
    assert (await added.json())["until"] == "2026-01-05T11:00:00Z"  # T0 + 2h, who and why kept
    [shown] = (await (await daemon.admin.get("/api/v1/pauses", headers=bearer(VIEWER))).json())["pauses"]
    assert (shown["by"], shown["reason"]) == ("root", "DBA at work")

    assert (await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=AM)).status == 200
    await daemon.engine.drain()
    assert daemon.count("alerts") == 2 and await deny_reasons(daemon) == {"paused"}

    ended = await daemon.admin.post("/api/v1/pauses/end", json={"scope": "policy", "match": "pg-too-many-*"},
                                    headers=bearer(ADMIN))
    assert ended.status == 200
    again = await daemon.admin.post("/api/v1/pauses/end", json={"scope": "policy", "match": "pg-too-many-*"},
                                    headers=bearer(ADMIN))
    assert again.status == 404


async def remediator(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remediator", *argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    return process.returncode if process.returncode is not None else -1, out.decode(), err.decode()


async def test_the_command_pauses_lists_and_ends(start_daemon: DaemonFactory) -> None:
    daemon: Daemon = await start_daemon(api={"tokens": TOKENS})
    url = str(daemon.admin.make_url("")).rstrip("/")
    admin, viewer = ("--url", url, "--token", ADMIN), ("--url", url, "--token", VIEWER)
    code, out, _ = await remediator("pauses", *admin, "add", "target", "erp-prod-db*", "--reason", "patching",
                                    "--for", "90m")
    assert code == 0 and out == "target erp-prod-db*: paused by root at 2026-01-05T09:00:00Z until " \
                                "2026-01-05T10:30:00Z: patching\n"
    code, out, _ = await remediator("-o", "json", "pauses", *viewer, "list")
    assert code == 0 and [p["match"] for p in orjson.loads(out)["pauses"]] == ["erp-prod-db*"]
    code, _, err = await remediator("pauses", *admin, "add", "cluster", "x", "--reason", "no")
    assert code == 2 and "invalid choice: 'cluster'" in err  # usage: nothing sent
    code, _, err = await remediator("pauses", *viewer, "end", "target", "erp-prod-db*")
    assert code == 1 and "forbidden" in err
    code, out, _ = await remediator("pauses", *admin, "end", "target", "erp-prod-db*")
    assert (code, out) == (0, "ended: target erp-prod-db* (by root)\n")
    assert await daemon.deps.coordination.controls(KIND) == {}
