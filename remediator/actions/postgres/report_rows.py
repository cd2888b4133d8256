"""What `postgres.report` makes of the rows it read: timeline-safe values and the freshness check."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from remediator.settings.reports import FreshnessCheck

MAX_CELL = 500  # characters of one text value kept on the timeline


class ReportMisfit(ValueError):
    """The rows do not fit what the report's settings say of them (a missing or untyped column)."""


def cell(value: Any) -> Any:
    """A value from PostgreSQL as JSON can hold it (timeline events and audit records are JSON)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_CELL else value[: MAX_CELL - 1] + "…"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, list | tuple):
        return [cell(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): cell(v) for k, v in value.items()}
    return cell(str(value))


def rows_view(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{str(k): cell(v) for k, v in row.items()} for row in rows]


@dataclass(frozen=True, slots=True)
class Freshness:
    """How far the newest value of each checked column lies behind the reference time."""

    reference: datetime
    max_gap: timedelta
    newest: dict[str, datetime | None]

    def gap(self, column: str) -> timedelta | None:
        newest = self.newest[column]
        return None if newest is None else self.reference - newest

    @property
    def stale(self) -> list[str]:
        """Columns with no value at all, or whose newest value is more than `max_gap` behind."""
        return [c for c in self.newest if (gap := self.gap(c)) is None or gap > self.max_gap]

    def as_dict(self) -> dict[str, Any]:
        gaps = {c: self.gap(c) for c in self.newest}
        return {"reference": self.reference.isoformat(), "max_gap_seconds": self.max_gap.total_seconds(),
                "columns": {c: {"newest": cell(self.newest[c]),
                                "gap_seconds": None if gap is None else gap.total_seconds()}
                            for c, gap in gaps.items()},
                "stale": self.stale}

    def summary(self) -> str:
        parts = [f"{c} {'has no value' if (gap := self.gap(c)) is None else f'is {_span(gap)} behind'}"
                 for c in self.newest]
        verdict = f"stale: more than {_span(self.max_gap)}" if self.stale else f"within {_span(self.max_gap)}"
        return f"{', '.join(parts)} the reference {self.reference.isoformat()} ({verdict})"


def _span(gap: timedelta) -> str:
    seconds = round(gap.total_seconds())
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    return f"{sign}{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def newest(rows: Sequence[Mapping[str, Any]], column: str) -> datetime | None:
    """The newest value of a `timestamp with time zone` column over every row (None: no value)."""
    found: list[datetime] = []
    for row in rows:
        if column not in row:
            raise ReportMisfit(f"the report has no column {column!r} (freshness.columns names it)")
        value = row[column]
        if value is None:
            continue
        if not isinstance(value, datetime):
            raise ReportMisfit(f"column {column!r} holds {type(value).__name__}, not a timestamp with time zone")
        if value.tzinfo is None:
            raise ReportMisfit(f"column {column!r} is a timestamp without time zone: say which zone it is in "
                               "within the report's SQL (e.g. max(created_at) AT TIME ZONE 'Asia/Seoul')")
        found.append(value)
    return max(found, default=None)


def freshness(check: FreshnessCheck, rows: Sequence[Mapping[str, Any]], reference: datetime,
              max_gap: timedelta | None) -> Freshness:
    """The check over `rows`; ReportMisfit when a checked column is missing or not a zoned timestamp."""
    return Freshness(reference, max_gap if max_gap is not None else check.max_gap,
                     {column: newest(rows, column) for column in check.columns})
