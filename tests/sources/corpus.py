"""The payload corpus (tests/corpus, a verbatim copy) and helpers to feed it to the parsers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from remediator.model import Alert
from remediator.sources.aws.cloudwatch import InsufficientData
from remediator.sources.sns.messages import alerts_from_notification
from tests.conftest import CORPUS

RECEIVED = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
DELIVERY = "sns:arn:aws:sns:us-east-1:111122223333:alerts:test-delivery"


def load(name: str) -> dict[str, Any]:
    """A corpus JSON file."""
    doc = json.loads((CORPUS / name).read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def names(*prefixes: str) -> list[str]:
    """Every corpus file whose name starts with one of `prefixes`."""
    return sorted(p.name for p in CORPUS.iterdir() if p.name.startswith(prefixes) and p.suffix == ".json")


def delivery_key(name: str) -> str:
    """The delivery key the SNS handler would pass for an envelope file."""
    envelope = load(name)
    return f"sns:{envelope['TopicArn']}:{envelope['MessageId']}"


def from_envelope(
    name: str,
    insufficient_data: InsufficientData = InsufficientData.RECORD,
    *,
    message_id: str | None = None,
    received_at: datetime = RECEIVED,
) -> Alert:
    """The one Alert of an SNS envelope file, as the SNS handler would get it.

    `message_id` replaces the envelope's, as a second publish of the same message would.
    """
    envelope = load(name)
    alerts = alerts_from_notification(
        envelope["Message"],
        topic_arn=envelope["TopicArn"],
        message_id=message_id or envelope["MessageId"],
        subject=envelope.get("Subject"),
        received_at=received_at,
        insufficient_data=insufficient_data,
    )
    assert len(alerts) == 1
    return alerts[0]


def utc(text: str) -> datetime:
    """An expected timestamp, written as ISO 8601 in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def assert_well_formed(alert: Alert) -> None:
    """What every Alert from these parsers must be, whatever it came from."""
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.annotations.items())
    assert alert.dedup_keys and all(alert.dedup_keys) and len(set(alert.dedup_keys)) == len(alert.dedup_keys)
    assert alert.starts_at.utcoffset() == timedelta(0)
    assert alert.received_at.utcoffset() == timedelta(0)
    assert alert.ends_at is None or alert.ends_at.utcoffset() == timedelta(0)
    assert alert.fingerprint and alert.group_key and alert.name
    texts = [alert.name, alert.summary, *alert.labels.values(), *alert.annotations.values()]
    assert all(text.encode("utf-8") for text in texts if text)  # storable: no lone surrogates
