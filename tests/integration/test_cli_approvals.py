"""`remediator approvals` against a real daemon process: the CLI only talks HTTP; the daemon acts.

The daemon runs as `python -m remediator serve` on free ports with a P1 policy whose
notify.webhook action is held; the CLI, run from an empty directory without settings, lists
and approves it; the daemon then posts the notification to a sink in this test.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest

from remediator.settings import token_digest
from tests.conftest import ROOT, T0
from tests.support.alertmanager import webhook_body
from tests.support.engine import WebhookSink

pytestmark = pytest.mark.integration

ALICE = "alice-cli-token-0123456789"
SETTINGS = """
mode: enforce
listen: {{host: 127.0.0.1, port: 0}}
admin_listen: {{host: 127.0.0.1, port: 0}}
store: {{url: "sqlite:///{db}"}}
policies_dir: {policies}
alertmanager: {{bearer_tokens: [am-token]}}
notify: {{oncall: {{url: "{sink}/oncall"}}, ward: {{url: "{sink}/ward"}}}}
api: {{tokens: [{{name: alice, sha256: {alice}, roles: [approver]}}]}}
log: {{level: info, format: json}}
"""
POLICY = """
name: api-down-tell-ward
severity: P1
match: {alertname: ApiDown}
actions:
  - type: notify.webhook
    params: {to: ward, text: "The ERP API is down: chart on paper until further notice"}
    guardrails: {require_approval: true}  # a P1 notification alone is not held; this one asks to be
"""


@dataclass
class Running:
    url: str  # the webhook listener
    admin_url: str  # the API the CLI talks to
    process: asyncio.subprocess.Process
    log: list[bytes]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@pytest.fixture
async def daemon(tmp_path: Path, sink: WebhookSink) -> AsyncIterator[Running]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p1.yaml").write_text(POLICY)
    config = tmp_path / "settings.yaml"
    config.write_text(SETTINGS.format(db=tmp_path / "remediator.db", policies=tmp_path / "policies", sink=sink.url,
                                      alice=token_digest(ALICE)))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remediator", "--config", str(config), "serve", cwd=tmp_path, env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert process.stdout is not None
    serving = None
    async with asyncio.timeout(20):
        while serving is None:
            line = await process.stdout.readline()
            assert line, "the daemon exited before serving"
            if b'"serving"' in line:
                serving = orjson.loads(line)
    log: list[bytes] = []

    async def drain(stream: asyncio.StreamReader) -> None:  # a full pipe would stall the daemon
        while line := await stream.readline():
            log.append(line)

    reader = asyncio.create_task(drain(process.stdout))
    yield Running(f"http://127.0.0.1:{serving['port']}", f"http://127.0.0.1:{serving['admin_port']}", process, log)
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(30):
        assert await process.wait() == 0  # a graceful stop
    await reader


async def _cli(tmp_path: Path, *args: str, token: str = ALICE, url: str) -> tuple[int, str, str]:
    empty = tmp_path / "cli-cwd"
    empty.mkdir(exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remediator", "approvals", *args, cwd=empty,
        env=_env(REMEDIATOR_URL=url, REMEDIATOR_TOKEN=token),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_cli_approves_and_the_daemon_acts(daemon: Running, sink: WebhookSink, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http:
        body = webhook_body("ApiDown", {"service": "erp-api"}, fingerprint="fp-api", starts_at=T0)
        answer = await http.post(f"{daemon.url}/webhooks/alertmanager", data=body,
                                 headers={"Authorization": "Bearer am-token", "Content-Type": "application/json"})
        assert answer.status == 200
    listing = ""
    async with asyncio.timeout(10):
        while "APR-" not in listing:
            code, listing, err = await _cli(tmp_path, "list", url=daemon.admin_url)
            assert code == 0, err
            await asyncio.sleep(0.1)
    assert "notify.webhook on notify:ward" in listing and "0/1 approvals" in listing
    found_id, found_hash = re.search(r"APR-[0-9A-F]{12}", listing), re.search(r"plan hash ([0-9a-f]{64})", listing)
    assert found_id and found_hash
    approval_id, plan_hash = found_id.group(0), found_hash.group(1)
    assert sink.to("ward") == []  # held: nothing was posted

    code, _, err = await _cli(tmp_path, "approve", approval_id, "--plan-hash", "f" * 64, "--reason", "x",
                              url=daemon.admin_url)
    assert code == 1 and "stale_plan" in err and sink.to("ward") == []
    code, _, err = await _cli(tmp_path, "approve", approval_id, "--reason", "x", url=daemon.admin_url)
    assert code == 2 and "give --plan-hash" in err  # usage: off a terminal the hash must be named
    code, _, err = await _cli(tmp_path, "approve", approval_id, "--plan-hash", plan_hash, "--reason", "ok",
                              token="not-a-token", url=daemon.admin_url)
    assert code == 1 and "unauthorized" in err and sink.to("ward") == []

    code, out, err = await _cli(tmp_path, "approve", approval_id, "--plan-hash", plan_hash,
                                "--reason", "ward 4 confirmed the outage", url=daemon.admin_url)
    assert code == 0, err
    assert "approved" in out and "result: succeeded" in out
    [posted] = sink.to("ward")
    assert posted["text"] == "The ERP API is down: chart on paper until further notice"
    assert ALICE not in out + err
    assert not any(ALICE.encode() in line for line in daemon.log)  # nor in the daemon's log


async def test_an_unreachable_daemon_is_said_plainly(tmp_path: Path) -> None:
    code, _, err = await _cli(tmp_path, "list", url="http://127.0.0.1:9")
    assert code == 3 and "cannot reach the daemon at http://127.0.0.1:9" in err
