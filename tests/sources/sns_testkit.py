"""Helpers shared by the SNS verification tests: the corpus, fake clock and fetcher, a local CA."""

from __future__ import annotations

import asyncio
import base64
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from remediator.sources.sns.envelope import SnsVerificationError, VerifyResult
from tests.conftest import CORPUS

REAL_SIGNED_COUNT = 15
TAMPERED = "sns-tampered-redacted-health-acm-renewal.json"


def corpus_dir() -> Path:
    """The payload corpus (tests/corpus, or $REMEDIATOR_CORPUS)."""
    return CORPUS


def corpus_bytes(name: str) -> bytes:
    return (corpus_dir() / name).read_bytes()


def corpus_json(name: str) -> dict[str, Any]:
    document = orjson.loads(corpus_bytes(name))
    assert isinstance(document, dict)
    return document


def real_signed_names() -> list[str]:
    return sorted(path.name for path in corpus_dir().glob("sns-real-signed-*.json"))


def corpus_cert_for(url: str) -> bytes:
    """The corpus PEM whose file name carries the hex id of `url`; fails loudly when absent."""
    match = re.search(r"SimpleNotificationService-([0-9a-f]{32})\.pem$", url)
    assert match is not None, url
    found = sorted(corpus_dir().glob(f"sns-signing-cert-{match[1]}*.pem"))
    if not found:
        pytest.fail(f"no certificate in the corpus for {match[1]}")
    return found[0].read_bytes()


def body(fields: Mapping[str, Any]) -> bytes:
    return orjson.dumps(fields)


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


class FakeClock:
    """A settable clock for the verifier and its caches."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


class MemoryFetcher:
    """Serves certificates from a dict keyed by the exact URL, and records every fetch."""

    def __init__(self, certificates: Mapping[str, bytes], *, delay: float = 0.0) -> None:
        self.certificates = dict(certificates)
        self.delay = delay
        self.calls: list[str] = []

    async def fetch(self, url: str) -> bytes:
        self.calls.append(url)
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            return self.certificates[url]
        except KeyError:
            raise SnsVerificationError(VerifyResult.CERT_FETCH_FAILED, "HTTP 404") from None


@functools.cache
def rsa_key(name: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """One key per name for the whole run: generating keys is the slow part."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def make_ca(subject: str) -> x509.Certificate:
    """A self-signed CA whose subject is the RFC 4514 name `subject` (its key is keyed by it too)."""
    key = rsa_key(subject)
    name = x509.Name.from_rfc4514_string(subject)
    start, end = datetime(2020, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC)
    return (
        _validity(x509.CertificateBuilder(), start, end)
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )


def make_leaf(
    issuer: x509.Certificate,
    *,
    common_name: str = "sns.amazonaws.com",
    dns_names: Iterable[str] = ("sns.amazonaws.com",),
    key_name: str = "leaf",
    public_key: CertificatePublicKeyTypes | None = None,
    not_before: datetime = datetime(2025, 1, 1, tzinfo=UTC),
    not_after: datetime = datetime(2027, 1, 1, tzinfo=UTC),
) -> x509.Certificate:
    builder = (
        _validity(x509.CertificateBuilder(), not_before, not_after)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(public_key or rsa_key(key_name).public_key())
    )
    names = [x509.DNSName(name) for name in dns_names]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(rsa_key(issuer.subject.rfc4514_string()), hashes.SHA256())


def _validity(builder: x509.CertificateBuilder, start: datetime, end: datetime) -> x509.CertificateBuilder:
    return builder.serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)


def pem(*certificates: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


@dataclass(frozen=True)
class LocalPki:
    """A test CA, a second unrelated CA, and a leaf CN=sns.amazonaws.com issued by the first."""

    ca: x509.Certificate
    other_ca: x509.Certificate
    leaf: x509.Certificate


@functools.cache
def local_pki() -> LocalPki:
    ca = make_ca("CN=remediator test CA")
    return LocalPki(ca=ca, other_ca=make_ca("CN=another test CA"), leaf=make_leaf(ca))


TOPIC = "arn:aws:sns:us-east-1:123456789012:remediator-alerts"
CERT_URL = (
    "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
)
SIGNED_AT = "2026-01-15T10:00:00.123Z"

# The string to sign is written out again here, independently of the module under test, so a
# mistake in it cannot make these self-signed messages agree with it.
_CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _CONFIRMATION_KEYS,
    "UnsubscribeConfirmation": _CONFIRMATION_KEYS,
}


def unsigned_message(message_type: str, **overrides: str) -> dict[str, str]:
    fields = {
        "Type": message_type,
        "MessageId": "5b1c4e3a-7f0e-4b8e-9a55-0c2f0f3f9d10",
        "TopicArn": TOPIC,
        "Message": '{"AlarmName":"rds-cpu","NewStateValue":"ALARM"}',
        "Timestamp": SIGNED_AT,
    }
    if message_type == "Notification":
        fields["UnsubscribeURL"] = "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x"
    else:
        fields["Token"] = "2336412f37fb687f5d51e6e2425ba1f2SECRET-TOKEN"
        fields["SubscribeURL"] = (
            f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token={fields['Token']}"
        )
    fields.update(overrides)
    return fields


def sign(
    fields: Mapping[str, str], *, version: str = "2", key_name: str = "leaf", cert_url: str = CERT_URL
) -> dict[str, str]:
    canonical = "".join(
        f"{name}\n{fields[name]}\n" for name in _SIGNED_KEYS[fields["Type"]] if name in fields
    ).encode()
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = rsa_key(key_name).sign(canonical, padding.PKCS1v15(), algorithm)
    return {
        **fields,
        "SignatureVersion": version,
        "Signature": base64.b64encode(signature).decode(),
        "SigningCertURL": cert_url,
    }
