"""A TCP proxy in front of a real server that a test can cut and restore: faults by real mechanisms.

`cut("refuse")` drops every connection and stops listening (the server is down: connections are
refused); `cut("blackhole")` drops every connection and then accepts new ones without ever
answering (a partition: only timeouts notice). `stall()` keeps every connection but holds the
bytes in both directions until `restore()` releases them (a server frozen, or a network that
buffers). `slow(seconds)` delays every chunk. `cut_at(b"COMMIT")` drops every connection when
the next client chunk containing the pattern arrives — before it reaches the server, or just after
(`after=True`: the server commits, the client never hears it). `restore()` forwards again on the
same port.
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
        self.delay = 0.0
        self.cuts = 0  # connections dropped by `cut_at`, all told
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._cut_at: tuple[bytes, bool] | None = None
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
        for task in (self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False)):
            running = asyncio.create_task(task)
            self._tasks.add(running)
            running.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, to_server: bool) -> None:
        try:
            while data := await source.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                await self._flowing.wait()
                armed = self._cut_at if to_server else None
                if armed is not None and armed[0] in data:
                    self._cut_at = None
                    if armed[1]:
                        sink.write(data)
                        await sink.drain()
                        await asyncio.sleep(0.05)  # let the server act on it; its answer is lost
                    self.cuts += len(self._writers)
                    self._drop_all()
                    return
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

    def stall(self) -> None:
        """Hold every byte, in both directions, on every connection, until `restore()`."""
        self._flowing.clear()

    def slow(self, seconds: float) -> None:
        """Delay every chunk by `seconds` (until `restore()`)."""
        self.delay = seconds

    def cut_at(self, pattern: bytes, *, after: bool = False) -> None:
        """Drop every connection when the next client chunk containing `pattern` arrives (once)."""
        self._cut_at = (pattern, after)

    async def restore(self) -> None:
        if self.mode != "open":
            self._drop_all()  # what the blackhole held was never answered: those clients time out anyway
        self.mode, self.delay, self._cut_at = "open", 0.0, None
        self._flowing.set()  # a stall ends: what it held goes on its way
        if self._server is None:
            await self.start()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        self._flowing.set()
        self._drop_all()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._tasks, return_exceptions=True)
