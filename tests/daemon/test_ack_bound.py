"""An intake process answers within `store.ack_timeout`, whatever the core is doing (issue 12)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from remediator.daemon.intake import AckBound, CoreRecorder
from remediator.errors import StoreUnavailable
from remediator.web.internal import handoff_limit
from tests.support import builders


async def test_a_core_that_does_not_answer_is_a_503_within_the_ack_timeout(tmp_path: Path) -> None:
    """The core takes the hand-off and never answers (its store stalls): the sender is told to
    retry after the bound, not after the hand-off's own minute-long timeout."""
    entered = asyncio.Event()
    release = asyncio.Event()

    async def stalled(request: web.Request) -> web.Response:
        entered.set()
        await release.wait()
        return web.json_response({"fresh": [True]})

    app = web.Application()
    app.router.add_post("/internal/record", stalled)
    runner = web.AppRunner(app)
    await runner.setup()
    socket = str(tmp_path / "core.sock")
    await web.UnixSite(runner, socket).start()
    recorder = CoreRecorder(handoff_limit(1024 * 1024))
    session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=socket))
    recorder.start(session)
    bound = AckBound(recorder, 0.3)
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"store\.ack_timeout"):
            await bound.record([builders.alert()])
        waited = time.monotonic() - started
        assert entered.is_set() and waited < 5  # the bound (0.3 s), never the session's 60 s
        assert bound.accepting
        recorder.accepting = False
        assert not bound.accepting  # stopping is seen through the bound
    finally:
        release.set()
        await recorder.stop()
        await session.close()
        await runner.cleanup()
