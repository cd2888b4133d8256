"""The SNS Message dispatcher: every other corpus notification, the routing rules, and properties."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remediator.model import Alert, AlertStatus, stable_id
from remediator.sources.aws.cloudwatch import InsufficientData, alert_from_alarm
from remediator.sources.aws.eventbridge import alert_from_event
from remediator.sources.sns import messages as sns_messages
from remediator.sources.sns.messages import alerts_from_notification
from tests.conftest import CORPUS
from tests.sources.aws import test_cloudwatch, test_eventbridge
from tests.sources.corpus import RECEIVED, assert_well_formed, from_envelope, load, utc

TOPIC = "arn:aws:sns:eu-west-1:111122223333:remediator"


def notify(
    message: str, *, subject: str | None = None, received_at: datetime = RECEIVED, message_id: str = "m-1"
) -> Alert:
    alerts = alerts_from_notification(
        message,
        topic_arn=TOPIC,
        message_id=message_id,
        subject=subject,
        received_at=received_at,
        insufficient_data=InsufficientData.RECORD,
    )
    assert len(alerts) == 1
    assert_well_formed(alerts[0])
    return alerts[0]


# --- the corpus: RDS subscription and plain notifications -------------------------------------


def test_rds_event_subscription_message() -> None:
    alert = from_envelope("sns-rds-event-subscription-backup.json")
    assert_well_formed(alert)
    assert (alert.source, alert.name, alert.status, alert.actionable) == (
        "rds",
        "RDS-EVENT-0002",
        AlertStatus.FIRING,
        True,
    )
    assert alert.starts_at == utc("2019-01-02T12:45:06")  # "2019-01-02 12:45:06.000", no zone: UTC
    assert alert.received_at == RECEIVED
    # The doc sample's topic is in us-east-2 but its console link says eu-west-1: the link is RDS's.
    assert alert.group_key == "rds:eu-west-1:db:dbinstanceid"
    assert alert.fingerprint == stable_id("rds", "eu-west-1:db:dbinstanceid", "RDS-EVENT-0002")
    assert alert.dedup_keys == (
        "sns:arn:aws:sns:us-east-2:123456789012:sns-lambda:95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "rds-event:eu-west-1:db:dbinstanceid:RDS-EVENT-0002:2019-01-02T12:45:06.000+00:00",
    )
    assert dict(alert.labels) == {
        "source_type": "DB_INSTANCE",
        "source_identifier": "dbinstanceid",
        "source_arn": "",
        "db_instance": "dbinstanceid",
        "db_cluster": "",
        "rds_event_id": "RDS-EVENT-0002",
        "event_categories": "",
        "message": "Finished DB Instance backup",
        "region": "eu-west-1",
        "account": "",
        "sns_topic_arn": "arn:aws:sns:us-east-2:123456789012:sns-lambda",
        "sns_message_id": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
    }
    assert alert.summary == "Finished DB Instance backup"


def test_rds_subscription_and_eventbridge_give_one_identity() -> None:
    via_eventbridge = alert_from_event(
        load("eventbridge-rds-db-instance-event-failover.json"), delivery_key="d", received_at=RECEIVED
    )
    native = {
        "Event Source": "db-instance",
        "Event Time": "2018-09-27 22:36:43.292",
        "Identifier Link": "https://console.aws.amazon.com/rds/home?region=us-east-1#dbinstance:id=my-db-instance",
        "Source ID": "my-db-instance",
        "Event ID": "http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#RDS-EVENT-0049",
        "Event Message": "A Multi-AZ failover has completed.",
    }
    via_subscription = notify(json.dumps(native))
    assert (via_subscription.fingerprint, via_subscription.group_key) == (
        via_eventbridge.fingerprint,
        via_eventbridge.group_key,
    )
    assert via_subscription.dedup_keys[1] == via_eventbridge.dedup_keys[2]
    shared = (
        "source_type",
        "source_identifier",
        "db_instance",
        "db_cluster",
        "rds_event_id",
        "message",
        "region",
    )
    assert {k: via_subscription.labels[k] for k in shared} == {k: via_eventbridge.labels[k] for k in shared}


@dataclass(frozen=True)
class Plain:
    """A corpus notification whose Message is plain text."""

    file: str
    name: str
    summary: str
    topic_arn: str
    message_id: str
    subject: str


PLAIN = [
    Plain(
        "sns-notification-doc-example.json",
        "My First Message",
        "Hello world!",
        "arn:aws:sns:us-west-2:123456789012:MyTopic",
        "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "My First Message",
    ),
    Plain(
        "sns-real-signed-v1-notification-no-subject-2026.json",
        "SNS notification",
        "This notification has no subject.",
        "arn:aws:sns:us-west-2:131990247566:dongie-standard-topic",
        "c0e5a280-53c9-5a98-93bb-c0a560b3d192",
        "",
    ),
    Plain(
        "sns-real-signed-v1-notification-no-subject.json",
        "SNS notification",
        "Hello world",
        "arn:aws:sns:us-east-2:295079676684:publish-and-verify-892f85fe-4836-424d-8188-ab85bef0f362",
        "792cda85-518f-5dd3-9163-81d851212f3a",
        "",
    ),
    Plain(
        "sns-real-signed-v1-notification-with-message-attributes-2015.json",
        "test subject",
        "test message",
        "arn:aws:sns:us-east-1:041977924901:foo",
        "a890c547-5d98-55e2-971d-8826fff56413",
        "test subject",
    ),
    Plain(
        "sns-real-signed-v1-notification-with-message-attributes-2015b.json",
        "this is raw",
        "boo",
        "arn:aws:sns:us-east-1:810605503585:just_testing",
        "d39649d4-bf5b-5b80-af75-07acb3dd9b4a",
        "this is raw",
    ),
    Plain(
        "sns-real-signed-v1-notification-with-subject-2026.json",
        "My message subject",
        "Hello! This message has a subject.",
        "arn:aws:sns:us-west-2:131990247566:dongie-standard-topic",
        "26858270-545e-5848-82a2-e05566af3dcf",
        "My message subject",
    ),
    Plain(
        "sns-real-signed-v1-notification-with-subject.json",
        "Hello world",
        "Hello world",
        "arn:aws:sns:us-east-2:295079676684:publish-and-verify-6e11fed2-fcdf-4c52-9dc4-36ef43f37f84",
        "11405cc3-9ac7-56d5-b45d-079e8f7a8edf",
        "Hello world",
    ),
    Plain(
        "sns-real-signed-v2-notification-2026.json",
        "SNS notification",
        "This message uses signature version 2.",
        "arn:aws:sns:us-west-2:131990247566:dongie-standard-topic",
        "9d2c5580-b61d-550c-8583-37a582870907",
        "",
    ),
    Plain(
        "sns-real-signed-v2-notification-no-subject.json",
        "SNS notification",
        "Hello world",
        "arn:aws:sns:us-east-2:295079676684:publish-and-verify-62674b1d-4295-426b-88e7-5fb75652a04e",
        "17dea24b-55c2-540b-8362-f916557af765",
        "",
    ),
    Plain(
        "sns-real-signed-v2-notification-with-subject.json",
        "Hello world",
        "Hello world",
        "arn:aws:sns:us-east-2:295079676684:publish-and-verify-530b26da-0687-4fe4-9f71-780bad3181e2",
        "4504e649-d933-5aa9-8199-bd14ccf05f0b",
        "Hello world",
    ),
]


@pytest.mark.parametrize("row", PLAIN, ids=lambda row: row.file)
def test_plain_text_notification_is_recorded_never_acted_on(row: Plain) -> None:
    alert = from_envelope(row.file)
    assert_well_formed(alert)
    assert (alert.source, alert.name, alert.status, alert.actionable) == (
        "sns",
        row.name,
        AlertStatus.FIRING,
        False,
    )
    assert alert.summary == row.summary
    assert alert.starts_at == alert.received_at == RECEIVED
    assert alert.dedup_keys == (f"sns:{row.topic_arn}:{row.message_id}",)
    assert alert.group_key == f"sns:{row.topic_arn}"
    assert alert.fingerprint == stable_id("sns", row.topic_arn, row.subject)
    assert dict(alert.labels) == {
        "topic_arn": row.topic_arn,
        "subject": row.subject,
        "sns_topic_arn": row.topic_arn,
        "sns_message_id": row.message_id,
    }
    assert alert.annotations == {"message": row.summary}


def test_every_corpus_notification_is_in_a_table() -> None:
    notifications = set()
    for path in CORPUS.glob("*.json"):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(doc, dict) and doc.get("Type") == "Notification":
            notifications.add(path.name)
    tabled = {row.file for row in test_cloudwatch.ROWS} | {row.file for row in test_eventbridge.ROWS}
    tabled |= {row.file for row in PLAIN} | {"sns-rds-event-subscription-backup.json"}
    assert notifications <= tabled


def test_every_alert_carries_the_sns_labels() -> None:
    for row in test_cloudwatch.ROWS:
        if row.file.startswith("sns-"):
            envelope = load(row.file)
            labels = from_envelope(row.file).labels
            assert (labels["sns_topic_arn"], labels["sns_message_id"]) == (
                envelope["TopicArn"],
                envelope["MessageId"],
            )


# --- routing ----------------------------------------------------------------------------------


def alarm_message() -> dict[str, Any]:
    return test_cloudwatch.metric_alarm()


def test_alarm_is_routed_to_cloudwatch() -> None:
    message = json.dumps(alarm_message())
    alert = notify(message, subject='ALARM: "erp-db-connections" in EU (Ireland)')
    direct = alert_from_alarm(alarm_message(), delivery_key=f"sns:{TOPIC}:m-1", received_at=RECEIVED)
    assert alert.labels == {**direct.labels, "sns_topic_arn": TOPIC, "sns_message_id": "m-1"}
    assert alert.dedup_keys[0] == f"sns:{TOPIC}:m-1"


def test_insufficient_data_setting_reaches_the_parser() -> None:
    message = json.dumps(test_cloudwatch.metric_alarm(NewStateValue="INSUFFICIENT_DATA"))
    for setting, status in [
        (InsufficientData.FIRING, AlertStatus.FIRING),
        (InsufficientData.RESOLVED, AlertStatus.RESOLVED),
    ]:
        [alert] = alerts_from_notification(
            message,
            topic_arn=TOPIC,
            message_id="m",
            subject=None,
            received_at=RECEIVED,
            insufficient_data=setting,
        )
        assert (alert.status, alert.actionable) == (status, True)


def test_message_structure_json_default_is_unwrapped() -> None:
    alarm = json.dumps(alarm_message())
    wrapped = json.dumps({"default": alarm, "sms": "ALARM erp-db-connections", "email": "An alarm ..."})
    assert notify(wrapped) == notify(alarm)


def test_default_holding_text_is_recorded_with_that_text() -> None:
    alert = notify(json.dumps({"default": "Disk almost full on erp-files", "email": "..."}), subject="Ops")
    assert (alert.source, alert.name, alert.summary) == ("sns", "Ops", "Disk almost full on erp-files")


def test_default_is_unwrapped_once_only() -> None:
    twice = json.dumps({"default": json.dumps({"default": json.dumps(alarm_message())})})
    assert notify(twice).source == "sns"


@pytest.mark.parametrize(
    "message",
    [
        "This is a message to notify that RDS will attempt to publish events to this topic.",
        "",
        "   ",
        "null",
        "42",
        '"a JSON string"',
        "[1, 2, 3]",
        '{"hello": "world"}',
        '{"AlarmName": "half a message"',
        '{"Event Source": 1, "Event ID": 2}',
        "\ud800 lone surrogate",
    ],
)
def test_anything_else_is_recorded_never_acted_on(message: str) -> None:
    alert = notify(message, subject=None)
    assert (alert.source, alert.name, alert.actionable, alert.status) == (
        "sns",
        "SNS notification",
        False,
        AlertStatus.FIRING,
    )
    assert alert.summary == message[:200].encode("utf-8", "replace").decode()


def test_summary_is_the_first_200_characters() -> None:
    message = "x" * 199 + "yz" + "w" * 10_000
    alert = notify(message)
    assert alert.summary == "x" * 199 + "y"
    assert len(alert.annotations["message"]) == 4096


def test_received_at_is_kept_as_utc() -> None:
    ireland = datetime(2026, 5, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    alert = notify("hello", received_at=ireland)
    assert alert.received_at == RECEIVED and alert.received_at.tzinfo is UTC


def test_a_parser_bug_does_not_lose_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> Alert:
        raise KeyError("Trigger")

    monkeypatch.setattr(sns_messages, "alert_from_alarm", broken)
    alert = notify(json.dumps(alarm_message()), subject="ALARM")
    assert (alert.source, alert.actionable, alert.annotations["parse_error"]) == ("sns", False, "KeyError")
    assert alert.labels["sns_message_id"] == "m-1"


# --- properties -------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=24,
)
STATES = st.sampled_from(["ALARM", "OK", "INSUFFICIENT_DATA"]) | st.text(max_size=8)
TIMES = st.sampled_from(
    ["2021-11-10T02:45:55.640+0000", "2019-10-02T17:04:40Z", "date", "", "0001-01-01T00:00:00-01:00"]
) | st.text(max_size=30)
ARNS = st.sampled_from(
    ["arn:aws:cloudwatch:eu-west-1:1:alarm:a", "arn:x", "arn:aws:ecs:eu-west-1:1:cluster/c", ""]
) | st.text(max_size=30)


def loose(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is usually well-typed and sometimes anything at all."""
    return value | JSON_VALUES


DIMENSIONS = st.lists(
    st.fixed_dictionaries({"name": loose(st.text(max_size=12)), "value": loose(st.text(max_size=12))}),
    max_size=4,
)
METRIC_QUERY = st.fixed_dictionaries(
    {},
    optional={
        "Id": JSON_VALUES,
        "Expression": loose(st.sampled_from(["ANOMALY_DETECTION_BAND(m1, 2)", "m1 * 2"])),
        "MetricStat": loose(
            st.fixed_dictionaries(
                {
                    "Metric": loose(
                        st.fixed_dictionaries({"Dimensions": loose(DIMENSIONS), "MetricName": JSON_VALUES})
                    ),
                    "Stat": JSON_VALUES,
                }
            )
        ),
    },
)
TRIGGER = st.fixed_dictionaries(
    {},
    optional={
        "MetricName": JSON_VALUES,
        "Namespace": JSON_VALUES,
        "Statistic": JSON_VALUES,
        "Dimensions": loose(DIMENSIONS),
        "Threshold": JSON_VALUES,
        "ThresholdMetricId": JSON_VALUES,
        "TreatMissingData": JSON_VALUES,
        "Metrics": loose(st.lists(loose(METRIC_QUERY), max_size=3)),
    },
)
ALARMS = st.fixed_dictionaries(
    {"AlarmName": st.text(max_size=30), "NewStateValue": STATES},
    optional={
        "AlarmArn": loose(ARNS),
        "AWSAccountId": JSON_VALUES,
        "StateChangeTime": loose(TIMES),
        "Region": JSON_VALUES,
        "NewStateReason": JSON_VALUES,
        "AlarmDescription": JSON_VALUES,
        "OldStateValue": JSON_VALUES,
        "Trigger": loose(TRIGGER),
        "AlarmRule": JSON_VALUES,
        "TriggeringChildren": loose(st.lists(st.fixed_dictionaries({"Arn": loose(ARNS)}), max_size=3)),
    },
)
KINDS = st.sampled_from(
    [
        ("aws.rds", "RDS DB Instance Event"),
        ("aws.ecs", "ECS Task State Change"),
        ("aws.guardduty", "GuardDuty Finding"),
        ("aws.health", "AWS Health Event"),
        ("aws.cloudwatch", "CloudWatch Alarm State Change"),
        ("aws.s3", "Object Created"),
    ]
)
# Every field any of the kinds reads, each given anything.
DETAIL_KEYS = [
    "SourceType", "SourceArn", "SourceIdentifier", "EventID", "EventCategories", "Message", "Date",
    "clusterArn", "taskArn", "taskDefinitionArn", "group", "lastStatus", "desiredStatus", "stopCode",
    "stoppedReason", "launchType", "version", "containers", "id", "type", "arn", "severity", "resource",
    "service", "title", "description", "updatedAt", "eventArn", "eventTypeCode", "eventTypeCategory",
    "statusCode", "startTime", "endTime", "eventDescription", "affectedEntities", "alarmName", "state",
    "previousState", "configuration",
]  # fmt: skip
DETAILS = st.dictionaries(st.sampled_from(DETAIL_KEYS), JSON_VALUES, max_size=12)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    source, detail_type = draw(KINDS)
    return {
        "version": draw(loose(st.just("0"))),
        "id": draw(st.text(max_size=12)),
        "detail-type": detail_type,
        "source": source,
        "account": draw(JSON_VALUES),
        "time": draw(loose(TIMES)),
        "region": draw(JSON_VALUES),
        "resources": draw(loose(st.lists(loose(ARNS), max_size=3))),
        "detail": draw(DETAILS),
    }


def check(alert: Alert, delivery_key: str) -> None:
    assert_well_formed(alert)
    assert alert.dedup_keys[0] == delivery_key
    assert alert.received_at == RECEIVED


@given(ALARMS, st.sampled_from(InsufficientData))
def test_any_alarm_shaped_document_parses(doc: dict[str, Any], setting: InsufficientData) -> None:
    check(alert_from_alarm(doc, delivery_key="k", received_at=RECEIVED, insufficient_data=setting), "k")


@given(events())
def test_any_event_shaped_document_parses(doc: dict[str, Any]) -> None:
    check(alert_from_event(doc, delivery_key="k", received_at=RECEIVED), "k")


PROPERTY_SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)


@PROPERTY_SETTINGS
@given(st.text(), st.none() | st.text(max_size=20))
def test_any_text_gives_exactly_one_alert(message: str, subject: str | None) -> None:
    [alert] = alerts_from_notification(
        message,
        topic_arn=TOPIC,
        message_id="m",
        subject=subject,
        received_at=RECEIVED,
        insufficient_data=InsufficientData.RECORD,
    )
    check(alert, f"sns:{TOPIC}:m")
    assert "parse_error" not in alert.annotations


@PROPERTY_SETTINGS
@given(JSON_VALUES | ALARMS | events() | st.builds(lambda d: {"default": json.dumps(d)}, ALARMS | events()))
def test_any_json_gives_exactly_one_alert(doc: Any) -> None:
    [alert] = alerts_from_notification(
        json.dumps(doc),
        topic_arn=TOPIC,
        message_id="m",
        subject=None,
        received_at=RECEIVED,
        insufficient_data=InsufficientData.RECORD,
    )
    check(alert, f"sns:{TOPIC}:m")
    assert "parse_error" not in alert.annotations  # the safety net caught nothing: no parser bug
    assert {"sns_topic_arn", "sns_message_id"} <= set(alert.labels)


@functools.cache  # read once: the corpus does not change during a run
def corpus_messages() -> tuple[str, ...]:
    """Every alarm and event in the corpus as the Message text SNS would carry."""
    messages = []
    for path in sorted(CORPUS.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        if (
            isinstance(doc, dict)
            and doc.get("Type") == "Notification"
            and doc["Message"].lstrip().startswith("{")
        ):
            messages.append(doc["Message"])
        elif path.name.startswith(("cloudwatch-alarm-message-", "eventbridge-")):
            messages.append(json.dumps(doc))
    return tuple(messages)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every value nested in `value`."""
    found = [prefix]
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        found += paths(child, (*prefix, key))
    return found


@st.composite
def mutated_corpus_messages(draw: st.DrawFn) -> str:
    """A corpus alarm or event with one nested field replaced by anything, or removed."""
    doc = json.loads(draw(st.sampled_from(corpus_messages())))
    *parent_path, key = draw(st.sampled_from(paths(doc)[1:]))
    parent = doc
    for step in parent_path:
        parent = parent[step]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[key]
    else:
        parent[key] = draw(JSON_VALUES)
    return json.dumps(doc)


@PROPERTY_SETTINGS
@given(mutated_corpus_messages())
def test_any_corpus_payload_with_one_field_broken_gives_exactly_one_alert(message: str) -> None:
    [alert] = alerts_from_notification(
        message,
        topic_arn=TOPIC,
        message_id="m",
        subject=None,
        received_at=RECEIVED,
        insufficient_data=InsufficientData.RECORD,
    )
    check(alert, f"sns:{TOPIC}:m")
    assert "parse_error" not in alert.annotations
