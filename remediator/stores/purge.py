"""The purge: each kind's expired rows, day by day, oldest first, in small batches.

For a kind that is archived, a day's rows are exported first (one object), and deleted only once
the object is written; if the export fails, nothing of that day is deleted and the failure is
counted (`remediator_retention_failures_total`). Between batches the purge yields, so ingest and
the engine keep going: each batch is one short transaction (SQLite: one job on the writer, behind
every waiting acknowledgement).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta

from remediator.aws.clients import AWS_ERRORS
from remediator.clock import Clock
from remediator.errors import CoordinationUnavailable, StoreUnavailable
from remediator.observability import Metrics, get_logger
from remediator.settings import RetentionSettings
from remediator.stores.archive import Archive, DayObject
from remediator.stores.coordination import Coordination
from remediator.stores.retention import Kind, KindReport, RetentionStore

log = get_logger("remediator.retention")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECLAIM_PAGES = 256  # pages given back per transaction (1 MiB of 4 KiB pages: a few ms of write lock)


class Purger:
    """Deletes (and archives) what retention lets go."""

    def __init__(self, store: RetentionStore, settings: RetentionSettings, clock: Clock, *,
                 archive: Archive | None = None, metrics: Metrics | None = None) -> None:
        self.store, self.settings, self.clock = store, settings, clock
        self.archive, self.metrics = archive, metrics

    async def run(self, kinds: Sequence[Kind] = tuple(Kind)) -> list[KindReport]:
        """One pass over `kinds`; a kind that fails is counted and logged, the others go on."""
        now = self.clock.now()
        reports, failed = [], False
        for kind in kinds:
            report = KindReport(kind)
            try:
                await self.purge(kind, now, report)
            except StoreUnavailable as exc:
                failed = True
                self._failed(kind, "purge", exc)
            except AWS_ERRORS as exc:
                failed = True
                self._failed(kind, "export", exc)
            reports.append(report)
            log.info("retention_purged", kind=kind.value, deleted=report.deleted, exported=report.exported,
                     objects=len(report.objects))
        try:
            await self.reclaim()
        except StoreUnavailable as exc:
            failed = True
            self._failed(Kind.ALERTS, "purge", exc)
        if not failed and self.metrics is not None:
            self.metrics.retention_last_success.set(now.timestamp())
        return reports

    async def purge(self, kind: Kind, now: datetime, report: KindReport) -> None:
        before = now - self.settings.keep(kind)
        since = EPOCH
        while (first := await self.store.oldest_expired(kind, since, before)) is not None:
            start = datetime.combine(first.astimezone(UTC).date(), time(), UTC)
            end = min(start + timedelta(days=1), before)
            if self.archive is not None and self.archive.archives(kind):
                await self._export_then_delete(kind, start, end, before, report)
            else:
                await self._delete(kind, start, end, before, report)
            since = end  # what stayed in that day (needed after all) waits for the next pass

    async def reclaim(self) -> int:
        """Give freed pages back to the file system, a few at a time (SQLite incremental vacuum)."""
        total = 0
        while (given := await self.store.reclaim_space(RECLAIM_PAGES)) > 0:
            total += given
            await asyncio.sleep(self.settings.pause.total_seconds())
        return total

    async def _delete(self, kind: Kind, start: datetime, end: datetime, before: datetime,
                      report: KindReport) -> None:
        after: tuple[datetime, str] | None = None
        while page := await self.store.expired_page(kind, start, end, after, self.settings.batch_size):
            await self._delete_keys(kind, [key for _, key in page], before, report)
            after = page[-1]

    async def _export_then_delete(self, kind: Kind, start: datetime, end: datetime, before: datetime,
                                  report: KindReport) -> None:
        assert self.archive is not None
        day, keys, after = DayObject(), [], None
        while page := await self.store.expired_page(kind, start, end, after, self.settings.batch_size):
            page_keys = [key for _, key in page]
            day.add(await self.store.export_rows(kind, page_keys))
            keys += page_keys
            after = page[-1]
        if not keys:
            return
        report.objects.append(await self.archive.put(kind, start.date(), keys[0], day.body()))
        report.exported += day.count
        if self.metrics is not None:
            self.metrics.retention_exported.labels(kind.value).inc(day.count)
        for i in range(0, len(keys), self.settings.batch_size):
            await self._delete_keys(kind, keys[i : i + self.settings.batch_size], before, report)

    async def _delete_keys(self, kind: Kind, keys: list[str], before: datetime, report: KindReport) -> None:
        deleted = await self.store.delete_expired(kind, keys, before)
        report.deleted += deleted
        if self.metrics is not None:
            self.metrics.retention_deleted.labels(kind.value).inc(deleted)
        await asyncio.sleep(self.settings.pause.total_seconds())

    def _failed(self, kind: Kind, stage: str, exc: BaseException) -> None:
        log.warning("retention_failed", kind=kind.value, stage=stage, error=f"{type(exc).__name__}: {exc}"[:500])
        if self.metrics is not None:
            self.metrics.retention_failures.labels(kind.value, stage).inc()


class PurgeSchedule:
    """The daemon's purge: a pass every `retention.interval` (the first soon after start), by one
    replica at a time (a coordination lease; two at once would only repeat each other's work)."""

    FIRST_PASS_AFTER = timedelta(minutes=1)

    def __init__(self, purger: Purger, coordination: Coordination, holder: str) -> None:
        self.purger, self.coordination, self.holder = purger, coordination, holder
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.purger.settings.enabled:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        interval = self.purger.settings.interval
        await asyncio.sleep(min(interval, self.FIRST_PASS_AFTER).total_seconds())
        while True:
            await self.once()
            await asyncio.sleep(interval.total_seconds())

    async def once(self) -> list[KindReport] | None:
        """One pass, if this replica holds the lease; None when another one does (or it cannot tell)."""
        clock = self.purger.clock
        try:
            lease = await self.coordination.acquire_lease("retention", self.holder, self.purger.settings.interval,
                                                          clock.now())
        except CoordinationUnavailable as exc:
            log.warning("retention_skipped", error=str(exc))
            return None
        if lease is None:
            return None
        try:
            return await self.purger.run()
        finally:
            with contextlib.suppress(CoordinationUnavailable):
                await self.coordination.release_lease(lease)
