"""Text a sender wrote, made safe to show: no terminal controls, and values kept on one line.

Alert labels, annotations and the messages AWS relays are written by whoever sends the alert.
Shown as they are, an escape sequence can clear an operator's terminal or hide a link behind
innocent text (OSC 8), a carriage return can overwrite what a line said, and a newline can add a
line that looks like the daemon's own ("incident: ...", "Approved by ..."). Every place the daemon
shows such text to people passes it through here first: notification formats, the command line.
"""

from __future__ import annotations

import re

# ANSI/ECMA-48 sequences, 7-bit (ESC ...) and 8-bit (C1) forms, removed whole so that their
# parameters (an OSC 8 link's URL) do not stay behind as text.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, erase, colours
    r"|(?:\x1b[\]P_^X]|[\x9d\x90\x9f\x9e\x98])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, APC, PM, SOS
    r"|\x1b[ -/]*[0-~]?"  # any other escape
)
# Left after the sequences: C0 controls but tab and newline, DEL, C1 controls, and the Unicode
# bidirectional overrides and isolates that make a terminal show text in another order than it is.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAK = re.compile(r"\r\n?|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_BLANK_RUN = re.compile(r"[ \t]*[\n\t][ \t\n]*")


def without_controls(text: str) -> str:
    """`text` with escape sequences and control characters removed; lines (\\n) and tabs stay.

    Any line break (\\r\\n, a lone \\r, U+2028 ...) becomes \\n, so a carriage return cannot
    overwrite the start of a line.
    """
    if text.isprintable():
        return text
    return _CONTROL.sub("", _SEQUENCE.sub("", _LINE_BREAK.sub("\n", text)))


def one_line(text: str) -> str:
    """`text` as one line: controls removed (`without_controls`), each run of line breaks and tabs
    with the blanks around it collapsed into one space."""
    if text.isprintable():
        return text
    return _BLANK_RUN.sub(" ", without_controls(text))
