"""Interpreter settings for the long-running processes (`serve` and its intake processes).

CPython's cyclic garbage collector, with its default thresholds, runs a young-generation pass
every 700 net container allocations. Under an alert storm that is several hundred passes a second,
and every older-generation pass walks the whole heap (parsed policies, settings, caches) while no
request is answered. The daemon creates few reference cycles, so it collects less often, and
what exists once start-up is done is moved out of the collector's sight for good.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 100_000  # net container allocations between young-generation passes (default 700)
MIDDLE_THRESHOLD = 20  # young passes per middle-generation pass (default 10)
OLD_THRESHOLD = 100  # middle passes per full pass, at most (default 10)


def tune_gc() -> None:
    """Call once start-up objects exist: freeze them, then collect less often (never not at all)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
