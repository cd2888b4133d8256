"""Webhook intake in processes of their own.

`remediator serve` (the core process: engine, API, console, coordination, timers) opens the
public webhook listener's socket and starts `intake.processes` intake processes that accept on
it. An intake process serves the public listener's routes only (`web/routes.public_app`:
webhooks, `/healthz`, a 404 for everything else) — verify, parse, hand the alerts to the core
over its private unix socket, answer — and never relays a person's request: the API and the
console are the core's own admin listener. Intake counters are sent to the core every second, so
`/metrics` stays one view.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from remediator.daemon.app import build_deps
from remediator.daemon.runtime import tune_gc
from remediator.errors import StoreUnavailable
from remediator.model import Alert, alert_to_wire
from remediator.observability import Metrics, get_logger
from remediator.settings import Settings
from remediator.web.routes import public_app

log = get_logger("remediator.intake")

IN_FLIGHT = 4  # calls to the core at once


class CoreRecorder:
    """The intake side of recording: alerts go to the core's engine, which alone writes the store.

    Alerts of requests that arrive together travel in one call (and one commit at the core): one
    writer for the whole daemon means no lock contention, and an ack still means "stored".
    """

    def __init__(self) -> None:
        self.accepting = True
        self.core: aiohttp.ClientSession | None = None
        self._pending: list[tuple[Sequence[Alert], asyncio.Future[list[bool]]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, core: aiohttp.ClientSession) -> None:
        self.core = core
        self._task = asyncio.create_task(self._run(), name="intake-recorder")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def record(self, alerts: Sequence[Alert]) -> list[bool]:
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._pending.append((alerts, future))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        # A few calls in flight: the next batch travels while the core commits the previous one.
        slots = asyncio.Semaphore(IN_FLIGHT)
        sending: set[asyncio.Task[None]] = set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await slots.acquire()
            batch, self._pending = self._pending, []
            if not batch:
                slots.release()
                continue
            task = asyncio.create_task(self._send(batch))
            sending.add(task)

            def finished(done: asyncio.Task[None]) -> None:
                sending.discard(done)
                slots.release()

            task.add_done_callback(finished)

    async def _send(self, batch: list[tuple[Sequence[Alert], asyncio.Future[list[bool]]]]) -> None:
        assert self.core is not None
        wire = [alert_to_wire(a) for alerts, _ in batch for a in alerts]
        try:
            async with self.core.post("http://core/internal/record", data=orjson.dumps({"alerts": wire}),
                                      headers={"Content-Type": "application/json"}) as answer:
                if answer.status != 200:
                    raise StoreUnavailable(f"the core answered {answer.status}")
                fresh = orjson.loads(await answer.read())["fresh"]
        except (aiohttp.ClientError, StoreUnavailable) as exc:
            failure = exc if isinstance(exc, StoreUnavailable) else StoreUnavailable(f"core unreachable: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        position = 0
        for alerts, future in batch:
            if not future.done():
                future.set_result(fresh[position : position + len(alerts)])
            position += len(alerts)


RECORDER = web.AppKey("recorder", CoreRecorder)


class AckBound:
    """The recorder as webhook handlers see it: an answer within `store.ack_timeout` — queueing
    here, the hand-off to the core and its commit — or StoreUnavailable (503, the sender retries).
    What the core goes on to store is then a duplicate of the retry, processed once."""

    def __init__(self, recorder: CoreRecorder, seconds: float) -> None:
        self.recorder, self.seconds = recorder, seconds

    @property
    def accepting(self) -> bool:
        return self.recorder.accepting

    async def record(self, alerts: Sequence[Alert]) -> list[bool]:
        try:
            async with asyncio.timeout(self.seconds):
                return await self.recorder.record(alerts)
        except TimeoutError:
            raise StoreUnavailable(f"not stored within store.ack_timeout ({self.seconds:g}s)") from None


class CounterRelay:
    """Counter increments of this process, sent to the core (which adds them to its own)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.sent: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def deltas(self) -> list[list[Any]]:
        found = []
        for family in self.metrics.registry.collect():
            if family.type != "counter":
                continue
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                key = (sample.name, tuple(sorted(sample.labels.items())))
                delta = sample.value - self.sent.get(key, 0.0)
                if delta:
                    found.append([sample.name, dict(sample.labels), delta])
                    self.sent[key] = sample.value
        return found

    async def flush(self, core: aiohttp.ClientSession) -> None:
        deltas = self.deltas()
        if not deltas:
            return
        try:
            async with core.post("http://core/internal/counters", json={"counters": deltas}) as answer:
                answer.raise_for_status()
        except aiohttp.ClientError:
            for name, labels, delta in deltas:  # keep them for the next flush
                key = (name, tuple(sorted(labels.items())))
                self.sent[key] -= delta

    async def run(self, core: aiohttp.ClientSession, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush(core)


def build_intake_app(settings: Settings, core_socket: str) -> web.Application:
    """The public webhook listener of an intake process, recording through the core."""
    deps = build_deps(settings, owner=False)
    recorder = CoreRecorder()
    app = public_app(settings, deps, AckBound(recorder, settings.store.ack_timeout.total_seconds()))
    app[RECORDER] = recorder

    async def resources(app: web.Application) -> AsyncIterator[None]:
        # No cookie jar: this session carries the intake's own calls to the core, nobody else's.
        core = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=core_socket),
                                     timeout=aiohttp.ClientTimeout(total=60), cookie_jar=aiohttp.DummyCookieJar())
        recorder.start(core)
        relay = CounterRelay(deps.metrics)
        task = asyncio.create_task(relay.run(core), name="intake-counters")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await relay.flush(core)
            await recorder.stop()
            await core.close()

    app.cleanup_ctx.append(resources)
    return app


def die_with_parent() -> None:
    """Linux: SIGTERM this process when the core dies (even by SIGKILL), so no intake outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def serve_intake(settings: Settings, listen_fd: int, core_socket: str) -> None:
    """Accept on the inherited socket until SIGTERM; then finish what is in flight and exit."""
    die_with_parent()
    sock = socket.socket(fileno=listen_fd)
    app = build_intake_app(settings, core_socket)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=settings.engine.stop_timeout.total_seconds())
    await runner.setup()
    tune_gc()
    await web.SockSite(runner, sock).start()
    log.info("intake_ready", port=sock.getsockname()[1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    app[RECORDER].accepting = False
    await runner.cleanup()
    log.info("intake_stopped")
