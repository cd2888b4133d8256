"""Subscription records and raw-delivery keys: what they carry, and what they must never carry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from remediator.model import AlertStatus, Severity
from remediator.sources.sns.delivery import UNSUBSCRIBED, raw_message_id, subscription_alert
from remediator.sources.sns.messages import delivery_key

TOPIC = "arn:aws:sns:eu-west-1:123456789012:erp-alarms"
PUBLISHED = datetime(2026, 1, 5, 8, 59, tzinfo=UTC)
RECEIVED = PUBLISHED + timedelta(seconds=40)


def test_an_unsubscription_fires_and_a_confirmation_resolves_the_same_alert() -> None:
    removed = subscription_alert(topic_arn=TOPIC, message_id="m-1", published_at=PUBLISHED, received_at=RECEIVED,
                                 removed=True)
    restored = subscription_alert(topic_arn=TOPIC, message_id="m-2", published_at=PUBLISHED + timedelta(hours=1),
                                  received_at=RECEIVED, removed=False, how="ConfirmSubscription")
    assert (removed.name, removed.status, removed.actionable) == (UNSUBSCRIBED, AlertStatus.FIRING, True)
    assert removed.severity_hint is Severity.P2 and "subscribe the endpoint again" in removed.summary
    assert restored.status is AlertStatus.RESOLVED and restored.ends_at == PUBLISHED + timedelta(hours=1)
    assert (removed.fingerprint, removed.group_key) == (restored.fingerprint, restored.group_key)
    assert removed.dedup_keys == (delivery_key(TOPIC, "m-1"),) and removed.starts_at == PUBLISHED
    assert restored.summary == f"subscription to {TOPIC} confirmed (ConfirmSubscription)"


def test_subscription_records_carry_no_capability() -> None:
    alert = subscription_alert(topic_arn=TOPIC, message_id="m-1", published_at=PUBLISHED, received_at=RECEIVED,
                               removed=True)
    text = repr(alert)
    for capability in ("Token", "SubscribeURL", "UnsubscribeURL", "SubscriptionArn"):
        assert capability not in text
    assert re.search(re.escape(TOPIC) + r":[0-9a-f]{8}-", text) is None  # a subscription ARN


def test_raw_deliveries_use_the_sns_message_id_else_a_hash_of_the_body() -> None:
    assert raw_message_id("165545c9-2a5c-472c-8df2-7ff2be2b3b1b", b"x") == "165545c9-2a5c-472c-8df2-7ff2be2b3b1b"
    hashed = raw_message_id(None, b"This is a test message.")
    assert hashed == raw_message_id(None, b"This is a test message.")  # the same body is the same occurrence
    assert hashed.startswith("sha256:") and hashed != raw_message_id(None, b"This is a test message!")
    for odd in ("", "a:b", "x" * 65, "id with spaces", "\u00e9"):
        assert raw_message_id(odd, b"body") == raw_message_id(None, b"body")
