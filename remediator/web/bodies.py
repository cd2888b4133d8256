"""Request bodies as sent: bounded, and inflated only by a handler that has checked credentials.

The daemon's servers never inflate a body themselves (`SERVER_OPTIONS`): aiohttp's own
decompression runs as bytes arrive, on the event loop, before any handler could check who is
sending. A route whose credentials travel in headers (Alertmanager) checks them, then calls
`read_inflated_body`, which inflates a bounded amount at a time, lets other requests run between
steps, and stops with 413 as soon as the inflated size passes the limit. Everything else calls
`read_body`, which refuses any `Content-Encoding` but `identity` with 415: SNS, whose credentials
(the signature) are inside the body, and the API. docs/wire-formats.md §7 has the answers.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from aiohttp import web

from remediator.errors import BadRequest

# Keyword arguments of every `web.AppRunner` (and test server) that serves the daemon's apps.
SERVER_OPTIONS: Final[dict[str, Any]] = {"auto_decompress": False}

IDENTITY: Final = "identity"
# zlib's wbits per coding: gzip framing, or the zlib framing HTTP calls "deflate".
INFLATABLE: Final = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
RAW_DEFLATE: Final = -zlib.MAX_WBITS  # "deflate" without its zlib header, as some clients send it
INFLATE_STEP: Final = 64 * 1024  # inflated bytes between two chances for other requests to run


def content_coding(request: web.Request, accepted: frozenset[str] = frozenset({IDENTITY})) -> str:
    """The body's one content coding (`identity` when none is named), or 415 if it is not accepted."""
    header = request.headers.get("Content-Encoding", "")
    codings = [c.strip().lower() for c in header.split(",") if c.strip()] or [IDENTITY]
    if len(codings) > 1 or codings[0] not in accepted:
        raise BadRequest(415, "unsupported_encoding", f"Content-Encoding {header!r} is not accepted here; "
                         f"send {' or '.join(sorted(accepted))}")
    return codings[0]


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, uncompressed as sent, or 413 as soon as it exceeds `limit` bytes (whatever
    Content-Length says); 415 if it names a content coding."""
    content_coding(request)
    return b"".join([chunk async for chunk in _raw_chunks(request, limit)])


async def read_inflated_body(request: web.Request, limit: int, inflated: Callable[[int], object]) -> bytes:
    """The body inflated (gzip, deflate or identity): 413 once either the bytes sent or the bytes
    inflated pass `limit`, 400 for a corrupt or truncated encoding, 415 for any other coding.

    Call it only after the request's credentials were checked: inflating is work done for the
    sender. `inflated` is told how many bytes were inflated, whatever the outcome.
    """
    coding = content_coding(request, frozenset({IDENTITY, *INFLATABLE}))
    if coding == IDENTITY:
        return await read_body(request, limit)
    inflater = Inflater(coding, limit)
    try:
        async for chunk in _raw_chunks(request, limit):
            await inflater.feed(chunk)
        return inflater.finish()
    finally:
        inflated(inflater.size)


async def _raw_chunks(request: web.Request, limit: int) -> AsyncIterator[bytes]:
    declared = request.content_length
    if declared is not None and declared > limit:
        raise BadRequest(413, "too_large", f"the body is {declared} bytes; the limit is {limit}")
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, "too_large", f"the body exceeds the limit of {limit} bytes")
        yield chunk
    if declared is not None and size < declared:
        raise BadRequest(400, "truncated_body", f"the body ended before its {declared} declared bytes")


class Inflater:
    """Inflates one gzip or deflate stream a step at a time, never past `limit` inflated bytes."""

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.size = 0
        self._parts: list[bytes] = []
        self._zlib: Any = None  # made on the first byte: "deflate" may come without its zlib header

    async def feed(self, data: bytes) -> None:
        """Inflate `data`; other tasks run between steps of INFLATE_STEP inflated bytes."""
        while data:
            if self._zlib is None:
                self._zlib = zlib.decompressobj(self._wbits(data[0]))
            try:
                out = self._zlib.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                raise BadRequest(400, "corrupt_encoding", f"the {self.coding} body is corrupt ({exc})") from None
            self.size += len(out)
            if self.size > self.limit:
                raise BadRequest(413, "too_large", f"the body inflates past the limit of {self.limit} bytes")
            self._parts.append(out)
            data = self._zlib.unconsumed_tail or self._next_member()
            await asyncio.sleep(0)

    def _wbits(self, first: int) -> int:
        if self.coding == "deflate" and first & 0x0F != 8:  # no zlib header (its low nibble is 8: deflate)
            return RAW_DEFLATE
        return INFLATABLE[self.coding]

    def _next_member(self) -> bytes:
        """What follows the end of a stream: gzip may have further members; anything else is corrupt."""
        if not self._zlib.eof or not self._zlib.unused_data:
            return b""
        rest: bytes = self._zlib.unused_data
        if INFLATABLE[self.coding] != INFLATABLE["gzip"]:
            raise BadRequest(400, "corrupt_encoding", f"data follows the end of the {self.coding} stream")
        self._zlib = None
        return rest

    def finish(self) -> bytes:
        """The inflated body; 400 when the stream stopped before its end."""
        if self._zlib is None or not self._zlib.eof:
            raise BadRequest(400, "corrupt_encoding", f"the {self.coding} body ends before its stream does")
        return b"".join(self._parts)
