"""End to end: moto's SNS (server mode) delivers to the running daemon over a real loopback port.

A topic is created in moto, the daemon's real URL is subscribed to it (moto confirms HTTP
subscriptions by itself), and `publish` makes moto POST the signed notification to the daemon,
synchronously, inside the Publish call. The daemon is configured as in production except for two
settings: `sns.mirror_url` points at moto, which serves each message's certificate at the path of
its (unchanged, pinned) SigningCertURL; and no `ca_files`, so the default trust policy applies:
moto's certificate is self-signed but names the issuer "Amazon RSA 2048 M01" and the subject
sns.amazonaws.com, exactly what that policy checks. The URL rules are not loosened at all.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiobotocore.session import get_session

from remediator.clock import FakeClock
from remediator.model import Outcome
from tests.conftest import corpus_file
from tests.support.daemon import Daemon, DaemonFactory

pytestmark = pytest.mark.integration

REGION = "eu-west-1"
POLICY = """
name: erp-alarm-page
severity: P2
match: {source: cloudwatch, alertname: erp-rds-cpu, status: firing}
actions:
  - type: notify.webhook
    params: {to: oncall, title: "{alert.name}", text: "{labels.new_state}: {labels.state_reason}"}
"""
ALARM = {
    "AlarmName": "erp-rds-cpu", "AlarmDescription": None, "AWSAccountId": "123456789012",
    "NewStateValue": "ALARM", "OldStateValue": "OK", "NewStateReason": "Threshold Crossed: 1 datapoint [97.1]",
    "StateChangeTime": "2026-01-05T08:59:20.123+0000", "Region": "EU (Ireland)",
    "AlarmArn": f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:erp-rds-cpu",
    "Trigger": {"MetricName": "CPUUtilization", "Namespace": "AWS/RDS", "StatisticType": "Statistic",
                "Statistic": "AVERAGE", "Unit": None,
                "Dimensions": [{"value": "erp-prod", "name": "DBInstanceIdentifier"}],
                "Period": 60, "EvaluationPeriods": 1, "ComparisonOperator": "GreaterThanThreshold", "Threshold": 90.0,
                "TreatMissingData": "missing", "EvaluateLowSampleCountPercentile": ""},
}


@pytest.fixture
def clock() -> FakeClock:
    # moto stamps each message with the wall clock, and the daemon checks its freshness.
    return FakeClock(datetime.now(UTC))


Publisher = Callable[..., Any]


@pytest.fixture
async def subscribed(moto: str, start_daemon: DaemonFactory) -> AsyncIterator[Callable[..., Any]]:
    """`daemon, publish = await subscribed()`: a fresh topic, the daemon subscribed to it over HTTP."""
    async with get_session().create_client("sns", region_name=REGION, endpoint_url=moto) as sns:
        topics: list[str] = []

        async def subscribe(**sns_settings: Any) -> tuple[Daemon, Publisher]:
            topic = (await sns.create_topic(Name=f"erp-alarms-{uuid.uuid4().hex[:8]}"))["TopicArn"]
            topics.append(topic)
            daemon = await start_daemon(
                POLICY, sns={"topics": [topic], "mirror_url": moto, **sns_settings},
                aws={"endpoint_url": moto, "region": REGION, "max_attempts": 1},
                notify={"oncall": {"url": "http://127.0.0.1:9/never-posted-in-dry-run"}},
            )
            endpoint = str(daemon.client.make_url("/webhooks/sns"))
            await sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint)

            async def publish(**message: Any) -> None:
                await sns.publish(TopicArn=topic, **message)  # returns once the daemon has answered

            return daemon, publish

        yield subscribe
        # moto fails every later Publish to a topic whose HTTP subscriber is gone.
        for topic in topics:
            await sns.delete_topic(TopicArn=topic)


async def test_a_cloudwatch_alarm_published_to_moto_becomes_an_incident_and_a_decision(
    subscribed: Callable[..., Any],
) -> None:
    daemon, publish = await subscribed()
    await publish(Message=json.dumps(ALARM))  # no Subject: moto signs without it (docs/testing-aws.md §2)
    assert daemon.count("alerts") == 1  # recorded before moto's POST was answered
    assert daemon.metric("remediator_sns_deliveries_total", type="notification", result="verified") == 1
    await daemon.engine.drain()
    [incident] = await daemon.deps.store.list_incidents()
    assert incident.title.startswith("erp-rds-cpu") and incident.severity.value == "P2"
    [audit] = await daemon.deps.store.list_audit(incident.id, 10)
    assert (audit.policy, audit.outcome) == ("erp-alarm-page", Outcome.DRY_RUN)  # dry-run: decided, not sent
    # The same occurrence published again (a second alarm action, say) is a duplicate by AlarmArn+time+state.
    await publish(Message=json.dumps(ALARM))
    assert daemon.count("alerts") == 1
    assert daemon.metric("remediator_alerts_received_total", source="sns", result="duplicate") == 1


async def test_an_eventbridge_event_published_to_moto_is_recorded_with_its_labels(
    subscribed: Callable[..., Any],
) -> None:
    daemon, publish = await subscribed()
    await publish(Message=corpus_file("eventbridge-rds-db-instance-event-failover.json").read_text())
    await daemon.engine.drain()
    [incident] = await daemon.deps.store.list_incidents()
    assert incident.title.startswith("RDS DB Instance Event")
    assert daemon.metric("remediator_alerts_received_total", source="sns", result="accepted") == 1


async def test_a_topic_that_is_not_allow_listed_is_refused_even_when_moto_signs_it(
    subscribed: Callable[..., Any],
) -> None:
    daemon, publish = await subscribed(topics=["arn:aws:sns:eu-west-1:123456789012:another-topic"])
    await publish(Message=json.dumps(ALARM))
    assert daemon.count("alerts") == 0
    assert daemon.metric("remediator_sns_deliveries_total", type="notification", result="unknown_topic") == 1


async def test_moto_signs_without_the_subject_so_a_message_with_one_is_refused(
    subscribed: Callable[..., Any],
) -> None:
    daemon, publish = await subscribed()
    await publish(Message=json.dumps(ALARM), Subject='ALARM: "erp-rds-cpu" in EU (Ireland)')
    assert daemon.count("alerts") == 0
    assert daemon.metric("remediator_sns_deliveries_total", type="notification", result="bad_signature") == 1
