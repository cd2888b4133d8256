"""RDS events, from EventBridge or from an RDS event subscription publishing to SNS (docs/wire-formats.md §4).

The two formats differ (EventBridge `detail` has `SourceType`/`SourceArn`/`EventID`; the native
subscription message has `"Event Source"`, `"Source ID"` and an `"Event ID"` URL), but they carry
the same facts and are read into one `RdsEvent`, so both give the same labels, fingerprint and
group key.

Labels (all strings, "" when unknown): source_type (upper snake case: DB_INSTANCE, CLUSTER,
DB_CLUSTER ...), source_identifier, source_arn, db_instance and db_cluster (the identifier, set on
the one that applies), rds_event_id (RDS-EVENT-0049), event_categories (comma-separated; native
messages carry none), message (first 512 characters), region, account.

Status: every RDS event is firing and actionable. Whether "failover completed" or "DB instance
restarted" needs anything is a policy's decision (match on rds_event_id / event_categories), not
a parser's guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
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
    parse_arn,
    parse_iso_time,
    region_code,
    text,
    time_key,
)

SOURCE = "rds"  # the native subscription path; via EventBridge the source is "eventbridge"

_KINDS = {"DB_INSTANCE": "db", "CLUSTER": "cluster", "DB_CLUSTER": "cluster"}  # as in the ARN
_REGION_IN_LINK = re.compile(r"[?&]region=([a-z0-9-]+)")


@dataclass(frozen=True, slots=True)
class RdsEvent:
    """One RDS event, whichever way it reached us."""

    region: str
    account: str
    source_type: str
    identifier: str
    source_arn: str
    event_id: str
    categories: tuple[str, ...]
    message: str
    occurred_at: str  # as sent

    @property
    def kind(self) -> str:
        """The ARN resource type of the source: `db`, `cluster`, else the source type."""
        parsed = parse_arn(self.source_arn)
        from_arn = parsed.resource.split(":", 1)[0] if parsed else ""
        return _KINDS.get(self.source_type) or from_arn or self.source_type.lower()

    @property
    def resource(self) -> str:
        """`<region>:<kind>:<identifier>`: identifiers are unique per account and region only,
        and a DR replica in another region may reuse the primary's name."""
        return f"{self.region}:{self.kind}:{self.identifier}"

    @property
    def fingerprint(self) -> str:
        """Per source resource and event id: a second failover of one DB correlates with the first."""
        return stable_id(SOURCE, self.resource, self.event_id)

    @property
    def group_key(self) -> str:
        """Per DB resource: every event of one instance or cluster lands on one incident."""
        return f"{SOURCE}:{self.resource}"

    @property
    def occurrence_key(self) -> str:
        """A dedup key shared by both formats, "" when the event lacks what it needs.

        Assumes the native `Event Time` and the EventBridge `Date` are the same instant [U: not
        observed side by side]; if they are not, the key simply never matches.
        """
        at = time_key(self.occurred_at)
        if not (self.identifier and self.event_id and at):
            return ""
        return f"rds-event:{self.resource}:{self.event_id}:{at}"

    def labels(self) -> dict[str, str]:
        """The RDS labels (see the module docstring)."""
        kind = self.kind
        return bounded(
            {
                "source_type": self.source_type,
                "source_identifier": self.identifier,
                "source_arn": self.source_arn,
                "db_instance": self.identifier if kind == "db" else "",
                "db_cluster": self.identifier if kind == "cluster" else "",
                "rds_event_id": self.event_id,
                "event_categories": joined(self.categories),
                "message": clip(self.message, REASON_LABEL_MAX),
                "region": self.region,
                "account": self.account,
            }
        )


def from_eventbridge_detail(detail: Mapping[str, Any], *, region: str, account: str) -> RdsEvent:
    """The `RdsEvent` in an EventBridge RDS event's `detail` (region and account from the envelope)."""
    source_arn = text(detail.get("SourceArn"))
    parsed = parse_arn(source_arn)
    # The documented sample says "rds:my-db-instance"; the identifier is what follows.
    identifier = text(detail.get("SourceIdentifier")).removeprefix("rds:")
    return RdsEvent(
        region=region or (parsed.region_code if parsed else ""),
        account=account or (parsed.account if parsed else ""),
        source_type=_source_type(detail.get("SourceType")),
        identifier=identifier or (parsed.resource_name if parsed else ""),
        source_arn=source_arn,
        event_id=text(detail.get("EventID")),
        categories=tuple(text(category) for category in items(detail.get("EventCategories"))),
        message=text(detail.get("Message")),
        occurred_at=text(detail.get("Date")),
    )


def is_rds_notification(doc: Mapping[str, Any]) -> bool:
    """True if `doc` looks like a message of an RDS event subscription (not EventBridge)."""
    return isinstance(doc.get("Event Source"), str) and isinstance(doc.get("Event ID"), str)


def alert_from_rds_notification(doc: Mapping[str, Any], *, delivery_key: str, received_at: datetime) -> Alert:
    """The `Alert` for an RDS event-subscription message; source "rds", named by its event id.

    `Event Time` has no zone ("2019-01-02 12:45:06.000"); it is taken as UTC.
    """
    event = _from_notification(doc)
    received = as_utc(received_at)
    return Alert(
        source=SOURCE,
        name=event.event_id or "RDS event",
        status=AlertStatus.FIRING,
        fingerprint=event.fingerprint,
        dedup_keys=dedup_keys(delivery_key, event.occurrence_key),
        group_key=event.group_key,
        starts_at=parse_iso_time(event.occurred_at) or received,
        received_at=received,
        labels=event.labels(),
        annotations={"message": event.message, "identifier_link": text(doc.get("Identifier Link"))},
        summary=clip(event.message, SUMMARY_MAX),
    )


def _from_notification(doc: Mapping[str, Any]) -> RdsEvent:
    source_arn = text(doc.get("Source ARN"))  # newer messages only [U]
    parsed = parse_arn(source_arn)
    # "http://docs.amazonwebservices.com/AmazonRDS/latest/UserGuide/USER_Events.html#RDS-EVENT-0002"
    event_id = text(doc.get("Event ID")).rsplit("#", 1)[-1]
    return RdsEvent(
        region=parsed.region_code if parsed else _region_of_link(text(doc.get("Identifier Link"))),
        account=parsed.account if parsed else "",
        source_type=_source_type(doc.get("Event Source")),
        identifier=text(doc.get("Source ID")),
        source_arn=source_arn,
        event_id=event_id,
        categories=(),
        message=text(doc.get("Event Message")),
        occurred_at=text(doc.get("Event Time")),
    )


def _source_type(value: object) -> str:
    """`db-instance` (native) and `DB_INSTANCE` (EventBridge) spelled one way."""
    return text(value).upper().replace("-", "_")


def _region_of_link(link: str) -> str:
    """The region of the console link RDS puts in its message (`...?region=eu-west-1#...`)."""
    found = _REGION_IN_LINK.search(link)
    return region_code(found.group(1)) if found else ""
