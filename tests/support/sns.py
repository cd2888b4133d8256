"""SNS endpoint test support: messages signed by a local CA, a certificate mirror, moto behind a proxy.

The daemon runs with the local CA as its only trusted issuer (`sns.ca_files`) and fetches the
certificate named by the unchanged, pinned SigningCertURL from `CertMirror` (`sns.mirror_url`),
so the URL rules are exactly the production ones. Confirmations go to moto through a proxy that
records what was called with which parameters.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiobotocore.session import get_session
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.sources.sns_testkit import CERT_URL, TOPIC, body, local_pki, pem, sign, unsigned_message
from tests.support.daemon import Daemon, DaemonFactory
from tests.support.faultproxy import CREDENTIAL, FaultProxy
from tests.support.moto import TEST_ENV, moto_server, reset_moto

SIGNED_AT = "2026-01-05T08:59:30.000Z"  # 30 s before the daemon's fake clock (tests.conftest.T0)
TOKEN = "2336412f37fb687f5d51e6e2425ba1f2SECRET-TOKEN"
SUBSCRIBE_URL = f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={TOKEN}"
TEXT_PLAIN = {"Content-Type": "text/plain; charset=UTF-8"}  # what SNS sends, JSON body or not


def signed(message_type: str = "Notification", *, version: str = "2", key_name: str = "leaf",
           cert_url: str = CERT_URL, **fields: str) -> bytes:
    """A message signed by the local CA's leaf, published 30 s before the daemon's clock."""
    fields.setdefault("Timestamp", SIGNED_AT)
    if message_type != "Notification":
        fields.setdefault("Token", TOKEN)
        fields.setdefault("SubscribeURL", SUBSCRIBE_URL.replace(TOPIC, fields.get("TopicArn", TOPIC)))
    return body(sign(unsigned_message(message_type, **fields), version=version, key_name=key_name,
                     cert_url=cert_url))


@dataclass
class CertMirror:
    """Serves the local leaf at the path of CERT_URL (after `failures` 500s), and plays the SNS
    host for SubscribeURL GETs (answering `confirm_status`); records every request."""

    certificates: dict[str, bytes] = field(default_factory=lambda: {urlsplit(CERT_URL).path: pem(local_pki().leaf)})
    failures: int = 0
    confirm_status: int = 200
    requests: list[str] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.path_qs)
        if self.failures:
            self.failures -= 1
            return web.Response(status=500)
        if request.path == "/":
            return web.Response(text="<ConfirmSubscriptionResponse/>", content_type="text/xml",
                                status=self.confirm_status)
        found = self.certificates.get(request.path)
        return web.Response(body=found) if found else web.Response(status=404)

    @property
    def certificate_fetches(self) -> list[str]:
        return [r for r in self.requests if r.endswith(".pem")]

    @property
    def confirmations(self) -> list[dict[str, list[str]]]:
        return [parse_qs(urlsplit(r).query) for r in self.requests if r.startswith("/?")]


@pytest.fixture
async def cert_mirror() -> AsyncIterator[CertMirror]:
    mirror = CertMirror()
    app = web.Application()
    app.router.add_get("/{tail:.*}", mirror.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        mirror.url = str(server.make_url("")).rstrip("/")
        yield mirror


@pytest.fixture
def local_ca_file(tmp_path: Path) -> Path:
    path = tmp_path / "local-ca.pem"
    path.write_bytes(pem(local_pki().ca))
    return path


SnsDaemonFactory = Callable[..., Any]


@pytest.fixture
def start_sns_daemon(start_daemon: DaemonFactory, cert_mirror: CertMirror, local_ca_file: Path) -> SnsDaemonFactory:
    """`await start_sns_daemon(sns={...}, **settings)`: the local CA trusted, TOPIC allow-listed."""

    async def start(sns: dict[str, Any] | None = None, **overrides: Any) -> Daemon:
        base = {"topics": [TOPIC], "ca_files": [str(local_ca_file)], "mirror_url": cert_mirror.url}
        daemon: Daemon = await start_daemon(sns={**base, **(sns or {})}, **overrides)
        return daemon

    return start


async def post(daemon: Daemon, payload: bytes, path: str = "/webhooks/sns",
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST like SNS (text/plain); the status and the JSON answer."""
    response = await daemon.client.post(path, data=payload, headers={**TEXT_PLAIN, **(headers or {})})
    answer: dict[str, Any] = await response.json()
    return response.status, answer


def nothing_recorded(daemon: Daemon) -> bool:
    return daemon.count("alerts") == 0 and daemon.count("alert_keys") == 0 and daemon.count("incidents") == 0


# -- moto ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def moto(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's URL, AWS credentials for it in the environment, and a clean moto afterwards."""
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield moto_url
    reset_moto(moto_url)


class RecordingProxy(FaultProxy):
    """The fault proxy, also keeping each query-protocol request's parameters and SigV4 region."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.params: list[dict[str, str]] = []
        self.regions: list[str] = []

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        form = parse_qs((await request.read()).decode(errors="replace"))
        self.params.append({key: values[0] for key, values in form.items()})
        scope = CREDENTIAL.search(request.headers.get("Authorization", ""))
        self.regions.append(scope.group(1) if scope else "")
        return await super()._handle(request)

    def calls(self, operation: str) -> list[dict[str, str]]:
        return [p for p in self.params if p.get("Action") == operation]


@pytest.fixture
async def moto_proxy(moto: str) -> AsyncIterator[RecordingProxy]:
    proxy = RecordingProxy(moto)
    await proxy.start()
    yield proxy
    await proxy.stop()


async def create_topic(moto_url: str, name: str, region: str = "us-east-1") -> str:
    """A topic in moto (ConfirmSubscription there needs one); its ARN."""
    async with get_session().create_client("sns", region_name=region, endpoint_url=moto_url) as client:
        arn: str = (await client.create_topic(Name=name))["TopicArn"]
    return arn
