"""The `remediator` command behaves like its neighbours (amtool, promtool), run as users run it: a
separate process whose stdout is parsed.

- `--version`; exit status 0 ok, 1 the input is bad, 2 usage (3: a server cannot be reached);
- `-o/--output text|json` before or after the command, on every command that prints data, and
  the JSON is the whole of stdout (logs go to stderr);
- no `==SUPPRESS==` in any `--help`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import orjson
import pytest

from remediator.cli.commands import parser
from remediator.daemon.app import build_deps
from remediator.engine.pipeline import Engine
from remediator.settings import load_settings
from remediator.sources.alertmanager import parse_alertmanager
from tests.conftest import ROOT
from tests.support.daemon import NOTIFY_POLICY

PAYLOAD = ROOT / "policies" / "fixtures" / "payloads" / "am-pg-too-many-connections.json"


def remediator(*argv: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "remediator", *argv], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """Settings with a SQLite store of their own and one policy with a passing and a failing fixture."""
    policies = tmp_path / "policies"
    (policies / "fixtures").mkdir(parents=True)
    (policies / "pg.yaml").write_text(NOTIFY_POLICY)
    shutil.copy(PAYLOAD, policies / "fixtures" / "payload.json")
    (tmp_path / "settings.yaml").write_text(
        f"policies_dir: {policies}\nstore: {{url: 'sqlite:///{tmp_path / 'store.db'}'}}\n"
        "notify: {oncall: {url: 'http://127.0.0.1:9/hook'}}\n")
    return tmp_path


def fixture_file(directory: Path, verdict: str) -> None:
    expected = {"policy": "pg-too-many-connections", "action": "notify.webhook", "target": "notify:oncall",
                "verdict": verdict}
    alert = {"matched": ["pg-too-many-connections"], "requests": [expected]}
    # The payload holds two alerts of one incident: the second notification is within the cooldown.
    second = {"matched": ["pg-too-many-connections"], "requests": [{**expected, "verdict": "deny"}]}
    case = {"name": f"expects-{verdict}", "payload": "payload.json", "alerts": [alert, second]}
    (directory / "fixtures" / "cases.yaml").write_text(orjson.dumps({"cases": [case]}).decode())


def test_version_is_the_installed_distributions() -> None:
    shown = remediator("--version")
    assert shown.returncode == 0 and shown.stderr == ""
    assert shown.stdout == f"remediator {version('remediator')}\n"


def subparsers(command: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[
        tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, command
    for action in command._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subparsers(sub, (*path, name))


def test_no_help_shows_argparse_internals() -> None:
    """Every command's --help (the ones people open most, as a process; all of them, as argparse prints them)."""
    every = dict(subparsers(parser()))
    assert len(every) > 15 and ("incidents", "stats") in every
    opened: list[tuple[str, ...]] = [(), ("incidents",), ("approvals", "list"), ("postmortem",)]
    for path in opened:
        shown = remediator(*path, "--help")
        assert shown.returncode == 0 and "usage: remediator" in shown.stdout, path
        assert "SUPPRESS" not in shown.stdout, path
        assert "--output" in shown.stdout, path  # the global option is offered where people look
    for path, command in every.items():
        assert "SUPPRESS" not in command.format_help(), path
        assert "--json" not in command.format_help(), f"{path}: the old spelling is accepted, not advertised"


@pytest.mark.parametrize(("argv", "status", "says"), [
    (["check", "{dir}/policies"], 0, "1 policies OK"),
    (["check", "{dir}/broken"], 1, "severity: Field required"),  # the input is bad
    (["check", "{dir}/nowhere"], 1, "nowhere"),
    (["--config", "{dir}/settings.yaml", "test", "{dir}/policies"], 1, "FAIL"),  # a failing case
    (["--config", "{dir}/settings.yaml", "simulate", "{dir}/settings.yaml"], 1, "neither an SNS envelope"),
    (["--config", "{dir}/missing.yaml", "incidents", "list"], 1, "missing.yaml"),
    (["--config", "{dir}/settings.yaml", "incidents", "show", "INC-2026-09999"], 1, "no incident INC-2026-09999"),
    (["check"], 2, "the following arguments are required: directory"),  # usage
    (["check", "{dir}/policies", "--colour"], 2, "unrecognized arguments: --colour"),
    (["-o", "yaml", "check", "{dir}/policies"], 2, "invalid choice: 'yaml'"),
    (["no-such-command"], 2, "invalid choice: 'no-such-command'"),
    (["--config", "{dir}/settings.yaml", "postmortem", "INC-2026-00001", "-o", "draft.md"], 2,
     "invalid choice: 'draft.md'"),  # -o is the output format now; the file is --file/-f
])
def test_exit_status_says_ok_bad_input_or_usage(workspace: Path, argv: list[str], status: int, says: str) -> None:
    (workspace / "broken").mkdir()
    (workspace / "broken" / "p.yaml").write_text("name: x\n")
    fixture_file(workspace / "policies", "deny")  # the notification is allowed: this case fails
    ran = remediator(*(a.format(dir=workspace) for a in argv), cwd=workspace)
    assert ran.returncode == status, ran.stdout + ran.stderr
    assert says in ran.stdout + ran.stderr
    assert not (workspace / "draft.md").exists()  # a usage error did nothing


def json_of(*argv: str, cwd: Path) -> Any:
    ran = remediator(*argv, cwd=cwd)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return orjson.loads(ran.stdout)  # the whole of stdout is one document


def test_every_command_that_prints_data_prints_json_with_o_json(workspace: Path) -> None:
    fixture_file(workspace / "policies", "allow")
    config = ("--config", str(workspace / "settings.yaml"))
    policies = str(workspace / "policies")
    assert json_of("-o", "json", "check", policies, cwd=workspace) == {
        "directory": policies, "valid": True, "policies": ["pg-too-many-connections"], "problems": []}
    report = json_of(*config, "test", policies, "-o", "json", cwd=workspace)
    assert (report["passed"], report["failed"], report["uncovered"]) == (1, 0, [])
    assert report["cases"][0]["name"] == "expects-allow" and report["cases"][0]["mismatches"] == []
    plan = json_of(*config, "simulate", str(PAYLOAD), "-o", "json", cwd=workspace)
    assert plan["mode"] == "dry-run" and [a["matched"] for a in plan["alerts"]] == [["pg-too-many-connections"]] * 2
    assert json_of(*config, "incidents", "list", "-o", "json", cwd=workspace) == []  # simulate stored nothing
    assert json_of(*config, "audit", "-o", "json", cwd=workspace) == []
    stats = json_of(*config, "-o", "json", "incidents", "stats", "--since", "2026-01-01", cwd=workspace)
    assert stats["incidents"]["total"] == 0 and stats["since"].startswith("2026-01-01")
    actions = json_of("actions", "-o", "json", cwd=workspace)
    assert "notify.webhook" in {a["type"] for a in actions}
    assert {"name", "type", "required", "default", "description"} <= set(actions[0]["parameters"][0])
    assert json_of("token", "hash", "s3cret", "-o", "json", cwd=workspace) == {
        "sha256": hashlib.sha256(b"s3cret").hexdigest()}


def test_o_json_before_and_after_the_command_is_the_same_and_text_is_the_default(workspace: Path) -> None:
    policies = str(workspace / "policies")
    before, after = remediator("-o", "json", "check", policies), remediator("check", policies, "--output", "json")
    assert before.stdout == after.stdout and orjson.loads(before.stdout)["valid"] is True
    assert remediator("check", policies).stdout == f"{policies}: 1 policies OK\n"
    assert orjson.loads(remediator("simulate", "--json", str(PAYLOAD)).stdout)["mode"] == "dry-run"  # old spelling


def test_logs_go_to_stderr_and_stdout_is_the_output_alone(workspace: Path) -> None:
    """The notification target's URL is unreachable: the dry-run precheck logs a warning. It lands on
    stderr; stdout is the plan, parsed whole."""
    (workspace / "settings.yaml").write_text(f"policies_dir: {workspace / 'policies'}\n")  # no `notify.oncall`
    ran = remediator("--config", str(workspace / "settings.yaml"), "-o", "json", "simulate", str(PAYLOAD))
    assert ran.returncode == 0, ran.stderr
    plan = orjson.loads(ran.stdout)
    assert plan["alerts"][0]["requests"][0]["outcome"] == "failed"  # oncall is not configured
    assert "action_request" in ran.stderr and "action_request" not in ran.stdout


async def record_payload(config: Path) -> None:
    """What the daemon does with the payload, into the workspace's store (dry-run)."""
    deps = build_deps(load_settings(config))
    engine = Engine(deps)
    await deps.store.open()
    await deps.coordination.open()
    try:
        alerts = parse_alertmanager(PAYLOAD.read_bytes(), deps.clock.now())
        await deps.store.record_alerts(alerts, deps.clock.now())
        await engine.process(alerts)
    finally:
        await deps.coordination.close()
        await deps.store.close()


def test_store_commands_show_the_same_records_as_text_and_as_json(workspace: Path) -> None:
    config = ("--config", str(workspace / "settings.yaml"))
    asyncio.run(record_payload(workspace / "settings.yaml"))
    [incident] = json_of(*config, "incidents", "list", "-o", "json", cwd=workspace)
    assert (incident["severity"], incident["status"], incident["alert_count"]) == ("P2", "open", 2)
    listed = remediator(*config, "incidents", "list", cwd=workspace).stdout.splitlines()
    assert len(listed) == 1 and listed[0].startswith(f"{incident['id']}  P2  open")
    shown = json_of(*config, "-o", "json", "incidents", "show", incident["id"], cwd=workspace)
    assert shown["id"] == incident["id"] and shown["timeline"]
    verdicts = sorted((a["verdict"], a["decision_reason"]) for a in shown["audit"])
    assert verdicts == [("allow", "allowed"), ("deny", "cooldown")]
    text = remediator(*config, "incidents", "show", incident["id"], cwd=workspace).stdout
    assert text.startswith(incident["id"]) and "allow (allowed)" in text and "deny (cooldown)" in text
    audit = json_of(*config, "audit", "--incident", incident["id"], "-o", "json", cwd=workspace)
    assert sorted(a["decision_reason"] for a in audit) == ["allowed", "cooldown"]
    assert len(remediator(*config, "audit", cwd=workspace).stdout.splitlines()) == 2

    written = json_of(*config, "postmortem", incident["id"], "-f", "draft.md", "-o", "json", cwd=workspace)
    assert written == {"incident": incident["id"], "file": "draft.md"}
    assert (workspace / "draft.md").read_text().startswith("#")
    again = remediator(*config, "postmortem", incident["id"], "--file", "draft.md", cwd=workspace)
    assert again.returncode == 1 and "exists" in again.stderr  # an edited draft is not overwritten
    to_stdout = json_of(*config, "postmortem", incident["id"], "-f", "-", "-o", "json", cwd=workspace)
    draft = (workspace / "draft.md").read_text()  # the same draft, but for the time it was made
    assert to_stdout["markdown"].splitlines()[:1] == draft.splitlines()[:1] and incident["id"] in draft


def test_postmortem_file_option_and_its_json_answer(workspace: Path) -> None:
    config = ("--config", str(workspace / "settings.yaml"))
    missing = remediator(*config, "postmortem", "INC-2026-00001", "--file", "draft.md", cwd=workspace)
    assert missing.returncode == 1 and "no incident INC-2026-00001" in missing.stderr
    assert missing.stdout == "" and not (workspace / "draft.md").exists()
