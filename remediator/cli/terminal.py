"""What the `remediator` command prints, in one place: incidents, audit records, plans and reports
hold text an alert's sender wrote, and a terminal obeys escape sequences in it.

Text goes out without terminal controls (`plaintext.without_controls`); JSON keeps every value
exact, with the controls it would otherwise leave raw written as `\\uXXXX` escapes (a JSON reader
gets the same strings back, a terminal shows them as text).
"""

from __future__ import annotations

import re
import sys
from typing import Any

import orjson

from remediator.plaintext import without_controls

# What orjson writes as it is: DEL, the C1 controls, bidirectional overrides and line separators
# (it escapes only C0). Inside JSON these can only stand in strings, where \uXXXX is the same text.
_RAW_IN_JSON = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def out(text: str) -> None:
    """Text to stdout, as it is plus a newline unless it ends with one."""
    shown = without_controls(text)
    sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")


def err(text: str) -> None:
    """A message to stderr (a line)."""
    sys.stderr.write(without_controls(text).rstrip("\n") + "\n")


def json_text(data: Any) -> str:
    """`data` as indented JSON that is safe to show in a terminal."""
    raw = orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode()
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", raw)


def out_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")
