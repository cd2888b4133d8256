"""A message for people, and the formats a notify target receives it in (`notify.<name>.format`).

A `Notification` holds plain text only: its title, text and fields are never markup, whoever
wrote them — the daemon, a policy, or (through a template) the sender of an alert. Each format
encodes that text in one place, so that nothing in it can speak as the daemon: in Slack, no
mention, channel ping or link can come from it (the daemon's own link is added by the format);
in JSON, every value is a JSON string. Both drop terminal controls, and keep the title and each
field on one line so that no value can add a line of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from remediator.plaintext import one_line, without_controls

# Slack mrkdwn's control characters: with these escaped, `<!channel>`, `<@U123>` and
# `<https://...|text>` are shown as typed instead of pinging or linking.
SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
LINK_LABEL = "open in remediator"


@dataclass(frozen=True, slots=True)
class Notification:
    """A message for people: what happened, how bad, and where to look (plain text throughout)."""

    title: str
    text: str
    severity: str = ""
    link: str = ""
    fields: tuple[tuple[str, str], ...] = ()

    def body(self, fmt: str) -> dict[str, Any]:
        """The JSON document a target of format `fmt` (json | slack) is sent."""
        return FORMATS[fmt](self)


def slack_text(text: str) -> str:
    """Plain text as Slack shows it literally."""
    return without_controls(text).translate(SLACK_ESCAPES)


def slack_body(message: Notification) -> dict[str, Any]:
    """One mrkdwn text: the title in bold, the text, a line per field, the daemon's link."""
    lines = [f"*{slack_text(one_line(message.title))}*" if message.title else "", slack_text(message.text)]
    lines += [f"{slack_text(one_line(k))}: {slack_text(one_line(v))}" for k, v in message.fields]
    if message.link:
        # The link is the daemon's (public_url and an incident id), never an alert's.
        lines.append(f"<{message.link.translate(SLACK_ESCAPES).replace('|', '%7C')}|{LINK_LABEL}>")
    return {"text": "\n".join(line for line in lines if line)}


def json_body(message: Notification) -> dict[str, Any]:
    """Each part its own JSON string (the HTTP client encodes the document, nothing splices text)."""
    return {
        "title": one_line(message.title),
        "text": without_controls(message.text),
        "severity": message.severity,
        "link": message.link,
        "fields": {one_line(k): one_line(v) for k, v in message.fields},
    }


FORMATS: dict[str, Callable[[Notification], dict[str, Any]]] = {"json": json_body, "slack": slack_body}
