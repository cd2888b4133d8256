"""Verify SNS HTTP(S) messages before anything acts on them (docs/wire-formats.md §2, DESIGN.md §3).

The webhook handler imports everything it needs from here:

    env = parse_envelope(body)          # MALFORMED on anything that is not an SNS envelope
    await verifier.verify(env)          # raises SnsVerificationError; returns None when verified

`SnsVerificationError.result` is the metric label and decides the answer: 400 for MALFORMED,
503 for CERT_FETCH_FAILED (`retryable`: SNS delivers again), 403 for everything else.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Collection
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from remediator.sources.sns.certs import (
    DEFAULT_ISSUER_NAMES,
    CertificateFetcher,
    HttpsCertificateFetcher,
    SigningCertificates,
    TrustPolicy,
    default_subject_names,
    load_signing_certificate,
)
from remediator.sources.sns.envelope import (
    SnsEnvelope,
    SnsVerificationError,
    TopicArn,
    VerifyResult,
    parse_envelope,
    parse_sns_timestamp,
    parse_topic_arn,
    pinned_topic,
    string_to_sign,
    validate_cert_url,
)

__all__ = [
    "DEFAULT_ISSUER_NAMES",
    "CertificateFetcher",
    "HttpsCertificateFetcher",
    "SnsEnvelope",
    "SnsVerificationError",
    "SnsVerifier",
    "TopicArn",
    "TrustPolicy",
    "VerifyResult",
    "default_subject_names",
    "load_signing_certificate",
    "parse_envelope",
    "parse_sns_timestamp",
    "parse_topic_arn",
    "string_to_sign",
    "validate_cert_url",
    "verify_signature",
]

MIN_RSA_BITS: Final = 2048
_DEFAULT_TRUST: Final = TrustPolicy()


class SnsVerifier:
    """Decides whether an SNS message really comes from SNS, for an allow-listed topic, recently.

    Checks run cheapest first, and nothing is fetched for a message refused anyway: signature
    version, topic allow-list, Timestamp freshness, SigningCertURL pin, then the certificate
    (cache or one shared fetch; trust policy; valid at the message Timestamp) and the signature.
    `clock` must return an aware UTC datetime; it also drives the certificate cache's expiry.
    Replays inside the freshness window are not detected here: deduplicate on
    (TopicArn, MessageId) downstream.
    """

    def __init__(
        self,
        *,
        fetcher: CertificateFetcher,
        trust: TrustPolicy = _DEFAULT_TRUST,
        allowed_topics: Collection[str],
        clock: Callable[[], datetime],
        max_age: timedelta = timedelta(hours=1),
        max_future_skew: timedelta = timedelta(minutes=5),
        cache_size: int = 64,
        cache_ttl: timedelta = timedelta(hours=24),
        failure_ttl: timedelta = timedelta(seconds=30),
    ) -> None:
        if isinstance(allowed_topics, str):
            raise TypeError("allowed_topics must be a collection of ARNs, not one string")
        self._allowed_topics = frozenset(allowed_topics)
        self._clock = clock
        self._max_age = max_age
        self._max_future_skew = max_future_skew
        self._certificates = SigningCertificates(
            fetcher=fetcher, trust=trust, clock=clock, size=cache_size, ttl=cache_ttl, failure_ttl=failure_ttl
        )

    async def verify(self, env: SnsEnvelope) -> None:
        """Return None if `env` is authentic and acceptable; raise SnsVerificationError otherwise."""
        _hash_for(env.signature_version)  # refuses unknown versions before any other work
        if env.topic_arn not in self._allowed_topics:
            raise SnsVerificationError(VerifyResult.UNKNOWN_TOPIC, "TopicArn is not allow-listed")
        published = self._fresh_timestamp(env.timestamp)
        topic = pinned_topic(env.signing_cert_url, env.topic_arn)
        certificate = await self._certificates.get(env.signing_cert_url, topic)
        if not certificate.not_valid_before_utc <= published <= certificate.not_valid_after_utc:
            # The Timestamp, not "now": it is within max_age of now anyway, and old messages replay in tests.
            raise SnsVerificationError(
                VerifyResult.BAD_CERTIFICATE, "signing certificate was not valid at the message Timestamp"
            )
        verify_signature(env, certificate)

    def _fresh_timestamp(self, timestamp: str) -> datetime:
        published = parse_sns_timestamp(timestamp)
        now = self._clock()
        if published < now - self._max_age:
            raise SnsVerificationError(VerifyResult.STALE, f"Timestamp is older than {self._max_age}")
        if published > now + self._max_future_skew:
            raise SnsVerificationError(
                VerifyResult.STALE, f"Timestamp is more than {self._max_future_skew} ahead"
            )
        return published


def _hash_for(signature_version: str) -> hashes.HashAlgorithm:
    # An unknown version is a signature we cannot check, hence BAD_SIGNATURE (403), not MALFORMED.
    if signature_version == "1":
        return hashes.SHA1()  # noqa: S303 - SignatureVersion 1 is SHA-1 by definition; SNS still defaults to it
    if signature_version == "2":
        return hashes.SHA256()
    raise SnsVerificationError(VerifyResult.BAD_SIGNATURE, 'SignatureVersion must be "1" or "2"')


def verify_signature(env: SnsEnvelope, certificate: x509.Certificate) -> None:
    """Check `env.Signature` (RSA PKCS#1 v1.5, SHA-1 for "1", SHA-256 for "2") with the certificate's key.

    Only the last step of `SnsVerifier.verify`: it trusts `certificate` blindly.
    """
    algorithm = _hash_for(env.signature_version)
    key = _rsa_key(certificate)
    try:
        signature = base64.b64decode(env.signature, validate=True)
    except ValueError:
        raise SnsVerificationError(VerifyResult.BAD_SIGNATURE, "Signature is not base64") from None
    try:
        key.verify(signature, string_to_sign(env), padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        raise SnsVerificationError(
            VerifyResult.BAD_SIGNATURE, "Signature does not match the message"
        ) from None


def _rsa_key(certificate: x509.Certificate) -> rsa.RSAPublicKey:
    try:
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise SnsVerificationError(
            VerifyResult.BAD_CERTIFICATE, "signing certificate key is unreadable"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise SnsVerificationError(
            VerifyResult.BAD_CERTIFICATE,
            f"signing certificate key is not RSA of at least {MIN_RSA_BITS} bits",
        )
    return key
