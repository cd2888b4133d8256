"""What the `remediator` command prints, in one place: incidents, audit records, plans and reports
hold text an alert's sender wrote, and a terminal obeys escape sequences in it.

Text goes out without terminal controls (`plaintext.without_controls`); JSON keeps every value
exact, with the controls it would otherwise leave raw written as `\\uXXXX` escapes (a JSON reader
gets the same strings back, a terminal shows them as text).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
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


OUTPUTS = ("text", "json")
# `-o/--output` after a command too (`remediator incidents list -o json`, as amtool takes it): the
# command's copy has no default, so it changes the global one only when it is given.
OUTPUT = argparse.ArgumentParser(add_help=False)
OUTPUT.add_argument("--output", "-o", choices=OUTPUTS, default=argparse.SUPPRESS,
                    help="text for people (default) or json for programs")
# `--json`, the older spelling of `-o json` on the commands that had it: accepted, not advertised.
JSON_ALIAS = argparse.ArgumentParser(add_help=False)
JSON_ALIAS.add_argument("--json", dest="output", action="store_const", const="json", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)


def emit(args: argparse.Namespace, data: Any, text: Callable[[Any], str]) -> None:
    """A command's output: `data` as JSON with `-o json`, else `text(data)` for people."""
    if getattr(args, "output", "text") == "json":
        out_json(data)
    else:
        out(text(data))
