"""Commands run in-process here. `main()` configures structlog for a terminal, with loggers cached
on first use: left alone it would bind every module's logger to this test's captured stderr at
warning level, and later tests (anywhere in the suite) would log into a closed stream and
capture nothing. Every test in this package leaves logging as it found it."""

from __future__ import annotations

import pytest

from remediator.cli import commands, store


@pytest.fixture(autouse=True)
def _logging_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commands, "configure_logging", lambda *args, **kwargs: None)
    monkeypatch.setattr(store, "configure_logging", lambda *args, **kwargs: None)
