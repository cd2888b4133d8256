"""Group commit for alert intake: what arrives together is recorded in one statement.

Webhook requests that arrive while a batch is being written queue up; the next batch takes all of
them (up to `batch_max` alerts) and writes them with one `unnest` statement, one round trip and
one commit. Each caller resumes only once its own alerts are committed (or with the error that
prevented it), so "2xx only after commit" holds for every request in the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from remediator.errors import StoreUnavailable
from remediator.model import Alert

Batch = list[tuple[Alert, datetime]]
WriteBatch = Callable[[Batch], Awaitable[list[bool]]]


class AlertBatcher:
    """Queues `record_alerts` calls and writes them in batches, one batch at a time."""

    def __init__(self, write: WriteBatch, batch_max: int) -> None:
        self.write, self.batch_max = write, batch_max
        self._waiting: list[tuple[Batch, asyncio.Future[list[bool]]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0

    async def record(self, alerts: Sequence[Alert], lease_until: datetime) -> list[bool]:
        if not alerts:
            return []
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._waiting.append(([(alert, lease_until) for alert in alerts], future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="pg-alert-batches")
        return await future

    async def _write_all(self) -> None:
        while self._waiting:
            taken: list[tuple[Batch, asyncio.Future[list[bool]]]] = []
            size = 0
            while self._waiting and (not taken or size + len(self._waiting[0][0]) <= self.batch_max):
                item = self._waiting.pop(0)
                taken.append(item)
                size += len(item[0])
            batch = [entry for part, _ in taken for entry in part]
            try:
                results = await self.write(batch)
            except asyncio.CancelledError:
                self._fail([*taken, *self._waiting], StoreUnavailable("the store is closing"))
                self._waiting.clear()
                raise
            except Exception as exc:
                self._fail(taken, exc)
                continue
            self.batches += 1
            offset = 0
            for part, future in taken:
                if not future.done():
                    future.set_result(results[offset : offset + len(part)])
                offset += len(part)

    @staticmethod
    def _fail(taken: list[tuple[Batch, asyncio.Future[list[bool]]]], error: BaseException) -> None:
        for _, future in taken:
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
