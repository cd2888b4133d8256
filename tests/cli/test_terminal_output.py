"""The `remediator` command never hands a terminal the escape sequences an alert's sender wrote.

A daemon (in this process, on a SQLite file) records an alert whose name and labels carry a
screen clear, an OSC 8 link, a C1 CSI, a NUL and a newline; an approver's vote reason carries a
screen clear too. Every command that shows stored or simulated values then runs against it: its
output holds no control character (text keeps its own newlines only, one line per entry), and
JSON output still carries the exact values, escaped.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from remediator.cli.commands import main
from remediator.settings import token_digest
from tests.conftest import ROOT
from tests.support.alertmanager import webhook_body
from tests.support.daemon import Daemon, DaemonFactory

NAME = "Hostile<!channel>\x1b[2J\x1b]8;;http://evil.example\x07open\x1b]8;;\x07\x9b31m\x00\nforged line"
INSTANCE = "db-1\r\nPOLICY OK\x1b[1A"
VOTE_REASON = "no\x1b[2J\x07 thanks"
BOB = "bob-approver-token-0123456789"
# Terminal controls: every C0 but the newline, DEL, C1, and the bidirectional overrides.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
POLICIES = """
name: hostile-p1
severity: P1
match: {source: alertmanager, alertname: {glob: "Hostile*"}}
actions:
  - type: ecs.force_new_deployment
    params: {cluster: erp-prod, service: erp-api}
---
name: hostile-label-as-service
severity: P3
match: {source: alertmanager, alertname: {glob: "Hostile*"}}
actions:
  - type: ecs.force_new_deployment
    params: {cluster: erp-prod, service: "{labels.instance}"}  # refused: the audit keeps what was rendered
"""
FIXTURE = """
cases:
  - name: hostile
    payload: ../payload.json
    alerts:
      - matched: []
        requests: []
"""


@pytest.fixture
async def recorded(start_daemon: DaemonFactory, tmp_path: Path) -> tuple[Daemon, Path]:
    """A daemon that recorded the hostile alert and a hostile vote; the settings file the CLI reads."""
    daemon = await start_daemon(policies=POLICIES, mode="enforce", api={"tokens": [
        {"name": "bob", "sha256": token_digest(BOB), "roles": ["approver"]}]})
    body = webhook_body(NAME, {"instance": INSTANCE}, summary=NAME, fingerprint="f00d",
                        starts_at=datetime(2026, 1, 5, 9, tzinfo=UTC))
    (tmp_path / "payload.json").write_bytes(body)
    assert (await daemon.client.post("/webhooks/alertmanager", data=body,
                                     headers={"Authorization": "Bearer am-secret"})).status == 200
    await daemon.engine.drain()
    bearer = {"Authorization": f"Bearer {BOB}"}
    [approval] = (await (await daemon.admin.get("/api/v1/approvals", headers=bearer)).json())["approvals"]
    vote = {"plan_hash": approval["plan"]["hash"], "reason": VOTE_REASON}
    answer = await daemon.admin.post(f"/api/v1/approvals/{approval['id']}/reject", json=vote, headers=bearer)
    assert answer.status == 200, await answer.text()
    config = tmp_path / "settings.yaml"
    config.write_text(f'store: {{url: "sqlite:///{daemon.db}"}}\npolicies_dir: "{tmp_path / "policies"}"\n')
    return daemon, config


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command's exit code, stdout and stderr."""
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_shown_safely(output: str) -> None:
    assert not CONTROL.search(output), repr(output)
    assert not any(line.startswith(("forged line", "POLICY OK")) for line in output.split("\n"))


def strings_in(document: Any) -> list[str]:
    if isinstance(document, dict):
        return [s for v in document.values() for s in strings_in(v)]
    if isinstance(document, list):
        return [s for v in document for s in strings_in(v)]
    return [document] if isinstance(document, str) else []


# Each command, and the part of the hostile values it shows (what a terminal needs no Slack escaping for).
TEXT_COMMANDS: dict[str, tuple[Callable[[Path, str], list[str]], str]] = {
    "incidents list": (lambda config, url: ["--config", str(config), "incidents", "list"], "Hostile<!channel>"),
    "postmortem": (lambda config, url: ["--config", str(config), "postmortem", "INC-2026-00001", "-f", "-"],
                   "Hostile&lt;!channel&gt;open forged line"),  # Markdown: escaped as HTML
    "simulate": (lambda config, url: ["--config", str(config), "simulate", str(config.parent / "payload.json")],
                 "Hostile<!channel>"),
    "test": (lambda config, url: ["--config", str(config), "test", str(config.parent / "policies"), "--fixtures",
                                  str(config.parent / "fixtures")], "Hostile<!channel>"),
    "approvals list": (lambda config, url: ["approvals", "--url", url, "--token", BOB, "list", "--status", "all"],
                       "bob rejected at"),
}
# Each command, and a value (as the sender wrote it) its JSON must hold exactly.
JSON_COMMANDS: dict[str, tuple[Callable[[Path, str], list[str]], str]] = {
    "incidents show": (lambda config, url: ["--config", str(config), "-o", "json", "incidents", "show",
                                                   "INC-2026-00001"],
                       f"{NAME} on {INSTANCE}"),
    "audit": (lambda config, url: ["--config", str(config), "audit", "-o", "json"], INSTANCE),
    "approvals list --json": (lambda config, url: ["approvals", "--url", url, "--token", BOB, "--json", "list",
                                                   "--status", "all"], VOTE_REASON),
}


@pytest.mark.parametrize("command", sorted(TEXT_COMMANDS))
async def test_text_output_carries_no_control_and_no_forged_line(
    command: str, recorded: tuple[Daemon, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    daemon, config = recorded
    (config.parent / "fixtures").mkdir()
    (config.parent / "fixtures" / "hostile.yaml").write_text(FIXTURE)
    argv, shown = TEXT_COMMANDS[command]
    code, output, errors = await run(capsys, *argv(config, str(daemon.admin.make_url(""))))
    output += errors
    assert code in (0, 1), output  # `test` fails its case on purpose: its report names the alert
    assert shown in output
    assert_shown_safely(output)


@pytest.mark.parametrize("command", sorted(JSON_COMMANDS))
async def test_json_output_escapes_controls_and_keeps_the_values_exact(
    command: str, recorded: tuple[Daemon, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    daemon, config = recorded
    argv, exact = JSON_COMMANDS[command]
    code, output, errors = await run(capsys, *argv(config, str(daemon.admin.make_url(""))))
    assert code == 0, output + errors
    assert not CONTROL.search(output.replace("\n", "") + errors.replace("\n", "")), repr(output + errors)
    assert exact in strings_in(orjson.loads(output))


async def test_simulate_json_is_the_whole_of_stdout_and_keeps_the_values_exact(
    recorded: tuple[Daemon, Path],
) -> None:
    """Run as users run it: its logs (a P1 hold warns that nobody is told) go to stderr, never into the JSON."""
    _, config = recorded
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "remediator", "--config", str(config), "simulate", "--json",
        str(config.parent / "payload.json"), cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert not CONTROL.search(out.decode().replace("\n", "")) and not CONTROL.search(err.decode().replace("\n", ""))
    plan = orjson.loads(out)
    assert plan["alerts"][0]["alert"]["name"] == NAME and plan["alerts"][0]["alert"]["labels"]["instance"] == INSTANCE
    assert b"approval_not_announced" in err  # the log went where logs go
