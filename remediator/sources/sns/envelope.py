"""SNS HTTP(S) envelopes: parsing, the string to sign, and the SigningCertURL rules (docs/wire-formats.md §1-2).

Nothing here does I/O. Every refusal is an `SnsVerificationError` whose message is safe to log and to
return to the client: messages name fields and rules, and quote no received value except a region
that already matched the ARN pattern, so a Token, SubscribeURL, UnsubscribeURL or Signature can
never leak through them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

import orjson

NOTIFICATION: Final = "Notification"
SUBSCRIPTION_CONFIRMATION: Final = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION: Final = "UnsubscribeConfirmation"
MESSAGE_TYPES: Final = (NOTIFICATION, SUBSCRIPTION_CONFIRMATION, UNSUBSCRIBE_CONFIRMATION)

_NOTIFICATION_SIGNED: Final = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_SIGNED: Final = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
_ALWAYS_REQUIRED: Final = (
    "Type",
    "MessageId",
    "TopicArn",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
)
_LAMBDA_KEYS: Final = (("SigningCertUrl", "SigningCertURL"), ("UnsubscribeUrl", "UnsubscribeURL"))

# [0-9]/[a-z] rather than \d/\w: those also match non-ASCII digits and letters.
_TOPIC_ARN: Final = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov):sns:(?P<region>[a-z]{2}(?:-[a-z]+){1,2}-[1-9][0-9]?)"
    r":(?P<account>[0-9]{12}):(?P<name>[A-Za-z0-9_-]{1,256}(?:\.fifo)?)"
)
SIGNING_CERT_URL: Final = re.compile(
    r"https://(?P<host>sns\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?)"
    r"(?P<path>/SimpleNotificationService-[0-9a-f]{32}\.pem)"
)
"""The only shape a SigningCertURL may have; `validate_cert_url` also pins the host to the topic."""
_TIMESTAMP: Final = re.compile(
    r"(?P<Y>[0-9]{4})-(?P<M>[0-9]{2})-(?P<D>[0-9]{2})"
    r"T(?P<h>[0-9]{2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})(?:\.(?P<ms>[0-9]{3}))?Z"
)


class VerifyResult(StrEnum):
    """Outcome of verifying one SNS message; bounded because it is also a Prometheus label set."""

    VERIFIED = "verified"
    MALFORMED = "malformed"
    UNKNOWN_TOPIC = "unknown_topic"
    STALE = "stale"
    BAD_CERT_URL = "bad_cert_url"
    BAD_CERTIFICATE = "bad_certificate"
    BAD_SIGNATURE = "bad_signature"
    CERT_FETCH_FAILED = "cert_fetch_failed"


class SnsVerificationError(Exception):
    """An SNS message was refused; `message` is safe to log and to send back to the client."""

    def __init__(self, result: VerifyResult, message: str) -> None:
        super().__init__(f"{result.value}: {message}")
        self.result = result
        self.message = message

    @property
    def retryable(self) -> bool:
        """True only when SNS should deliver again later (answer 503): we failed, not the message."""
        return self.result is VerifyResult.CERT_FETCH_FAILED


def _malformed(message: str) -> SnsVerificationError:
    return SnsVerificationError(VerifyResult.MALFORMED, message)


def _empty_mapping() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SnsEnvelope:
    """A decoded SNS HTTP(S) body; string values exactly as received (after JSON decoding).

    The signable attributes (type, message_id, topic_arn, message, timestamp, and subject for a
    Notification, token and subscribe_url for the confirmations) are the only ones set for that
    type, so after verification every one of them is covered by the signature. `unsubscribe_url`
    and `message_attributes` are never signed: do not base any decision on them. Secrets are kept
    out of `repr` so that logging an envelope cannot leak them.
    """

    type: str
    message_id: str
    topic_arn: str
    message: str
    timestamp: str
    signature_version: str
    signature: str = field(repr=False)
    signing_cert_url: str
    subject: str | None = None
    token: str | None = field(default=None, repr=False)
    subscribe_url: str | None = field(default=None, repr=False)
    unsubscribe_url: str | None = field(default=None, repr=False)
    message_attributes: Mapping[str, Any] = field(default_factory=_empty_mapping, repr=False)
    raw_fields: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Derived, not passed in, so it can never disagree with the attributes it mirrors.
        object.__setattr__(self, "raw_fields", MappingProxyType(_signable_fields(self)))


def signed_field_names(message_type: str) -> tuple[str, ...]:
    """The fields covered by the signature for a message type, in signing (byte-sorted) order."""
    return _NOTIFICATION_SIGNED if message_type == NOTIFICATION else _CONFIRMATION_SIGNED


def _signable_fields(env: SnsEnvelope) -> dict[str, str]:
    values = {
        "Message": env.message,
        "MessageId": env.message_id,
        "Subject": env.subject,
        "SubscribeURL": env.subscribe_url,
        "Timestamp": env.timestamp,
        "Token": env.token,
        "TopicArn": env.topic_arn,
        "Type": env.type,
    }
    return {name: value for name in signed_field_names(env.type) if (value := values[name]) is not None}


def parse_envelope(body: bytes) -> SnsEnvelope:
    """Decode an SNS HTTP(S) body, whatever its Content-Type, into an `SnsEnvelope`.

    Accepts the Lambda spelling too (`SigningCertUrl`, `UnsubscribeUrl`, `"Subject": null`).
    Raises `SnsVerificationError(MALFORMED)` naming the offending field, and nothing else, for any
    input. Parse the body once and use the envelope's fields afterwards: re-parsing the raw body
    elsewhere could pick a different value for a duplicated key than the one that was verified.
    """
    fields = _lambda_keys_converted(_decode_object(body))
    message_type = fields.get("Type")
    if message_type not in MESSAGE_TYPES:
        raise _malformed("Type must be one of " + ", ".join(MESSAGE_TYPES))
    notification = message_type == NOTIFICATION
    required = {name: _required_string(fields, name) for name in _ALWAYS_REQUIRED}
    return SnsEnvelope(
        type=required["Type"],
        message_id=required["MessageId"],
        topic_arn=required["TopicArn"],
        message=required["Message"],
        timestamp=required["Timestamp"],
        signature_version=required["SignatureVersion"],
        signature=required["Signature"],
        signing_cert_url=required["SigningCertURL"],
        subject=_optional_string(fields, "Subject") if notification else None,
        token=None if notification else _required_string(fields, "Token"),
        subscribe_url=None if notification else _required_string(fields, "SubscribeURL"),
        unsubscribe_url=_optional_string(fields, "UnsubscribeURL"),
        message_attributes=_message_attributes(fields),
    )


def _decode_object(body: bytes) -> dict[str, Any]:
    try:
        document = orjson.loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        # orjson's reasons name a position and a rule, never the offending text.
        raise _malformed(f"body is not UTF-8 JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise _malformed("body must be a JSON object")
    return document


def _lambda_keys_converted(document: dict[str, Any]) -> dict[str, Any]:
    fields = dict(document)
    for lambda_key, http_key in _LAMBDA_KEYS:
        if lambda_key in fields:
            if http_key in fields:
                raise _malformed(f"both {http_key} and {lambda_key} are present")
            fields[http_key] = fields.pop(lambda_key)
    return fields


def _required_string(fields: Mapping[str, Any], name: str) -> str:
    value = _optional_string(fields, name)
    if value is None:
        raise _malformed(f"required field {name} is missing")
    return value


def _optional_string(fields: Mapping[str, Any], name: str) -> str | None:
    # null counts as absent: Lambda-shaped messages carry "Subject": null when there is none.
    value = fields.get(name)
    if value is not None and not isinstance(value, str):
        raise _malformed(f"field {name} must be a string")
    return value


def _message_attributes(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    attributes = fields.get("MessageAttributes")
    if attributes is None:
        return _empty_mapping()
    if not isinstance(attributes, dict):
        raise _malformed("field MessageAttributes must be an object")
    return MappingProxyType(attributes)


def string_to_sign(env: SnsEnvelope) -> bytes:
    """The exact bytes SNS signed: `name\\nvalue\\n` per signed field of the type (docs/wire-formats.md §2.1)."""
    text = "".join(f"{name}\n{value}\n" for name, value in env.raw_fields.items())
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # Unreachable through parse_envelope (orjson refuses lone surrogates); guards hand-made envelopes.
        raise _malformed("a signed field is not valid Unicode") from None


def parse_sns_timestamp(value: str) -> datetime:
    """Parse SNS's `YYYY-MM-DDTHH:MM:SS[.mmm]Z` strictly; anything else is MALFORMED.

    Strict because the raw string is what was signed: a lenient parser would accept rewritten
    forms (`+00:00`) that then fail the signature with a misleading result.
    """
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        raise _malformed("Timestamp must look like YYYY-MM-DDTHH:MM:SS.mmmZ")
    parts = match.groupdict()
    try:
        return datetime(
            int(parts["Y"]),
            int(parts["M"]),
            int(parts["D"]),
            int(parts["h"]),
            int(parts["m"]),
            int(parts["s"]),
            int(parts["ms"] or 0) * 1000,
            tzinfo=UTC,
        )
    except ValueError:
        raise _malformed("Timestamp is not a valid date and time") from None


@dataclass(frozen=True, slots=True)
class TopicArn:
    """A parsed SNS topic ARN; the partition and region decide where its signing certs may live."""

    partition: str
    region: str
    account: str
    name: str

    @property
    def sns_host(self) -> str:
        """The regional SNS endpoint, the only host a SigningCertURL for this topic may name."""
        suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
        return f"sns.{self.region}.{suffix}"


def parse_topic_arn(arn: str) -> TopicArn:
    """Parse `arn:<aws|aws-cn|aws-us-gov>:sns:<region>:<12 digits>:<name>`; else ValueError.

    Settings should run every allow-listed topic through this at start, so a typo fails loudly
    instead of silently refusing that topic's messages.
    """
    match = _TOPIC_ARN.fullmatch(arn)
    if match is None:
        raise ValueError("TopicArn must look like arn:<partition>:sns:<region>:<12-digit account>:<name>")
    topic = TopicArn(match["partition"], match["region"], match["account"], match["name"])
    if topic.partition != _partition_of(topic.region):
        # Otherwise arn:aws:sns:cn-north-1:… would pin the certificate to a .com host.
        raise ValueError(f"region {topic.region} is not in partition {topic.partition}")
    return topic


def _partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def validate_cert_url(url: str, topic_arn: str) -> None:
    """Raise BAD_CERT_URL unless `url` is exactly where SNS keeps signing certs for this topic.

    That is `https://sns.<TopicArn region>.amazonaws.com[.cn]/SimpleNotificationService-<32 hex>.pem`:
    no userinfo, port, query or fragment, and a TopicArn that parses (see `parse_topic_arn`).
    """
    pinned_topic(url, topic_arn)


def pinned_topic(url: str, topic_arn: str) -> TopicArn:
    """`validate_cert_url`, returning the parsed TopicArn the certificate is then checked against."""
    try:
        topic = parse_topic_arn(topic_arn)
    except ValueError as exc:
        raise SnsVerificationError(VerifyResult.BAD_CERT_URL, str(exc)) from None
    match = SIGNING_CERT_URL.fullmatch(url)
    # The raw string decides; nothing is normalised or percent-decoded first, so userinfo, ports,
    # query, fragment, case or encoding tricks cannot survive. `_cert_url_problem` only explains.
    if match is None or match["host"] != topic.sns_host:
        raise SnsVerificationError(VerifyResult.BAD_CERT_URL, _cert_url_problem(url, topic.sns_host))
    return topic


def _cert_url_problem(url: str, expected_host: str) -> str:
    scheme, separator, rest = url.partition("://")
    authority = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    if not separator or scheme != "https":
        return "SigningCertURL must use https"
    if "@" in authority:
        return "SigningCertURL must not contain userinfo"
    if ":" in authority:
        return "SigningCertURL must not contain a port"
    if authority != expected_host:
        return f"SigningCertURL host must be {expected_host}, the SNS endpoint of the TopicArn's region"
    if "?" in url:
        return "SigningCertURL must not contain a query"
    if "#" in url:
        return "SigningCertURL must not contain a fragment"
    return "SigningCertURL path must be /SimpleNotificationService-<32 lowercase hex digits>.pem"
