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
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from remediator.daemon.app import build_deps
from remediator.daemon.runtime import tune_gc
from remediator.errors import BadRequest, StoreUnavailable
from remediator.model import Alert, alert_to_wire
from remediator.observability import Metrics, get_logger
from remediator.settings import Settings
from remediator.web.bodies import SERVER_OPTIONS
from remediator.web.internal import handoff_limit
from remediator.web.routes import public_app

log = get_logger("remediator.intake")

IN_FLIGHT = 4  # calls to the core at once
FRAME = len(b'{"alerts":[]}')


@dataclass
class _Handoff:
    """One request's alerts on their way to the core: answered when every one of them is."""

    future: asyncio.Future[list[bool]]
    fresh: list[bool]
    missing: int


class CoreRecorder:
    """The intake side of recording: alerts go to the core's engine, which alone writes the store.

    Alerts of requests that arrive together travel together (one commit at the core for many
    requests): one writer for the whole daemon means no lock contention. A call carries at most
    `limit` bytes (`web.internal.handoff_limit`, which the core accepts), so alerts are packed by
    size and a large request's alerts may travel in several calls; the request is answered once
    all of them are recorded, and refused (503, the sender retries) if any call failed. An ack
    still means "stored"; what a failed retry re-sends is recognised by its dedup keys.
    """

    def __init__(self, limit: int) -> None:
        self.accepting = True
        self.core: aiohttp.ClientSession | None = None
        self.limit = limit
        self._queue: deque[tuple[bytes, _Handoff, int]] = deque()
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
        if not alerts:
            return []
        wires = [orjson.dumps(alert_to_wire(alert)) for alert in alerts]
        largest = max(len(wire) for wire in wires)
        if FRAME + largest > self.limit:  # handoff_limit says why this cannot happen; refused, never retried
            raise BadRequest(413, "too_large", f"an alert of this body is {largest} bytes once parsed; "
                             f"the limit is {self.limit - FRAME}")
        handoff = _Handoff(asyncio.get_running_loop().create_future(), [False] * len(alerts), len(alerts))
        self._queue.extend((wire, handoff, index) for index, wire in enumerate(wires))
        self._wake.set()
        return await handoff.future

    def _next_call(self) -> list[tuple[bytes, _Handoff, int]]:
        """As many queued alerts, in order, as fit in one call."""
        call = [self._queue.popleft()]
        size = FRAME + len(call[0][0])
        while self._queue and size + 1 + len(self._queue[0][0]) <= self.limit:
            item = self._queue.popleft()
            call.append(item)
            size += 1 + len(item[0])
        return call

    async def _run(self) -> None:
        # A few calls in flight: the next batch travels while the core commits the previous one.
        slots = asyncio.Semaphore(IN_FLIGHT)
        sending: set[asyncio.Task[None]] = set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await slots.acquire()
                if not self._queue:
                    slots.release()
                    break
                task = asyncio.create_task(self._send(self._next_call()))
                sending.add(task)

                def finished(done: asyncio.Task[None]) -> None:
                    sending.discard(done)
                    slots.release()

                task.add_done_callback(finished)

    async def _send(self, call: list[tuple[bytes, _Handoff, int]]) -> None:
        assert self.core is not None
        body = b'{"alerts":[' + b",".join(wire for wire, _, _ in call) + b"]}"
        try:
            async with self.core.post("http://core/internal/record", data=body,
                                      headers={"Content-Type": "application/json"}) as answer:
                if answer.status != 200:
                    raise StoreUnavailable(f"the core answered {answer.status}")
                fresh = orjson.loads(await answer.read())["fresh"]
                if not isinstance(fresh, list) or len(fresh) != len(call):
                    raise StoreUnavailable(f"the core answered {len(call)} alerts with {fresh!r:.80}")
        except (aiohttp.ClientError, StoreUnavailable, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            failure = exc if isinstance(exc, StoreUnavailable) else \
                StoreUnavailable(f"the hand-off to the core failed: {exc!r}")
            for _, handoff, _ in call:
                if not handoff.future.done():
                    handoff.future.set_exception(failure)
            return
        for (_, handoff, index), is_new in zip(call, fresh, strict=True):
            handoff.fresh[index] = is_new
            handoff.missing -= 1
            if handoff.missing == 0 and not handoff.future.done():
                handoff.future.set_result(handoff.fresh)


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
    recorder = CoreRecorder(handoff_limit(settings.max_body_bytes))
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
                           shutdown_timeout=settings.engine.stop_timeout.total_seconds(), **SERVER_OPTIONS)
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
