"""Where SNS signing certificates come from and which ones we trust (docs/wire-formats.md §2.2, §2.5).

`HttpsCertificateFetcher` fetches; `TrustPolicy` decides whether a fetched certificate may sign
for a topic; `SigningCertificates` puts both behind a bounded cache with single-flight fetches.
Only URLs that passed `validate_cert_url` ever reach this module.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from re import Match
from types import MappingProxyType
from typing import Final, Protocol

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from remediator.sources.sns.envelope import SIGNING_CERT_URL, SnsVerificationError, TopicArn, VerifyResult

DEFAULT_ISSUER_NAMES: Final = frozenset(
    {
        # Exactly as in the corpus certificates (RFC 4514, as cryptography prints them).
        "CN=Amazon RSA 2048 M01,O=Amazon,C=US",  # 7506a1e3… 2025-2026
        "CN=Amazon,OU=Server CA 1B,O=Amazon,C=US",  # 7ff53184… 2021-2022
        "CN=Symantec Class 3 Secure Server CA - G4,OU=Symantec Trust Network,O=Symantec Corporation,C=US",
        "CN=VeriSign Class 3 Secure Server CA - G3,OU=Terms of use at https://www.verisign.com/rpa (c)10,"
        "OU=VeriSign Trust Network,O=VeriSign\\, Inc.,C=US",
        # M01's siblings, which AWS rotates through. Not in the corpus: the DN shape is M01's, and
        # public TLS captures of other Amazon hosts show it for each ("C=US, O=Amazon, CN=...").
        "CN=Amazon RSA 2048 M02,O=Amazon,C=US",
        "CN=Amazon RSA 2048 M03,O=Amazon,C=US",
        "CN=Amazon RSA 2048 M04,O=Amazon,C=US",
    }
)
"""Issuers of real SNS signing certificates, as full distinguished names.

Full names rather than the CN alone, because "Server CA 1B" has the CN "Amazon". This is a name
check, not a cryptographic one: the authenticity of a certificate comes from fetching it over
verified TLS from the pinned SNS host. Pass `issuer_certificates` for a cryptographic check.
"""

# Base64 only between the markers: a second block, a key, or headers cannot hide in there.
_ONE_PEM_CERTIFICATE: Final = re.compile(
    rb"\s*-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE-----\s*"
)

_OPT_IN_REGIONS: Final = (
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-west-1",
    "eu-central-2",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
)


def default_subject_names() -> Mapping[str, str]:
    """Signing-certificate name per region where it is not the partition default (docs/wire-formats.md §2.2).

    Taken from AWS's own Java validator (SnsHostProvider). For the opt-in regions only the
    regional `sns-signing.<region>` name is accepted, not also `sns.amazonaws.com`: AWS's validator
    accepts only that, eu-south-1 messages name a certificate id of their own, and being wrong
    here fails loudly at subscription time (the confirmation itself is refused) rather than
    silently later. If AWS ever serves the global certificate there, override this mapping.
    """
    names = {region: f"sns-signing.{region}.amazonaws.com" for region in _OPT_IN_REGIONS}
    names |= {
        "cn-north-1": "sns-cn-north-1.amazonaws.com.cn",
        "cn-northwest-1": "sns-cn-northwest-1.amazonaws.com.cn",
        "us-gov-west-1": "sns-us-gov-west-1.amazonaws.com",
        "us-gov-east-1": "sns-us-gov-west-1.amazonaws.com",
    }
    return MappingProxyType(names)


def _bad_certificate(message: str) -> SnsVerificationError:
    return SnsVerificationError(VerifyResult.BAD_CERTIFICATE, message)


@dataclass(frozen=True)
class TrustPolicy:
    """Which fetched certificates may sign messages for a topic (issuer and subject name).

    With `issuer_certificates` the leaf must be directly issued by one of them (signature
    checked); otherwise its issuer DN must be one of `issuer_names`. The leaf's CN or a DNS SAN
    must equal the name expected for the topic's region (`subject_names`, else `sns.amazonaws.com`,
    or `sns.amazonaws.com.cn` in aws-cn). Validity is checked per message, against its Timestamp.
    """

    issuer_certificates: tuple[x509.Certificate, ...] = ()
    issuer_names: frozenset[str] = DEFAULT_ISSUER_NAMES
    subject_names: Mapping[str, str] = field(default_factory=default_subject_names)

    @classmethod
    def from_files(cls, ca_files: Sequence[Path]) -> TrustPolicy:
        """Trust only leaves issued by the CA certificates in these PEM files (several per file allowed).

        An empty sequence gives the default policy (public issuer names); a file without a
        certificate raises ValueError naming it.
        """
        certificates: list[x509.Certificate] = []
        for path in ca_files:
            try:
                certificates += x509.load_pem_x509_certificates(path.read_bytes())
            except ValueError as exc:
                raise ValueError(f"{path}: no readable PEM certificate") from exc
        return cls(issuer_certificates=tuple(certificates))

    def expected_subject(self, topic: TopicArn) -> str:
        """The name the signing certificate for this topic's region must carry."""
        default = "sns.amazonaws.com.cn" if topic.partition == "aws-cn" else "sns.amazonaws.com"
        return self.subject_names.get(topic.region, default)

    def check(self, certificate: x509.Certificate, topic: TopicArn) -> None:
        """Raise BAD_CERTIFICATE unless issuer and subject name are acceptable for `topic`."""
        if not self._issuer_trusted(certificate):
            raise _bad_certificate("signing certificate is not issued by a trusted CA")
        expected = self.expected_subject(topic)
        if expected not in _subject_names_of(certificate):
            raise _bad_certificate(f"signing certificate is not issued to {expected}")

    def _issuer_trusted(self, certificate: x509.Certificate) -> bool:
        if not self.issuer_certificates:
            return certificate.issuer.rfc4514_string() in self.issuer_names
        return any(_directly_issued(certificate, issuer) for issuer in self.issuer_certificates)


def _directly_issued(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _subject_names_of(certificate: x509.Certificate) -> set[str]:
    names = {str(cn.value) for cn in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return names
    except ValueError as exc:  # duplicate or unparsable extensions
        raise _bad_certificate("signing certificate has malformed extensions") from exc
    return names | set(alternative.value.get_values_for_type(x509.DNSName))


def load_signing_certificate(data: bytes) -> x509.Certificate:
    """Parse bytes that must hold exactly one PEM CERTIFICATE block and nothing else."""
    if _ONE_PEM_CERTIFICATE.fullmatch(data) is None:
        raise _bad_certificate("expected exactly one PEM CERTIFICATE block and nothing else")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise _bad_certificate("signing certificate could not be parsed") from exc


class CertificateFetcher(Protocol):
    """Gets the bytes at a validated SigningCertURL; raises SnsVerificationError(CERT_FETCH_FAILED)."""

    async def fetch(self, url: str) -> bytes:
        """Return the body served at `url`."""
        ...


def _fetch_failed(message: str) -> SnsVerificationError:
    return SnsVerificationError(VerifyResult.CERT_FETCH_FAILED, f"certificate fetch failed: {message}")


class HttpsCertificateFetcher:
    """Production fetcher: verified TLS, no redirects, a size cap and one overall timeout.

    `mirror_base_url` (air-gapped or test setups) fetches the same path from another base URL,
    with the dummy SigV4 `Authorization` header moto uses to route the request to its SNS backend
    in the certificate's region. TLS for a mirror is whatever the session's connector does.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeout: float = 3.0,
        max_bytes: int = 10 * 1024,
        mirror_base_url: str | None = None,
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._mirror = mirror_base_url.rstrip("/") if mirror_base_url else None
        # Explicit, because `ssl=True` defers to the session's connector, which may not verify.
        self._tls = ssl.create_default_context()

    async def fetch(self, url: str) -> bytes:
        """Return the certificate bytes, or raise CERT_FETCH_FAILED (BAD_CERT_URL for a foreign URL)."""
        match = SIGNING_CERT_URL.fullmatch(url)
        if match is None:
            # Defence in depth: callers validate first, but this must never become an open fetcher.
            raise SnsVerificationError(VerifyResult.BAD_CERT_URL, "not an SNS signing certificate URL")
        try:
            async with asyncio.timeout(self._timeout):
                return await self._get(url, match)
        except TimeoutError:
            raise _fetch_failed(f"no complete answer within {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise _fetch_failed(type(exc).__name__) from exc

    async def _get(self, url: str, match: Match[str]) -> bytes:
        target: str = url
        tls: ssl.SSLContext | bool = self._tls
        # auto_decompress=False with identity only: a small compressed answer cannot grow past the cap.
        headers = {"Accept-Encoding": "identity"}
        if self._mirror is not None:
            target, tls = self._mirror + match["path"], True
            headers["Authorization"] = moto_authorization(match["region"])
        async with self._session.get(
            target, headers=headers, allow_redirects=False, auto_decompress=False, ssl=tls
        ) as response:
            return await self._body(response)

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        if response.status != 200:
            redirect = " (redirects are not followed)" if 300 <= response.status < 400 else ""
            raise _fetch_failed(f"HTTP {response.status}{redirect}")
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise _fetch_failed("encoded (compressed) answers are refused")
        too_large = _fetch_failed(f"certificate larger than {self._max_bytes} bytes")
        if (response.content_length or 0) > self._max_bytes:
            raise too_large
        data = await _read_at_most(response.content, self._max_bytes + 1)
        if len(data) > self._max_bytes:
            raise too_large
        return data


def moto_authorization(region: str) -> str:
    """The dummy SigV4 header by which moto server routes a request to its SNS backend in `region`."""
    return (
        f"AWS4-HMAC-SHA256 Credential=x/20260101/{region}/sns/aws4_request, SignedHeaders=host, Signature=0"
    )


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    data = bytearray()
    while len(data) < limit:
        chunk = await stream.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


@dataclass(frozen=True, slots=True)
class _Failure:
    result: VerifyResult
    message: str


_Outcome = x509.Certificate | _Failure


class _ExpiringLru:
    """At most `size` entries, least recently used evicted first, each with its own expiry."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, tuple[datetime, _Outcome]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: datetime) -> _Outcome | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry[0]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: _Outcome, expires: datetime) -> None:
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


class SigningCertificates:
    """Trusted signing certificates by URL: fetched once, checked once, cached within bounds.

    Concurrent requests for one URL share a single fetch. Parsed, trusted certificates are kept
    for `ttl`; failures of any kind for `failure_ttl`, so forged messages naming a URL cannot make
    us hit the network for each of them. The key is the URL alone: `validate_cert_url` has tied
    the URL's host to the topic's partition and region, which is all the trust check depends on.
    """

    def __init__(
        self,
        *,
        fetcher: CertificateFetcher,
        trust: TrustPolicy,
        clock: Callable[[], datetime],
        size: int,
        ttl: timedelta,
        failure_ttl: timedelta,
    ) -> None:
        self._fetcher = fetcher
        self._trust = trust
        self._clock = clock
        self._ttl = ttl
        self._failure_ttl = failure_ttl
        self._cache = _ExpiringLru(size)
        self._loading: dict[str, asyncio.Task[_Outcome]] = {}

    def __len__(self) -> int:
        return len(self._cache)

    async def get(self, url: str, topic: TopicArn) -> x509.Certificate:
        """The trusted certificate at a validated `url`, or the SnsVerificationError it led to."""
        outcome = self._cache.get(url, self._clock())
        if outcome is None:
            # Shielded: a waiter cancelled (client gone) must not cancel the fetch others await.
            outcome = await asyncio.shield(self._loading_task(url, topic))
        if isinstance(outcome, _Failure):
            raise SnsVerificationError(outcome.result, outcome.message)
        return outcome

    def _loading_task(self, url: str, topic: TopicArn) -> asyncio.Task[_Outcome]:
        task = self._loading.get(url)
        if task is None:
            task = asyncio.create_task(self._load(url, topic))
            self._loading[url] = task
            task.add_done_callback(lambda done: self._loaded(url, done))
        return task

    def _loaded(self, url: str, task: asyncio.Task[_Outcome]) -> None:
        if self._loading.get(url) is task:
            del self._loading[url]

    async def _load(self, url: str, topic: TopicArn) -> _Outcome:
        outcome: _Outcome
        try:
            outcome = load_signing_certificate(await self._fetch(url))
            self._trust.check(outcome, topic)
            expires = self._clock() + self._ttl
        except SnsVerificationError as exc:
            outcome = _Failure(exc.result, exc.message)
            expires = self._clock() + self._failure_ttl
        self._cache.put(url, outcome, expires)
        return outcome

    async def _fetch(self, url: str) -> bytes:
        try:
            return await self._fetcher.fetch(url)
        except SnsVerificationError:
            raise
        except Exception as exc:
            # A fetcher should raise only SnsVerificationError; keep verify()'s contract if it does not.
            raise _fetch_failed(type(exc).__name__) from exc
