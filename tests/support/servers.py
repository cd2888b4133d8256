"""Real PostgreSQL and Redis for the tests: the ones already listening, or private ones started here.

The suite must not depend on what a session left running. `REMEDIATOR_TEST_PG_DSN` and
`REMEDIATOR_TEST_REDIS_URL` name servers to use (default: the machine's, on 127.0.0.1); when the
named server does not answer — or `REMEDIATOR_TEST_PRIVATE_SERVERS=1` — a private instance is
started on a free port in a temporary directory and stopped at the end of the session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

PG_ENV = "REMEDIATOR_TEST_PG_DSN"
REDIS_ENV = "REMEDIATOR_TEST_REDIS_URL"
PRIVATE_ENV = "REMEDIATOR_TEST_PRIVATE_SERVERS"
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

# Taken out of the environment when the tests start: the daemon reads every REMEDIATOR_* variable
# as a setting, so daemons and CLI commands started by tests must not inherit these.
CHOSEN: dict[str, str] = {name: os.environ.pop(name) for name in (PG_ENV, REDIS_ENV, PRIVATE_ENV)
                          if name in os.environ}


def private_forced() -> bool:
    return CHOSEN.get(PRIVATE_ENV, "") not in ("", "0", "false", "no")


def answers(url: str, default_port: int, timeout: float = 0.5) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds}s")


def postgres_binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not candidates:
        raise RuntimeError(f"{name} not found on PATH or in /usr/lib/postgresql/*/bin: install PostgreSQL")
    return candidates[-1]


class PrivatePostgres:
    """initdb + pg_ctl in a temporary directory, trust auth, loopback only, no fsync (test data)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="remediator-pg-"))
        # initdb refuses to run as root: run the server as an unprivileged user then.
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        subprocess.run(args, check=True, user=self.user, cwd=self.root, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=120)

    def start(self) -> str:
        data = self.root / "data"
        self._run(postgres_binary("initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync",
                  "-E", "UTF8", "--no-instructions")
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(postgres_binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(self.root / "log"), "-w",
                  "-t", "60", "start")
        _wait_for_port(self.port, 30)
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self._run(postgres_binary("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """redis-server on a free port, nothing persisted, as a child process."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found on PATH: install Redis")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_port(self.port, 15)
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
