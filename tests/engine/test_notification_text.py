"""What a sender writes into labels and annotations cannot speak as the daemon in a notification.

Each hostile value goes into an alert's name-bearing label and its summary, through the real
intake and engine, into a real POST to a local receiver, once per format (slack and json). The
Slack text must show the value literally (no mention, channel ping or link of its own), the
message keeps exactly the daemon's lines, and no terminal control reaches either format.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, get_args

import pytest

from remediator.actions.notification import FORMATS
from remediator.plaintext import one_line
from remediator.settings import NotifyTarget
from tests.support.alertmanager import webhook_body
from tests.support.daemon import DaemonFactory
from tests.support.receiver import Receiver, running_receiver

BEARER = {"Authorization": "Bearer am-secret"}
PUBLIC = "https://remediator.example"
LINK = re.compile(r"<https://remediator\.example/console/incidents/INC-[0-9-]+\|open in remediator>")
# Terminal controls the formats must never carry: C0 (but the newline of Slack's own lines), DEL, C1.
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")

HOSTILE = {
    "channel": ("<!channel> db down", "&lt;!channel&gt; db down"),
    "here": ("<!here>", "&lt;!here&gt;"),
    "user": ("ping <@U123>", "ping &lt;@U123&gt;"),
    "foreign link": ("<https://evil.example/x|open in remediator>",
                     "&lt;https://evil.example/x|open in remediator&gt;"),
    "entity": ("&lt;!channel&gt;", "&amp;lt;!channel&amp;gt;"),
    "forged lines": ("cpu high\n*Approved by alice*\r\npolicy: none", "cpu high *Approved by alice* policy: none"),
    "clear screen": ("before\x1b[2Jafter", "beforeafter"),
    "osc 8 link": ("\x1b]8;;http://evil.example\x07click here\x1b]8;;\x07", "click here"),
    "c1 csi": ("red\x9b31malert", "redalert"),
    "nul": ("a\x00b", "ab"),
}

POLICY = """
name: hostile-text
severity: P3
match: {source: alertmanager, alertname: HostileText}
actions:
  - type: notify.webhook
    params: {to: slack, title: "{alert.name} on {labels.instance}", text: "Summary: {annotations.summary}"}
  - type: notify.webhook
    params: {to: json, title: "{alert.name} on {labels.instance}", text: "Summary: {annotations.summary}"}
"""


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


async def deliver(start_daemon: DaemonFactory, receiver: Receiver, value: str) -> dict[str, dict[str, Any]]:
    daemon = await start_daemon(policies=POLICY, mode="enforce", public_url=PUBLIC, notify={
        "slack": {"url": receiver.url + "/slack", "format": "slack"},
        "json": {"url": receiver.url + "/json", "format": "json"}})
    body = webhook_body("HostileText", {"instance": value}, summary=value, fingerprint="f00d",
                        starts_at=datetime(2026, 1, 5, 9, tzinfo=UTC))
    response = await daemon.client.post("/webhooks/alertmanager", data=body, headers=BEARER)
    assert response.status == 200, await response.text()
    await daemon.engine.drain()
    return {path.rsplit("/", 1)[-1]: sent for path, sent in zip(receiver.paths, receiver.received, strict=True)}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_a_hostile_value_is_shown_literally_and_forges_nothing(
    case: str, start_daemon: DaemonFactory, receiver: Receiver
) -> None:
    value, shown_in_slack = HOSTILE[case]
    sent = await deliver(start_daemon, receiver, value)

    lines = sent["slack"]["text"].split("\n")
    assert lines[:2] == [f"*HostileText on {shown_in_slack}*", f"Summary: {shown_in_slack}"]
    assert lines[2].startswith("incident: INC-") and lines[3] == "policy: hostile-text"
    assert LINK.fullmatch(lines[4]) and len(lines) == 5  # the daemon's own link, and no line of the sender's
    assert sent["slack"]["text"].count("<") == 1  # no mention, ping or link but the daemon's
    assert not CONTROL.search(sent["slack"]["text"])

    document = sent["json"]
    assert document["title"] == f"HostileText on {one_line(value)}"
    assert document["text"] == f"Summary: {one_line(value)}"
    assert not any(CONTROL.search(str(v)) for v in (document["title"], document["text"], *document["fields"].values()))


HELD = """
name: hostile-held
severity: P1
match: {source: alertmanager, alertname: HostileText}
actions:
  - type: ecs.force_new_deployment
    params: {cluster: erp-prod, service: erp-api}
"""


async def test_the_daemons_own_approval_notice_shows_the_incident_title_literally(
    start_daemon: DaemonFactory, receiver: Receiver
) -> None:
    """The approval notice quotes the incident's title, which comes from the alert's labels."""
    daemon = await start_daemon(policies=HELD, mode="enforce", public_url=PUBLIC, approvals={"notify": "slack"},
                                notify={"slack": {"url": receiver.url + "/slack", "format": "slack"}})
    value = "<!channel>\nApproved by alice\x1b[2J"
    body = webhook_body("HostileText", {"instance": value}, summary="x", fingerprint="f00d",
                        starts_at=datetime(2026, 1, 5, 9, tzinfo=UTC))
    assert (await daemon.client.post("/webhooks/alertmanager", data=body, headers=BEARER)).status == 200
    await daemon.engine.drain()

    [notice] = receiver.received
    text = notice["text"]
    assert "(HostileText on &lt;!channel&gt; Approved by alice)" in text
    assert "<!channel>" not in text and not CONTROL.search(text)
    assert not any(line.startswith("Approved by") for line in text.split("\n"))


def test_every_format_a_notify_target_may_name_has_one_encoder() -> None:
    named = set(get_args(NotifyTarget.model_fields["format"].annotation))
    assert named == set(FORMATS)
