"""Maintenance windows: when remediator keeps its hands off a part of the estate.

A window is one-off (`start`, `end`) or recurring (`cron`, five fields: minute hour day-of-month
month day-of-week, and a `duration`), read in `guardrails.time_zone`; it covers the requests
whose policy, action type and target match its globs (an empty list matches everything).
Requests it covers are denied with reason `maintenance_window`; alerts are recorded as always.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from remediator.settings.base import PositiveDuration, Section

# (name, lowest, highest) of the five cron fields; day of week 0 and 7 are both Sunday.
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
               ("day of week", 0, 7))
LONGEST_RECURRING = timedelta(days=7)


def time_zone(name: str) -> tzinfo:
    """The zone of that IANA name; ValueError for a name the system does not know."""
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not a time zone (an IANA name like Asia/Seoul or UTC)") from None


def _cron_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"{name}: {part!r} has a step that is not a positive number")
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            if not (first_text.isdigit() and last_text.isdigit()):
                raise ValueError(f"{name}: {part!r} is not a range like 1-5")
            first, last = int(first_text), int(last_text)
        elif span.isdigit():
            first = last = int(span)
            if step is not None:
                last = high
        else:
            raise ValueError(f"{name}: {part!r} is not a number, a range, a list or *")
        if not low <= first <= last <= high:
            raise ValueError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step or 1))
    return frozenset(values)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """Five cron fields. As in cron, when both day fields are restricted a day matching either counts."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        fields = text.split()
        if len(fields) != len(CRON_FIELDS):
            raise ValueError(f"{text!r}: a cron schedule has five fields (minute hour day-of-month month "
                             "day-of-week)")
        minutes, hours, days, months, weekdays = (
            _cron_field(f, *spec) for f, spec in zip(fields, CRON_FIELDS, strict=True))
        return cls(minutes, hours, days, months, frozenset(d % 7 for d in weekdays),
                   fields[2] == "*", fields[4] == "*")

    def runs_on(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        by_day, by_weekday = day.day in self.days, (day.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def latest_start(self, now: datetime, zone: tzinfo, within: timedelta) -> datetime | None:
        """The latest start at or before `now`, if one is less than `within` ago."""
        local = now.astimezone(zone)
        times = sorted((time(h, m) for h in self.hours for m in self.minutes), reverse=True)
        for back in range(within.days + 2):
            day = local.date() - timedelta(days=back)
            if not self.runs_on(day):
                continue
            for at in times:
                start = datetime.combine(day, at, tzinfo=zone)
                if start <= now:
                    return start if now - start < within else None
        return None


@lru_cache(maxsize=256)
def schedule(text: str) -> CronSchedule:
    """A cron schedule, parsed once (windows are read for every request)."""
    return CronSchedule.parse(text)


class MaintenanceWindow(Section):
    """One window: when (one-off or recurring) and what it covers."""

    name: str = Field(min_length=1)
    reason: str = ""
    start: datetime | None = None  # one-off; without an offset, in guardrails.time_zone
    end: datetime | None = None
    cron: str | None = None  # recurring: when each window starts, in guardrails.time_zone
    duration: PositiveDuration | None = None
    policies: list[str] = []
    actions: list[str] = []
    targets: list[str] = []

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        start, end, cron, duration = self.start, self.end, self.cron, self.duration
        if start is not None and end is not None and cron is None and duration is None:
            if (start.tzinfo is None) != (end.tzinfo is None):
                raise ValueError("start and end: give both with an offset, or neither (guardrails.time_zone)")
            if end <= start:
                raise ValueError(f"end {end.isoformat()} is not after start {start.isoformat()}")
        elif cron is not None and duration is not None and start is None and end is None:
            schedule(cron)
            if duration > LONGEST_RECURRING:
                raise ValueError(f"duration: a recurring window lasts at most {LONGEST_RECURRING.days} days")
        else:
            raise ValueError("a window is one-off (start and end) or recurring (cron and duration)")
        return self

    def covers(self, policy: str, action: str, target: str) -> bool:
        return all(not globs or any(fnmatch.fnmatchcase(value, g) for g in globs)
                   for globs, value in ((self.policies, policy), (self.actions, action), (self.targets, target)))

    def open_until(self, now: datetime, zone: tzinfo) -> datetime | None:
        """When the window ends, if it is open at `now`; None when it is closed."""
        if self.start is not None and self.end is not None:
            start, end = (t if t.tzinfo is not None else t.replace(tzinfo=zone) for t in (self.start, self.end))
            return end if start <= now < end else None
        if self.cron is None or self.duration is None:
            return None  # the validator admits no such window
        began = schedule(self.cron).latest_start(now, zone, self.duration)
        return began + self.duration if began is not None else None


def check_names(windows: Sequence[MaintenanceWindow]) -> None:
    seen: set[str] = set()
    for window in windows:
        if window.name in seen:
            raise ValueError(f"maintenance: two windows are named {window.name!r}")
        seen.add(window.name)
