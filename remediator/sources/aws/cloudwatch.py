"""CloudWatch alarm state changes → `Alert` (docs/wire-formats.md §3, §6).

An alarm state change reaches us two ways: as the JSON `Message` CloudWatch publishes to SNS
(PascalCase, `Trigger`, `Region` as a display name) or as the EventBridge "CloudWatch Alarm State
Change" event (camelCase `detail`). Both are read into one `AlarmChange` and turned into an
`Alert` by one function, so policies see the same source, name, labels, fingerprint and
group key whichever way the change came.

Labels (all strings; "" when the message does not say):

- every alarm: alarm_name, alarm_arn, alarm_type (metric | metric_math | anomaly | composite |
  unknown), account, region (code, from the ARN; "" without a usable ARN), region_name (the SNS
  display name, e.g. "EU (Milan)"; "" from EventBridge), new_state, old_state, state_reason
  (first 512 characters; the full text is the `state_reason` annotation);
- metric, metric_math and anomaly alarms: namespace, metric_name, statistic (upper case),
  comparison, threshold (as text: "15", "0.5"), treat_missing_data, and one label per metric
  dimension under the dimension's own name (`dimension_<name>` if it would shadow a label above);
  anomaly alarms also threshold_metric_id;
- composite alarms: alarm_rule, triggering_children (child alarm names, comma-separated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from remediator.model import Alert, AlertStatus, stable_id
from remediator.sources.aws.documents import (
    REASON_LABEL_MAX,
    SUMMARY_MAX,
    as_utc,
    bounded,
    clip,
    dedup_keys,
    items,
    joined,
    loads,
    mapping,
    parse_arn,
    parse_iso_time,
    text,
    time_key,
)

SOURCE = "cloudwatch"
ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"  # EventBridge detail-type

METRIC = "metric"
METRIC_MATH = "metric_math"
ANOMALY = "anomaly"
COMPOSITE = "composite"
UNKNOWN = "unknown"  # no Trigger and no AlarmRule: nothing says what kind of alarm it is

COMMON_LABELS = (
    "alarm_name",
    "alarm_arn",
    "alarm_type",
    "account",
    "region",
    "region_name",
    "new_state",
    "old_state",
    "state_reason",
)
METRIC_LABELS = ("namespace", "metric_name", "statistic", "comparison", "threshold", "treat_missing_data")
COMPOSITE_LABELS = ("alarm_rule", "triggering_children")
# A dimension may not shadow these: policies must be able to trust what `region` means.
_SNS_LABELS = ("sns_topic_arn", "sns_message_id")
RESERVED_LABELS = frozenset(
    (*COMMON_LABELS, *METRIC_LABELS, "threshold_metric_id", *COMPOSITE_LABELS, *_SNS_LABELS)
)

_MAX_DIMENSIONS = 30  # CloudWatch's own limit per metric
_MAX_CHILDREN = 100  # CloudWatch's own limit per composite alarm


class InsufficientData(StrEnum):
    """What an INSUFFICIENT_DATA state means to the daemon (a setting, per deployment)."""

    RECORD = "record"  # recorded as firing but never acted on (Alert.actionable=False)
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """One alarm state change, whichever way it reached us."""

    name: str
    arn: str
    account: str
    region: str
    region_name: str
    new_state: str
    old_state: str
    reason: str
    changed_at: str  # as sent; parsed when used
    description: str
    alarm_type: str
    type_labels: Mapping[str, str]
    dimensions: Mapping[str, str]

    @property
    def identity(self) -> str:
        """The alarm ARN; without one (2016-era messages), account + region name + alarm name."""
        return self.arn or f"{self.account}:{self.region_name}:{self.name}"

    @property
    def state_key(self) -> str:
        """The dedup key of this state change, the same via SNS and via EventBridge ("" if no time)."""
        changed = time_key(self.changed_at)
        return f"{SOURCE}:{self.identity}:{changed}:{self.new_state}" if changed else ""


def is_alarm_message(doc: Mapping[str, Any]) -> bool:
    """True if `doc` looks like the alarm notification CloudWatch publishes to SNS."""
    return isinstance(doc.get("AlarmName"), str) and isinstance(doc.get("NewStateValue"), str)


def alert_from_alarm(
    doc: Mapping[str, Any],
    *,
    delivery_key: str,
    received_at: datetime,
    insufficient_data: InsufficientData = InsufficientData.RECORD,
) -> Alert:
    """The `Alert` for a CloudWatch alarm notification (the decoded SNS `Message`).

    Dedup keys: `delivery_key` first, then `cloudwatch:<alarm ARN>:<StateChangeTime>:<NewStateValue>`
    (the time normalised to UTC milliseconds; the key is left out when the time is unusable,
    because such a key would swallow every later change of the alarm).
    """
    change = _change_from_message(doc)
    return _alert(change, dedup_keys(delivery_key, change.state_key), received_at, insufficient_data, {})


def alert_from_alarm_event(
    event: Mapping[str, Any],
    *,
    delivery_key: str,
    received_at: datetime,
    insufficient_data: InsufficientData = InsufficientData.RECORD,
) -> Alert:
    """The `Alert` for an EventBridge "CloudWatch Alarm State Change" event.

    Same source, name, label names, fingerprint and group key as `alert_from_alarm`, and it
    shares the state-change dedup key with it, so one change delivered both ways is processed
    once. EventBridge does not carry the region display name, and (in the documented event) not
    the comparison operator or missing-data treatment: those labels are "". The threshold is read
    from `state.reasonData` when the event has no threshold of its own.
    """
    change = _change_from_event(event)
    event_id = text(event.get("id"))
    keys = dedup_keys(delivery_key, f"eventbridge:{event_id}" if event_id else "", change.state_key)
    return _alert(change, keys, received_at, insufficient_data, {"eventbridge_id": event_id})


def _alert(
    change: AlarmChange,
    keys: tuple[str, ...],
    received_at: datetime,
    insufficient_data: InsufficientData,
    extra_annotations: Mapping[str, str],
) -> Alert:
    status, actionable = _status(change.new_state, insufficient_data)
    received = as_utc(received_at)
    changed = parse_iso_time(change.changed_at) or received
    annotations = {"description": change.description, "state_reason": change.reason}
    if change.alarm_type == COMPOSITE:  # the label is bounded; rules run to 10 240 characters
        annotations["alarm_rule"] = change.type_labels.get("alarm_rule", "")
    return Alert(
        source=SOURCE,
        name=change.name or "CloudWatch alarm",
        status=status,
        fingerprint=stable_id(SOURCE, change.identity),
        dedup_keys=keys,
        group_key=f"{SOURCE}:{change.identity}",
        starts_at=changed,
        received_at=received,
        labels=_labels(change),
        annotations={**annotations, **extra_annotations},
        ends_at=changed if status is AlertStatus.RESOLVED else None,
        actionable=actionable,
        summary=clip(change.reason, SUMMARY_MAX),
    )


def _status(state: str, insufficient_data: InsufficientData) -> tuple[AlertStatus, bool]:
    """(status, actionable) for an alarm state."""
    if state == "ALARM":
        return AlertStatus.FIRING, True
    if state == "OK":
        return AlertStatus.RESOLVED, True
    if state == "INSUFFICIENT_DATA" and insufficient_data is InsufficientData.FIRING:
        return AlertStatus.FIRING, True
    if state == "INSUFFICIENT_DATA" and insufficient_data is InsufficientData.RESOLVED:
        return AlertStatus.RESOLVED, True
    # INSUFFICIENT_DATA under RECORD, or a state we do not know: keep it on record, act on nothing.
    return AlertStatus.FIRING, False


def _labels(change: AlarmChange) -> dict[str, str]:
    labels = {
        "alarm_name": change.name,
        "alarm_arn": change.arn,
        "alarm_type": change.alarm_type,
        "account": change.account,
        "region": change.region,
        "region_name": change.region_name,
        "new_state": change.new_state,
        "old_state": change.old_state,
        "state_reason": clip(change.reason, REASON_LABEL_MAX),
        **change.type_labels,
    }
    for name, value in change.dimensions.items():
        labels[f"dimension_{name}" if name in RESERVED_LABELS else name] = value
    return bounded(labels)


# --- the SNS message --------------------------------------------------------------------------


def _change_from_message(doc: Mapping[str, Any]) -> AlarmChange:
    arn = text(doc.get("AlarmArn"))
    parsed = parse_arn(arn)
    trigger = doc.get("Trigger")
    alarm_type = _message_alarm_type(doc, trigger)
    type_labels: Mapping[str, str] = {}
    dimensions: Mapping[str, str] = {}
    if alarm_type == COMPOSITE:
        children = [text(mapping(child).get("Arn")) for child in items(doc.get("TriggeringChildren"))]
        type_labels = _composite_labels(text(doc.get("AlarmRule")), children)
    elif alarm_type != UNKNOWN:
        type_labels, dimensions = _trigger_labels(mapping(trigger), alarm_type)
    return AlarmChange(
        name=text(doc.get("AlarmName")),
        arn=arn,
        account=text(doc.get("AWSAccountId")) or (parsed.account if parsed else ""),
        region=parsed.region_code if parsed else "",
        region_name=text(doc.get("Region")),
        new_state=text(doc.get("NewStateValue")),
        old_state=text(doc.get("OldStateValue")),
        reason=text(doc.get("NewStateReason")),
        changed_at=text(doc.get("StateChangeTime")),
        description=text(doc.get("AlarmDescription")),
        alarm_type=alarm_type,
        type_labels=type_labels,
        dimensions=dimensions,
    )


def _message_alarm_type(doc: Mapping[str, Any], trigger: object) -> str:
    if not isinstance(trigger, Mapping):  # composite alarms have no Trigger (docs/wire-formats.md §6.15)
        return COMPOSITE if "AlarmRule" in doc or "TriggeringChildren" in doc else UNKNOWN
    metrics = items(trigger.get("Metrics"))
    if not metrics:
        return METRIC
    return _metrics_alarm_type(metrics, "Expression", trigger.get("ThresholdMetricId"))


def _metrics_alarm_type(metrics: Sequence[Any], expression_key: str, threshold_metric_id: object) -> str:
    """anomaly or metric_math for an alarm defined by a list of metric queries."""
    # ThresholdMetricId exists only to name an ANOMALY_DETECTION_BAND query (PutMetricAlarm API).
    expressions = (text(mapping(metric).get(expression_key)).upper() for metric in metrics)
    if text(threshold_metric_id) or any("ANOMALY_DETECTION_BAND" in e for e in expressions):
        return ANOMALY
    return METRIC_MATH


def _trigger_labels(trigger: Mapping[str, Any], alarm_type: str) -> tuple[dict[str, str], dict[str, str]]:
    """(metric labels, dimensions) of a metric, metric-math or anomaly alarm's `Trigger`."""
    if alarm_type == METRIC:
        namespace, metric_name = text(trigger.get("Namespace")), text(trigger.get("MetricName"))
        statistic = text(trigger.get("Statistic")) or text(trigger.get("ExtendedStatistic"))
        dimensions = _agreeing([_dimension_pairs(trigger.get("Dimensions"))])
    else:
        # Math and anomaly alarms have no metric of their own: name the first MetricStat's metric
        # (the one an anomaly band is computed from; usually the only one in math alarms too).
        stats = [mapping(m.get("MetricStat")) for m in map(mapping, items(trigger.get("Metrics")))]
        stats = [stat for stat in stats if stat]
        first = stats[0] if stats else mapping(None)
        metric = mapping(first.get("Metric"))
        namespace, metric_name = text(metric.get("Namespace")), text(metric.get("MetricName"))
        statistic = text(first.get("Stat"))
        dimensions = _agreeing([_dimension_pairs(mapping(s.get("Metric")).get("Dimensions")) for s in stats])
    labels = _metric_labels(
        alarm_type,
        namespace=namespace,
        metric_name=metric_name,
        statistic=statistic,
        comparison=text(trigger.get("ComparisonOperator")),
        threshold=text(trigger.get("Threshold")),
        treat_missing_data=text(trigger.get("TreatMissingData")),
        threshold_metric_id=text(trigger.get("ThresholdMetricId")),
    )
    return labels, dimensions


# --- the EventBridge event --------------------------------------------------------------------


def _change_from_event(event: Mapping[str, Any]) -> AlarmChange:
    detail = mapping(event.get("detail"))
    state, previous = mapping(detail.get("state")), mapping(detail.get("previousState"))
    configuration = mapping(detail.get("configuration"))
    arn = next((r for r in items(event.get("resources")) if isinstance(r, str)), "")
    parsed = parse_arn(arn)
    reason_data = mapping(loads(text(state.get("reasonData"))))
    alarm_type = _event_alarm_type(configuration)
    type_labels: Mapping[str, str] = {}
    dimensions: Mapping[str, str] = {}
    if alarm_type == COMPOSITE:
        children = [text(mapping(child).get("arn")) for child in items(reason_data.get("triggeringAlarms"))]
        type_labels = _composite_labels(text(configuration.get("alarmRule")), children)
    elif alarm_type != UNKNOWN:
        type_labels, dimensions = _configuration_labels(configuration, alarm_type, reason_data)
    return AlarmChange(
        name=text(detail.get("alarmName")) or (parsed.resource_name if parsed else ""),
        arn=arn,
        account=text(event.get("account")) or (parsed.account if parsed else ""),
        region=parsed.region_code if parsed else text(event.get("region")),
        region_name="",
        new_state=text(state.get("value")),
        old_state=text(previous.get("value")),
        reason=text(state.get("reason")),
        changed_at=text(state.get("timestamp")),
        description=text(configuration.get("description")),
        alarm_type=alarm_type,
        type_labels=type_labels,
        dimensions=dimensions,
    )


def _event_alarm_type(configuration: Mapping[str, Any]) -> str:
    if "alarmRule" in configuration:
        return COMPOSITE
    metrics = items(configuration.get("metrics"))
    if not metrics:
        return UNKNOWN
    kind = _metrics_alarm_type(metrics, "expression", configuration.get("thresholdMetricId"))
    # The event lists even a plain metric alarm as one query: one MetricStat and nothing else is
    # how a plain metric alarm looks here, so call it `metric` as its SNS message would.
    only = mapping(metrics[0])
    if kind == METRIC_MATH and len(metrics) == 1 and only.get("metricStat") and not only.get("expression"):
        return METRIC
    return kind


def _configuration_labels(
    configuration: Mapping[str, Any], alarm_type: str, reason_data: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """(metric labels, dimensions) of an EventBridge alarm event's `configuration`."""
    stats = [mapping(m.get("metricStat")) for m in map(mapping, items(configuration.get("metrics")))]
    stats = [stat for stat in stats if stat]
    first = stats[0] if stats else mapping(None)
    metric = mapping(first.get("metric"))
    labels = _metric_labels(
        alarm_type,
        namespace=text(metric.get("namespace")),
        metric_name=text(metric.get("name")),
        statistic=text(first.get("stat")),
        # Not in the documented event; read in case AWS adds them, as the SNS message has them.
        comparison=text(configuration.get("comparisonOperator")),
        threshold=text(configuration.get("threshold")) or text(reason_data.get("threshold")),
        treat_missing_data=text(configuration.get("treatMissingData")),
        threshold_metric_id=text(configuration.get("thresholdMetricId")),
    )
    dimensions = _agreeing([_dimension_pairs(mapping(s.get("metric")).get("dimensions")) for s in stats])
    return labels, dimensions


# --- shared -----------------------------------------------------------------------------------


def _metric_labels(
    alarm_type: str,
    *,
    namespace: str,
    metric_name: str,
    statistic: str,
    comparison: str,
    threshold: str,
    treat_missing_data: str,
    threshold_metric_id: str,
) -> dict[str, str]:
    labels = {
        "namespace": namespace,
        "metric_name": metric_name,
        # SNS says "AVERAGE", MetricStat says "Average": one spelling for policies.
        "statistic": statistic.upper(),
        "comparison": comparison,
        "threshold": threshold,
        # Legacy messages say "- TreatMissingData:                    missing" (docs/wire-formats.md §3).
        "treat_missing_data": treat_missing_data.rsplit(":", 1)[-1].strip(),
    }
    if alarm_type == ANOMALY:
        labels["threshold_metric_id"] = threshold_metric_id
    return labels


def _composite_labels(rule: str, children: Sequence[str]) -> dict[str, str]:
    names = [_alarm_name(child) for child in children[:_MAX_CHILDREN]]
    return {"alarm_rule": rule, "triggering_children": joined(names)}


def _alarm_name(reference: str) -> str:
    """The alarm name in `arn:aws:cloudwatch:<region>:<account>:alarm:<name>`, or `reference`."""
    parsed = parse_arn(reference)
    return parsed.resource_name if parsed and parsed.resource.startswith("alarm:") else reference


def _dimension_pairs(value: object) -> list[tuple[str, str]]:
    """Dimensions as (name, value): SNS sends [{"value", "name"}], EventBridge {name: value}."""
    if isinstance(value, Mapping):
        pairs = [(text(name), text(dimension)) for name, dimension in value.items()]
    else:
        pairs = []
        for dimension in map(mapping, items(value)):
            name = dimension.get("name", dimension.get("Name"))
            pairs.append((text(name), text(dimension.get("value", dimension.get("Value")))))
    return [(name, dimension) for name, dimension in pairs[:_MAX_DIMENSIONS] if name]


def _agreeing(dimension_sets: Sequence[Sequence[tuple[str, str]]]) -> dict[str, str]:
    """The dimensions on whose value all metrics that have them agree.

    A math alarm over two DB instances has two `DBInstanceIdentifier` values; naming either one
    would point remediation at the wrong instance half of the time, so such a dimension is left out.
    """
    seen: dict[str, str] = {}
    conflicting: set[str] = set()
    for dimensions in dimension_sets:
        for name, value in dimensions:
            if seen.setdefault(name, value) != value:
                conflicting.add(name)
    return {name: value for name, value in seen.items() if name not in conflicting}
