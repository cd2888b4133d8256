"""The image definition: read as text (no Docker engine runs here), and its health check run for real."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass

import pytest

from remediator.settings import Settings
from tests.conftest import ROOT
from tests.support.daemon import DaemonFactory

BASE_IMAGE = "python:3.11-slim"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form instruction (ENTRYPOINT, CMD, HEALTHCHECK ... CMD [...])."""
        found = re.search(r"\[.*\]\s*$", self.arguments)
        assert found, f"{self.keyword} {self.arguments!r} is not in exec form"
        value = json.loads(found.group(0))
        assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        return value


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\") if pending else stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            keyword, _, arguments = pending.strip().partition(" ")
            found.append(Instruction(keyword.upper(), " ".join(arguments.split())))
            pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return instructions((ROOT / "Dockerfile").read_text(encoding="utf-8"))


def final_stage(dockerfile: list[Instruction]) -> list[Instruction]:
    starts = [i for i, instruction in enumerate(dockerfile) if instruction.keyword == "FROM"]
    return dockerfile[starts[-1]:]


def the(stage: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def test_every_stage_is_built_on_python_311_slim(dockerfile: list[Instruction]) -> None:
    bases = [i.arguments.split()[0] for i in dockerfile if i.keyword == "FROM"]
    assert bases and all(base == BASE_IMAGE for base in bases), bases


def test_it_runs_as_a_non_root_user(dockerfile: list[Instruction]) -> None:
    user = the(final_stage(dockerfile), "USER").arguments.split(":")[0]
    assert user not in ("root", "0", ""), user
    # Nothing after USER switches back.
    stage = final_stage(dockerfile)
    assert stage.index(the(stage, "USER")) > max(i for i, x in enumerate(stage) if x.keyword in ("RUN", "COPY"))


def test_the_package_is_installed_with_the_pinned_constraints(dockerfile: list[Instruction]) -> None:
    copies = [i.arguments for i in dockerfile if i.keyword == "COPY"]
    assert any("constraints.txt" in c.split() for c in copies), copies
    installs = [i.arguments for i in dockerfile if i.keyword == "RUN" and "pip install" in i.arguments]
    assert installs, "no pip install"
    for command in installs:
        words = shlex.split(command.replace("&&", " ; "))
        flags = {w for w in words if w in ("-c", "--constraint")} | {w for w in words if w.startswith("--constraint=")}
        assert flags and "constraints.txt" in " ".join(words), f"pip install without constraints.txt: {command}"


def test_entrypoint_and_command_run_the_daemon(dockerfile: list[Instruction]) -> None:
    stage = final_stage(dockerfile)
    assert the(stage, "ENTRYPOINT").exec_form() == ["remediator"]
    assert the(stage, "CMD").exec_form() == ["serve"]
    assert the(stage, "STOPSIGNAL").arguments == "SIGTERM"


def test_both_listeners_listen_on_every_interface_at_their_default_ports(dockerfile: list[Instruction]) -> None:
    stage = final_stage(dockerfile)
    env = " ".join(i.arguments for i in stage if i.keyword == "ENV").split()
    defaults = Settings()
    for prefix, listen in (("REMEDIATOR_LISTEN", defaults.listen), ("REMEDIATOR_ADMIN_LISTEN", defaults.admin_listen)):
        assert f"{prefix}__HOST=0.0.0.0" in env and f"{prefix}__PORT={listen.port}" in env
    # The webhooks' port first (the one the public load balancer exposes), then the admin port.
    assert the(stage, "EXPOSE").arguments.split() == [str(defaults.listen.port), str(defaults.admin_listen.port)]


def test_the_health_check_asks_healthz_with_a_timeout_and_without_curl(dockerfile: list[Instruction]) -> None:
    check = the(final_stage(dockerfile), "HEALTHCHECK")
    assert "--timeout=" in check.arguments
    command = check.exec_form()
    assert command[0] == "python" and "curl" not in " ".join(command)
    assert "/healthz" in command[-1] and "timeout=" in command[-1]


def test_dockerignore_lets_in_everything_the_dockerfile_copies(dockerfile: list[Instruction]) -> None:
    ignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore, "the context starts from nothing"
    for copy in (i for i in dockerfile if i.keyword == "COPY" and "--from=" not in i.arguments):
        *sources, _ = [word for word in copy.arguments.split() if not word.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert f"!{source}" in ignore, f"{source} is copied but .dockerignore leaves it out"


async def _health_check(command: list[str], port: int) -> int:
    env = {**os.environ, "REMEDIATOR_LISTEN__PORT": str(port)}
    process = await asyncio.create_subprocess_exec(sys.executable, *command[1:], env=env,
                                                   stdout=asyncio.subprocess.DEVNULL,
                                                   stderr=asyncio.subprocess.DEVNULL)
    return await asyncio.wait_for(process.wait(), 30)


async def test_the_health_check_passes_on_a_live_daemon_and_fails_without_one(
    dockerfile: list[Instruction], start_daemon: DaemonFactory,
) -> None:
    command = the(final_stage(dockerfile), "HEALTHCHECK").exec_form()
    daemon = await start_daemon()
    port = daemon.client.server.port
    assert port is not None
    assert await _health_check(command, port) == 0
    await daemon.client.close()
    assert await _health_check(command, port) != 0
