"""A TCP proxy in front of a real server that a test can cut and restore: faults by real mechanisms.

`cut("refuse")` drops every connection and stops listening (the server is down: connections are
refused); `cut("blackhole")` drops every connection and then accepts new ones without ever
answering (a partition: only timeouts notice). `restore()` forwards again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

Mode = Literal["open", "refuse", "blackhole"]


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.mode: Mode = "open"
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        if self.mode != "open":
            return  # blackhole: hold the socket open, never answer
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.add(up_writer)
        for task in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            running = asyncio.create_task(task)
            self._tasks.add(running)
            running.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.transport.abort()

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def cut(self, mode: Literal["refuse", "blackhole"] = "refuse") -> None:
        self.mode = mode
        if mode == "refuse" and self._server is not None:
            self._server.close()
            self._server = None
        self._drop_all()
        await asyncio.sleep(0)

    async def restore(self) -> None:
        self._drop_all()  # what the blackhole held was never answered: those clients time out anyway
        self.mode = "open"
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
