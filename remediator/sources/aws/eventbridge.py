"""EventBridge events → `Alert` (docs/wire-formats.md §4), whether they came straight or through SNS.

Every event's Alert has source "eventbridge", name = `detail-type`, starts_at = `time`, dedup keys
(delivery key, `eventbridge:<id>`, [an occurrence key of the kind below]) and the envelope labels
event_source, detail_type, account, region, resources (comma-separated, bounded), resource (the
first one) and event_id (the envelope id). Known kinds add their own labels (all strings, "" when
the event does not say):

- aws.rds "RDS * Event": the labels of `rds_events`; firing.
- "ECS Task State Change": cluster, service, group, task_arn, task_definition, last_status,
  desired_status, stop_code, stopped_reason, launch_type, version, exit_code_<container>; a
  stopping or stopped task is firing, a pending or running one resolved and not actionable.
- "GuardDuty Finding": finding_id, finding_type, finding_arn, severity_score, resource_type,
  instance_id, access_key_id, sample, title; firing (sample findings not actionable), with a
  severity hint (`guardduty_severity`).
- aws.health "AWS Health *": service, event_type_code, event_type_category, status_code,
  affected_entities, event_arn; resolved when statusCode is "closed", else firing.
- "CloudWatch Alarm State Change": read as a CloudWatch alarm (source "cloudwatch", see
  `cloudwatch.alert_from_alarm_event`).
- anything else: the envelope labels only; firing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from remediator.model import Alert, AlertStatus, Severity, stable_id
from remediator.sources.aws import rds_events
from remediator.sources.aws.cloudwatch import ALARM_STATE_CHANGE, InsufficientData, alert_from_alarm_event
from remediator.sources.aws.documents import (
    LABEL_MAX,
    SUMMARY_MAX,
    as_utc,
    bounded,
    clip,
    dedup_keys,
    items,
    joined,
    mapping,
    parse_arn,
    parse_http_time,
    parse_iso_time,
    text,
)

SOURCE = "eventbridge"

# An ECS task that is on its way down or down. Each step is its own event (with a growing
# `version`), so a stopping task fires several times under one fingerprint.
_ECS_STOPPING = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED"})
_MAX_CONTAINERS = 10  # ECS allows 10 containers per task definition
_MAX_ENTITIES = 100


@dataclass(frozen=True, slots=True)
class Envelope:
    """The fields every EventBridge event has."""

    id: str
    detail_type: str
    source: str
    account: str
    region: str
    time: datetime | None
    resources: tuple[str, ...]
    detail: Mapping[str, Any]

    @staticmethod
    def of(doc: Mapping[str, Any]) -> Envelope:
        """The envelope of `doc`, read leniently."""
        return Envelope(
            id=text(doc.get("id")),
            detail_type=text(doc.get("detail-type")),
            source=text(doc.get("source")),
            account=text(doc.get("account")),
            region=text(doc.get("region")),
            time=parse_iso_time(doc.get("time")),
            resources=tuple(text(resource) for resource in items(doc.get("resources"))),
            detail=mapping(doc.get("detail")),
        )

    def labels(self) -> dict[str, str]:
        """The labels every EventBridge alert carries."""
        return {
            "event_source": self.source,
            "detail_type": self.detail_type,
            "account": self.account,
            "region": self.region,
            "resources": joined(self.resources, LABEL_MAX),
            "resource": self.resources[0] if self.resources else "",
            "event_id": self.id,
        }


@dataclass(frozen=True, slots=True)
class EventView:
    """What one kind of event adds to the envelope to make its `Alert`."""

    fingerprint: str
    group_key: str
    labels: Mapping[str, str]
    status: AlertStatus = AlertStatus.FIRING
    actionable: bool = True
    summary: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None  # None: the envelope's `time`
    ends_at: datetime | None = None  # None on a resolved alert: its start
    severity_hint: Severity | None = None
    occurrence_key: str = ""  # an extra dedup key of this kind, if it has one


def is_event(doc: Mapping[str, Any]) -> bool:
    """True if `doc` looks like an EventBridge event (id, detail-type, source and a detail object).

    `version` is not required: nothing here depends on it, and an input transformer may drop it.
    """
    return (
        isinstance(doc.get("id"), str)
        and isinstance(doc.get("detail-type"), str)
        and isinstance(doc.get("source"), str)
        and isinstance(doc.get("detail"), Mapping)
    )


def alert_from_event(
    doc: Mapping[str, Any],
    *,
    delivery_key: str,
    received_at: datetime,
    insufficient_data: InsufficientData = InsufficientData.RECORD,
) -> Alert:
    """The `Alert` for an EventBridge event (see the module docstring for what each kind gives).

    `insufficient_data` applies to "CloudWatch Alarm State Change" events only.
    """
    if doc.get("source") == "aws.cloudwatch" and doc.get("detail-type") == ALARM_STATE_CHANGE:
        return alert_from_alarm_event(
            doc, delivery_key=delivery_key, received_at=received_at, insufficient_data=insufficient_data
        )
    envelope = Envelope.of(doc)
    view = _view(envelope)
    received = as_utc(received_at)
    starts_at = view.starts_at or envelope.time or received
    resolved = view.status is AlertStatus.RESOLVED
    keys = dedup_keys(delivery_key, f"{SOURCE}:{envelope.id}" if envelope.id else "", view.occurrence_key)
    return Alert(
        source=SOURCE,
        name=envelope.detail_type or "EventBridge event",
        status=view.status,
        fingerprint=view.fingerprint,
        dedup_keys=keys,
        group_key=view.group_key,
        starts_at=starts_at,
        received_at=received,
        labels=bounded({**envelope.labels(), **view.labels}),
        annotations=view.annotations,
        ends_at=(view.ends_at or starts_at) if resolved else None,
        actionable=view.actionable,
        summary=clip(view.summary or envelope.detail_type, SUMMARY_MAX),
        severity_hint=view.severity_hint,
    )


def _view(envelope: Envelope) -> EventView:
    source, detail_type = envelope.source, envelope.detail_type
    # aws.rds also emits "AWS API Call via CloudTrail": only the RDS-shaped events are read as such.
    if source == "aws.rds" and detail_type.startswith("RDS "):
        return _rds_view(envelope)
    if source == "aws.ecs" and detail_type == "ECS Task State Change":
        return _ecs_task_view(envelope)
    if source == "aws.guardduty" and detail_type == "GuardDuty Finding":
        return _guardduty_view(envelope)
    if source == "aws.health" and detail_type.startswith("AWS Health"):
        return _health_view(envelope)
    return _generic_view(envelope)


def _generic_view(envelope: Envelope) -> EventView:
    # The first resource is the thing the event is about; without one, each event stands alone.
    anchor = envelope.resources[0] if envelope.resources else envelope.id
    return EventView(
        fingerprint=stable_id(SOURCE, envelope.source, envelope.detail_type, anchor),
        group_key=f"{SOURCE}:{envelope.source}:{anchor}",
        labels={},
    )


def _rds_view(envelope: Envelope) -> EventView:
    event = rds_events.from_eventbridge_detail(
        envelope.detail, region=envelope.region, account=envelope.account
    )
    return EventView(
        fingerprint=event.fingerprint,
        group_key=event.group_key,
        labels=event.labels(),
        summary=event.message,
        annotations={"message": event.message},
        starts_at=parse_iso_time(event.occurred_at),
        occurrence_key=event.occurrence_key,
    )


def _ecs_task_view(envelope: Envelope) -> EventView:
    detail = envelope.detail
    task_arn = text(detail.get("taskArn")) or (envelope.resources[0] if envelope.resources else "")
    cluster_arn = text(detail.get("clusterArn"))
    group = text(detail.get("group"))  # "service:<name>" for service tasks, "family:<name>" otherwise
    last_status, desired_status = text(detail.get("lastStatus")), text(detail.get("desiredStatus"))
    stopping = desired_status == "STOPPED" or last_status in _ECS_STOPPING
    labels = {
        "cluster": _arn_name(cluster_arn),
        "service": group.removeprefix("service:") if group.startswith("service:") else "",
        "group": group,
        "task_arn": task_arn,
        "task_definition": _arn_name(text(detail.get("taskDefinitionArn"))),  # family:revision
        "last_status": last_status,
        "desired_status": desired_status,
        "stop_code": text(detail.get("stopCode")),
        "stopped_reason": text(detail.get("stoppedReason")),
        "launch_type": text(detail.get("launchType")),
        "version": text(detail.get("version")),  # grows per task: later code drops stale events
        **_exit_codes(detail),
    }
    summary = f"ECS task {labels['task_definition']} in {labels['cluster']} is {last_status}"
    return EventView(
        fingerprint=stable_id("ecs-task", task_arn or envelope.id),
        group_key=f"ecs:{cluster_arn}:{group}",
        labels=labels,
        # A running or starting task is an observation: it ends nothing by itself and asks for nothing.
        status=AlertStatus.FIRING if stopping else AlertStatus.RESOLVED,
        actionable=stopping,
        summary=f"{summary}: {labels['stopped_reason']}" if labels["stopped_reason"] else summary,
    )


def _exit_codes(detail: Mapping[str, Any]) -> dict[str, str]:
    codes = {}
    for container in map(mapping, items(detail.get("containers"))[:_MAX_CONTAINERS]):
        name, code = text(container.get("name")), container.get("exitCode")
        if name and code is not None:
            codes[f"exit_code_{name}"] = text(code)
    return codes


def _guardduty_view(envelope: Envelope) -> EventView:
    detail = envelope.detail
    resource, service = mapping(detail.get("resource")), mapping(detail.get("service"))
    finding_id = text(detail.get("id"))
    # Sample findings (CreateSampleFindings) name made-up resources: record them, never act on them.
    sample = text(mapping(service.get("additionalInfo")).get("sample")).lower() == "true"
    updated_at = text(detail.get("updatedAt"))
    identity = finding_id or envelope.id
    title = text(detail.get("title"))
    return EventView(
        fingerprint=stable_id("guardduty", identity),
        group_key=f"guardduty:{identity}",
        labels={
            "finding_id": finding_id,
            "finding_type": text(detail.get("type")),
            "finding_arn": text(detail.get("arn")),
            "severity_score": text(detail.get("severity")),
            "resource_type": text(resource.get("resourceType")),
            "instance_id": text(mapping(resource.get("instanceDetails")).get("instanceId")),
            "access_key_id": text(mapping(resource.get("accessKeyDetails")).get("accessKeyId")),
            "sample": "true" if sample else "false",
            "title": title,
        },
        actionable=not sample,
        summary=title,
        annotations={"description": text(detail.get("description"))},
        severity_hint=guardduty_severity(detail.get("severity")),
        # A finding is re-emitted as it aggregates; the same (id, updatedAt) is the same occurrence.
        occurrence_key=f"guardduty:{finding_id}:{updated_at}" if finding_id and updated_at else "",
    )


def guardduty_severity(score: object) -> Severity | None:
    """GuardDuty's numeric severity as a runbook severity (None if it is not a number).

    GuardDuty's bands: Low 1.0-3.9 (activity blocked before it compromised anything), Medium
    4.0-6.9 (suspicious, investigate), High 7.0-8.9 (the resource is compromised and in use),
    Critical 9.0-10.0 (an attack sequence). Mapping:

    - score >= 7.0 (High, Critical) → P1: a confirmed compromise in a hospital that holds patient
      data is a P1, and P1 actions are held for a human's approval (DESIGN.md §3), so containment
      of a clinical system is never automatic;
    - 4.0 <= score < 7.0 (Medium) → P2;
    - 1.0 <= score < 4.0 (Low) → P3;
    - score < 1.0 (outside GuardDuty's documented range) → P4.

    The cut-offs are inclusive lower bounds, so scores between bands (3.95) land in the lower one.
    """
    if isinstance(score, bool) or not isinstance(score, int | float | str):
        return None
    try:
        value = float(score)
    except ValueError:
        return None
    if math.isnan(value):
        return None
    if value >= 7.0:
        return Severity.P1
    if value >= 4.0:
        return Severity.P2
    if value >= 1.0:
        return Severity.P3
    return Severity.P4


def _health_view(envelope: Envelope) -> EventView:
    detail = envelope.detail
    event_arn = text(detail.get("eventArn"))
    status_code = text(detail.get("statusCode"))
    closed = status_code.lower() == "closed"
    entities = [text(mapping(e).get("entityValue")) for e in items(detail.get("affectedEntities"))]
    description = _health_description(detail.get("eventDescription"))
    identity = event_arn or envelope.id
    return EventView(
        fingerprint=stable_id("health", identity),
        group_key=f"health:{identity}",
        labels={
            "service": text(detail.get("service")),
            "event_type_code": text(detail.get("eventTypeCode")),
            "event_type_category": text(detail.get("eventTypeCategory")),
            "status_code": status_code,
            "affected_entities": joined(entities[:_MAX_ENTITIES]),
            "event_arn": event_arn,
        },
        # Only statusCode says an event is over: older events have an endTime and no statusCode.
        status=AlertStatus.RESOLVED if closed else AlertStatus.FIRING,
        summary=description or text(detail.get("eventTypeCode")),
        annotations={
            "description": description,
            "start_time": text(detail.get("startTime")),
            "end_time": text(detail.get("endTime")),
        },
        starts_at=parse_http_time(detail.get("startTime")),
        ends_at=parse_http_time(detail.get("endTime")) if closed else None,
    )


def _health_description(value: object) -> str:
    """The English description if there is one, else the first."""
    descriptions = [mapping(d) for d in items(value)]
    english = [d for d in descriptions if text(d.get("language")).lower().startswith("en")]
    chosen = (english or descriptions or [mapping(None)])[0]
    return text(chosen.get("latestDescription"))


def _arn_name(arn: str) -> str:
    """`arn:aws:ecs:…:cluster/prod` → `prod`; `…:task-definition/api:7` → `api:7`; else `arn`."""
    parsed = parse_arn(arn)
    return parsed.resource.split("/", 1)[-1] if parsed else arn
