"""parse_envelope, string_to_sign, validate_cert_url and the Timestamp rule (docs/wire-formats.md §1-2)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediator.sources.sns.envelope import (
    MESSAGE_TYPES,
    SnsEnvelope,
    SnsVerificationError,
    VerifyResult,
    parse_envelope,
    parse_sns_timestamp,
    parse_topic_arn,
    string_to_sign,
    validate_cert_url,
)
from tests.sources.sns_testkit import TAMPERED, corpus_bytes, corpus_json, real_signed_names, sign, unsigned_message

CONFIRMATION = "sns-real-signed-v1-subscription-confirmation.json"
US_WEST_2 = "arn:aws:sns:us-west-2:131990247566:dongie-standard-topic"
GOOD_PATH = "/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
GOOD_URL = "https://sns.us-west-2.amazonaws.com" + GOOD_PATH


def malformed(raw: bytes) -> SnsVerificationError:
    with pytest.raises(SnsVerificationError) as caught:
        parse_envelope(raw)
    assert caught.value.result is VerifyResult.MALFORMED
    return caught.value


def to_lambda_shape(fields: dict[str, Any]) -> dict[str, Any]:
    converted = dict(fields)
    converted["SigningCertUrl"] = converted.pop("SigningCertURL")
    converted["UnsubscribeUrl"] = converted.pop("UnsubscribeURL")
    converted.setdefault("Subject", None)
    converted.setdefault("MessageAttributes", {})
    return converted


@pytest.mark.parametrize("name", [*real_signed_names(), TAMPERED])
def test_corpus_messages_parse_to_their_json_values(name: str) -> None:
    fields = corpus_json(name)

    env = parse_envelope(corpus_bytes(name))

    assert (env.type, env.message_id, env.topic_arn) == (
        fields["Type"],
        fields["MessageId"],
        fields["TopicArn"],
    )
    assert (env.message, env.timestamp, env.subject) == (
        fields["Message"],
        fields["Timestamp"],
        fields.get("Subject"),
    )
    assert (env.signature, env.signing_cert_url) == (fields["Signature"], fields["SigningCertURL"])
    assert env.unsubscribe_url == fields.get("UnsubscribeURL")
    assert dict(env.message_attributes) == fields.get("MessageAttributes", {})


@pytest.mark.parametrize(
    "name",
    [
        "sns-real-signed-v1-cloudwatch-alarm-metric-2021.json",
        "sns-real-signed-v1-notification-no-subject-2026.json",
    ],
)
def test_lambda_style_keys_give_the_same_envelope(name: str) -> None:
    http_shape = corpus_json(name)

    env = parse_envelope(json.dumps(to_lambda_shape(http_shape)).encode())

    assert env == parse_envelope(corpus_bytes(name))
    assert env.signing_cert_url == http_shape["SigningCertURL"]
    assert env.unsubscribe_url == http_shape["UnsubscribeURL"]
    assert ("Subject" in env.raw_fields) == ("Subject" in http_shape)


def test_escaped_raw_and_pretty_printed_bodies_sign_the_same_decoded_text() -> None:
    fields = sign(unsigned_message("Notification", Message="Überlast ⚠\nline 2"))
    bodies = [
        json.dumps(fields, ensure_ascii=True).encode(),
        json.dumps(fields, ensure_ascii=False).encode(),
        json.dumps(fields, indent=2).replace("\n", "\r\n").encode(),
    ]

    envelopes = [parse_envelope(raw) for raw in bodies]

    assert {env.message for env in envelopes} == {"Überlast ⚠\nline 2"}
    assert len({string_to_sign(env) for env in envelopes}) == 1


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(b"", "JSON", id="empty-body"),
        pytest.param(b"\xff\xfe{}", "JSON", id="not-utf8"),
        pytest.param(b"\xef\xbb\xbf{}", "JSON", id="utf8-bom"),
        pytest.param(b"Type=Notification", "JSON", id="form-encoded"),
        pytest.param(b'{"Type": "Notification",}', "JSON", id="trailing-comma"),
        pytest.param(b"[" * 5000 + b"]" * 5000, "JSON", id="nesting-deeper-than-the-parser-allows"),
        pytest.param(b'{"a": 1e999}', "JSON", id="number-overflowing-a-double"),
        pytest.param(b'{"a": "\\ud800"}', "JSON", id="lone-surrogate-escape"),
        pytest.param(b"[]", "JSON object", id="array"),
        pytest.param(b'"Notification"', "JSON object", id="string"),
        pytest.param(b"null", "JSON object", id="null"),
        pytest.param(b"123456789012345678901234567890", "JSON object", id="huge-integer"),
        pytest.param(b"{}", "Type", id="no-type"),
        pytest.param(b'{"Type": "Notice"}', "Type", id="unknown-type"),
        pytest.param(b'{"Type": ["Notification"]}', "Type", id="type-not-a-string"),
        pytest.param(b'{"Type": {"a": 1}}', "Type", id="type-an-object"),
    ],
)
def test_not_an_sns_envelope_is_malformed(raw: bytes, field: str) -> None:
    assert field in malformed(raw).message


def signed_fields(message_type: str = "Notification") -> dict[str, Any]:
    return dict(sign(unsigned_message(message_type)))


@pytest.mark.parametrize("message_type", MESSAGE_TYPES)
@pytest.mark.parametrize(
    "name",
    ["MessageId", "TopicArn", "Message", "Timestamp", "SignatureVersion", "Signature", "SigningCertURL"],
)
def test_every_type_requires_the_common_fields(message_type: str, name: str) -> None:
    fields = signed_fields(message_type)
    missing, wrong_type = dict(fields), dict(fields, **{name: 42})
    del missing[name]

    assert malformed(json.dumps(missing).encode()).message == f"required field {name} is missing"
    assert malformed(json.dumps(wrong_type).encode()).message == f"field {name} must be a string"


@pytest.mark.parametrize("message_type", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
@pytest.mark.parametrize("name", ["Token", "SubscribeURL"])
def test_confirmations_require_token_and_subscribe_url(message_type: str, name: str) -> None:
    fields = signed_fields(message_type)
    del fields[name]

    assert malformed(json.dumps(fields).encode()).message == f"required field {name} is missing"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"Subject": 7}, "field Subject must be a string", id="subject-number"),
        pytest.param(
            {"UnsubscribeURL": ["x"]}, "field UnsubscribeURL must be a string", id="unsubscribe-list"
        ),
        pytest.param(
            {"MessageAttributes": []}, "field MessageAttributes must be an object", id="attributes-list"
        ),
        pytest.param(
            {"SigningCertUrl": GOOD_URL},
            "both SigningCertURL and SigningCertUrl are present",
            id="two-cert-urls",
        ),
    ],
)
def test_bad_optional_fields_are_malformed(changes: dict[str, Any], message: str) -> None:
    assert malformed(json.dumps(signed_fields() | changes).encode()).message == message


def test_lambda_null_subject_is_absent_but_an_empty_subject_is_signed() -> None:
    absent = parse_envelope(json.dumps(signed_fields() | {"Subject": None}).encode())
    empty = parse_envelope(json.dumps(signed_fields() | {"Subject": ""}).encode())

    assert absent.subject is None
    assert "Subject" not in absent.raw_fields
    assert empty.raw_fields["Subject"] == ""
    assert b"\nSubject\n\nTimestamp\n" in string_to_sign(empty)


def test_fields_the_type_does_not_sign_are_not_carried_over() -> None:
    notification = signed_fields() | {"Token": "injected", "SubscribeURL": "https://evil.example/"}
    confirmation = signed_fields("SubscriptionConfirmation") | {"Subject": "injected"}

    env_n = parse_envelope(json.dumps(notification).encode())
    env_c = parse_envelope(json.dumps(confirmation).encode())

    assert (env_n.token, env_n.subscribe_url, env_c.subject) == (None, None, None)
    assert list(env_n.raw_fields) == ["Message", "MessageId", "Timestamp", "TopicArn", "Type"]
    assert list(env_c.raw_fields) == [
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ]


def test_repr_and_errors_never_show_secrets() -> None:
    fields = signed_fields("SubscriptionConfirmation")
    env = parse_envelope(json.dumps(fields).encode())
    error = malformed(json.dumps(fields | {"Token": 1}).encode())

    for secret in (fields["Token"], fields["SubscribeURL"], fields["Signature"]):
        assert secret not in repr(env)
        assert secret not in str(error)


def test_string_to_sign_of_the_real_subscription_confirmation_is_as_formats_shows() -> None:
    data = string_to_sign(parse_envelope(corpus_bytes(CONFIRMATION))).decode()

    assert data.startswith(
        "Message\nYou have chosen to subscribe to the topic"
        " arn:aws:sns:us-west-2:131990247566:dongie-standard-topic.\n"
        "To confirm the subscription, visit the SubscribeURL included in this message.\n"
        "MessageId\nf3f2fc87-"
    )
    assert "\nSubscribeURL\nhttps://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" in data
    assert "\nTimestamp\n2026-03-06T19:31:32.895Z\nToken\n2336" in data
    assert data.endswith(f"\nTopicArn\n{US_WEST_2}\nType\nSubscriptionConfirmation\n")


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param(
            None,
            "Message\nm\nMessageId\nid\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\narn\nType\nNotification\n",
            id="notification-without-subject",
        ),
        pytest.param(
            "s",
            "Message\nm\nMessageId\nid\nSubject\ns\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\narn\nType\nNotification\n",
            id="notification-with-subject",
        ),
    ],
)
def test_string_to_sign_of_a_notification(subject: str | None, expected: str) -> None:
    env = SnsEnvelope(
        type="Notification",
        message_id="id",
        topic_arn="arn",
        message="m",
        timestamp="2026-01-01T00:00:00.000Z",
        signature_version="1",
        signature="",
        signing_cert_url="",
        subject=subject,
    )

    assert string_to_sign(env) == expected.encode()


@pytest.mark.parametrize(
    ("url", "topic"),
    [
        pytest.param(GOOD_URL, US_WEST_2, id="aws-partition"),
        pytest.param(
            "https://sns.cn-north-1.amazonaws.com.cn" + GOOD_PATH,
            "arn:aws-cn:sns:cn-north-1:123456789012:alerts",
            id="china-partition-uses-com-cn",
        ),
        pytest.param(
            "https://sns.us-gov-west-1.amazonaws.com" + GOOD_PATH,
            "arn:aws-us-gov:sns:us-gov-west-1:123456789012:alerts",
            id="govcloud-partition",
        ),
        pytest.param(
            "https://sns.eu-south-1.amazonaws.com" + GOOD_PATH,
            "arn:aws:sns:eu-south-1:123456789012:alerts.fifo",
            id="fifo-topic-in-an-opt-in-region",
        ),
    ],
)
def test_cert_url_accepted(url: str, topic: str) -> None:
    validate_cert_url(url, topic)


@pytest.mark.parametrize(
    ("url", "topic", "rule"),
    [
        pytest.param("http://sns.us-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "https", id="plain-http"),
        pytest.param(
            "HTTPS://sns.us-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "https", id="uppercase-scheme"
        ),
        pytest.param("sns.us-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "https", id="no-scheme"),
        pytest.param("//sns.us-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "https", id="scheme-relative"),
        pytest.param(" " + GOOD_URL, US_WEST_2, "https", id="leading-space"),
        pytest.param("", US_WEST_2, "https", id="empty"),
        pytest.param("https://sns.us-east-1.amazonaws.com" + GOOD_PATH, US_WEST_2, "host", id="other-region"),
        pytest.param(
            "https://sns.s3-us-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "host", id="s3-bucket-sns"
        ),
        pytest.param("https://s3.amazonaws.com" + GOOD_PATH, US_WEST_2, "host", id="s3-global"),
        pytest.param("https://evil.com" + GOOD_PATH, US_WEST_2, "host", id="evil-com"),
        pytest.param(
            "https://sns.us-west-2.amazonaws.com.evil.com" + GOOD_PATH, US_WEST_2, "host", id="suffix"
        ),
        pytest.param("https://evilsns.us-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "host", id="prefix"),
        pytest.param(
            "https://SNS.us-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "host", id="uppercase-host"
        ),
        pytest.param(
            "https://sns.us-west-2.amazonaws.com." + GOOD_PATH, US_WEST_2, "host", id="trailing-dot"
        ),
        pytest.param("https://sns.amazonaws.com" + GOOD_PATH, US_WEST_2, "host", id="global-endpoint"),
        pytest.param(
            "https://sns.us-west-2.amazonaws.com.cn" + GOOD_PATH, US_WEST_2, "host", id="cn-suffix-on-aws"
        ),
        pytest.param(
            "https://sns.cn-north-1.amazonaws.com" + GOOD_PATH,
            "arn:aws-cn:sns:cn-north-1:123456789012:alerts",
            "host",
            id="com-suffix-on-aws-cn",
        ),
        pytest.param(
            "https://sns%2Eus-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "host", id="percent-encoded"
        ),
        pytest.param(
            "https://sns.us-west-2.amazonaws.\uff43\uff4f\uff4d" + GOOD_PATH,
            US_WEST_2,
            "host",
            id="fullwidth-idna",
        ),
        pytest.param(
            "https://xn--sns-5ma.us-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "host", id="punycode"
        ),
        pytest.param("https://sns.us-west-2.amazonaws.com\\" + GOOD_PATH, US_WEST_2, "path", id="backslash"),
        pytest.param(
            "https://x@sns.us-west-2.amazonaws.com" + GOOD_PATH, US_WEST_2, "userinfo", id="userinfo"
        ),
        pytest.param(
            "https://sns.us-west-2.amazonaws.com@evil.com" + GOOD_PATH, US_WEST_2, "userinfo", id="at-trick"
        ),
        pytest.param(
            "https://sns.us-west-2.amazonaws.com:443" + GOOD_PATH, US_WEST_2, "port", id="default-port"
        ),
        pytest.param(
            "https://sns.us-west-2.amazonaws.com:8443" + GOOD_PATH, US_WEST_2, "port", id="other-port"
        ),
        pytest.param(GOOD_URL + "?x=1", US_WEST_2, "query", id="query"),
        pytest.param(GOOD_URL + "?", US_WEST_2, "query", id="empty-query"),
        pytest.param(GOOD_URL + "#x", US_WEST_2, "fragment", id="fragment"),
        pytest.param(GOOD_URL + "\n", US_WEST_2, "path", id="trailing-newline"),
        pytest.param("https://sns.us-west-2.amazonaws.com/cert.pem", US_WEST_2, "path", id="other-file"),
        pytest.param(
            "https://sns.us-west-2.amazonaws.com/x" + GOOD_PATH, US_WEST_2, "path", id="subdirectory"
        ),
        pytest.param(
            "https://sns.us-west-2.amazonaws.com/" + GOOD_PATH, US_WEST_2, "path", id="double-slash"
        ),
        pytest.param(
            "https://sns.us-west-2.amazonaws.com/x/.." + GOOD_PATH, US_WEST_2, "path", id="dot-segment"
        ),
        pytest.param(
            GOOD_URL.replace("7506a1e3", "7506A1E3"),
            US_WEST_2,
            "path",
            id="hex-caps",
        ),
        pytest.param(GOOD_URL.replace("7506a1e3", "7506a1e"), US_WEST_2, "path", id="31-hex-digits"),
        pytest.param(GOOD_URL.replace("7506a1e3", "7506a1e3f"), US_WEST_2, "path", id="33-hex-digits"),
        pytest.param(GOOD_URL.replace(".pem", ".PEM"), US_WEST_2, "path", id="uppercase-extension"),
        pytest.param(GOOD_URL.replace(".pem", ".pem.exe"), US_WEST_2, "path", id="extra-extension"),
        pytest.param(GOOD_URL.replace("7506", "%37506"), US_WEST_2, "path", id="percent-encoded-path"),
        pytest.param(GOOD_URL.replace("Simple", "Simple\t"), US_WEST_2, "path", id="tab-in-path"),
        pytest.param(GOOD_URL, "arn:aws:sns:us-west-2:1234567890:topic", "TopicArn", id="ten-digit-account"),
        pytest.param(GOOD_URL, "arn:aws:sqs:us-west-2:131990247566:topic", "TopicArn", id="not-an-sns-arn"),
        pytest.param(
            GOOD_URL, "arn:aws-iso:sns:us-iso-east-1:131990247566:t", "TopicArn", id="unknown-partition"
        ),
        pytest.param(GOOD_URL, US_WEST_2.upper(), "TopicArn", id="uppercase-arn"),
        pytest.param(GOOD_URL, US_WEST_2 + "\n", "TopicArn", id="arn-trailing-newline"),
        pytest.param(GOOD_URL, US_WEST_2 + ":sub-id", "TopicArn", id="subscription-arn"),
        pytest.param(
            "https://sns.cn-north-1.amazonaws.com" + GOOD_PATH,
            "arn:aws:sns:cn-north-1:123456789012:alerts",
            "partition",
            id="china-region-in-aws-partition",
        ),
    ],
)
def test_cert_url_refused(url: str, topic: str, rule: str) -> None:
    with pytest.raises(SnsVerificationError) as caught:
        validate_cert_url(url, topic)

    assert caught.value.result is VerifyResult.BAD_CERT_URL
    assert rule in caught.value.message


def test_topic_arn_parts_and_host() -> None:
    topic = parse_topic_arn("arn:aws-cn:sns:cn-northwest-1:123456789012:alerts.fifo")

    assert (topic.partition, topic.region, topic.account, topic.name) == (
        "aws-cn",
        "cn-northwest-1",
        "123456789012",
        "alerts.fifo",
    )
    assert topic.sns_host == "sns.cn-northwest-1.amazonaws.com.cn"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-06T19:31:32.895Z", datetime(2026, 3, 6, 19, 31, 32, 895000, tzinfo=UTC)),
        ("2026-03-06T19:31:32Z", datetime(2026, 3, 6, 19, 31, 32, tzinfo=UTC)),
    ],
)
def test_sns_timestamp_parses(value: str, expected: datetime) -> None:
    assert parse_sns_timestamp(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2026-03-06T19:31:32.895+00:00", id="offset-instead-of-z"),
        pytest.param("2026-03-06T19:31:32.895z", id="lowercase-z"),
        pytest.param("2026-03-06T19:31:32.895", id="naive"),
        pytest.param("2026-03-06 19:31:32.895Z", id="space-separator"),
        pytest.param("2026-03-06T19:31:32.895123Z", id="microseconds"),
        pytest.param("2026-03-06T19:31:32.9Z", id="one-fraction-digit"),
        pytest.param("2026-02-30T19:31:32.895Z", id="february-30"),
        pytest.param("2026-03-06T24:00:00.000Z", id="hour-24"),
        pytest.param("2026-03-06T19:31:32.895Z\n", id="trailing-newline"),
        pytest.param("\uff12\uff10\uff12\uff16-03-06T19:31:32.895Z", id="fullwidth-digits"),
        pytest.param("Fri, 06 Mar 2026 19:31:32 GMT", id="rfc-1123"),
    ],
)
def test_sns_timestamp_refused(value: str) -> None:
    with pytest.raises(SnsVerificationError) as caught:
        parse_sns_timestamp(value)

    assert caught.value.result is VerifyResult.MALFORMED


def parse_or_malformed(raw: bytes) -> None:
    try:
        env = parse_envelope(raw)
    except SnsVerificationError as exc:
        assert exc.result is VerifyResult.MALFORMED
    else:
        string_to_sign(env)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
sns_keys = (
    "MessageId",
    "TopicArn",
    "Subject",
    "Message",
    "Timestamp",
    "Token",
    "SubscribeURL",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
    "SigningCertUrl",
    "UnsubscribeURL",
    "UnsubscribeUrl",
    "MessageAttributes",
)
sns_shaped = st.fixed_dictionaries(
    {"Type": st.sampled_from((*MESSAGE_TYPES, "Other")) | json_values},
    optional={key: st.text() | json_values for key in sns_keys},
)


@settings(max_examples=300)
@given(st.binary())
def test_any_bytes_parse_or_are_malformed(raw: bytes) -> None:
    parse_or_malformed(raw)


@settings(max_examples=300)
@given(json_values)
def test_any_json_value_parses_or_is_malformed(value: Any) -> None:
    parse_or_malformed(json.dumps(value).encode())


@settings(max_examples=500)
@given(sns_shaped)
def test_any_sns_shaped_object_parses_or_is_malformed(value: dict[str, Any]) -> None:
    parse_or_malformed(json.dumps(value).encode())
