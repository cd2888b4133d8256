"""EventBridge events → Alert: every corpus event, then each kind's rules (docs/wire-formats.md §4, §6)."""

# The expected values are corpus strings written out verbatim; wrapping them would hide them.
# ruff: noqa: E501

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from remediator.model import Alert, AlertStatus, Severity, stable_id
from remediator.sources.aws.eventbridge import alert_from_event, guardduty_severity, is_event
from tests.sources.corpus import DELIVERY, RECEIVED, assert_well_formed, from_envelope, load, names, utc


@dataclass(frozen=True)
class Row:
    """What one corpus file must parse into, written out in full."""

    file: str
    source: str
    name: str
    status: AlertStatus
    actionable: bool
    starts_at: datetime
    fingerprint: str
    group_key: str
    dedup_keys: tuple[str, ...]
    summary: str
    labels: dict[str, str]
    ends_at: datetime | None = None
    severity_hint: Severity | None = None


ROWS = [
    Row(
        "eventbridge-cloudwatch-alarm-state-change.json",
        source="cloudwatch",
        name="ServerCpuTooHigh",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2019-10-02T17:04:40.989000"),
        fingerprint=stable_id(
            "cloudwatch", "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh"
        ),
        group_key="cloudwatch:arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh",
        dedup_keys=(
            DELIVERY,
            "eventbridge:c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
            "cloudwatch:arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh:2019-10-02T17:04:40.989+00:00:ALARM",
        ),
        summary="Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434 (02/10/19 16:59:00)] was greater than the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition).",
        labels={
            "alarm_name": "ServerCpuTooHigh",
            "alarm_arn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh",
            "alarm_type": "metric",
            "account": "123456789012",
            "region": "us-east-1",
            "region_name": "",
            "new_state": "ALARM",
            "old_state": "OK",
            "state_reason": "Threshold Crossed: 1 out of the last 1 datapoints [99.50160229693434 (02/10/19 16:59:00)] was greater than the threshold (50.0) (minimum 1 datapoint for OK -> ALARM transition).",
            "namespace": "AWS/EC2",
            "metric_name": "CPUUtilization",
            "statistic": "AVERAGE",
            "comparison": "",
            "threshold": "50",
            "treat_missing_data": "",
            "InstanceId": "i-12345678901234567",
        },
    ),
    Row(
        "eventbridge-ecs-task-state-change-running.json",
        source="eventbridge",
        name="ECS Task State Change",
        status=AlertStatus.RESOLVED,
        actionable=False,
        starts_at=utc("2020-01-23T17:57:58"),
        ends_at=utc("2020-01-23T17:57:58"),
        fingerprint=stable_id(
            "ecs-task",
            "arn:aws:ecs:us-west-2:111122223333:task/FargateCluster/c13b4cb40f1f4fe4a2971f76ae5a47ad",
        ),
        group_key="ecs:arn:aws:ecs:us-west-2:111122223333:cluster/FargateCluster:family:sample-fargate",
        dedup_keys=(
            DELIVERY,
            "eventbridge:3317b2af-7005-947d-b652-f55e762e571a",
        ),
        summary="ECS task sample-fargate:1 in FargateCluster is RUNNING",
        labels={
            "event_source": "aws.ecs",
            "detail_type": "ECS Task State Change",
            "account": "111122223333",
            "region": "us-west-2",
            "resources": "arn:aws:ecs:us-west-2:111122223333:task/FargateCluster/c13b4cb40f1f4fe4a2971f76ae5a47ad",
            "resource": "arn:aws:ecs:us-west-2:111122223333:task/FargateCluster/c13b4cb40f1f4fe4a2971f76ae5a47ad",
            "event_id": "3317b2af-7005-947d-b652-f55e762e571a",
            "cluster": "FargateCluster",
            "service": "",
            "group": "family:sample-fargate",
            "task_arn": "arn:aws:ecs:us-west-2:111122223333:task/FargateCluster/c13b4cb40f1f4fe4a2971f76ae5a47ad",
            "task_definition": "sample-fargate:1",
            "last_status": "RUNNING",
            "desired_status": "RUNNING",
            "stop_code": "",
            "stopped_reason": "",
            "launch_type": "FARGATE",
            "version": "4",
        },
    ),
    Row(
        "eventbridge-ecs-task-state-change-stopped.json",
        source="eventbridge",
        name="ECS Task State Change",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2019-11-19T21:13:34"),
        fingerprint=stable_id(
            "ecs-task", "arn:aws:ecs:us-east-2:667471847564:task/e9511a82-9247-4239-89e9-ffd548ed9ee4"
        ),
        group_key="ecs:arn:aws:ecs:us-east-2:667471847564:cluster/primary-cluster:family:voterintake",
        dedup_keys=(
            DELIVERY,
            "eventbridge:a87af632-7491-ac52-5953-9835d6813176",
        ),
        summary="ECS task voterintake:11 in primary-cluster is DEPROVISIONING: Essential container in task exited",
        labels={
            "event_source": "aws.ecs",
            "detail_type": "ECS Task State Change",
            "account": "667471847564",
            "region": "us-east-2",
            "resources": "arn:aws:ecs:us-east-2:667471847564:task/e9511a82-9247-4239-89e9-ffd548ed9ee4",
            "resource": "arn:aws:ecs:us-east-2:667471847564:task/e9511a82-9247-4239-89e9-ffd548ed9ee4",
            "event_id": "a87af632-7491-ac52-5953-9835d6813176",
            "cluster": "primary-cluster",
            "service": "",
            "group": "family:voterintake",
            "task_arn": "arn:aws:ecs:us-east-2:667471847564:task/e9511a82-9247-4239-89e9-ffd548ed9ee4",
            "task_definition": "voterintake:11",
            "last_status": "DEPROVISIONING",
            "desired_status": "STOPPED",
            "stop_code": "EssentialContainerExited",
            "stopped_reason": "Essential container in task exited",
            "launch_type": "FARGATE",
            "version": "4",
            "exit_code_voterintake": "0",
        },
    ),
    Row(
        "eventbridge-guardduty-finding-sample.json",
        source="eventbridge",
        name="GuardDuty Finding",
        status=AlertStatus.FIRING,
        actionable=False,
        starts_at=utc("2021-03-07T00:30:34"),
        fingerprint=stable_id("guardduty", "7ebc050b71c556086b524045c9067feb"),
        group_key="guardduty:7ebc050b71c556086b524045c9067feb",
        dedup_keys=(
            DELIVERY,
            "eventbridge:860d8fdd-3d43-d844-370b-0fb08d1b661d",
            "guardduty:7ebc050b71c556086b524045c9067feb:2021-03-07T00:29:35.498Z",
        ),
        severity_hint=Severity.P2,
        summary="Unusual outbound communication on port 25 from EC2 instance i-99999999.",
        labels={
            "event_source": "aws.guardduty",
            "detail_type": "GuardDuty Finding",
            "account": "303697492861",
            "region": "ca-central-1",
            "resources": "",
            "resource": "",
            "event_id": "860d8fdd-3d43-d844-370b-0fb08d1b661d",
            "finding_id": "7ebc050b71c556086b524045c9067feb",
            "finding_type": "Backdoor:EC2/Spambot",
            "finding_arn": "arn:aws:guardduty:ca-central-1:303697492861:detector/e8b2d11eace51dd009880267917bb379/finding/7ebc050b71c556086b524045c9067feb",
            "severity_score": "5",
            "resource_type": "Instance",
            "instance_id": "i-99999999",
            "access_key_id": "",
            "sample": "true",
            "title": "Unusual outbound communication on port 25 from EC2 instance i-99999999.",
        },
    ),
    Row(
        "eventbridge-rds-db-instance-event-failover.json",
        source="eventbridge",
        name="RDS DB Instance Event",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2018-09-27T22:36:43.292000"),
        fingerprint=stable_id("rds", "us-east-1:db:my-db-instance", "RDS-EVENT-0049"),
        group_key="rds:us-east-1:db:my-db-instance",
        dedup_keys=(
            DELIVERY,
            "eventbridge:68f6e973-1a0c-d37b-f2f2-94a7f62ffd4e",
            "rds-event:us-east-1:db:my-db-instance:RDS-EVENT-0049:2018-09-27T22:36:43.292+00:00",
        ),
        summary="A Multi-AZ failover has completed.",
        labels={
            "event_source": "aws.rds",
            "detail_type": "RDS DB Instance Event",
            "account": "123456789012",
            "region": "us-east-1",
            "resources": "arn:aws:rds:us-east-1:123456789012:db:my-db-instance",
            "resource": "arn:aws:rds:us-east-1:123456789012:db:my-db-instance",
            "event_id": "68f6e973-1a0c-d37b-f2f2-94a7f62ffd4e",
            "source_type": "DB_INSTANCE",
            "source_identifier": "my-db-instance",
            "source_arn": "arn:aws:rds:us-east-1:123456789012:db:my-db-instance",
            "db_instance": "my-db-instance",
            "db_cluster": "",
            "rds_event_id": "RDS-EVENT-0049",
            "event_categories": "failover",
            "message": "A Multi-AZ failover has completed.",
        },
    ),
    Row(
        "sns-eventbridge-guardduty-finding.json",
        source="eventbridge",
        name="GuardDuty Finding",
        status=AlertStatus.FIRING,
        actionable=False,
        starts_at=utc("2021-03-07T00:30:34"),
        fingerprint=stable_id("guardduty", "7ebc050b71c556086b524045c9067feb"),
        group_key="guardduty:7ebc050b71c556086b524045c9067feb",
        dedup_keys=(
            "sns:arn:aws:sns:ca-central-1:303697492861:phil-pager:f041e509-0fa7-5c39-af20-bdb72e802e09",
            "eventbridge:860d8fdd-3d43-d844-370b-0fb08d1b661d",
            "guardduty:7ebc050b71c556086b524045c9067feb:2021-03-07T00:29:35.498Z",
        ),
        severity_hint=Severity.P2,
        summary="Unusual outbound communication on port 25 from EC2 instance i-99999999.",
        labels={
            "event_source": "aws.guardduty",
            "detail_type": "GuardDuty Finding",
            "account": "303697492861",
            "region": "ca-central-1",
            "resources": "",
            "resource": "",
            "event_id": "860d8fdd-3d43-d844-370b-0fb08d1b661d",
            "finding_id": "7ebc050b71c556086b524045c9067feb",
            "finding_type": "Backdoor:EC2/Spambot",
            "finding_arn": "arn:aws:guardduty:ca-central-1:303697492861:detector/e8b2d11eace51dd009880267917bb379/finding/7ebc050b71c556086b524045c9067feb",
            "severity_score": "5",
            "resource_type": "Instance",
            "instance_id": "i-99999999",
            "access_key_id": "",
            "sample": "true",
            "title": "Unusual outbound communication on port 25 from EC2 instance i-99999999.",
            "sns_topic_arn": "arn:aws:sns:ca-central-1:303697492861:phil-pager",
            "sns_message_id": "f041e509-0fa7-5c39-af20-bdb72e802e09",
        },
    ),
    Row(
        "sns-eventbridge-rds-db-instance-failover.derived.json",
        source="eventbridge",
        name="RDS DB Instance Event",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2018-09-27T22:36:43.292000"),
        fingerprint=stable_id("rds", "us-east-1:db:my-db-instance", "RDS-EVENT-0049"),
        group_key="rds:us-east-1:db:my-db-instance",
        dedup_keys=(
            "sns:arn:aws:sns:us-east-1:123456789012:remediation:00000000-0000-0000-0000-000000000000",
            "eventbridge:68f6e973-1a0c-d37b-f2f2-94a7f62ffd4e",
            "rds-event:us-east-1:db:my-db-instance:RDS-EVENT-0049:2018-09-27T22:36:43.292+00:00",
        ),
        summary="A Multi-AZ failover has completed.",
        labels={
            "event_source": "aws.rds",
            "detail_type": "RDS DB Instance Event",
            "account": "123456789012",
            "region": "us-east-1",
            "resources": "arn:aws:rds:us-east-1:123456789012:db:my-db-instance",
            "resource": "arn:aws:rds:us-east-1:123456789012:db:my-db-instance",
            "event_id": "68f6e973-1a0c-d37b-f2f2-94a7f62ffd4e",
            "source_type": "DB_INSTANCE",
            "source_identifier": "my-db-instance",
            "source_arn": "arn:aws:rds:us-east-1:123456789012:db:my-db-instance",
            "db_instance": "my-db-instance",
            "db_cluster": "",
            "rds_event_id": "RDS-EVENT-0049",
            "event_categories": "failover",
            "message": "A Multi-AZ failover has completed.",
            "sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:remediation",
            "sns_message_id": "00000000-0000-0000-0000-000000000000",
        },
    ),
    Row(
        "sns-real-signed-v1-health-event-ec2-affected-entities.json",
        source="eventbridge",
        name="AWS Health Event",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2016-06-05T15:10:09"),
        fingerprint=stable_id(
            "health",
            "arn:aws:health:us-west-2::event/AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED_90353408594353980",
        ),
        group_key="health:arn:aws:health:us-west-2::event/AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED_90353408594353980",
        dedup_keys=(
            "sns:arn:aws:sns:ap-southeast-2:257706363616:phd-info-dev:8c9bce44-3a81-544d-bd36-94cd6166fb31",
            "eventbridge:7bf73129-1428-4cd3-a780-95db273d1602",
        ),
        summary="A description of the event will be provided here",
        labels={
            "event_source": "aws.health",
            "detail_type": "AWS Health Event",
            "account": "123456789012",
            "region": "us-west-2",
            "resources": "i-abcd1111",
            "resource": "i-abcd1111",
            "event_id": "7bf73129-1428-4cd3-a780-95db273d1602",
            "service": "EC2",
            "event_type_code": "AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED",
            "event_type_category": "issue",
            "status_code": "",
            "affected_entities": "i-abcd1111",
            "event_arn": "arn:aws:health:us-west-2::event/AWS_EC2_INSTANCE_STORE_DRIVE_PERFORMANCE_DEGRADED_90353408594353980",
            "sns_topic_arn": "arn:aws:sns:ap-southeast-2:257706363616:phd-info-dev",
            "sns_message_id": "8c9bce44-3a81-544d-bd36-94cd6166fb31",
        },
    ),
    Row(
        "sns-real-signed-v1-health-event-elb-api-issue.json",
        source="eventbridge",
        name="AWS Health Event",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2016-06-04T05:01:10"),
        fingerprint=stable_id(
            "health",
            "arn:aws:health:ap-southeast-2::event/AWS_ELASTICLOADBALANCING_API_ISSUE_90353408594353980",
        ),
        group_key="health:arn:aws:health:ap-southeast-2::event/AWS_ELASTICLOADBALANCING_API_ISSUE_90353408594353980",
        dedup_keys=(
            "sns:arn:aws:sns:ap-southeast-2:257706363616:phd-info-dev:3f78eee9-6691-51be-b77e-b4603c34d486",
            "eventbridge:7bf73129-1428-4cd3-a780-95db273d1602",
        ),
        summary="A description of the event will be provided here",
        labels={
            "event_source": "aws.health",
            "detail_type": "AWS Health Event",
            "account": "123456789012",
            "region": "ap-southeast-2",
            "resources": "",
            "resource": "",
            "event_id": "7bf73129-1428-4cd3-a780-95db273d1602",
            "service": "ELASTICLOADBALANCING",
            "event_type_code": "AWS_ELASTICLOADBALANCING_API_ISSUE",
            "event_type_category": "issue",
            "status_code": "",
            "affected_entities": "",
            "event_arn": "arn:aws:health:ap-southeast-2::event/AWS_ELASTICLOADBALANCING_API_ISSUE_90353408594353980",
            "sns_topic_arn": "arn:aws:sns:ap-southeast-2:257706363616:phd-info-dev",
            "sns_message_id": "3f78eee9-6691-51be-b77e-b4603c34d486",
        },
    ),
    # Its signature fails (values redacted): the SNS handler rejects it before this parser. Parsed
    # here only because the parser is pure and must cope with any Health event.
    Row(
        "sns-tampered-redacted-health-acm-renewal.json",
        source="eventbridge",
        name="AWS Health Event",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2022-04-06T06:00:53"),
        fingerprint=stable_id(
            "health",
            "arn:aws:health:us-east-1::event/ACM/AWS_ACM_RENEWAL_STATE_CHANGE/AWS_ACM_RENEWAL_STATE_CHANGE-837a9d58-dd89-441a-bee9-fea9425565e2",
        ),
        group_key="health:arn:aws:health:us-east-1::event/ACM/AWS_ACM_RENEWAL_STATE_CHANGE/AWS_ACM_RENEWAL_STATE_CHANGE-837a9d58-dd89-441a-bee9-fea9425565e2",
        dedup_keys=(
            "sns:arn:aws:sns:us-east-1:1234567890:spaceone-dev-sns-webhook-for-health-disabled:4be4288a-ce0d-5066-9059-724de0d178ee",
            "eventbridge:2345b410-2a1b-cc03-468a-92610013xxxx",
        ),
        summary="This is to notify you that AWS Certificate Manager (ACM) has completed the renewal of an SSL/TLS certificate that certificate includes the primary domain storybook.developer.spaceone.dev and a total of 1 domains.\\\\n\\\\nAWS account ID: 1234567890\\\\nAWS Regi…",
        labels={
            "event_source": "aws.health",
            "detail_type": "AWS Health Event",
            "account": "1234567890",
            "region": "us-east-1",
            "resources": "arn:aws:acm:us-east-1:1234567890:certificate/95d1b7f1-5e04-4c70-9a95-73764d4xxxxx",
            "resource": "arn:aws:acm:us-east-1:1234567890:certificate/95d1b7f1-5e04-4c70-9a95-73764d4xxxxx",
            "event_id": "2345b410-2a1b-cc03-468a-92610013xxxx",
            "service": "ACM",
            "event_type_code": "AWS_ACM_RENEWAL_STATE_CHANGE",
            "event_type_category": "scheduledChange",
            "status_code": "",
            "affected_entities": "arn:aws:acm:us-east-1:1234567890:certificate/95d1b7f1-5e04-4c70-9a95-73764d4dxxxx",
            "event_arn": "arn:aws:health:us-east-1::event/ACM/AWS_ACM_RENEWAL_STATE_CHANGE/AWS_ACM_RENEWAL_STATE_CHANGE-837a9d58-dd89-441a-bee9-fea9425565e2",
            "sns_topic_arn": "arn:aws:sns:us-east-1:1234567890:spaceone-dev-sns-webhook-for-health-disabled",
            "sns_message_id": "4be4288a-ce0d-5066-9059-724de0d178ee",
        },
    ),
]


def parse(row: Row) -> Alert:
    """Bare events go to alert_from_event; SNS envelopes through the SNS dispatcher."""
    if row.file.startswith("eventbridge-"):
        return alert_from_event(load(row.file), delivery_key=DELIVERY, received_at=RECEIVED)
    return from_envelope(row.file)


def test_every_eventbridge_corpus_file_has_a_row() -> None:
    files = names(
        "eventbridge-", "sns-eventbridge-", "sns-real-signed-v1-health-", "sns-tampered-redacted-health-"
    )
    assert sorted(row.file for row in ROWS) == files


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.file)
def test_corpus_event(row: Row) -> None:
    alert = parse(row)
    assert_well_formed(alert)
    assert (alert.source, alert.name) == (row.source, row.name)
    assert (alert.status, alert.actionable) == (row.status, row.actionable)
    assert (alert.starts_at, alert.ends_at, alert.received_at) == (row.starts_at, row.ends_at, RECEIVED)
    assert (alert.fingerprint, alert.group_key) == (row.fingerprint, row.group_key)
    assert alert.dedup_keys == row.dedup_keys
    assert alert.severity_hint is row.severity_hint
    assert alert.summary == row.summary
    assert dict(alert.labels) == row.labels


def test_an_event_via_sns_is_the_event_sent_straight() -> None:
    pairs = [
        ("eventbridge-guardduty-finding-sample.json", "sns-eventbridge-guardduty-finding.json"),
        (
            "eventbridge-rds-db-instance-event-failover.json",
            "sns-eventbridge-rds-db-instance-failover.derived.json",
        ),
    ]
    for bare, wrapped in pairs:
        straight = parse(next(row for row in ROWS if row.file == bare))
        via_sns = from_envelope(wrapped)
        assert via_sns.dedup_keys[1:] == straight.dedup_keys[1:]
        assert (via_sns.fingerprint, via_sns.group_key, via_sns.status) == (
            straight.fingerprint,
            straight.group_key,
            straight.status,
        )
        sns_labels = {"sns_topic_arn", "sns_message_id"}
        assert {k: v for k, v in via_sns.labels.items() if k not in sns_labels} == dict(straight.labels)


def test_two_health_samples_share_an_event_id_but_not_an_identity() -> None:
    # Both signed Health fixtures were published from the one documentation sample: same
    # envelope id, different eventArn. The eventbridge:<id> key would treat the second as a
    # re-delivery of the first; real EventBridge ids are unique per event.
    ec2 = from_envelope("sns-real-signed-v1-health-event-ec2-affected-entities.json")
    elb = from_envelope("sns-real-signed-v1-health-event-elb-api-issue.json")
    assert ec2.dedup_keys[1] == elb.dedup_keys[1]
    assert ec2.fingerprint != elb.fingerprint


# --- the envelope -----------------------------------------------------------------------------


def event(source: str, detail_type: str, detail: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": detail_type,
        "source": source,
        "account": "111122223333",
        "time": "2026-03-02T08:15:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": detail,
        **envelope,
    }


def parse_doc(doc: dict[str, Any]) -> Alert:
    alert = alert_from_event(doc, delivery_key=DELIVERY, received_at=RECEIVED)
    assert_well_formed(alert)
    return alert


def test_generic_event() -> None:
    resource = "arn:aws:s3:::erp-documents"
    doc = event(
        "aws.s3",
        "Object Created",
        {"bucket": {"name": "erp-documents"}},
        resources=[resource, "arn:aws:s3:::other"],
    )
    alert = parse_doc(doc)
    assert (alert.source, alert.name, alert.status, alert.actionable) == (
        "eventbridge",
        "Object Created",
        AlertStatus.FIRING,
        True,
    )
    assert dict(alert.labels) == {
        "event_source": "aws.s3",
        "detail_type": "Object Created",
        "account": "111122223333",
        "region": "eu-west-1",
        "resources": f"{resource},arn:aws:s3:::other",
        "resource": resource,
        "event_id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    }
    assert alert.fingerprint == stable_id("eventbridge", "aws.s3", "Object Created", resource)
    assert alert.group_key == f"eventbridge:aws.s3:{resource}"
    assert alert.dedup_keys == (DELIVERY, "eventbridge:6a7e8feb-b491-4cf7-a9f1-bf3703467718")
    assert alert.starts_at == utc("2026-03-02T08:15:00")


def test_cloudtrail_event_from_aws_rds_is_not_read_as_an_rds_event() -> None:
    doc = event("aws.rds", "AWS API Call via CloudTrail", {"eventName": "RebootDBInstance"})
    alert = parse_doc(doc)
    assert "rds_event_id" not in alert.labels
    assert alert.name == "AWS API Call via CloudTrail"


def test_unknown_fields_are_ignored() -> None:
    base = load("eventbridge-ecs-task-state-change-stopped.json")
    extended = copy.deepcopy(base)
    extended["replay-name"] = "x"
    extended["detail"]["newField"] = {"a": [1, 2]}
    assert parse_doc(extended) == parse_doc(base)


def test_missing_time_and_id() -> None:
    doc = event("aws.s3", "Object Created", {})
    del doc["time"]
    doc["id"] = ""
    alert = parse_doc(doc)
    assert alert.starts_at == RECEIVED
    assert alert.dedup_keys == (DELIVERY,)  # "eventbridge:" alone would match every id-less event


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"version": "0", "id": "x", "detail-type": "d", "source": "s", "detail": {}}, True),
        ({"id": "x", "detail-type": "d", "source": "s", "detail": {}}, True),  # version is not needed
        ({"id": "x", "detail-type": "d", "source": "s", "detail": "text"}, False),
        ({"id": "x", "detail-type": "d", "source": "s"}, False),
        ({"id": 1, "detail-type": "d", "source": "s", "detail": {}}, False),
        ({"AlarmName": "a", "NewStateValue": "ALARM"}, False),
    ],
)
def test_is_event(doc: dict[str, Any], expected: bool) -> None:
    assert is_event(doc) is expected


# --- RDS --------------------------------------------------------------------------------------


def test_rds_cluster_event() -> None:
    detail = {
        "EventCategories": ["failover"],
        "SourceType": "CLUSTER",
        "SourceArn": "arn:aws:rds:eu-west-1:111122223333:cluster:erp-aurora",
        "Date": "2026-03-02T08:14:59.120Z",
        "Message": "Completed failover to DB instance: erp-aurora-2",
        "SourceIdentifier": "erp-aurora",
        "EventID": "RDS-EVENT-0071",
    }
    alert = parse_doc(event("aws.rds", "RDS DB Cluster Event", detail, resources=[detail["SourceArn"]]))
    assert (alert.labels["db_cluster"], alert.labels["db_instance"]) == ("erp-aurora", "")
    assert alert.labels["rds_event_id"] == "RDS-EVENT-0071"
    assert alert.group_key == "rds:eu-west-1:cluster:erp-aurora"
    assert alert.fingerprint == stable_id("rds", "eu-west-1:cluster:erp-aurora", "RDS-EVENT-0071")
    assert (
        alert.dedup_keys[2]
        == "rds-event:eu-west-1:cluster:erp-aurora:RDS-EVENT-0071:2026-03-02T08:14:59.120+00:00"
    )
    assert alert.starts_at == utc("2026-03-02T08:14:59.120")


def test_rds_event_without_prefix_or_identifier() -> None:
    detail = {
        "SourceType": "DB_INSTANCE",
        "SourceArn": "arn:aws:rds:eu-west-1:111122223333:db:erp-replica",
        "EventID": "RDS-EVENT-0089",
        "Message": "low storage",
    }
    alert = parse_doc(event("aws.rds", "RDS DB Instance Event", detail))
    assert alert.labels["db_instance"] == "erp-replica"  # from the ARN
    assert (alert.labels["event_categories"], alert.status) == ("", AlertStatus.FIRING)
    assert len(alert.dedup_keys) == 2  # no Date: no RDS occurrence key


# --- ECS --------------------------------------------------------------------------------------


def ecs_event(last_status: str, desired_status: str, **detail: Any) -> dict[str, Any]:
    return event(
        "aws.ecs",
        "ECS Task State Change",
        {
            "clusterArn": "arn:aws:ecs:eu-west-1:111122223333:cluster/erp-prod",
            "taskArn": "arn:aws:ecs:eu-west-1:111122223333:task/erp-prod/0f1e2d3c4b5a",
            "taskDefinitionArn": "arn:aws:ecs:eu-west-1:111122223333:task-definition/erp-api:42",
            "group": "service:erp-api",
            "launchType": "FARGATE",
            "lastStatus": last_status,
            "desiredStatus": desired_status,
            "version": 3,
            "containers": [{"name": "api", "lastStatus": last_status}],
            **detail,
        },
    )


@pytest.mark.parametrize(
    ("last_status", "desired_status", "status", "actionable"),
    [
        ("PROVISIONING", "RUNNING", AlertStatus.RESOLVED, False),
        ("PENDING", "RUNNING", AlertStatus.RESOLVED, False),
        ("RUNNING", "RUNNING", AlertStatus.RESOLVED, False),
        ("RUNNING", "STOPPED", AlertStatus.FIRING, True),
        ("DEACTIVATING", "STOPPED", AlertStatus.FIRING, True),
        ("STOPPING", "STOPPED", AlertStatus.FIRING, True),
        ("DEPROVISIONING", "STOPPED", AlertStatus.FIRING, True),
        ("STOPPED", "STOPPED", AlertStatus.FIRING, True),
        ("PENDING", "STOPPED", AlertStatus.FIRING, True),  # failed to start
    ],
)
def test_ecs_task_status(
    last_status: str, desired_status: str, status: AlertStatus, actionable: bool
) -> None:
    alert = parse_doc(ecs_event(last_status, desired_status))
    assert (alert.status, alert.actionable) == (status, actionable)


def test_ecs_service_task_stopped() -> None:
    containers = [
        {
            "name": "api",
            "lastStatus": "STOPPED",
            "exitCode": 137,
            "reason": "OutOfMemoryError: Container killed due to memory usage",
        },
        {"name": "log-router", "lastStatus": "STOPPED", "exitCode": 0},
        {"name": "init", "lastStatus": "STOPPED"},
    ]
    doc = ecs_event(
        "STOPPED",
        "STOPPED",
        stopCode="EssentialContainerExited",
        stoppedReason="Essential container in task exited",
        containers=containers,
    )
    alert = parse_doc(doc)
    labels = alert.labels
    assert (labels["cluster"], labels["service"], labels["group"]) == (
        "erp-prod",
        "erp-api",
        "service:erp-api",
    )
    assert (labels["task_definition"], labels["version"]) == ("erp-api:42", "3")
    assert (labels["exit_code_api"], labels["exit_code_log-router"]) == ("137", "0")
    assert "exit_code_init" not in labels
    assert alert.group_key == "ecs:arn:aws:ecs:eu-west-1:111122223333:cluster/erp-prod:service:erp-api"
    assert alert.fingerprint == stable_id(
        "ecs-task", "arn:aws:ecs:eu-west-1:111122223333:task/erp-prod/0f1e2d3c4b5a"
    )


def test_ecs_steps_of_one_stopping_task_share_a_fingerprint() -> None:
    steps = [
        parse_doc(ecs_event(s, "STOPPED", version=v))
        for v, s in enumerate(["STOPPING", "DEPROVISIONING", "STOPPED"])
    ]
    assert len({alert.fingerprint for alert in steps}) == 1
    assert [alert.labels["version"] for alert in steps] == ["0", "1", "2"]


# --- GuardDuty --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "severity"),
    [
        (10, Severity.P1),
        (9.0, Severity.P1),
        (8.9, Severity.P1),
        (7.0, Severity.P1),
        (6.9, Severity.P2),
        (4.0, Severity.P2),
        (3.95, Severity.P3),
        (3.9, Severity.P3),
        (1.0, Severity.P3),
        (0.5, Severity.P4),
        ("8.0", Severity.P1),
        (None, None),
        (True, None),
        ("high", None),
        (float("nan"), None),
        ([8], None),
    ],
)
def test_guardduty_severity(score: object, severity: Severity | None) -> None:
    assert guardduty_severity(score) is severity


def guardduty_event(**detail: Any) -> dict[str, Any]:
    doc = copy.deepcopy(load("eventbridge-guardduty-finding-sample.json"))
    doc["detail"]["service"]["additionalInfo"].pop("sample")
    doc["detail"].update(detail)
    return doc


def test_real_guardduty_finding_is_actionable() -> None:
    alert = parse_doc(guardduty_event(severity=8))
    assert (alert.labels["sample"], alert.actionable, alert.severity_hint) == ("false", True, Severity.P1)


def test_guardduty_access_key_finding() -> None:
    resource = {
        "resourceType": "AccessKey",
        "accessKeyDetails": {"accessKeyId": "ASIASZ2EXAMPLE", "userName": "erp-ci", "userType": "IAMUser"},
    }
    alert = parse_doc(
        guardduty_event(
            resource=resource, type="UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS"
        )
    )
    assert (alert.labels["resource_type"], alert.labels["access_key_id"], alert.labels["instance_id"]) == (
        "AccessKey",
        "ASIASZ2EXAMPLE",
        "",
    )


def test_guardduty_reemitted_finding_correlates_but_is_a_new_occurrence() -> None:
    first = guardduty_event(updatedAt="2026-03-02T08:00:00.000Z")
    later = guardduty_event(updatedAt="2026-03-02T08:15:00.000Z")
    later["id"] = "0b9e7b0c-0000-4000-8000-000000000002"
    a, b = parse_doc(first), parse_doc(later)
    assert (a.fingerprint, a.group_key) == (b.fingerprint, b.group_key)
    assert not set(a.dedup_keys[1:]) & set(b.dedup_keys[1:])  # [0] is the (test) delivery key


# --- AWS Health -------------------------------------------------------------------------------


def health_event(**detail: Any) -> dict[str, Any]:
    return event(
        "aws.health",
        "AWS Health Event",
        {
            "eventArn": "arn:aws:health:eu-west-1::event/RDS/AWS_RDS_MAINTENANCE_SCHEDULED/AWS_RDS_MAINTENANCE_SCHEDULED-1",
            "service": "RDS",
            "eventTypeCode": "AWS_RDS_MAINTENANCE_SCHEDULED",
            "eventTypeCategory": "scheduledChange",
            "startTime": "Mon, 2 Mar 2026 08:00:00 GMT",
            "endTime": "Mon, 2 Mar 2026 09:00:00 GMT",
            "eventDescription": [
                {"language": "fr_FR", "latestDescription": "Maintenance planifiée"},
                {"language": "en_US", "latestDescription": "Scheduled maintenance"},
            ],
            "affectedEntities": [{"entityValue": "erp-primary"}, {"entityValue": "erp-replica"}],
            **detail,
        },
    )


@pytest.mark.parametrize(
    ("status_code", "status", "ends_at"),
    [
        ("open", AlertStatus.FIRING, None),
        ("upcoming", AlertStatus.FIRING, None),
        ("closed", AlertStatus.RESOLVED, utc("2026-03-02T09:00:00")),
        ("", AlertStatus.FIRING, None),
    ],
)
def test_health_status(status_code: str, status: AlertStatus, ends_at: datetime | None) -> None:
    alert = parse_doc(health_event(statusCode=status_code))
    assert (alert.status, alert.ends_at, alert.labels["status_code"]) == (status, ends_at, status_code)
    assert alert.starts_at == utc("2026-03-02T08:00:00")
    assert alert.summary == "Scheduled maintenance"
    assert alert.labels["affected_entities"] == "erp-primary,erp-replica"


def test_health_bad_times_fall_back_to_the_envelope() -> None:
    alert = parse_doc(health_event(startTime="soon", endTime=None, statusCode="closed"))
    assert alert.starts_at == alert.ends_at == utc("2026-03-02T08:15:00")


def test_health_affected_entities_are_bounded() -> None:
    entities = [{"entityValue": f"i-{n:017x}"} for n in range(500)]
    alert = parse_doc(health_event(affectedEntities=entities))
    assert len(alert.labels["affected_entities"]) <= 1024
