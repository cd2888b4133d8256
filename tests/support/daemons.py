"""Real daemon processes (`python -m remediator serve`) on loopback, for replica and crash tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.conftest import ROOT
from tests.support.servers import free_port


class DaemonProcess:
    """One replica: its own ports (webhooks, admin) and log file, the shared settings otherwise."""

    def __init__(self, name: str, settings: dict[str, Any], folder: Path, *, module: str = "remediator",
                 env: dict[str, str] | None = None) -> None:
        # `module`: another entry point (the test build with crash points, tests/support/crashpoints.py).
        self.name, self.folder, self.module, self.extra_env = name, folder, module, env or {}
        self.port = free_port()
        self.admin_port = next(port for port in iter(free_port, 0) if port != self.port)
        self.settings = {**settings, "listen": {"host": "127.0.0.1", "port": self.port},
                         "admin_listen": {"host": "127.0.0.1", "port": self.admin_port}}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = folder / f"{name}.log"

    @property
    def url(self) -> str:
        """The public webhook listener."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def start(self, ready_within: float = 30.0) -> None:
        config = self.folder / f"{self.name}.yaml"
        config.write_text(yaml.safe_dump(self.settings), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")}
        env["PYTHONPATH"] = str(ROOT)
        env.update(self.extra_env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", self.module, "--config", str(config), "serve"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        await self._wait_ready(ready_within)

    async def _wait_ready(self, seconds: float) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")
                try:
                    # Both listeners: the admin one is up (and ready) a moment before the public one.
                    async with session.get(f"{self.admin_url}/readyz") as ready, \
                            session.get(f"{self.url}/healthz") as healthy:
                        if ready.status == 200 and healthy.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {seconds}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-4000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as when the host or the OOM killer ends it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    async def stop(self, within: float = 30.0) -> int:
        """SIGTERM and wait: the graceful stop ECS performs."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.process.wait, within)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9
