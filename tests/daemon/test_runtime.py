"""The interpreter settings of the daemon's long-running processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from remediator.daemon.runtime import YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_startup_objects_leave_the_collectors_sight_and_young_passes_are_rarer(restored_gc: None) -> None:
    startup = {"policies": [object()]}  # a container that exists once start-up is done
    assert gc.is_tracked(startup) and any(o is startup for o in gc.get_objects())
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert not any(o is startup for o in gc.get_objects()), "a start-up object is still scanned by every full pass"
    young, middle, old = gc.get_threshold()
    assert young == YOUNG_THRESHOLD > 700 and middle >= 10 and old >= 10
    assert gc.isenabled(), "cycles must still be collected"
    later = {"alert": [object()]}
    assert any(o is later for o in gc.get_objects()), "objects made after start-up are still collected"
