"""People see and close circuits: `GET /api/v1/circuits`, `POST /api/v1/circuits/close` (admin) and
`remediator circuits list|close`, run as a separate process against the daemon."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import orjson

from remediator.settings import token_digest
from tests.conftest import ROOT, T0
from tests.support.daemon import Daemon, DaemonFactory

ADMIN, VIEWER = "root-token-0123456789", "victor-token-0123456789"
TOKENS = [{"name": "root", "sha256": token_digest(ADMIN), "roles": ["admin"]},
          {"name": "victor", "sha256": token_digest(VIEWER), "roles": ["viewer"]}]
KEY = "ecs.force_redeploy:erp-prod/erp-api"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def open_circuit(start_daemon: DaemonFactory) -> Daemon:
    daemon: Daemon = await start_daemon(api={"tokens": TOKENS})
    for _ in range(3):  # what the executor counts after three failed runs (tests/guardrails/test_circuit.py)
        await daemon.deps.coordination.count_failure(KEY, T0, 3, "access_denied")
    return daemon


async def listed(daemon: Daemon) -> list[dict[str, Any]]:
    answer = await daemon.admin.get("/api/v1/circuits", headers=bearer(VIEWER))
    assert answer.status == 200
    circuits: list[dict[str, Any]] = (await answer.json())["circuits"]
    return circuits


async def test_a_viewer_sees_the_open_circuit_and_only_an_admin_closes_it(start_daemon: DaemonFactory) -> None:
    daemon = await open_circuit(start_daemon)
    [circuit] = await listed(daemon)
    assert (circuit["action"], circuit["target"], circuit["state"], circuit["failures"]) == (
        "ecs.force_redeploy", "erp-prod/erp-api", "open", 3)
    assert circuit["closes_at"] == "2026-01-05T09:30:00+00:00"  # the default cool-off, 30 minutes
    close = {"action": "ecs.force_redeploy", "target": "erp-prod/erp-api", "reason": "task role fixed"}
    refused = [
        await daemon.admin.post("/api/v1/circuits/close", json=close, headers=bearer(VIEWER)),
        await daemon.admin.post("/api/v1/circuits/close", json=close),
        await daemon.admin.post("/api/v1/circuits/close", json={**close, "reason": ""}, headers=bearer(ADMIN)),
        await daemon.admin.post("/api/v1/circuits/close", data=b"{", headers=bearer(ADMIN)),
    ]
    assert [r.status for r in refused] == [403, 401, 400, 400]
    assert len(await listed(daemon)) == 1  # none of them closed anything
    closed = await daemon.admin.post("/api/v1/circuits/close", json=close, headers=bearer(ADMIN))
    assert closed.status == 200 and (await closed.json())["by"] == "root"
    assert await listed(daemon) == []
    again = await daemon.admin.post("/api/v1/circuits/close", json=close, headers=bearer(ADMIN))
    assert again.status == 404 and (await again.json())["error"] == "not_found"


async def remediator(*argv: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remediator", *argv, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_command_lists_and_closes_through_the_daemon(start_daemon: DaemonFactory) -> None:
    daemon = await open_circuit(start_daemon)
    url = str(daemon.admin.make_url("")).rstrip("/")
    code, out, _ = await remediator("circuits", "--url", url, "--token", VIEWER, "list")
    assert code == 0 and out.startswith("ecs.force_redeploy on erp-prod/erp-api: open until 2026-01-05T09:30")
    code, out, _ = await remediator("-o", "json", "circuits", "--url", url, "--token", VIEWER, "list")
    assert code == 0 and [c["state"] for c in orjson.loads(out)["circuits"]] == ["open"]
    code, out, err = await remediator("circuits", "--url", url, "--token", VIEWER, "close", "ecs.force_redeploy",
                                      "erp-prod/erp-api", "--reason", "fixed")
    assert (code, out) == (1, "") and "forbidden" in err and len(await listed(daemon)) == 1
    code, _, err = await remediator("circuits", "--url", url, "--token", ADMIN, "close", "ecs.force_redeploy",
                                    "erp-prod/erp-api")
    assert code == 2 and "--reason" in err  # usage: nothing sent
    code, out, _ = await remediator("circuits", "--url", url, "--token", ADMIN, "-o", "json", "close",
                                    "ecs.force_redeploy", "erp-prod/erp-api", "--reason", "task role fixed")
    assert code == 0 and orjson.loads(out) == {"action": "ecs.force_redeploy", "target": "erp-prod/erp-api",
                                               "closed": True, "by": "root", "reason": "task role fixed"}
    assert await listed(daemon) == []
