"""`remediator serve`: run the daemon until SIGTERM/SIGINT, then stop gracefully."""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from remediator.app import build_app
from remediator.observability import get_logger
from remediator.settings import Settings

log = get_logger("remediator.serve")


async def serve(settings: Settings) -> None:
    """Listen, then on a signal: stop accepting, finish in-flight requests and work, close, return."""
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=settings.engine.stop_timeout.total_seconds())
    await runner.setup()
    site = web.TCPSite(runner, settings.listen.host, settings.listen.port)
    await site.start()
    port = runner.addresses[0][1] if runner.addresses else settings.listen.port
    log.info("serving", host=settings.listen.host, port=port, mode=settings.mode.value,
             store=settings.store.url.split("@")[-1], coordination=settings.coordination.url.split("@")[-1],
             policies=str(settings.policies_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()
    log.info("stopped")
