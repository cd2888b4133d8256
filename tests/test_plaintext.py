"""Text a sender wrote, as people are shown it: no terminal control survives, lines stay the daemon's."""

from __future__ import annotations

import pytest

from remediator.plaintext import one_line, without_controls

CASES = {
    # name: (sent, shown by without_controls, shown by one_line)
    "plain": ("PostgresTooManyConnections on db-1", "PostgresTooManyConnections on db-1",
              "PostgresTooManyConnections on db-1"),
    "unicode": ("환자 기록 지연 · naïve", "환자 기록 지연 · naïve", "환자 기록 지연 · naïve"),
    "clear screen": ("a\x1b[2Jb", "ab", "ab"),
    "colour": ("\x1b[1;31mred\x1b[0m", "red", "red"),
    "osc 8 link": ("\x1b]8;;http://evil.example\x07click\x1b]8;;\x07", "click", "click"),
    "osc title, ST": ("\x1b]0;pwned\x1b\\text", "text", "text"),
    "c1 csi": ("a\x9b2Jb", "ab", "ab"),
    "c1 osc": ("a\x9d8;;http://evil\x9cb", "ab", "ab"),
    "dcs": ("a\x1bPq#0;2;0;0;0\x1b\\b", "ab", "ab"),
    "lone escape": ("a\x1b", "a", "a"),
    "nul, bell, backspace, del": ("a\x00b\x07c\x08d\x7fe", "abcde", "abcde"),
    "bidi override": ("invoice\u202egnp.exe", "invoicegnp.exe", "invoicegnp.exe"),
    "carriage return overwrites": ("safe\rEVIL", "safe\nEVIL", "safe EVIL"),
    "crlf": ("one\r\ntwo", "one\ntwo", "one two"),
    "forged lines": ("cpu high\n\n*Approved by alice*  \n policy: none",
                     "cpu high\n\n*Approved by alice*  \n policy: none", "cpu high *Approved by alice* policy: none"),
    "unicode line separators": ("a\u2028b\u2029c\x85d\x0be\x0cf", "a\nb\nc\nd\ne\nf", "a b c d e f"),
    "tab": ("key\tvalue", "key\tvalue", "key value"),
    "mentions stay text": ("<!channel> &lt;", "<!channel> &lt;", "<!channel> &lt;"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_terminal_controls_are_removed_and_lines_collapse_only_in_one_line(case: str) -> None:
    sent, shown, shown_on_one_line = CASES[case]
    assert without_controls(sent) == shown
    assert one_line(sent) == shown_on_one_line
    assert "\n" not in one_line(sent) and "\t" not in one_line(sent)
