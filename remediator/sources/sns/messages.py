"""The `Message` of a verified SNS notification → `Alert` (docs/wire-formats.md §1, §3, §4, §6.1).

The SNS handler calls `alerts_from_notification` after it has verified the envelope's signature.
The message is usually JSON in a string: a CloudWatch alarm, an EventBridge event, an RDS
event-subscription message, or a `MessageStructure=json` document whose `default` holds one of
those. Anything else (plain text, other JSON) is still recorded, as a not-actionable "sns" alert:
a verified message is never dropped, and never acted on unless we understood it.

Every alert returned carries the labels sns_topic_arn and sns_message_id; its first dedup key is
the delivery key `sns:<TopicArn>:<MessageId>`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from remediator.model import Alert, AlertStatus, stable_id
from remediator.sources.aws.cloudwatch import InsufficientData, alert_from_alarm, is_alarm_message
from remediator.sources.aws.documents import as_utc, clip, loads
from remediator.sources.aws.eventbridge import alert_from_event, is_event
from remediator.sources.aws.rds_events import alert_from_rds_notification, is_rds_notification

SOURCE = "sns"
_SUMMARY_CHARS = 200
_MESSAGE_ANNOTATION_MAX = 4096  # an SNS message may be 256 KiB; the record needs its start only


@dataclass(frozen=True, slots=True)
class _Delivery:
    topic_arn: str
    message_id: str
    subject: str
    received_at: datetime
    insufficient_data: InsufficientData

    @property
    def key(self) -> str:
        return delivery_key(self.topic_arn, self.message_id)


def delivery_key(topic_arn: str, message_id: str) -> str:
    """The dedup key every SNS delivery carries first: SNS retries keep the MessageId (docs/wire-formats.md §1.4)."""
    return f"sns:{topic_arn}:{message_id}"


def alerts_from_notification(
    message: str,
    *,
    topic_arn: str,
    message_id: str,
    subject: str | None,
    received_at: datetime,
    insufficient_data: InsufficientData,
) -> list[Alert]:
    """The alerts in one verified SNS notification: always exactly one, and never an exception."""
    message, subject = _storable(message), _storable(subject or "")
    delivery = _Delivery(topic_arn, message_id, subject, as_utc(received_at), insufficient_data)
    try:
        alert = _alert(message, delivery, unwrap_default=True)
    except Exception as error:
        # A parser bug must not lose a verified message (the sender would retry it forever, or
        # drop it): keep it on record, unactionable, with the error's name for whoever looks.
        alert = _unparsed(message, delivery, parse_error=type(error).__name__)
    labels = {**alert.labels, "sns_topic_arn": delivery.topic_arn, "sns_message_id": delivery.message_id}
    return [dataclasses.replace(alert, labels=labels)]


def _alert(message: str, delivery: _Delivery, *, unwrap_default: bool) -> Alert:
    doc = loads(message)
    if not isinstance(doc, Mapping):
        return _unparsed(message, delivery)
    key, received, insufficient = delivery.key, delivery.received_at, delivery.insufficient_data
    if is_alarm_message(doc):
        return alert_from_alarm(doc, delivery_key=key, received_at=received, insufficient_data=insufficient)
    if is_event(doc):
        return alert_from_event(doc, delivery_key=key, received_at=received, insufficient_data=insufficient)
    if is_rds_notification(doc):
        return alert_from_rds_notification(doc, delivery_key=key, received_at=received)
    default = doc.get("default")
    if unwrap_default and isinstance(default, str):
        # MessageStructure=json: HTTP subscribers get the `default` text (docs/wire-formats.md §3). One
        # level only: a `default` inside a `default` is not something AWS produces.
        return _alert(default, delivery, unwrap_default=False)
    return _unparsed(message, delivery)


def _storable(text: str) -> str:
    """`text` with lone surrogates replaced: JSON may escape them ("\\ud800") and decoders pass them
    through, but they cannot be encoded to UTF-8, so the store could not keep the alert."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _unparsed(message: str, delivery: _Delivery, *, parse_error: str = "") -> Alert:
    """A message we do not understand, kept on record and never acted on."""
    annotations = {"message": clip(message, _MESSAGE_ANNOTATION_MAX)}
    if parse_error:
        annotations["parse_error"] = parse_error
    return Alert(
        source=SOURCE,
        name=delivery.subject or "SNS notification",
        status=AlertStatus.FIRING,
        fingerprint=stable_id(SOURCE, delivery.topic_arn, delivery.subject),
        dedup_keys=(delivery.key,),
        group_key=f"{SOURCE}:{delivery.topic_arn}",
        starts_at=delivery.received_at,  # the message has no time of its own
        received_at=delivery.received_at,
        labels={"topic_arn": delivery.topic_arn, "subject": delivery.subject},
        annotations=annotations,
        actionable=False,
        summary=message[:_SUMMARY_CHARS],
    )
