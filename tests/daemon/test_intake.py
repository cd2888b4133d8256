"""The intake's hand-off to the core (`CoreRecorder` → `/internal/record`), against a real core.

The core is the daemon's own internal app with its engine and a SQLite store, served on a unix
socket as `remediator serve` serves it; the calls the recorder makes are observed with an aiohttp
trace (the size of each), not replaced.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from remediator.clock import FakeClock
from remediator.daemon.app import build_deps, build_listeners
from remediator.daemon.intake import FRAME, CoreRecorder
from remediator.errors import BadRequest, StoreUnavailable
from remediator.model import Alert, alert_to_wire
from remediator.settings import Settings
from remediator.web.bodies import SERVER_OPTIONS
from remediator.web.internal import handoff_limit
from tests.support.builders import alert


@dataclass
class Core:
    socket: str
    db: Path
    calls: list[int] = field(default_factory=list)  # the body size of each hand-off call
    _opened: list[tuple[CoreRecorder, aiohttp.ClientSession]] = field(default_factory=list)

    async def recorder(self, limit: int) -> CoreRecorder:
        trace = aiohttp.TraceConfig()

        async def sent(_: aiohttp.ClientSession, __: SimpleNamespace, params: Any) -> None:
            self.calls.append(len(params.chunk))

        trace.on_request_chunk_sent.append(sent)
        session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=self.socket), trace_configs=[trace])
        recorder = CoreRecorder(limit)
        recorder.start(session)
        self._opened.append((recorder, session))
        return recorder

    def stored(self) -> int:
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute("SELECT count(DISTINCT key) FROM alert_keys").fetchone()[0])

    async def close(self) -> None:
        for recorder, session in self._opened:
            await recorder.stop()
            await session.close()


@pytest.fixture
async def core(make_settings: Callable[..., Settings], clock: FakeClock, tmp_path: Path) -> AsyncIterator[Core]:
    settings = make_settings(max_body_bytes=4096)
    listeners = build_listeners(settings, build_deps(settings, clock=clock))
    admin = web.AppRunner(listeners.admin, **SERVER_OPTIONS)  # opens the store, starts the engine
    await admin.setup()
    internal = web.AppRunner(listeners.internal, **SERVER_OPTIONS)
    await internal.setup()
    path = str(tmp_path / "core.sock")
    await web.UnixSite(internal, path).start()
    found = Core(path, settings.store.sqlite_path)
    yield found
    await found.close()
    await internal.cleanup()
    await admin.cleanup()


def alerts(tag: str, count: int) -> list[Alert]:
    return [alert(fingerprint=f"{tag}-{n}") for n in range(count)]


def wire_size(item: Alert) -> int:
    return len(orjson.dumps(alert_to_wire(item)))


async def test_concurrent_requests_share_calls_that_never_pass_the_limit(core: Core) -> None:
    limit = FRAME + 6 * (wire_size(alert(fingerprint="r0-0")) + 1)  # about six alerts a call
    recorder = await core.recorder(limit)
    requests = [alerts(f"r{n}", 1 + n % 4) for n in range(20)]  # 50 alerts in 20 requests
    answers = await asyncio.gather(*(recorder.record(r) for r in requests))
    assert answers == [[True] * len(r) for r in requests]
    assert core.stored() == 50
    assert max(core.calls) <= limit and len(core.calls) >= 50 // 6
    # The same requests again: every alert is a duplicate, and each request hears about its own.
    again = await asyncio.gather(*(recorder.record([*r, alert(fingerprint=f"new-{i}")])
                                   for i, r in enumerate(requests)))
    assert again == [[False] * len(r) + [True] for r in requests]
    assert core.stored() == 70


async def test_a_request_larger_than_one_call_is_split_and_answered_once_all_is_recorded(core: Core) -> None:
    limit = FRAME + 10 * (wire_size(alert(fingerprint="big-00")) + 1)
    recorder = await core.recorder(limit)
    answer = await recorder.record(alerts("big", 95))
    assert answer == [True] * 95 and core.stored() == 95
    assert len(core.calls) >= 10 and max(core.calls) <= limit


async def test_the_core_accepts_what_the_limit_derived_from_max_body_bytes_allows(core: Core) -> None:
    """The core's own limit (handoff_limit of its max_body_bytes) takes calls packed to that limit."""
    limit = handoff_limit(4096)
    recorder = await core.recorder(limit)
    count = 2 * limit // wire_size(alert(fingerprint="full-0000"))  # two calls, the first one full
    assert await recorder.record(alerts("full", count)) == [True] * count
    assert core.stored() == count and max(core.calls) <= limit and len(core.calls) >= 2


async def test_an_alert_that_could_never_be_handed_over_is_refused_not_retried(core: Core) -> None:
    recorder = await core.recorder(FRAME + 100)
    with pytest.raises(BadRequest) as refused:
        await recorder.record(alerts("huge", 1))
    assert refused.value.status == 413
    assert core.calls == [] and core.stored() == 0


async def test_an_empty_request_needs_no_call(core: Core) -> None:
    recorder = await core.recorder(handoff_limit(4096))
    assert await recorder.record([]) == []
    assert core.calls == []


async def test_when_the_core_is_unreachable_the_request_is_store_unavailable(core: Core, tmp_path: Path) -> None:
    session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(tmp_path / "nobody.sock")))
    recorder = CoreRecorder(handoff_limit(4096))
    recorder.start(session)
    try:
        with pytest.raises(StoreUnavailable):
            await recorder.record(alerts("lost", 3))
    finally:
        await recorder.stop()
        await session.close()
    assert core.stored() == 0
