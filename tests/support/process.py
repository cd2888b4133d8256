"""`remediator serve` as a separate process, started the way the README starts it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import ROOT


class DaemonProcess:
    """A daemon subprocess on free loopback ports; its JSON log lines are collected.

    `url` is the public webhook listener, `admin_url` the admin listener (API, console, metrics),
    both read off the `serving` line (settings may ask for port 0 for either)."""

    def __init__(self, settings: dict[str, Any], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.settings_path = workdir / "settings.yaml"
        self.settings_path.write_text(yaml.safe_dump(settings))
        # Only the settings given here: the test run's own REMEDIATOR_* variables are not the daemon's.
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("REMEDIATOR_")}
        self.env = {**inherited, "PYTHONPATH": str(ROOT), **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.url = self.admin_url = ""
        self._serving = threading.Event()

    def start(self, timeout: float = 30.0) -> DaemonProcess:
        self.lines, self.url, self.admin_url = [], "", ""
        self._serving.clear()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "remediator", "--config", str(self.settings_path), "serve"],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        if not self._serving.wait(timeout):
            self.kill()
            raise AssertionError("the daemon did not start:\n" + "\n".join(self.lines[-30:]))
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line.rstrip())
            event = self._event(line)
            if event.get("event") == "serving":
                self.url = f"http://127.0.0.1:{event['port']}"
                self.admin_url = f"http://127.0.0.1:{event['admin_port']}"
                self._serving.set()

    @staticmethod
    def _event(line: str) -> dict[str, Any]:
        try:
            parsed = json.loads(line)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in (self._event(line) for line in list(self.lines)) if e.get("event") == name]

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, as ECS stops a task; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    async def wait_for(self, predicate: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
        """Poll without blocking the event loop (a receiver in the test may have to answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await predicate():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\n" + "\n".join(self.lines[-30:]))
