"""Signing certificates: PEM loading, the trust policy, and the HTTPS fetcher against local servers."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from remediator.sources.sns.certs import HttpsCertificateFetcher, TrustPolicy, load_signing_certificate
from remediator.sources.sns.envelope import SnsVerificationError, VerifyResult, parse_topic_arn
from tests.sources.sns_testkit import corpus_bytes, corpus_dir, local_pki, make_ca, make_leaf, pem, rsa_key

US_EAST_1 = parse_topic_arn("arn:aws:sns:us-east-1:123456789012:alerts")
EU_SOUTH_1 = parse_topic_arn("arn:aws:sns:eu-south-1:123456789012:alerts")
LIMIT = 10 * 1024


def refused(result: VerifyResult, action: Callable[[], object]) -> SnsVerificationError:
    with pytest.raises(SnsVerificationError) as caught:
        action()
    assert caught.value.result is result
    return caught.value


def corpus_pems() -> list[str]:
    return sorted(path.name for path in corpus_dir().glob("sns-signing-cert-*.pem"))


@pytest.mark.parametrize("name", corpus_pems())
def test_corpus_certificates_load_and_pass_the_default_policy_in_us_east_1(name: str) -> None:
    certificate = load_signing_certificate(corpus_bytes(name))

    TrustPolicy().check(certificate, US_EAST_1)


@pytest.mark.parametrize("name", corpus_pems())
def test_the_global_name_is_refused_where_a_regional_signing_name_is_expected(name: str) -> None:
    certificate = load_signing_certificate(corpus_bytes(name))

    error = refused(VerifyResult.BAD_CERTIFICATE, lambda: TrustPolicy().check(certificate, EU_SOUTH_1))
    assert "sns-signing.eu-south-1.amazonaws.com" in error.message


def test_four_corpus_certificates() -> None:
    assert len(corpus_pems()) == 4


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        ("arn:aws:sns:us-east-1:123456789012:t", "sns.amazonaws.com"),
        ("arn:aws:sns:eu-west-1:123456789012:t", "sns.amazonaws.com"),
        ("arn:aws:sns:eu-south-1:123456789012:t", "sns-signing.eu-south-1.amazonaws.com"),
        ("arn:aws:sns:ap-southeast-7:123456789012:t", "sns-signing.ap-southeast-7.amazonaws.com"),
        ("arn:aws:sns:mx-central-1:123456789012:t", "sns-signing.mx-central-1.amazonaws.com"),
        ("arn:aws-cn:sns:cn-north-1:123456789012:t", "sns-cn-north-1.amazonaws.com.cn"),
        ("arn:aws-cn:sns:cn-northwest-1:123456789012:t", "sns-cn-northwest-1.amazonaws.com.cn"),
        ("arn:aws-cn:sns:cn-south-9:123456789012:t", "sns.amazonaws.com.cn"),
        ("arn:aws-us-gov:sns:us-gov-west-1:123456789012:t", "sns-us-gov-west-1.amazonaws.com"),
        ("arn:aws-us-gov:sns:us-gov-east-1:123456789012:t", "sns-us-gov-west-1.amazonaws.com"),
    ],
)
def test_expected_subject_per_region(arn: str, expected: str) -> None:
    assert TrustPolicy().expected_subject(parse_topic_arn(arn)) == expected


def test_a_leaf_of_a_trusted_local_ca_passes() -> None:
    pki = local_pki()

    TrustPolicy(issuer_certificates=(pki.ca,)).check(pki.leaf, US_EAST_1)


@pytest.mark.parametrize(
    ("trust", "message"),
    [
        pytest.param(
            TrustPolicy(), "not issued by a trusted CA", id="default-policy-knows-only-public-issuers"
        ),
        pytest.param(
            TrustPolicy(issuer_certificates=(local_pki().other_ca,)),
            "not issued by a trusted CA",
            id="another-ca",
        ),
        pytest.param(
            TrustPolicy(issuer_certificates=(make_leaf(local_pki().ca),)),
            "not issued by a trusted CA",
            id="leaf-as-its-own-issuer",
        ),
    ],
)
def test_a_leaf_of_an_untrusted_issuer_fails(trust: TrustPolicy, message: str) -> None:
    error = refused(VerifyResult.BAD_CERTIFICATE, lambda: trust.check(local_pki().leaf, US_EAST_1))

    assert message in error.message


@pytest.mark.parametrize(
    ("common_name", "dns_names", "accepted"),
    [
        pytest.param("sns.amazonaws.com", (), True, id="cn-only"),
        pytest.param("other.example", ("sns.amazonaws.com",), True, id="san-only"),
        pytest.param("sns.amazonaws.com", ("other.example",), True, id="cn-right-san-other"),
        pytest.param("sns.example.com", ("sns.example.com",), False, id="wrong-name"),
        pytest.param("*.amazonaws.com", ("*.amazonaws.com",), False, id="wildcard"),
        pytest.param("SNS.AMAZONAWS.COM", (), False, id="uppercase"),
        pytest.param("sns.amazonaws.com.", (), False, id="trailing-dot"),
    ],
)
def test_subject_name_must_equal_the_expected_one(
    common_name: str, dns_names: tuple[str, ...], accepted: bool
) -> None:
    pki = local_pki()
    leaf = make_leaf(pki.ca, common_name=common_name, dns_names=dns_names)
    trust = TrustPolicy(issuer_certificates=(pki.ca,))

    if accepted:
        trust.check(leaf, US_EAST_1)
    else:
        error = refused(VerifyResult.BAD_CERTIFICATE, lambda: trust.check(leaf, US_EAST_1))
        assert "not issued to sns.amazonaws.com" in error.message


def test_from_files_reads_every_certificate_of_every_file(tmp_path: Path) -> None:
    pki = local_pki()
    (tmp_path / "both.pem").write_bytes(pem(pki.other_ca, pki.ca))
    (tmp_path / "one.pem").write_bytes(pem(make_ca("CN=third test CA")))

    trust = TrustPolicy.from_files([tmp_path / "both.pem", tmp_path / "one.pem"])

    assert len(trust.issuer_certificates) == 3
    trust.check(pki.leaf, US_EAST_1)


def test_from_files_refuses_a_file_without_certificate(tmp_path: Path) -> None:
    (tmp_path / "empty.pem").write_text("not a certificate\n")

    with pytest.raises(ValueError, match=r"empty\.pem"):
        TrustPolicy.from_files([tmp_path / "empty.pem"])


def leaf_pem() -> bytes:
    return pem(local_pki().leaf)


def key_pem() -> bytes:
    return rsa_key("leaf").private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"", "exactly one", id="empty"),
        pytest.param(leaf_pem() + leaf_pem(), "exactly one", id="two-certificates"),
        pytest.param(pem(local_pki().leaf, local_pki().ca), "exactly one", id="leaf-and-ca"),
        pytest.param(leaf_pem() + key_pem(), "exactly one", id="certificate-and-key"),
        pytest.param(key_pem(), "exactly one", id="key-only"),
        pytest.param(b"Bag Attributes\n" + leaf_pem(), "exactly one", id="text-before"),
        pytest.param(leaf_pem() + b"trailing", "exactly one", id="text-after"),
        pytest.param(local_pki().leaf.public_bytes(serialization.Encoding.DER), "exactly one", id="der"),
        pytest.param(
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            "could not be parsed",
            id="base64-of-garbage",
        ),
    ],
)
def test_anything_but_one_pem_certificate_is_refused(data: bytes, message: str) -> None:
    error = refused(VerifyResult.BAD_CERTIFICATE, lambda: load_signing_certificate(data))

    assert message in error.message


def test_surrounding_whitespace_and_crlf_are_fine() -> None:
    data = b"\r\n" + leaf_pem().replace(b"\n", b"\r\n") + b"\n\n"

    assert load_signing_certificate(data) == local_pki().leaf


def cert_url(hex_id: str, host: str = "sns.eu-west-1.amazonaws.com") -> str:
    return f"https://{host}/SimpleNotificationService-{hex_id * 32}.pem"


@dataclass
class CertServer:
    """A local stand-in for the SNS host: the hex digit of the certificate id picks the behaviour."""

    base_url: str = ""
    requests: list[tuple[str, str | None]] = field(default_factory=list)


def behaviours() -> dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    async def ok(_: web.Request) -> web.StreamResponse:
        return web.Response(body=leaf_pem())

    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/SimpleNotificationService-{'0' * 32}.pem")

    async def too_big(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"A" * (LIMIT + 1))

    async def at_limit(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"A" * LIMIT)

    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(body=leaf_pem())

    async def chunked_too_big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(20):
            await response.write(b"A" * 1024)
        await response.write_eof()
        return response

    async def slow_body(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(50):
            await response.write(b"A")
            await asyncio.sleep(0.1)
        return response

    async def gzip(_: web.Request) -> web.StreamResponse:
        return web.Response(body=b"\x1f\x8b", headers={"Content-Encoding": "gzip"})

    async def not_found(_: web.Request) -> web.StreamResponse:
        return web.Response(status=404)

    async def server_error(_: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    async def redirect_elsewhere(_: web.Request) -> web.StreamResponse:
        raise web.HTTPMovedPermanently("https://evil.example/")

    return {
        "0": ok,
        "1": redirect,
        "2": too_big,
        "3": at_limit,
        "4": slow,
        "5": not_found,
        "6": server_error,
        "7": chunked_too_big,
        "8": gzip,
        "9": slow_body,
        "a": lambda _: asyncio.sleep(
            0, web.Response(status=301, headers={"Location": "https://evil.example/"})
        ),
    }


@pytest.fixture
async def cert_server() -> AsyncIterator[CertServer]:
    server = CertServer()
    table = behaviours()

    async def handle(request: web.Request) -> web.StreamResponse:
        server.requests.append((request.path, request.headers.get("Authorization")))
        return await table[request.match_info["hex"][0]](request)

    app = web.Application()
    app.router.add_get("/SimpleNotificationService-{hex}.pem", handle)
    async with TestServer(app, host="127.0.0.1") as test_server:
        server.base_url = str(test_server.make_url("/"))
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def fetch_failure(fetcher: HttpsCertificateFetcher, url: str) -> SnsVerificationError:
    with pytest.raises(SnsVerificationError) as caught:
        await fetcher.fetch(url)
    assert caught.value.result is VerifyResult.CERT_FETCH_FAILED
    assert caught.value.retryable
    return caught.value


async def test_200_returns_the_body_with_the_moto_authorization_for_the_url_region(
    cert_server: CertServer, session: aiohttp.ClientSession
) -> None:
    fetcher = HttpsCertificateFetcher(session, mirror_base_url=cert_server.base_url)

    data = await fetcher.fetch(cert_url("0"))
    china = await fetcher.fetch(cert_url("0", host="sns.cn-north-1.amazonaws.com.cn"))

    assert data == china == leaf_pem()
    assert cert_server.requests == [
        (
            f"/SimpleNotificationService-{'0' * 32}.pem",
            "AWS4-HMAC-SHA256 Credential=x/20260101/eu-west-1/sns/aws4_request,"
            " SignedHeaders=host, Signature=0",
        ),
        (
            f"/SimpleNotificationService-{'0' * 32}.pem",
            "AWS4-HMAC-SHA256 Credential=x/20260101/cn-north-1/sns/aws4_request,"
            " SignedHeaders=host, Signature=0",
        ),
    ]


async def test_a_body_of_exactly_the_limit_is_accepted(
    cert_server: CertServer, session: aiohttp.ClientSession
) -> None:
    fetcher = HttpsCertificateFetcher(session, mirror_base_url=cert_server.base_url)

    assert await fetcher.fetch(cert_url("3")) == b"A" * LIMIT


@pytest.mark.parametrize(
    ("hex_id", "message"),
    [
        pytest.param("1", "HTTP 302 (redirects are not followed)", id="302-to-a-valid-certificate"),
        pytest.param("a", "HTTP 301 (redirects are not followed)", id="301-elsewhere"),
        pytest.param("2", f"larger than {LIMIT} bytes", id="content-length-over-10-kib"),
        pytest.param("7", f"larger than {LIMIT} bytes", id="chunked-over-10-kib"),
        pytest.param("5", "HTTP 404", id="404"),
        pytest.param("6", "HTTP 500", id="500"),
        pytest.param("8", "compressed", id="gzip"),
    ],
)
async def test_refused_answers(
    cert_server: CertServer, session: aiohttp.ClientSession, hex_id: str, message: str
) -> None:
    fetcher = HttpsCertificateFetcher(session, mirror_base_url=cert_server.base_url)

    error = await fetch_failure(fetcher, cert_url(hex_id))

    assert message in error.message
    assert [path for path, _ in cert_server.requests] == [f"/SimpleNotificationService-{hex_id * 32}.pem"]


@pytest.mark.parametrize("hex_id", ["4", "9"], ids=["slow-headers", "slow-body"])
async def test_slow_answers_time_out(
    cert_server: CertServer, session: aiohttp.ClientSession, hex_id: str
) -> None:
    fetcher = HttpsCertificateFetcher(session, timeout=0.3, mirror_base_url=cert_server.base_url)
    started = asyncio.get_running_loop().time()

    error = await fetch_failure(fetcher, cert_url(hex_id))

    assert "within 0.3 s" in error.message
    assert asyncio.get_running_loop().time() - started < 2


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    fetcher = HttpsCertificateFetcher(session, mirror_base_url=f"http://127.0.0.1:{port}")

    error = await fetch_failure(fetcher, cert_url("0"))

    assert "ClientConnectorError" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/SimpleNotificationService-00000000000000000000000000000000.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-00000000000000000000000000000000.pem?x",
        "http://sns.eu-west-1.amazonaws.com/SimpleNotificationService-00000000000000000000000000000000.pem",
        "https://sns.eu-west-1.amazonaws.com:443/SimpleNotificationService-00000000000000000000000000000000.pem",
        "https://sns.eu-west-1.amazonaws.com./SimpleNotificationService-00000000000000000000000000000000.pem",
        "https://SNS.eu-west-1.amazonaws.com/SimpleNotificationService-00000000000000000000000000000000.pem",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000000000000000000000000.pem",
    ],
)
async def test_the_fetcher_itself_refuses_foreign_urls(
    cert_server: CertServer, session: aiohttp.ClientSession, url: str
) -> None:
    fetcher = HttpsCertificateFetcher(session, mirror_base_url=cert_server.base_url)

    with pytest.raises(SnsVerificationError) as caught:
        await fetcher.fetch(url)

    assert caught.value.result is VerifyResult.BAD_CERT_URL
    assert cert_server.requests == []


class LoopbackResolver(AbstractResolver):
    """Resolves every name to 127.0.0.1:<port>, so the real SNS URL reaches a local TLS server."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": self.port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
async def fake_sns_over_tls(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """A TLS server for sns.us-east-1.amazonaws.com whose certificate chains to the local test CA."""
    pki = local_pki()
    now = datetime.now(UTC)
    host = "sns.us-east-1.amazonaws.com"
    server_cert = make_leaf(
        pki.ca,
        common_name=host,
        dns_names=(host,),
        key_name="tls",
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=1),
    )
    (tmp_path / "server.pem").write_bytes(pem(server_cert))
    (tmp_path / "server.key").write_bytes(
        rsa_key("tls").private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "ca.pem").write_bytes(pem(pki.ca))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    app = web.Application()
    app.router.add_get("/{name}", behaviours()["0"])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    try:
        yield runner.addresses[0][1], tmp_path / "ca.pem"
    finally:
        await runner.cleanup()


async def test_without_mirror_the_real_url_is_fetched_over_verified_tls(
    fake_sns_over_tls: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, ca_file = fake_sns_over_tls
    url = cert_url("0", host="sns.us-east-1.amazonaws.com")

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=LoopbackResolver(port))
    ) as client:
        error = await fetch_failure(HttpsCertificateFetcher(client), url)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        data = await HttpsCertificateFetcher(client).fetch(url)

    assert "Certificate" in error.message
    assert x509.load_pem_x509_certificate(data) == local_pki().leaf


async def test_tls_is_verified_even_when_the_session_does_not_verify(
    fake_sns_over_tls: tuple[int, Path],
) -> None:
    port, _ = fake_sns_over_tls
    connector = aiohttp.TCPConnector(resolver=LoopbackResolver(port), ssl=False)

    async with aiohttp.ClientSession(connector=connector) as client:
        error = await fetch_failure(
            HttpsCertificateFetcher(client), cert_url("0", host="sns.us-east-1.amazonaws.com")
        )

    assert "Certificate" in error.message
