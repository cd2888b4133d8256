"""`remediator serve`: run the daemon until SIGTERM/SIGINT, then stop gracefully.

With `intake.processes` > 0 (the default) this process is the core — engine, API, coordination,
timers — on a private unix socket, and intake processes accept on the public socket (see
`intake.py`). SIGTERM stops the intakes first (no new alerts; what they hold is acknowledged or
refused), then the engine finishes what it is doing; the exit code is 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from remediator.daemon.app import build_app
from remediator.daemon.runtime import tune_gc
from remediator.observability import get_logger
from remediator.settings import Settings

log = get_logger("remediator.serve")


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _describe(settings: Settings, port: int, **extra: object) -> None:
    log.info("serving", host=settings.listen.host, port=port, mode=settings.mode.value,
             store=settings.store.url.split("@")[-1], coordination=settings.coordination.url.split("@")[-1],
             policies=str(settings.policies_dir), **extra)


async def serve(settings: Settings, config: Path | None = None) -> None:
    """Listen, then on a signal: stop accepting, finish in-flight requests and work, close, return."""
    if settings.intake.processes:
        await _serve_with_intake(settings, config)
        return
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=settings.engine.stop_timeout.total_seconds())
    await runner.setup()
    tune_gc()
    site = web.TCPSite(runner, settings.listen.host, settings.listen.port)
    await site.start()
    _describe(settings, runner.addresses[0][1] if runner.addresses else settings.listen.port)
    await _stop_event().wait()
    log.info("stopping")
    await runner.cleanup()
    log.info("stopped")


class IntakeProcesses:
    """The intake processes: started on the shared socket, restarted if one dies, stopped first."""

    def __init__(self, settings: Settings, config: Path | None, listener: socket.socket, core: str) -> None:
        self.count = settings.intake.processes
        self.stop_timeout = settings.engine.stop_timeout.total_seconds()
        self.command = [sys.executable, "-m", "remediator", *(["--config", str(config)] if config else []),
                        "intake", "--listen-fd", str(listener.fileno()), "--core-socket", core]
        self.fd = listener.fileno()
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.processes = [self._spawn(index) for index in range(self.count)]

    def _spawn(self, index: int) -> subprocess.Popen[bytes]:
        # --index: the process names itself intake-1, intake-2 ... in its log lines.
        return subprocess.Popen([*self.command, "--index", str(index + 1)], pass_fds=[self.fd])

    async def supervise(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for index, process in enumerate(self.processes):
                if process.poll() is not None:
                    log.error("intake_died", pid=process.pid, code=process.returncode)
                    self.processes[index] = self._spawn(index)

    async def stop(self) -> Sequence[int | None]:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(await asyncio.to_thread(process.wait, self.stop_timeout))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(await asyncio.to_thread(process.wait))
        return codes


async def _serve_with_intake(settings: Settings, config: Path | None) -> None:
    listener = socket.create_server((settings.listen.host, settings.listen.port), backlog=1024)
    listener.set_inheritable(True)
    with tempfile.TemporaryDirectory(prefix="remediator-") as private:
        core = str(Path(private) / "core.sock")
        app = build_app(settings, behind_intake=True)
        runner = web.AppRunner(app, access_log=None, handle_signals=False,
                               shutdown_timeout=settings.engine.stop_timeout.total_seconds())
        await runner.setup()
        tune_gc()
        await web.UnixSite(runner, core).start()
        intakes = IntakeProcesses(settings, config, listener, core)
        intakes.start()
        supervisor = asyncio.create_task(intakes.supervise(), name="intake-supervisor")
        _describe(settings, listener.getsockname()[1], intake_processes=settings.intake.processes)
        await _stop_event().wait()
        log.info("stopping")
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        codes = await intakes.stop()
        listener.close()
        await runner.cleanup()
        log.info("stopped", intake_exit_codes=list(codes))
