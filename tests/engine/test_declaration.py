"""Declaring P1/P2 incidents (runbook §4.2): the channel through Slack's API (a fake on loopback),
the executive report, once per incident across replicas, and never for P3/P4."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from remediator.engine.declaration import channel_name
from remediator.model import Incident, IncidentStatus, Phase, Severity
from tests.conftest import T0
from tests.support import builders
from tests.support.engine import Harness, HarnessFactory
from tests.support.slack import FakeSlack, running_slack

BOT = "xoxb-test-bot"
POLICIES = """
policies:
  - name: api-down
    severity: P1
    match: {alertname: ApiDown}
    actions:
      - {type: notify.webhook, params: {to: oncall, text: "API down"}}
  - name: reports-slow
    severity: P3
    match: {alertname: SlowReports}
    actions:
      - {type: notify.webhook, params: {to: oncall, text: "reports are slow"}}
"""
NO_HOLDS: dict[str, list[str]] = {"hold_severities": []}
DOWN = builders.alert("ApiDown", fingerprint="fp-api", group="api", labels={"service": "erp-api"})
SLOW = builders.alert("SlowReports", fingerprint="fp-reports", group="api")


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with running_slack(BOT) as fake:
        yield fake


async def _harness(make: HarnessFactory, slack: FakeSlack, token: str | None = BOT, **more: object) -> Harness:
    return await make(POLICIES, guardrails=NO_HOLDS, incidents={
        "contacts": {"executives": "execs"}, "notify": "oncall", "timezone": "Asia/Seoul",
        "slack": {"bot_token": token, "api_url": slack.url}}, **more)


async def _declared(h: Harness) -> list[dict[str, object]]:
    [incident] = await h.deps.store.list_incidents()
    return [dict(e.data) for e in await h.deps.store.timeline(incident.id) if e.kind == "declared"]


def test_the_channel_name_is_the_runbooks_and_slacks() -> None:
    incident = Incident("INC-2026-00042", "k", "PostgresDown on db-1:5432 (primary) — 환자", Severity.P1,
                        IncidentStatus.OPEN, Phase.DETECT, T0, T0)
    name = channel_name(incident, T0)
    assert name == "incident-2026-01-05-postgresdown-on-db-1-5432-primary-00042"
    long = channel_name(Incident("INC-2026-00042", "k", "x" * 300, Severity.P1, IncidentStatus.OPEN, Phase.DETECT,
                                 T0, T0), T0)
    assert len(long) == 80 and long.endswith("-00042")
    only_korean = channel_name(Incident("INC-2026-00042", "k", "환자 데이터", Severity.P1, IncidentStatus.OPEN,
                                        Phase.DETECT, T0, T0), T0)
    assert only_korean == "incident-2026-01-05-00042"


async def test_a_p1_is_declared_once_channel_and_executive_report(make_harness: HarnessFactory,
                                                                  slack: FakeSlack) -> None:
    h = await _harness(make_harness, slack)
    await h.deliver(DOWN)
    await h.tick(timedelta(seconds=1))
    # 09:00 UTC on 5 January is 18:00 in Seoul: the same day.
    assert list(slack.channels) == ["incident-2026-01-05-apidown-on-erp-api-00001"]
    [declared] = await _declared(h)
    assert declared["channel_created"] is True and declared["executive_report"] == {"execs": "succeeded"}
    [report] = h.sink.to("execs")
    assert report["title"] == "P1 경영진 보고 (executive report): ApiDown on erp-api"
    assert "- **발생일시**: 2026-01-05 18:00 KST" in report["text"]
    assert "#incident-2026-01-05-apidown-on-erp-api-00001" in report["text"]

    await h.deliver(builders.alert("ApiDown", fingerprint="fp-api-2", group="api"))  # joins the same incident
    await h.tick(timedelta(minutes=1))
    assert len(slack.calls) == 1 and len(h.sink.to("execs")) == 1 and len(await _declared(h)) == 1


async def test_a_p3_is_not_declared_until_it_becomes_a_p1(make_harness: HarnessFactory, slack: FakeSlack) -> None:
    h = await _harness(make_harness, slack)
    await h.deliver(SLOW)
    await h.tick(timedelta(minutes=5))
    assert slack.calls == [] and h.sink.to("execs") == [] and await _declared(h) == []
    await h.deliver(builders.alert("ApiDown", fingerprint="fp-api", group="api", starts_at=T0 + timedelta(minutes=5)))
    await h.tick(timedelta(seconds=1))
    assert len(slack.calls) == 1 and len(h.sink.to("execs")) == 1


async def test_two_replicas_declare_once(make_harness: HarnessFactory, slack: FakeSlack) -> None:
    a = await _harness(make_harness, slack, holder="replica-a")
    await a.deliver(DOWN)
    b = await _harness(make_harness, slack, holder="replica-b", clock=a.clock)
    a.clock.advance(timedelta(seconds=1))
    await asyncio.gather(a.engine.timers.fire_due(), b.engine.timers.fire_due())
    assert len(slack.calls) == 1 and len(a.sink.to("execs")) == 1 and len(await _declared(a)) == 1


@pytest.mark.parametrize(("token", "mode", "detail", "calls"), [
    (None, "enforce", "not created: no incidents.slack.bot_token", 0),
    ("xoxb-wrong", "enforce", "not created: Slack answered invalid_auth", 1),
    (BOT, "dry-run", "not created: dry-run", 0),
])
async def test_a_channel_not_created_says_why_and_the_name_is_still_kept(
    make_harness: HarnessFactory, slack: FakeSlack, token: str | None, mode: str, detail: str, calls: int,
) -> None:
    h = await _harness(make_harness, slack, token=token, mode=mode)
    await h.deliver(DOWN)
    await h.tick(timedelta(seconds=1))
    [declared] = await _declared(h)
    assert declared["channel"] == "incident-2026-01-05-apidown-on-erp-api-00001"
    assert (declared["channel_created"], declared["channel_detail"]) == (False, detail)
    assert len(slack.calls) == calls and slack.channels == {}
    [incident] = await h.deps.store.list_incidents()
    checked = {e.data["item"] for e in await h.deps.store.timeline(incident.id) if e.kind == "checklist"}
    assert "channel" not in checked  # not done: people create it and check it
    assert ("executive_report" in checked) is (mode == "enforce")  # a dry-run sent no report


async def test_a_name_taken_is_the_channel_of_an_earlier_attempt(make_harness: HarnessFactory,
                                                                slack: FakeSlack) -> None:
    slack.channels["incident-2026-01-05-apidown-on-erp-api-00001"] = {"id": "C0"}
    h = await _harness(make_harness, slack)
    await h.deliver(DOWN)
    await h.tick(timedelta(seconds=1))
    [declared] = await _declared(h)
    assert (declared["channel_created"], declared["channel_detail"]) == (True, "exists already")


async def test_closing_before_the_declaration_tells_nobody(make_harness: HarnessFactory, slack: FakeSlack) -> None:
    h = await _harness(make_harness, slack)
    await h.deliver(DOWN)
    [incident] = await h.deps.store.list_incidents()
    await h.engine.declaration.stop(incident.id)  # what closing the incident does
    await h.tick(timedelta(minutes=1))
    assert slack.calls == [] and h.sink.to("execs") == []
