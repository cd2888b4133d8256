"""Metrics: bounded label sets start from zero, so rate() and increase() see the first events.
Logs: every line one JSON object; only internal errors are errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_protocol import RequestPayloadError

from remediator.observability import (
    REJECTION_REASONS,
    SOURCES,
    Metrics,
    client_conditions,
    traceback_field,
)
from remediator.web.webhooks import REJECTION_RESULT
from tests.conftest import ROOT


def test_webhook_refusals_start_from_zero_so_alert_rules_see_the_first_ones() -> None:
    assert set(REJECTION_RESULT.values()) <= set(REJECTION_REASONS)
    registry = Metrics().registry
    for source in SOURCES:
        for reason in REJECTION_REASONS:
            labels = {"source": source, "reason": reason}
            assert registry.get_sample_value("remediator_webhook_rejected_total", labels) == 0.0


CRASHING = """
import threading, warnings
from remediator.observability import configure_logging, get_logger

configure_logging("info", "json", process="intake-3")
get_logger("remediator.test").info("hello", ward="4B")
warnings.warn("a library warns")

class Leaky:
    def __del__(self):
        raise ValueError("raised in __del__")

Leaky()
worker = threading.Thread(target=lambda: 1 / 0, name="worker")
worker.start()
worker.join()
raise RuntimeError("nobody caught this")
"""


def test_uncaught_exceptions_warnings_and_events_are_json_lines_with_one_traceback_field() -> None:
    """Python's own reports (a warning, an exception in __del__, in a thread, at top level) are
    log lines like any other: nothing is printed as plain text, on stdout or stderr."""
    done = subprocess.run([sys.executable, "-c", CRASHING], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.returncode == 1 and done.stderr == ""
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert {e["process"] for e in events} == {"intake-3"}
    assert all({"timestamp", "level", "logger", "event"} <= e.keys() for e in events)
    by_event = {e["event"]: e for e in events}
    assert by_event["hello"]["ward"] == "4B" and by_event["hello"]["level"] == "info"
    warned = next(e for e in events if e["logger"] == "py.warnings")
    assert warned["level"] == "warning" and "a library warns" in warned["event"]
    for event, level, error in (("unraisable_exception", "error", "ValueError: raised in __del__"),
                                ("uncaught_exception_in_thread", "error", "ZeroDivisionError"),
                                ("uncaught_exception", "critical", "RuntimeError: nobody caught this")):
        assert by_event[event]["level"] == level
        assert by_event[event]["traceback"].startswith("Traceback (most recent call last):")
        assert error in by_event[event]["traceback"]


def _event(logger: str, exc: BaseException) -> dict[str, object]:
    return {"event": "Error handling request from 127.0.0.1", "level": "error", "logger": logger, "exc_info": exc}


CONDITIONS = {
    # name: (logger, exception, level and event afterwards; None: left an error with its traceback)
    "malformed request line": ("aiohttp.server", BadHttpMessage("Invalid method"), "warning"),
    "body cut short": ("aiohttp.server", ConnectionResetError("Connection lost"), "info"),
    "corrupt encoding": ("aiohttp.server", RequestPayloadError("Can not decode content-encoding: gzip"), "warning"),
    "a bug in a handler": ("aiohttp.server", RuntimeError("bug"), None),
    "a reset inside an action": ("remediator.execution", ConnectionResetError("peer reset"), None),
}


@pytest.mark.parametrize("case", sorted(CONDITIONS))
def test_only_what_a_client_causes_is_taken_off_error_level(case: str) -> None:
    logger, exc, level = CONDITIONS[case]
    event = traceback_field(None, "error", client_conditions(None, "error", _event(logger, exc)))
    if level is None:
        assert event["level"] == "error" and "traceback" in event
    else:
        assert event["level"] == level and "traceback" not in event and type(exc).__name__ in str(event["error"])
