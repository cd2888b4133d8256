"""SnsVerifier end to end: real AWS-signed corpus messages, mutations, a local CA, the cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from remediator.sources.sns.verify import (
    SnsEnvelope,
    SnsVerificationError,
    SnsVerifier,
    TrustPolicy,
    VerifyResult,
    load_signing_certificate,
    parse_envelope,
    verify_signature,
)
from tests.sources.sns_testkit import (
    CERT_URL,
    REAL_SIGNED_COUNT,
    SIGNED_AT,
    TAMPERED,
    TOPIC,
    FakeClock,
    MemoryFetcher,
    at,
    body,
    corpus_bytes,
    corpus_cert_for,
    corpus_json,
    local_pki,
    make_ca,
    make_leaf,
    pem,
    real_signed_names,
    rsa_key,
    sign,
    unsigned_message,
)

WITH_SUBJECT = "sns-real-signed-v1-notification-with-subject-2026.json"
NO_SUBJECT = "sns-real-signed-v1-notification-no-subject-2026.json"
V2 = "sns-real-signed-v2-notification-2026.json"
OLD_2022 = "sns-real-signed-v1-notification-with-subject.json"
CERT_2014 = "sns-signing-cert-d6d679a1d18e95c2f9ffcf11f4f9e198-2014.pem"
LOCAL_TRUST = TrustPolicy(issuer_certificates=(local_pki().ca,))


async def refused(verifier: SnsVerifier, env: SnsEnvelope, result: VerifyResult) -> SnsVerificationError:
    with pytest.raises(SnsVerificationError) as caught:
        await verifier.verify(env)
    assert caught.value.result is result, caught.value.message
    return caught.value


def corpus_verifier(env: SnsEnvelope, **options: Any) -> tuple[SnsVerifier, MemoryFetcher]:
    """A verifier that trusts nothing but defaults: the real cert at its real URL, clock at the Timestamp."""
    fetcher = MemoryFetcher({env.signing_cert_url: corpus_cert_for(env.signing_cert_url)})
    options.setdefault("allowed_topics", {env.topic_arn})
    options.setdefault("clock", FakeClock(at(env.timestamp)))
    return SnsVerifier(fetcher=fetcher, **options), fetcher


def local_verifier(
    certificate: bytes | None = None, *, trust: TrustPolicy = LOCAL_TRUST, **options: Any
) -> tuple[SnsVerifier, MemoryFetcher]:
    fetcher = MemoryFetcher({CERT_URL: pem(local_pki().leaf) if certificate is None else certificate})
    options.setdefault("allowed_topics", {TOPIC})
    options.setdefault("clock", FakeClock(at(SIGNED_AT)))
    return SnsVerifier(fetcher=fetcher, trust=trust, **options), fetcher


def local_message(message_type: str = "Notification", **overrides: Any) -> SnsEnvelope:
    signing = {key: overrides.pop(key) for key in ("version", "key_name", "cert_url") if key in overrides}
    return parse_envelope(body(sign(unsigned_message(message_type, **overrides), **signing)))


def test_the_corpus_holds_every_real_signed_message() -> None:
    assert len(real_signed_names()) == REAL_SIGNED_COUNT


@pytest.mark.parametrize("name", real_signed_names())
async def test_every_real_signed_message_verifies(name: str) -> None:
    env = parse_envelope(corpus_bytes(name))
    verifier, fetcher = corpus_verifier(env)

    await verifier.verify(env)

    assert fetcher.calls == [env.signing_cert_url]


@pytest.mark.parametrize(
    "name",
    [
        "sns-real-signed-v1-cloudwatch-alarm-metric-2021.json",
        "sns-real-signed-v1-cloudwatch-composite-alarm-2021.json",
    ],
)
async def test_real_cloudwatch_messages_verify_in_their_original_lambda_shape(name: str) -> None:
    fields = corpus_json(name)
    fields["SigningCertUrl"] = fields.pop("SigningCertURL")
    fields["UnsubscribeUrl"] = fields.pop("UnsubscribeURL")
    fields["MessageAttributes"] = {}
    env = parse_envelope(body(fields))
    verifier, _ = corpus_verifier(env)

    await verifier.verify(env)


def test_the_tampered_message_has_a_bad_signature() -> None:
    env = parse_envelope(corpus_bytes(TAMPERED))
    certificate = load_signing_certificate(corpus_cert_for(env.signing_cert_url))

    with pytest.raises(SnsVerificationError) as caught:
        verify_signature(env, certificate)

    assert caught.value.result is VerifyResult.BAD_SIGNATURE


async def test_the_tampered_message_is_refused_for_its_redacted_topic_arn_before_any_fetch() -> None:
    env = parse_envelope(corpus_bytes(TAMPERED))
    verifier, fetcher = corpus_verifier(env)

    error = await refused(verifier, env, VerifyResult.BAD_CERT_URL)

    assert "12-digit account" in error.message
    assert fetcher.calls == []


def set_field(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda fields: fields.__setitem__(name, value)


def edit_field(name: str, edit: Callable[[str], str]) -> Callable[[dict[str, Any]], None]:
    return lambda fields: fields.__setitem__(name, edit(fields[name]))


def drop_field(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda fields: fields.pop(name)


def replace_in(name: str, old: str, new: str) -> Callable[[dict[str, Any]], None]:
    return edit_field(name, lambda value: value.replace(old, new))


HOST = "https://sns.us-west-2.amazonaws.com/"
BAD = VerifyResult.BAD_SIGNATURE
URL = VerifyResult.BAD_CERT_URL


@pytest.mark.parametrize(
    ("name", "mutate", "result", "fetched"),
    [
        pytest.param(WITH_SUBJECT, edit_field("Message", lambda m: m + " "), BAD, True, id="message-changed"),
        pytest.param(WITH_SUBJECT, replace_in("MessageId", "-", "_"), BAD, True, id="message-id-changed"),
        pytest.param(NO_SUBJECT, set_field("Subject", "injected"), BAD, True, id="subject-added"),
        pytest.param(WITH_SUBJECT, drop_field("Subject"), BAD, True, id="subject-removed"),
        pytest.param(WITH_SUBJECT, set_field("Subject", None), BAD, True, id="subject-null-as-lambda-sends"),
        pytest.param(WITH_SUBJECT, set_field("Subject", ""), BAD, True, id="subject-emptied"),
        pytest.param(WITH_SUBJECT, set_field("SignatureVersion", "2"), BAD, True, id="version-1-to-2"),
        pytest.param(V2, set_field("SignatureVersion", "1"), BAD, True, id="version-2-to-1"),
        pytest.param(V2, set_field("SignatureVersion", "3"), BAD, False, id="version-3"),
        pytest.param(V2, set_field("SignatureVersion", " 2"), BAD, False, id="version-with-space"),
        pytest.param(
            WITH_SUBJECT,
            replace_in("Timestamp", "Z", "+00:00"),
            VerifyResult.MALFORMED,
            False,
            id="z-as-offset",
        ),
        pytest.param(
            WITH_SUBJECT, replace_in("Timestamp", "21.424Z", "21.425Z"), BAD, True, id="timestamp-plus-1ms"
        ),
        pytest.param(
            WITH_SUBJECT, replace_in("Timestamp", "21.424Z", "21Z"), BAD, True, id="timestamp-millis-dropped"
        ),
        pytest.param(
            WITH_SUBJECT, edit_field("Signature", lambda s: s[:-8]), BAD, True, id="signature-truncated"
        ),
        pytest.param(
            WITH_SUBJECT, edit_field("Signature", lambda s: "*" + s[1:]), BAD, True, id="signature-not-base64"
        ),
        pytest.param(
            WITH_SUBJECT,
            set_field("Signature", corpus_json(NO_SUBJECT)["Signature"]),
            BAD,
            True,
            id="other-signature",
        ),
        pytest.param(
            WITH_SUBJECT, replace_in("SigningCertURL", "us-west-2", "us-east-1"), URL, False, id="region"
        ),
        pytest.param(
            WITH_SUBJECT, replace_in("SigningCertURL", "sns.", "sns.s3-"), URL, False, id="s3-bucket-host"
        ),
        pytest.param(
            WITH_SUBJECT, replace_in("SigningCertURL", HOST, "https://evil.com/"), URL, False, id="evil-com"
        ),
        pytest.param(WITH_SUBJECT, replace_in("SigningCertURL", ".com/", ".com:443/"), URL, False, id="port"),
        pytest.param(WITH_SUBJECT, replace_in("SigningCertURL", "//", "//u:p@"), URL, False, id="userinfo"),
        pytest.param(
            WITH_SUBJECT, edit_field("SigningCertURL", lambda u: u + "?a=b"), URL, False, id="query"
        ),
        pytest.param(
            WITH_SUBJECT, edit_field("SigningCertURL", lambda u: u + "#f"), URL, False, id="fragment"
        ),
        pytest.param(WITH_SUBJECT, replace_in("SigningCertURL", "https:", "http:"), URL, False, id="http"),
        pytest.param(
            WITH_SUBJECT, replace_in("SigningCertURL", "Simple", "x/Simple"), URL, False, id="other-path"
        ),
    ],
)
async def test_a_mutated_real_message_is_refused(
    name: str, mutate: Callable[[dict[str, Any]], None], result: VerifyResult, fetched: bool
) -> None:
    original = parse_envelope(corpus_bytes(name))
    fields = corpus_json(name)
    mutate(fields)
    verifier, fetcher = corpus_verifier(original)

    await refused(verifier, parse_envelope(body(fields)), result)

    assert fetcher.calls == ([original.signing_cert_url] if fetched else [])


async def test_another_allow_listed_topic_does_not_inherit_the_signature() -> None:
    fields = corpus_json(WITH_SUBJECT)
    original = fields["TopicArn"]
    fields["TopicArn"] = original.replace("dongie-standard-topic", "other-topic")
    env = parse_envelope(body(fields))
    verifier, _ = corpus_verifier(env, allowed_topics={original, env.topic_arn})

    await refused(verifier, env, VerifyResult.BAD_SIGNATURE)


@pytest.mark.parametrize(
    ("clock_offset", "result"),
    [
        pytest.param(timedelta(hours=1, milliseconds=1), VerifyResult.STALE, id="older-than-max-age"),
        pytest.param(timedelta(hours=1), None, id="exactly-max-age"),
        pytest.param(-timedelta(minutes=5), None, id="exactly-max-skew-ahead"),
        pytest.param(-timedelta(minutes=5, milliseconds=1), VerifyResult.STALE, id="further-ahead-than-skew"),
    ],
)
async def test_freshness_window(clock_offset: timedelta, result: VerifyResult | None) -> None:
    env = parse_envelope(corpus_bytes(WITH_SUBJECT))
    verifier, fetcher = corpus_verifier(env, clock=FakeClock(at(env.timestamp) + clock_offset))

    if result is None:
        await verifier.verify(env)
    else:
        await refused(verifier, env, result)
        assert fetcher.calls == []


@pytest.mark.parametrize(
    ("allowed", "mutate", "clock_offset", "result"),
    [
        pytest.param(
            set(), set_field("SignatureVersion", "3"), timedelta(days=9), BAD, id="version-before-topic"
        ),
        pytest.param(
            set(),
            replace_in("SigningCertURL", "https", "http"),
            timedelta(days=9),
            VerifyResult.UNKNOWN_TOPIC,
            id="topic-before-time",
        ),
        pytest.param(
            None,
            replace_in("SigningCertURL", "https", "http"),
            timedelta(days=9),
            VerifyResult.STALE,
            id="time-before-url",
        ),
    ],
)
async def test_cheapest_check_first(
    allowed: set[str] | None,
    mutate: Callable[[dict[str, Any]], None],
    clock_offset: timedelta,
    result: VerifyResult,
) -> None:
    original = parse_envelope(corpus_bytes(WITH_SUBJECT))
    fields = corpus_json(WITH_SUBJECT)
    mutate(fields)
    verifier, fetcher = corpus_verifier(
        original,
        allowed_topics={original.topic_arn} if allowed is None else allowed,
        clock=FakeClock(at(original.timestamp) + clock_offset),
    )

    await refused(verifier, parse_envelope(body(fields)), result)

    assert fetcher.calls == []


async def test_a_certificate_not_valid_at_the_timestamp_is_refused() -> None:
    env = parse_envelope(corpus_bytes(OLD_2022))
    fetcher = MemoryFetcher({env.signing_cert_url: corpus_bytes(CERT_2014)})
    verifier = SnsVerifier(
        fetcher=fetcher, allowed_topics={env.topic_arn}, clock=FakeClock(at(env.timestamp))
    )

    error = await refused(verifier, env, VerifyResult.BAD_CERTIFICATE)

    assert "not valid at the message Timestamp" in error.message


async def test_right_names_on_another_key_pass_the_name_check_but_not_the_signature() -> None:
    fake_m01 = make_ca("CN=Amazon RSA 2048 M01,O=Amazon,C=US")
    impostor = make_leaf(fake_m01, key_name="impostor")
    env = parse_envelope(corpus_bytes(WITH_SUBJECT))
    fetcher = MemoryFetcher({env.signing_cert_url: pem(impostor)})
    verifier = SnsVerifier(
        fetcher=fetcher, allowed_topics={env.topic_arn}, clock=FakeClock(at(env.timestamp))
    )

    await refused(verifier, env, VerifyResult.BAD_SIGNATURE)


@pytest.mark.parametrize(
    "message_type", ["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]
)
@pytest.mark.parametrize("version", ["1", "2"])
async def test_locally_signed_messages_verify_when_the_local_ca_is_trusted(
    message_type: str, version: str
) -> None:
    verifier, _ = local_verifier()

    await verifier.verify(local_message(message_type, version=version))


async def test_a_locally_signed_notification_with_subject_verifies() -> None:
    verifier, _ = local_verifier()

    await verifier.verify(local_message(Subject="ALARM: rds-cpu"))


async def test_an_opt_in_region_needs_its_regional_signing_name() -> None:
    topic = "arn:aws:sns:eu-south-1:123456789012:alerts"
    url = "https://sns.eu-south-1.amazonaws.com/SimpleNotificationService-" + "e" * 32 + ".pem"
    regional = make_leaf(local_pki().ca, common_name="sns-signing.eu-south-1.amazonaws.com", dns_names=())
    env = local_message(TopicArn=topic, cert_url=url)
    good = SnsVerifier(
        fetcher=MemoryFetcher({url: pem(regional)}),
        trust=LOCAL_TRUST,
        allowed_topics={topic},
        clock=FakeClock(at(SIGNED_AT)),
    )
    bad = SnsVerifier(
        fetcher=MemoryFetcher({url: pem(local_pki().leaf)}),
        trust=LOCAL_TRUST,
        allowed_topics={topic},
        clock=FakeClock(at(SIGNED_AT)),
    )

    await good.verify(env)
    await refused(bad, env, VerifyResult.BAD_CERTIFICATE)


@pytest.mark.parametrize(
    ("certificate", "trust", "result"),
    [
        pytest.param(pem(local_pki().leaf), TrustPolicy(), VerifyResult.BAD_CERTIFICATE, id="default-trust"),
        pytest.param(
            pem(local_pki().leaf),
            TrustPolicy(issuer_certificates=(local_pki().other_ca,)),
            VerifyResult.BAD_CERTIFICATE,
            id="different-ca-trusted",
        ),
        pytest.param(
            pem(make_leaf(local_pki().ca, common_name="sns.example.com", dns_names=())),
            LOCAL_TRUST,
            VerifyResult.BAD_CERTIFICATE,
            id="wrong-cn",
        ),
        pytest.param(
            pem(local_pki().leaf, local_pki().leaf), LOCAL_TRUST, VerifyResult.BAD_CERTIFICATE, id="two-certs"
        ),
        pytest.param(
            pem(make_leaf(local_pki().ca, not_after=at("2026-01-15T09:59:59.000Z"))),
            LOCAL_TRUST,
            VerifyResult.BAD_CERTIFICATE,
            id="expired-before-the-timestamp",
        ),
        pytest.param(
            pem(make_leaf(local_pki().ca, public_key=rsa_key("weak", 1024).public_key())),
            LOCAL_TRUST,
            VerifyResult.BAD_CERTIFICATE,
            id="rsa-1024",
        ),
        pytest.param(
            pem(make_leaf(local_pki().ca, public_key=ec.generate_private_key(ec.SECP256R1()).public_key())),
            LOCAL_TRUST,
            VerifyResult.BAD_CERTIFICATE,
            id="ec-key",
        ),
        pytest.param(
            pem(make_leaf(local_pki().ca, key_name="other")),
            LOCAL_TRUST,
            VerifyResult.BAD_SIGNATURE,
            id="other-key",
        ),
    ],
)
async def test_locally_signed_message_refused(
    certificate: bytes, trust: TrustPolicy, result: VerifyResult
) -> None:
    verifier, _ = local_verifier(certificate, trust=trust)

    await refused(verifier, local_message(), result)


async def test_twenty_concurrent_verifications_share_one_fetch() -> None:
    verifier, fetcher = local_verifier()
    fetcher.delay = 0.05
    messages = [local_message(MessageId=f"message-{n}") for n in range(20)]

    await asyncio.gather(*(verifier.verify(env) for env in messages))

    assert fetcher.calls == [CERT_URL]


async def test_a_cancelled_waiter_does_not_cancel_the_shared_fetch() -> None:
    verifier, fetcher = local_verifier()
    fetcher.delay = 0.1
    first = asyncio.create_task(verifier.verify(local_message(MessageId="first")))
    second = asyncio.create_task(verifier.verify(local_message(MessageId="second")))
    await asyncio.sleep(0.02)

    first.cancel()

    await second
    assert first.cancelled()
    assert fetcher.calls == [CERT_URL]


async def test_a_failed_fetch_is_not_retried_within_failure_ttl() -> None:
    clock = FakeClock(at(SIGNED_AT))
    verifier, fetcher = local_verifier(clock=clock)
    certificate = fetcher.certificates.pop(CERT_URL)
    env = local_message()

    first = await refused(verifier, env, VerifyResult.CERT_FETCH_FAILED)
    clock.advance(timedelta(seconds=29))
    await refused(verifier, env, VerifyResult.CERT_FETCH_FAILED)
    calls_within_ttl = len(fetcher.calls)
    clock.advance(timedelta(seconds=1))
    fetcher.certificates[CERT_URL] = certificate
    await verifier.verify(env)

    assert first.retryable
    assert calls_within_ttl == 1
    assert fetcher.calls == [CERT_URL, CERT_URL]


async def test_an_untrusted_certificate_is_negatively_cached_too() -> None:
    verifier, fetcher = local_verifier(trust=TrustPolicy())

    for _ in range(3):
        await refused(verifier, local_message(), VerifyResult.BAD_CERTIFICATE)

    assert fetcher.calls == [CERT_URL]


class ExplodingFetcher:
    def __init__(self) -> None:
        self.calls = 0

    async def fetch(self, url: str) -> bytes:
        self.calls += 1
        raise RuntimeError(url)


async def test_a_fetcher_raising_anything_else_becomes_a_retryable_fetch_failure() -> None:
    fetcher = ExplodingFetcher()
    verifier = SnsVerifier(
        fetcher=fetcher, trust=LOCAL_TRUST, allowed_topics={TOPIC}, clock=FakeClock(at(SIGNED_AT))
    )

    error = await refused(verifier, local_message(), VerifyResult.CERT_FETCH_FAILED)
    await refused(verifier, local_message(), VerifyResult.CERT_FETCH_FAILED)

    assert "RuntimeError" in error.message
    assert error.retryable
    assert fetcher.calls == 1


def url_number(n: int) -> str:
    return f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{n:032x}.pem"


async def test_the_cache_keeps_only_the_most_recently_used_urls() -> None:
    urls = {name: url_number(n) for n, name in enumerate("ABC")}
    verifier, fetcher = local_verifier(cache_size=2)
    fetcher.certificates = dict.fromkeys(urls.values(), pem(local_pki().leaf))
    messages = {name: local_message(cert_url=url) for name, url in urls.items()}

    for name in "ABCACB":
        await verifier.verify(messages[name])

    assert fetcher.calls == [urls[name] for name in "ABCAB"]


async def test_a_cached_certificate_is_fetched_again_after_cache_ttl() -> None:
    clock = FakeClock(at(SIGNED_AT))
    verifier, fetcher = local_verifier(clock=clock, max_age=timedelta(days=7))
    env = local_message()

    await verifier.verify(env)
    clock.advance(timedelta(hours=24) - timedelta(seconds=1))
    await verifier.verify(env)
    calls_within_ttl = len(fetcher.calls)
    clock.advance(timedelta(seconds=1))
    await verifier.verify(env)

    assert calls_within_ttl == 1
    assert len(fetcher.calls) == 2


@pytest.mark.parametrize("result", list(VerifyResult))
def test_only_a_fetch_failure_is_retryable(result: VerifyResult) -> None:
    assert SnsVerificationError(result, "x").retryable is (result is VerifyResult.CERT_FETCH_FAILED)


def test_allowed_topics_must_not_be_a_single_string() -> None:
    with pytest.raises(TypeError):
        SnsVerifier(fetcher=MemoryFetcher({}), allowed_topics=TOPIC, clock=FakeClock(at(SIGNED_AT)))


async def test_refusals_never_quote_secrets() -> None:
    env = local_message("SubscriptionConfirmation")
    secrets = [env.token, env.subscribe_url, env.signature, "SECRET-TOKEN"]
    cases: list[tuple[SnsVerifier, SnsEnvelope]] = [
        (local_verifier(allowed_topics=set())[0], env),
        (local_verifier(clock=FakeClock(at(SIGNED_AT) + timedelta(days=1)))[0], env),
        (local_verifier(trust=TrustPolicy())[0], env),
        (local_verifier(pem(make_leaf(local_pki().ca, key_name="other")))[0], env),
        (local_verifier()[0], local_message("SubscriptionConfirmation", cert_url="https://evil.com/x.pem")),
    ]

    errors = []
    for verifier, message in cases:
        with pytest.raises(SnsVerificationError) as caught:
            await verifier.verify(message)
        errors.append(str(caught.value))

    assert len(errors) == 5
    assert not [(error, secret) for error in errors for secret in secrets if secret and secret in error]
