"""CloudWatch alarm notifications → Alert: every corpus alarm, then the edge cases (docs/wire-formats.md §3, §6)."""

# The expected values are corpus strings written out verbatim; wrapping them would hide them.
# ruff: noqa: E501

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from remediator.model import Alert, AlertStatus, stable_id
from remediator.sources.aws.cloudwatch import (
    COMMON_LABELS,
    METRIC_LABELS,
    InsufficientData,
    alert_from_alarm,
    alert_from_alarm_event,
    is_alarm_message,
)
from tests.sources.corpus import DELIVERY, RECEIVED, assert_well_formed, from_envelope, load, names, utc


@dataclass(frozen=True)
class Row:
    """What one corpus file must parse into, written out in full."""

    file: str
    name: str
    status: AlertStatus
    actionable: bool
    starts_at: datetime
    group_key: str
    dedup_keys: tuple[str, ...]
    labels: dict[str, str]
    ends_at: datetime | None = None


ROWS = [
    Row(
        "cloudwatch-alarm-message-2026-with-mute-window-field.json",
        name="<alarm-name:1>",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=RECEIVED,
        group_key="cloudwatch:arn:<partition>:cloudwatch:<region>:111111111111:alarm:<alarm-name:1>",
        dedup_keys=(DELIVERY,),
        labels={
            "alarm_name": "<alarm-name:1>",
            "alarm_arn": "arn:<partition>:cloudwatch:<region>:111111111111:alarm:<alarm-name:1>",
            "alarm_type": "metric",
            "account": "111111111111",
            "region": "",
            "region_name": "<region-name-full:1>",
            "new_state": "ALARM",
            "old_state": "INSUFFICIENT_DATA",
            "state_reason": "Threshold Crossed: 1 datapoint [21.5 (MM/DD/YY HH:MM:SS)] was greater than the threshold (21.0).",
            "namespace": "<namespace:1>",
            "metric_name": "my-metric1",
            "statistic": "AVERAGE",
            "comparison": "GreaterThanThreshold",
            "threshold": "21",
            "treat_missing_data": "ignore",
            "InstanceId": "abc",
        },
    ),
    Row(
        "cloudwatch-alarm-message-breaching-missing-data.json",
        name="<alarm-name:1>",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=RECEIVED,
        group_key="cloudwatch:arn:<partition>:cloudwatch:<region>:111111111111:alarm:<alarm-name:1>",
        dedup_keys=(DELIVERY,),
        labels={
            "alarm_name": "<alarm-name:1>",
            "alarm_arn": "arn:<partition>:cloudwatch:<region>:111111111111:alarm:<alarm-name:1>",
            "alarm_type": "metric",
            "account": "111111111111",
            "region": "",
            "region_name": "<region-name-full:1>",
            "new_state": "ALARM",
            "old_state": "INSUFFICIENT_DATA",
            "state_reason": "Threshold Crossed: no datapoints were received for 2 periods and 2 missing datapoints were treated as [Breaching].",
            "namespace": "<namespace:1>",
            "metric_name": "my-metric101",
            "statistic": "AVERAGE",
            "comparison": "GreaterThanThreshold",
            "threshold": "2",
            "treat_missing_data": "breaching",
            "InstanceId": "abc",
        },
    ),
    Row(
        "cloudwatch-alarm-message-log-metric-tokyo-2025.json",
        name="ErrorAlarm",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2025-02-02T12:06:35.472000"),
        group_key="cloudwatch:arn:aws:cloudwatch:ap-northeast-1:449671225256:alarm:ErrorAlarm",
        dedup_keys=(
            DELIVERY,
            "cloudwatch:arn:aws:cloudwatch:ap-northeast-1:449671225256:alarm:ErrorAlarm:2025-02-02T12:06:35.472+00:00:ALARM",
        ),
        labels={
            "alarm_name": "ErrorAlarm",
            "alarm_arn": "arn:aws:cloudwatch:ap-northeast-1:449671225256:alarm:ErrorAlarm",
            "alarm_type": "metric",
            "account": "449671225256",
            "region": "ap-northeast-1",
            "region_name": "Asia Pacific (Tokyo)",
            "new_state": "ALARM",
            "old_state": "INSUFFICIENT_DATA",
            "state_reason": "Threshold Crossed: 1 datapoint [1.0 (02/02/25 12:05:00)] was greater than or equal to the threshold (1.0).",
            "namespace": "YourNamespace",
            "metric_name": "ErrorCount",
            "statistic": "SUM",
            "comparison": "GreaterThanOrEqualToThreshold",
            "threshold": "1",
            "treat_missing_data": "missing",
        },
    ),
    Row(
        "cloudwatch-alarm-message-rds-cpu-anomaly-band-ok-2023.json",
        name="RDS Prod - CPU Util",
        status=AlertStatus.RESOLVED,
        actionable=True,
        starts_at=utc("2023-09-08T15:47:04.677000"),
        ends_at=utc("2023-09-08T15:47:04.677000"),
        group_key="cloudwatch:arn:aws:cloudwatch:us-west-1:12341234:alarm:RDS Prod - CPU Util",
        dedup_keys=(
            DELIVERY,
            "cloudwatch:arn:aws:cloudwatch:us-west-1:12341234:alarm:RDS Prod - CPU Util:2023-09-08T15:47:04.677+00:00:OK",
        ),
        labels={
            "alarm_name": "RDS Prod - CPU Util",
            "alarm_arn": "arn:aws:cloudwatch:us-west-1:12341234:alarm:RDS Prod - CPU Util",
            "alarm_type": "anomaly",
            "account": "682846136134",
            "region": "us-west-1",
            "region_name": "US West (N. California)",
            "new_state": "OK",
            "old_state": "ALARM",
            "state_reason": "Thresholds Crossed: 1 out of the last 3 datapoints [40.609605060341245 (08/09/23 15:36:00)] was not greater than the upper thresholds [44.47595391472755] (minimum 1 datapoint for ALARM -> OK transition).",
            "namespace": "AWS/RDS",
            "metric_name": "CPUUtilization",
            "statistic": "AVERAGE",
            "comparison": "GreaterThanUpperThreshold",
            "threshold": "",
            "treat_missing_data": "missing",
            "threshold_metric_id": "ad1",
            "DBInstanceIdentifier": "trailsoffroad-prod-v3",
        },
    ),
    Row(
        "cloudwatch-alarm-message-set-alarm-state-unicode-2025.json",
        name="CustomMetricAlarm",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2025-02-02T13:25:02.875000"),
        group_key="cloudwatch:arn:aws:cloudwatch:ap-northeast-1:449671225256:alarm:CustomMetricAlarm",
        dedup_keys=(
            DELIVERY,
            "cloudwatch:arn:aws:cloudwatch:ap-northeast-1:449671225256:alarm:CustomMetricAlarm:2025-02-02T13:25:02.875+00:00:ALARM",
        ),
        labels={
            "alarm_name": "CustomMetricAlarm",
            "alarm_arn": "arn:aws:cloudwatch:ap-northeast-1:449671225256:alarm:CustomMetricAlarm",
            "alarm_type": "metric",
            "account": "449671225256",
            "region": "ap-northeast-1",
            "region_name": "Asia Pacific (Tokyo)",
            "new_state": "ALARM",
            "old_state": "INSUFFICIENT_DATA",
            "state_reason": "test",
            "namespace": "pocCustomNamespace",
            "metric_name": "pocCustomMetric",
            "statistic": "SUM",
            "comparison": "GreaterThanThreshold",
            "threshold": "100",
            "treat_missing_data": "missing",
        },
    ),
    Row(
        "sns-cloudwatch-alarm-anomaly-detection-ok.json",
        name="ContainerInsight-pod_cpu_utilization",
        status=AlertStatus.RESOLVED,
        actionable=True,
        starts_at=utc("2021-06-27T13:53:39.351000"),
        ends_at=utc("2021-06-27T13:53:39.351000"),
        group_key="cloudwatch:arn:aws:cloudwatch:ap-northeast-2:257706363616:alarm:ContainerInsight-pod_cpu_utilization",
        dedup_keys=(
            "sns:arn:aws:sns:ap-northeast-2:257706363616:spaceone-notification:448b4055-f4e5-5887-a547-190771c6686b",
            "cloudwatch:arn:aws:cloudwatch:ap-northeast-2:257706363616:alarm:ContainerInsight-pod_cpu_utilization:2021-06-27T13:53:39.351+00:00:OK",
        ),
        labels={
            "alarm_name": "ContainerInsight-pod_cpu_utilization",
            "alarm_arn": "arn:aws:cloudwatch:ap-northeast-2:257706363616:alarm:ContainerInsight-pod_cpu_utilization",
            "alarm_type": "anomaly",
            "account": "257706363616",
            "region": "ap-northeast-2",
            "region_name": "Asia Pacific (Seoul)",
            "new_state": "OK",
            "old_state": "ALARM",
            "state_reason": "Thresholds Crossed: 1 out of the last 1 datapoints [0.46522264287069004 (27/06/21 13:52:00)] was not less than the lower thresholds [0.4129373661576242] or not greater than the upper thresholds [0.4700330400585261] (minimum 1 datapoint for ALARM -> OK transition).",
            "namespace": "ContainerInsights",
            "metric_name": "pod_cpu_utilization",
            "statistic": "AVERAGE",
            "comparison": "LessThanLowerOrGreaterThanUpperThreshold",
            "threshold": "",
            "treat_missing_data": "missing",
            "threshold_metric_id": "ad1",
            "ClusterName": "cloudone-dev-v1-eks-cluster",
            "sns_topic_arn": "arn:aws:sns:ap-northeast-2:257706363616:spaceone-notification",
            "sns_message_id": "448b4055-f4e5-5887-a547-190771c6686b",
        },
    ),
    Row(
        "sns-cloudwatch-alarm-ec2-cpu-2021.json",
        name="EC2-CPU",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2021-06-23T08:41:06.622000"),
        group_key="cloudwatch:arn:aws:cloudwatch:ap-northeast-2:257706363616:alarm:EC2-CPU",
        dedup_keys=(
            "sns:arn:aws:sns:ap-northeast-2:257706363616:spaceone-notification:e7c82e01-7cd8-5569-9ac1-774d893afc01",
            "cloudwatch:arn:aws:cloudwatch:ap-northeast-2:257706363616:alarm:EC2-CPU:2021-06-23T08:41:06.622+00:00:ALARM",
        ),
        labels={
            "alarm_name": "EC2-CPU",
            "alarm_arn": "arn:aws:cloudwatch:ap-northeast-2:257706363616:alarm:EC2-CPU",
            "alarm_type": "metric",
            "account": "257706363616",
            "region": "ap-northeast-2",
            "region_name": "Asia Pacific (Seoul)",
            "new_state": "ALARM",
            "old_state": "INSUFFICIENT_DATA",
            "state_reason": "Threshold Crossed: 1 out of the last 1 datapoints [17.2564528039004 (23/06/21 08:31:00)] was greater than the threshold (15.0) (minimum 1 datapoint for OK -> ALARM transition).",
            "namespace": "AWS/EC2",
            "metric_name": "CPUUtilization",
            "statistic": "AVERAGE",
            "comparison": "GreaterThanThreshold",
            "threshold": "15",
            "treat_missing_data": "missing",
            "InstanceId": "i-0f672ea50a80cda4b",
            "sns_topic_arn": "arn:aws:sns:ap-northeast-2:257706363616:spaceone-notification",
            "sns_message_id": "e7c82e01-7cd8-5569-9ac1-774d893afc01",
        },
    ),
    Row(
        "sns-cloudwatch-alarm-rds-connections.json",
        name="SharedInfra-Alpha-Database-DatabaseInstanceObservabilityHighDatabaseConnectionsAlarm5CD1334F-FetIEoRn5hgP",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2024-07-05T15:20:44.959000"),
        group_key="cloudwatch:arn:aws:cloudwatch:eu-south-1:975050211138:alarm:SharedInfra-Alpha-Database-DatabaseInstanceObservabilityHighDatabaseConnectionsAlarm5CD1334F-FetIEoRn5hgP",
        dedup_keys=(
            "sns:arn:aws:sns:eu-south-1:975050211138:condense-alarms-topic:e1a5d850-56a8-5cb9-873c-87524725ca49",
            "cloudwatch:arn:aws:cloudwatch:eu-south-1:975050211138:alarm:SharedInfra-Alpha-Database-DatabaseInstanceObservabilityHighDatabaseConnectionsAlarm5CD1334F-FetIEoRn5hgP:2024-07-05T15:20:44.959+00:00:ALARM",
        ),
        labels={
            "alarm_name": "SharedInfra-Alpha-Database-DatabaseInstanceObservabilityHighDatabaseConnectionsAlarm5CD1334F-FetIEoRn5hgP",
            "alarm_arn": "arn:aws:cloudwatch:eu-south-1:975050211138:alarm:SharedInfra-Alpha-Database-DatabaseInstanceObservabilityHighDatabaseConnectionsAlarm5CD1334F-FetIEoRn5hgP",
            "alarm_type": "metric",
            "account": "975050211138",
            "region": "eu-south-1",
            "region_name": "EU (Milan)",
            "new_state": "ALARM",
            "old_state": "OK",
            "state_reason": "Threshold Crossed: 1 datapoint [8.0 (05/07/24 15:19:00)] was greater than or equal to the threshold (5.0).",
            "namespace": "AWS/RDS",
            "metric_name": "DatabaseConnections",
            "statistic": "AVERAGE",
            "comparison": "GreaterThanOrEqualToThreshold",
            "threshold": "5",
            "treat_missing_data": "",
            "DBInstanceIdentifier": "sharedinfra-alpha-databas-databaseinstance24d16791-o3f70cahozc6",
            "sns_topic_arn": "arn:aws:sns:eu-south-1:975050211138:condense-alarms-topic",
            "sns_message_id": "e1a5d850-56a8-5cb9-873c-87524725ca49",
        },
    ),
    Row(
        "sns-cloudwatch-metric-math.json",
        name="EXAMPLE",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2015-06-03T17:43:27.123000"),
        group_key="cloudwatch:arn:aws:cloudwatch:REGION:ACCOUNT_NUMBER:alarm:EXAMPLE",
        dedup_keys=(
            "sns:arn:aws:sns:EXAMPLE:95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "cloudwatch:arn:aws:cloudwatch:REGION:ACCOUNT_NUMBER:alarm:EXAMPLE:2015-06-03T17:43:27.123+00:00:ALARM",
        ),
        labels={
            "alarm_name": "EXAMPLE",
            "alarm_arn": "arn:aws:cloudwatch:REGION:ACCOUNT_NUMBER:alarm:EXAMPLE",
            "alarm_type": "metric_math",
            "account": "EXAMPLE",
            "region": "",
            "region_name": "EXAMPLE",
            "new_state": "ALARM",
            "old_state": "INSUFFICIENT_DATA",
            "state_reason": "Threshold Crossed: 1 out of the last 1 datapoints [1234.0 (06/03/15 17:43:27)] was greater than the threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition).",
            "namespace": "AWS/EC2",
            "metric_name": "NetworkOut",
            "statistic": "AVERAGE",
            "comparison": "GreaterThanThreshold",
            "threshold": "0",
            "treat_missing_data": "missing",
            "InstanceId": "TestInstance",
            "sns_topic_arn": "arn:aws:sns:EXAMPLE",
            "sns_message_id": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        },
    ),
    Row(
        "sns-real-signed-v1-cloudwatch-alarm-metric-2021.json",
        name="if-sim-app_427809481713_us-east-1-metric_emitting_node_failure",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2021-11-10T02:45:55.640000"),
        group_key="cloudwatch:arn:aws:cloudwatch:us-east-1:427809481713:alarm:if-sim-app_427809481713_us-east-1-metric_emitting_node_failure",
        dedup_keys=(
            "sns:arn:aws:sns:us-east-1:427809481713:if-sim-app-AWSCloudWatchDiagnostics:57c992bc-21f6-5a74-bda5-c8b9155571ca",
            "cloudwatch:arn:aws:cloudwatch:us-east-1:427809481713:alarm:if-sim-app_427809481713_us-east-1-metric_emitting_node_failure:2021-11-10T02:45:55.640+00:00:ALARM",
        ),
        labels={
            "alarm_name": "if-sim-app_427809481713_us-east-1-metric_emitting_node_failure",
            "alarm_arn": "arn:aws:cloudwatch:us-east-1:427809481713:alarm:if-sim-app_427809481713_us-east-1-metric_emitting_node_failure",
            "alarm_type": "metric",
            "account": "427809481713",
            "region": "us-east-1",
            "region_name": "US East (N. Virginia)",
            "new_state": "ALARM",
            "old_state": "INSUFFICIENT_DATA",
            "state_reason": "Threshold Crossed: 1 out of the last 1 datapoints [1.0 (10/11/21 02:40:00)] was greater than or equal to the threshold (1.0) (minimum 1 datapoint for OK -> ALARM transition).",
            "namespace": "sim-app_427809481713_us-east-1",
            "metric_name": "IExecutionFailureHook",
            "statistic": "SUM",
            "comparison": "GreaterThanOrEqualToThreshold",
            "threshold": "1",
            "treat_missing_data": "missing",
            "MetricGroupId": "routing_table.receive.hook",
            "RouteID": "metric_emitting_node",
            "sns_topic_arn": "arn:aws:sns:us-east-1:427809481713:if-sim-app-AWSCloudWatchDiagnostics",
            "sns_message_id": "57c992bc-21f6-5a74-bda5-c8b9155571ca",
        },
    ),
    Row(
        "sns-real-signed-v1-cloudwatch-composite-alarm-2021.json",
        name="if-sim-app_427809481713_us-east-1-test_node_monitor",
        status=AlertStatus.FIRING,
        actionable=True,
        starts_at=utc("2021-11-10T02:45:55.640000"),
        group_key="cloudwatch:arn:aws:cloudwatch:us-east-1:427809481713:alarm:if-sim-app_427809481713_us-east-1-test_node_monitor",
        dedup_keys=(
            "sns:arn:aws:sns:us-east-1:427809481713:if-sim-app-AWSCloudWatchDiagnostics:12c36222-e1fe-56f5-9540-3827d55d7732",
            "cloudwatch:arn:aws:cloudwatch:us-east-1:427809481713:alarm:if-sim-app_427809481713_us-east-1-test_node_monitor:2021-11-10T02:45:55.640+00:00:ALARM",
        ),
        labels={
            "alarm_name": "if-sim-app_427809481713_us-east-1-test_node_monitor",
            "alarm_arn": "arn:aws:cloudwatch:us-east-1:427809481713:alarm:if-sim-app_427809481713_us-east-1-test_node_monitor",
            "alarm_type": "composite",
            "account": "427809481713",
            "region": "us-east-1",
            "region_name": "US East (N. Virginia)",
            "new_state": "ALARM",
            "old_state": "OK",
            "state_reason": "arn:aws:cloudwatch:us-east-1:427809481713:alarm:if-sim-app_427809481713_us-east-1-metric_emitting_node_failure transitioned to ALARM at Wednesday 10 November, 2021 02:45:55 UTC",
            "alarm_rule": "ALARM(arn:aws:cloudwatch:us-east-1:427809481713:alarm:if-sim-app_427809481713_us-east-1-metric_emitting_node_failure) OR ALARM(arn:aws:cloudwatch:us-east-1:427809481713:alarm:if-sim-app_427809481713_us-east-1-metric_emitting_long_execution)",
            "triggering_children": "if-sim-app_427809481713_us-east-1-metric_emitting_node_failure",
            "sns_topic_arn": "arn:aws:sns:us-east-1:427809481713:if-sim-app-AWSCloudWatchDiagnostics",
            "sns_message_id": "12c36222-e1fe-56f5-9540-3827d55d7732",
        },
    ),
]


def parse(row: Row) -> Alert:
    """Bare Messages go to alert_from_alarm; SNS envelopes through the SNS dispatcher."""
    if row.file.startswith("cloudwatch-alarm-message-"):
        return alert_from_alarm(load(row.file), delivery_key=DELIVERY, received_at=RECEIVED)
    return from_envelope(row.file)


def test_every_cloudwatch_corpus_file_has_a_row() -> None:
    files = names("cloudwatch-alarm-message-", "sns-cloudwatch-", "sns-real-signed-v1-cloudwatch-")
    assert sorted(row.file for row in ROWS) == files


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.file)
def test_corpus_alarm(row: Row) -> None:
    alert = parse(row)
    assert_well_formed(alert)
    assert alert.source == "cloudwatch"
    assert alert.name == row.name
    assert alert.status is row.status
    assert alert.actionable is row.actionable
    assert alert.starts_at == row.starts_at
    assert alert.ends_at == row.ends_at
    assert alert.received_at == RECEIVED
    assert alert.group_key == row.group_key
    assert alert.fingerprint == stable_id("cloudwatch", row.group_key.removeprefix("cloudwatch:"))
    assert alert.dedup_keys == row.dedup_keys
    assert dict(alert.labels) == row.labels
    assert alert.severity_hint is None
    assert alert.annotations["state_reason"] == row.labels["state_reason"]  # all short enough
    assert len(alert.summary) <= 256
    assert row.labels["state_reason"].startswith(alert.summary.removesuffix("…"))


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.file)
def test_corpus_alarm_published_twice_keeps_its_identity(row: Row) -> None:
    later = utc("2030-01-01T00:00:00")
    if row.file.startswith("cloudwatch-alarm-message-"):
        doc = load(row.file)
        first = alert_from_alarm(doc, delivery_key="sns:t:1", received_at=RECEIVED)
        again = alert_from_alarm(doc, delivery_key="sns:t:2", received_at=later)
    else:
        first = from_envelope(row.file, message_id="first")
        again = from_envelope(row.file, message_id="second", received_at=later)
    assert (first.fingerprint, first.group_key) == (again.fingerprint, again.group_key)
    # A new delivery of one state change: a new delivery key, the same state-change key.
    assert first.dedup_keys[0] != again.dedup_keys[0]
    assert first.dedup_keys[1:] == again.dedup_keys[1:]


def test_corpus_fingerprints_tell_alarms_apart() -> None:
    fingerprints = {parse(row).fingerprint for row in ROWS}
    # The two LocalStack snapshots share one placeholder ARN; every other file is its own alarm.
    assert len(fingerprints) == len(ROWS) - 1


# --- edge cases -------------------------------------------------------------------------------

ARN = "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:erp-db-connections"


def metric_alarm(**changes: Any) -> dict[str, Any]:
    """A 2024-shaped RDS metric alarm message; `changes` replace fields (None-valued: removed)."""
    doc: dict[str, Any] = {
        "AlarmName": "erp-db-connections",
        "AlarmDescription": "Too many connections on the ERP primary",
        "AWSAccountId": "111122223333",
        "AlarmConfigurationUpdatedTimestamp": "2024-07-05T15:19:31.960+0000",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint [812.0 (05/07/24 15:19:00)] was greater than the threshold (800.0).",
        "StateChangeTime": "2024-07-05T15:20:44.959+0000",
        "Region": "EU (Ireland)",
        "AlarmArn": ARN,
        "OldStateValue": "OK",
        "OKActions": [],
        "AlarmActions": ["arn:aws:sns:eu-west-1:111122223333:remediator"],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "DatabaseConnections",
            "Namespace": "AWS/RDS",
            "StatisticType": "Statistic",
            "Statistic": "MAXIMUM",
            "Unit": None,
            "Dimensions": [{"value": "erp-primary", "name": "DBInstanceIdentifier"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 800.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def parse_doc(doc: dict[str, Any], insufficient: InsufficientData = InsufficientData.RECORD) -> Alert:
    alert = alert_from_alarm(doc, delivery_key=DELIVERY, received_at=RECEIVED, insufficient_data=insufficient)
    assert_well_formed(alert)
    return alert


def with_trigger(**changes: Any) -> dict[str, Any]:
    doc = metric_alarm()
    doc["Trigger"].update(changes)
    return doc


def test_metric_alarm_labels() -> None:
    alert = parse_doc(metric_alarm())
    assert dict(alert.labels) == {
        "alarm_name": "erp-db-connections",
        "alarm_arn": ARN,
        "alarm_type": "metric",
        "account": "111122223333",
        "region": "eu-west-1",
        "region_name": "EU (Ireland)",
        "new_state": "ALARM",
        "old_state": "OK",
        "state_reason": metric_alarm()["NewStateReason"],
        "namespace": "AWS/RDS",
        "metric_name": "DatabaseConnections",
        "statistic": "MAXIMUM",
        "comparison": "GreaterThanThreshold",
        "threshold": "800",
        "treat_missing_data": "missing",
        "DBInstanceIdentifier": "erp-primary",
    }
    assert alert.annotations == {
        "description": "Too many connections on the ERP primary",
        "state_reason": metric_alarm()["NewStateReason"],
    }
    assert alert.dedup_keys == (DELIVERY, f"cloudwatch:{ARN}:2024-07-05T15:20:44.959+00:00:ALARM")


def test_unknown_fields_are_ignored() -> None:
    doc = metric_alarm(ActionExecutedAfterMuteWindow=False, SomethingNew={"nested": [1, None]})
    doc["Trigger"]["Metrics2026"] = [{"Id": "x"}]
    assert parse_doc(doc) == parse_doc(metric_alarm())


@pytest.mark.parametrize("absent", [None, "", "missing"], ids=["null", "empty", "missing"])
def test_null_empty_and_missing_read_the_same(absent: str | None) -> None:
    doc = metric_alarm()
    for key in ("AlarmDescription", "AlarmConfigurationUpdatedTimestamp", "OKActions"):
        if absent == "missing":
            del doc[key]
        else:
            doc[key] = absent
    for key in ("Unit", "TreatMissingData", "EvaluateLowSampleCountPercentile"):
        if absent == "missing":
            del doc["Trigger"][key]
        else:
            doc["Trigger"][key] = absent
    alert = parse_doc(doc)
    assert alert.annotations["description"] == ""
    assert alert.labels["treat_missing_data"] == ""
    assert alert.labels["threshold"] == "800"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("- TreatMissingData:                    missing", "missing"),
        ("- TreatMissingData: missing", "missing"),
        ("breaching", "breaching"),
        ("notBreaching", "notBreaching"),
        ("", ""),
    ],
)
def test_treat_missing_data_legacy_formatting(raw: str, expected: str) -> None:
    assert parse_doc(with_trigger(TreatMissingData=raw)).labels["treat_missing_data"] == expected


def test_ok_state_shares_the_fingerprint_of_its_alarm() -> None:
    firing = parse_doc(metric_alarm())
    resolved = parse_doc(
        metric_alarm(
            NewStateValue="OK", OldStateValue="ALARM", StateChangeTime="2024-07-05T15:40:44.000+0000"
        )
    )
    assert resolved.status is AlertStatus.RESOLVED and resolved.actionable
    assert (resolved.fingerprint, resolved.group_key) == (firing.fingerprint, firing.group_key)
    assert resolved.dedup_keys[1] == f"cloudwatch:{ARN}:2024-07-05T15:40:44.000+00:00:OK"
    assert resolved.dedup_keys[1] != firing.dedup_keys[1]
    assert resolved.ends_at == resolved.starts_at == utc("2024-07-05T15:40:44")
    assert firing.ends_at is None


@pytest.mark.parametrize(
    ("option", "status", "actionable"),
    [
        (InsufficientData.RECORD, AlertStatus.FIRING, False),
        (InsufficientData.FIRING, AlertStatus.FIRING, True),
        (InsufficientData.RESOLVED, AlertStatus.RESOLVED, True),
    ],
)
def test_insufficient_data_follows_the_setting(
    option: InsufficientData, status: AlertStatus, actionable: bool
) -> None:
    alert = parse_doc(metric_alarm(NewStateValue="INSUFFICIENT_DATA"), option)
    assert (alert.status, alert.actionable) == (status, actionable)
    assert alert.labels["new_state"] == "INSUFFICIENT_DATA"


@pytest.mark.parametrize("state", ["", "ALARMING", "ok"])
def test_unknown_state_is_recorded_not_acted_on(state: str) -> None:
    alert = parse_doc(metric_alarm(NewStateValue=state))
    assert (alert.status, alert.actionable) == (AlertStatus.FIRING, False)


def test_dimensions_empty() -> None:
    alert = parse_doc(with_trigger(Dimensions=[]))
    assert set(alert.labels) == {*COMMON_LABELS, *METRIC_LABELS}


def test_every_dimension_is_a_label_under_its_own_name() -> None:
    dimensions = [
        {"value": "app/erp-alb/50dc6c495c0c9188", "name": "LoadBalancer"},
        {"value": "targetgroup/erp-api/943f017f100becff", "name": "TargetGroup"},
        {"value": "erp-prod", "name": "ClusterName"},
        {"value": "erp-api", "name": "ServiceName"},
        {"value": "erp-sessions-001", "name": "CacheClusterId"},
    ]
    labels = parse_doc(with_trigger(Dimensions=dimensions)).labels
    assert {d["name"]: labels[d["name"]] for d in dimensions} == {d["name"]: d["value"] for d in dimensions}


def test_a_dimension_cannot_shadow_a_label() -> None:
    dimensions = [{"value": "Frankfurt", "name": "region"}, {"value": "x", "name": "sns_topic_arn"}]
    labels = parse_doc(with_trigger(Dimensions=dimensions)).labels
    assert labels["region"] == "eu-west-1"
    assert labels["dimension_region"] == "Frankfurt"
    assert labels["dimension_sns_topic_arn"] == "x"


def test_wrongly_typed_fields_still_give_string_labels() -> None:
    doc = with_trigger(
        Threshold="high",
        Dimensions=[{"value": 5, "name": "Shard"}, {"value": None, "name": "Empty"}, {"name": None}, "junk"],
        Statistic=None,
        ComparisonOperator=["GreaterThanThreshold"],
    )
    doc.update(AlarmDescription={"text": "x"}, AWSAccountId=111122223333, OldStateValue=True)
    alert = parse_doc(doc)
    assert alert.labels["threshold"] == "high"
    assert (alert.labels["Shard"], alert.labels["Empty"]) == ("5", "")
    assert (alert.labels["statistic"], alert.labels["comparison"]) == ("", "")
    assert (alert.labels["account"], alert.labels["old_state"]) == ("111122223333", "true")
    assert alert.annotations["description"] == ""


def test_long_reason_is_bounded_in_labels_and_summary_but_whole_in_annotations() -> None:
    reason = "Threshold Crossed: " + "x" * 5000
    alert = parse_doc(metric_alarm(NewStateReason=reason))
    assert len(alert.labels["state_reason"]) == 512
    assert len(alert.summary) == 256
    assert alert.annotations["state_reason"] == reason


def test_2016_message_without_alarm_arn() -> None:
    doc = metric_alarm(AlarmArn=None, Region="US West - Oregon", AlarmConfigurationUpdatedTimestamp=None)
    alert = parse_doc(doc)
    identity = "111122223333:US West - Oregon:erp-db-connections"
    assert alert.labels["region"] == ""  # no ARN: the display name cannot be trusted as a code
    assert (alert.labels["region_name"], alert.labels["alarm_arn"]) == ("US West - Oregon", "")
    assert alert.fingerprint == stable_id("cloudwatch", identity)
    assert alert.group_key == f"cloudwatch:{identity}"
    assert alert.dedup_keys[1] == f"cloudwatch:{identity}:2024-07-05T15:20:44.959+00:00:ALARM"


@pytest.mark.parametrize("time", [None, "", "date", "yesterday"])
def test_unusable_state_change_time(time: str | None) -> None:
    alert = parse_doc(metric_alarm(StateChangeTime=time))
    assert alert.starts_at == RECEIVED
    # A key without a time would match every later change of this alarm: leave it out.
    assert alert.dedup_keys == (DELIVERY,)


def test_unicode_and_colons_in_names() -> None:
    name = "ERP 本番: DB 接続数 ⚠"
    arn = f"arn:aws:cloudwatch:ap-northeast-1:111122223333:alarm:{name}"
    alert = parse_doc(metric_alarm(AlarmName=name, AlarmArn=arn, AlarmDescription="患者データベース"))
    assert (alert.name, alert.labels["alarm_name"], alert.labels["region"]) == (name, name, "ap-northeast-1")
    assert alert.annotations["description"] == "患者データベース"


def test_placeholder_region_in_arn_is_not_a_region_code() -> None:
    doc = metric_alarm(AlarmArn="arn:aws:cloudwatch:REGION:ACCOUNT_NUMBER:alarm:erp-db-connections")
    assert parse_doc(doc).labels["region"] == ""


def math_alarm(metrics: list[dict[str, Any]], **trigger: Any) -> dict[str, Any]:
    doc = metric_alarm()
    doc["Trigger"] = {
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.5,
        "TreatMissingData": "missing",
        "EvaluateLowSampleCountPercentile": "",
        "Metrics": metrics,
        **trigger,
    }
    return doc


def metric_stat(query_id: str, name: str, dimensions: dict[str, str], stat: str = "Sum") -> dict[str, Any]:
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Dimensions": [{"value": v, "name": k} for k, v in dimensions.items()],
                "MetricName": name,
                "Namespace": "AWS/ApplicationELB",
            },
            "Period": 60,
            "Stat": stat,
        },
        "ReturnData": False,
    }


def test_math_alarm_names_the_first_metric_and_the_dimensions_its_metrics_agree_on() -> None:
    lb = "app/erp-alb/50dc6c495c0c9188"
    doc = math_alarm(
        [
            {"Expression": "errors / requests", "Id": "e1", "Label": "5xx ratio", "ReturnData": True},
            metric_stat("errors", "HTTPCode_Target_5XX_Count", {"LoadBalancer": lb, "TargetGroup": "tg/api"}),
            metric_stat("requests", "RequestCount", {"LoadBalancer": lb, "TargetGroup": "tg/web"}),
        ]
    )
    alert = parse_doc(doc)
    assert alert.labels["alarm_type"] == "metric_math"
    assert (alert.labels["metric_name"], alert.labels["namespace"]) == (
        "HTTPCode_Target_5XX_Count",
        "AWS/ApplicationELB",
    )
    assert (alert.labels["statistic"], alert.labels["threshold"]) == ("SUM", "0.5")
    assert alert.labels["LoadBalancer"] == lb
    assert "TargetGroup" not in alert.labels  # two target groups: naming one would be a guess


def test_math_alarm_of_expressions_only() -> None:
    alert = parse_doc(math_alarm([{"Expression": "SELECT AVG(CPUUtilization) FROM AWS/EC2", "Id": "q1"}]))
    assert alert.labels["alarm_type"] == "metric_math"
    assert (alert.labels["metric_name"], alert.labels["namespace"], alert.labels["statistic"]) == ("", "", "")


def test_anomaly_alarm_has_a_threshold_metric_instead_of_a_threshold() -> None:
    doc = math_alarm(
        [
            metric_stat("m1", "TargetResponseTime", {"LoadBalancer": "app/erp-alb/1"}, "p99"),
            {"Expression": "ANOMALY_DETECTION_BAND(m1, 2)", "Id": "ad1", "ReturnData": True},
        ],
        ComparisonOperator="GreaterThanUpperThreshold",
        ThresholdMetricId="ad1",
        Threshold=None,
    )
    alert = parse_doc(doc)
    assert alert.labels["alarm_type"] == "anomaly"
    assert (alert.labels["threshold"], alert.labels["threshold_metric_id"]) == ("", "ad1")
    assert alert.labels["statistic"] == "P99"


def composite_alarm(children: list[dict[str, Any]]) -> dict[str, Any]:
    doc = metric_alarm(
        AlarmName="erp-api-down",
        AlarmArn="arn:aws:cloudwatch:eu-west-1:111122223333:alarm:erp-api-down",
        AlarmRule='ALARM("erp-api-5xx") OR ALARM(erp-api-latency)',
        TriggeringChildren=children,
        NewStateReason="arn:aws:cloudwatch:eu-west-1:111122223333:alarm:erp-api-5xx transitioned to ALARM at ...",
    )
    del doc["Trigger"]
    return doc


def test_composite_alarm() -> None:
    children = [
        {"Arn": "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:erp-api-5xx", "State": {"Value": "ALARM"}},
        {
            "Arn": "arn:aws:cloudwatch:eu-west-1:111122223333:alarm:erp-api-latency",
            "State": {"Value": "ALARM"},
        },
    ]
    alert = parse_doc(composite_alarm(children))
    assert set(alert.labels) == {*COMMON_LABELS, "alarm_rule", "triggering_children"}
    assert alert.labels["alarm_type"] == "composite"
    assert alert.labels["triggering_children"] == "erp-api-5xx,erp-api-latency"
    assert alert.labels["alarm_rule"] == alert.annotations["alarm_rule"]


def test_composite_alarm_without_triggering_children() -> None:
    alert = parse_doc(composite_alarm([]))
    assert alert.labels["alarm_type"] == "composite"
    assert alert.labels["triggering_children"] == ""
    assert alert.status is AlertStatus.FIRING


def test_alarm_without_trigger_or_rule_is_of_unknown_type() -> None:
    doc = metric_alarm()
    del doc["Trigger"]
    alert = parse_doc(doc)
    assert alert.labels["alarm_type"] == "unknown"
    assert set(alert.labels) == set(COMMON_LABELS)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"AlarmName": "a", "NewStateValue": "ALARM"}, True),
        ({"AlarmName": "a"}, False),
        ({"NewStateValue": "ALARM"}, False),
        ({"AlarmName": None, "NewStateValue": "ALARM"}, False),
        ({"alarmName": "a", "state": {"value": "ALARM"}}, False),  # EventBridge detail, not SNS
        ({"version": "0", "id": "x", "detail-type": "d", "source": "s", "detail": {}}, False),
    ],
)
def test_is_alarm_message(doc: dict[str, Any], expected: bool) -> None:
    assert is_alarm_message(doc) is expected


# --- the same state change through EventBridge ------------------------------------------------


def test_eventbridge_alarm_state_change_matches_the_sns_message_of_the_same_change() -> None:
    event = load("eventbridge-cloudwatch-alarm-state-change.json")
    # The SNS message CloudWatch would publish for the documented event's state change.
    message = {
        "AlarmName": "ServerCpuTooHigh",
        "AlarmDescription": "Goes into alarm when server CPU utilization is too high!",
        "AWSAccountId": "123456789012",
        "NewStateValue": "ALARM",
        "NewStateReason": event["detail"]["state"]["reason"],
        "StateChangeTime": "2019-10-02T17:04:40.989+0000",
        "Region": "US East (N. Virginia)",
        "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:ServerCpuTooHigh",
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "CPUUtilization",
            "Namespace": "AWS/EC2",
            "StatisticType": "Statistic",
            "Statistic": "AVERAGE",
            "Unit": None,
            "Dimensions": [{"value": "i-12345678901234567", "name": "InstanceId"}],
            "Period": 300,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 50.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
        },
    }
    via_sns = parse_doc(message)
    via_eventbridge = alert_from_alarm_event(event, delivery_key="eventbridge-delivery", received_at=RECEIVED)
    assert_well_formed(via_eventbridge)
    same = ("source", "name", "status", "actionable", "fingerprint", "group_key", "starts_at", "summary")
    assert {f: getattr(via_eventbridge, f) for f in same} == {f: getattr(via_sns, f) for f in same}
    assert via_eventbridge.dedup_keys[2] == via_sns.dedup_keys[1]  # processed once, either way
    assert via_eventbridge.dedup_keys[:2] == (
        "eventbridge-delivery",
        "eventbridge:c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
    )
    # What EventBridge does not carry: the region display name, comparison, missing-data treatment.
    differing = {k for k in via_sns.labels if via_sns.labels[k] != via_eventbridge.labels.get(k)}
    assert differing == {"region_name", "comparison", "treat_missing_data"}
    assert set(via_eventbridge.labels) == set(via_sns.labels)


def test_eventbridge_composite_alarm_state_change() -> None:
    event = copy.deepcopy(load("eventbridge-cloudwatch-alarm-state-change.json"))
    event["resources"] = ["arn:aws:cloudwatch:us-east-1:123456789012:alarm:erp-api-down"]
    detail = event["detail"]
    detail["alarmName"] = "erp-api-down"
    detail["configuration"] = {"alarmRule": "ALARM(erp-api-5xx) OR ALARM(erp-api-latency)", "description": ""}
    detail["state"]["reasonData"] = (
        '{"triggeringAlarms":[{"arn":"arn:aws:cloudwatch:us-east-1:123456789012:alarm:erp-api-5xx",'
        '"state":{"value":"ALARM","timestamp":"2019-10-02T17:04:40.000+0000"}}]}'
    )
    alert = alert_from_alarm_event(event, delivery_key=DELIVERY, received_at=RECEIVED)
    assert alert.labels["alarm_type"] == "composite"
    assert alert.labels["triggering_children"] == "erp-api-5xx"
    assert alert.labels["alarm_rule"] == "ALARM(erp-api-5xx) OR ALARM(erp-api-latency)"


def test_eventbridge_alarm_event_with_bad_reason_data_and_no_resources() -> None:
    event = copy.deepcopy(load("eventbridge-cloudwatch-alarm-state-change.json"))
    event["resources"] = []
    event["detail"]["state"]["reasonData"] = "{not json"
    alert = alert_from_alarm_event(event, delivery_key=DELIVERY, received_at=RECEIVED)
    assert_well_formed(alert)
    assert alert.labels["threshold"] == ""
    assert (alert.labels["alarm_arn"], alert.labels["region"]) == ("", "us-east-1")
    assert alert.group_key == "cloudwatch:123456789012::ServerCpuTooHigh"
