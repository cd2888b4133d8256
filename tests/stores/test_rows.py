"""Row encoding shared by the SQL stores."""

from __future__ import annotations

import inspect
import sys
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from remediator.stores import rows


def test_a_timestamp_is_its_own_even_when_another_thread_formats_one_meanwhile() -> None:
    """`ts` caches the texts it formatted, and the writer thread, the reader threads and the event
    loop all call it. Another thread formatting a different timestamp just as this call returns
    must not hand this caller the other thread's text."""
    mine, theirs = datetime(2026, 1, 5, 9, 0, tzinfo=UTC), datetime(2031, 7, 1, 12, 30, tzinfo=UTC)
    rows.ts(mine)  # cached: the next call with the same object takes the cache path
    source, first = inspect.getsourcelines(rows.ts)
    cache_hit = first + next(i for i, line in enumerate(source) if line.strip().startswith("return"))

    def interleave(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code is not rows.ts.__code__:
            return None

        def each_line(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "line" and frame.f_lineno == cache_hit:
                sys.settrace(None)
                rows.ts(theirs)  # what another thread would do right here
            return each_line

        return each_line

    sys.settrace(interleave)
    try:
        text = rows.ts(mine)
    finally:
        sys.settrace(None)
    assert text == "2026-01-05T09:00:00.000000+00:00"
