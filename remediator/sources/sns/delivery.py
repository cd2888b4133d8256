"""What SNS deliveries other than signed notifications become (docs/wire-formats.md §1.2-1.3).

- A subscription, confirmed or removed, is one alert identity per topic, `SnsUnsubscribed`:
  an UnsubscribeConfirmation makes it fire (it opens an incident: from then on that topic's
  alarms do not reach the daemon, and nobody would notice otherwise); a confirmed subscription
  resolves it. Both are recorded like any alert, so the record shows when and how each happened.
- A raw delivery has no MessageId in its body: `raw_message_id` makes one.

Nothing recorded here carries a Token, a SubscribeURL, an UnsubscribeURL or a SubscriptionArn:
without AuthenticateOnUnsubscribe the SubscriptionArn alone lets anyone unsubscribe us.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Final

from remediator.model import Alert, AlertStatus, Severity, stable_id
from remediator.sources.aws.documents import as_utc
from remediator.sources.sns.messages import SOURCE, delivery_key

UNSUBSCRIBED: Final = "SnsUnsubscribed"
# An SNS MessageId is a UUID; anything else in the header is not from SNS and is not used as a key.
_MESSAGE_ID: Final = re.compile(r"[0-9A-Za-z-]{1,64}")


def subscription_alert(
    *, topic_arn: str, message_id: str, published_at: datetime, received_at: datetime, removed: bool, how: str = ""
) -> Alert:
    """The record of one verified subscription change: firing when `removed`, else resolved.

    `published_at` (the message Timestamp) orders them: an old UnsubscribeConfirmation retried
    after a newer confirmation is stale and opens nothing.
    """
    published, received = as_utc(published_at), as_utc(received_at)
    if removed:
        summary = (f"the daemon was unsubscribed from {topic_arn}: its messages no longer arrive; "
                   "subscribe the endpoint again (README: Receiving CloudWatch and EventBridge through SNS)")
    else:
        summary = f"subscription to {topic_arn} confirmed" + (f" ({how})" if how else "")
    return Alert(
        source=SOURCE,
        name=UNSUBSCRIBED,
        status=AlertStatus.FIRING if removed else AlertStatus.RESOLVED,
        fingerprint=stable_id(SOURCE, "subscription", topic_arn),
        dedup_keys=(delivery_key(topic_arn, message_id),),
        group_key=f"{SOURCE}:subscription:{topic_arn}",
        starts_at=published,
        ends_at=None if removed else published,
        received_at=received,
        labels={"topic_arn": topic_arn, "sns_topic_arn": topic_arn, "sns_message_id": message_id},
        summary=summary,
        # A lost subscription blinds the daemon to every alarm of the topic: not the lowest priority.
        severity_hint=Severity.P2 if removed else None,
    )


def raw_message_id(header: str | None, body: bytes) -> str:
    """The MessageId of a raw delivery: SNS's `x-amz-sns-message-id` header, else a hash of the body.

    Without the header two deliveries of byte-identical bodies are one occurrence: the second is
    answered as a duplicate and not processed. CloudWatch and EventBridge bodies differ per
    occurrence (state change time, event id), so only identical plain messages published twice
    collapse; with the header (SNS always sends it) nothing does.
    """
    if header is not None and _MESSAGE_ID.fullmatch(header):
        return header
    return "sha256:" + hashlib.sha256(body).hexdigest()
