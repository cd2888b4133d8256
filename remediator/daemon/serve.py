"""`remediator serve`: run the daemon until SIGTERM/SIGINT, then stop gracefully.

Two listeners, always on two ports (`web/routes.py`): the public webhook listener (`listen`) and
the admin listener (`admin_listen`: API, console, metrics), which this process, the core, serves
itself. With `intake.processes` > 0 (the default) intake processes accept on the public socket
and hand parsed alerts to the core over a private unix socket (see `intake.py`); with 0 the core
serves the public listener too. SIGTERM stops the public listener first (no new alerts; what it
holds is acknowledged or refused), then the engine finishes what it is doing; the exit code is 0.
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

from remediator.daemon.app import build_listeners
from remediator.daemon.runtime import tune_gc
from remediator.observability import get_logger
from remediator.settings import Settings
from remediator.web.bodies import SERVER_OPTIONS

log = get_logger("remediator.serve")


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _describe(settings: Settings, public: int, admin: int, **extra: object) -> None:
    log.info("serving", host=settings.listen.host, port=public, admin_host=settings.admin_listen.host,
             admin_port=admin, mode=settings.mode.value, store=settings.store.url.split("@")[-1],
             coordination=settings.coordination.url.split("@")[-1], policies=str(settings.policies_dir), **extra)


async def _runner(app: web.Application, settings: Settings) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=settings.engine.stop_timeout.total_seconds(), **SERVER_OPTIONS)
    await runner.setup()
    return runner


async def _tcp(runner: web.AppRunner, host: str, port: int) -> int:
    """Listen on host:port (0: any free port); the port listened on."""
    await web.TCPSite(runner, host, port).start()
    return int(runner.addresses[0][1])


async def serve(settings: Settings, config: Path | None = None) -> None:
    """Listen, then on a signal: stop accepting, finish in-flight requests and work, close, return."""
    if settings.intake.processes:
        await _serve_with_intake(settings, config)
        return
    listeners = build_listeners(settings)
    admin = await _runner(listeners.admin, settings)  # first: it opens what the webhooks need
    public = await _runner(listeners.public, settings)
    tune_gc()
    admin_port = await _tcp(admin, settings.admin_listen.host, settings.admin_listen.port)
    stop = _stop_event()  # before "serving": whoever reads that line may signal at once
    _describe(settings, await _tcp(public, settings.listen.host, settings.listen.port), admin_port)
    await stop.wait()
    log.info("stopping")
    await public.cleanup()
    await admin.cleanup()
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
        listeners = build_listeners(settings)
        admin = await _runner(listeners.admin, settings)
        internal = await _runner(listeners.internal, settings)
        tune_gc()
        await web.UnixSite(internal, core).start()
        admin_port = await _tcp(admin, settings.admin_listen.host, settings.admin_listen.port)
        intakes = IntakeProcesses(settings, config, listener, core)
        intakes.start()
        supervisor = asyncio.create_task(intakes.supervise(), name="intake-supervisor")
        stop = _stop_event()
        _describe(settings, listener.getsockname()[1], admin_port, intake_processes=settings.intake.processes)
        await stop.wait()
        log.info("stopping")
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        codes = await intakes.stop()
        listener.close()
        await internal.cleanup()
        await admin.cleanup()
        log.info("stopped", intake_exit_codes=list(codes))
