"""Fixtures for action tests: moto server, the fault proxy in front of it, clients, contexts; and for
the postgres.* and redis.* actions, a context on real servers (`action_context`).

Actions talk to moto through the proxy (so `proxy.log` shows exactly what they called); tests
arrange and read back state through `moto`, a direct client that the proxy never sees.
`aws_daemon` starts the whole daemon with its AWS clients pointed at the proxy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import botocore.retries.standard
import pytest
import structlog
from aiobotocore.session import AioSession, get_session
from botocore.config import Config

from remediator.actions.aws.waf_ledger import LEDGER_EXTRA, InMemoryBlockLedger
from remediator.actions.base import ActionContext, ActionDeps, AnyAction, TimelineWriter
from remediator.actions.targets import TARGETS_EXTRA, TargetConnections
from remediator.aws.clients import AWS_EXTRA, AwsClients
from remediator.clock import FakeClock, SystemClock
from remediator.model import Execution
from remediator.settings import AwsSettings, EvidenceSettings, Settings
from tests.support import builders
from tests.support.alertmanager import webhook_body
from tests.support.context import CtxFactory, MotoClient, make_ctx, make_request
from tests.support.daemon import Daemon, DaemonFactory
from tests.support.faultproxy import FaultProxy
from tests.support.moto import TEST_ENV, moto_server, reset_moto

# Path-style S3 addressing: the endpoint is an IP address, not a DNS name buckets can prefix.
TEST_CONFIG = Config(s3={"addressing_style": "path"})


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # Retries keep their count and logic; only the waiting between them goes (timing is not tested).
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0)


@pytest.fixture(autouse=True)
def moto_reset(aws_env: None, moto_url: str) -> Iterator[None]:
    yield
    reset_moto(moto_url)


@pytest.fixture
async def proxy(moto_url: str) -> AsyncIterator[FaultProxy]:
    fault_proxy = FaultProxy(moto_url)
    await fault_proxy.start()
    yield fault_proxy
    await fault_proxy.stop()


@pytest.fixture
def aws_settings(proxy: FaultProxy) -> AwsSettings:
    return AwsSettings(endpoint_url=proxy.url, max_attempts=3, connect_timeout=timedelta(seconds=2),
                       read_timeout=timedelta(seconds=5), call_timeout=timedelta(seconds=20),
                       evidence=EvidenceSettings(bucket="erp-forensics", max_objects=5, max_bytes=10_000))


@pytest.fixture
def settings(aws_settings: AwsSettings) -> Settings:
    return Settings(aws=aws_settings)


@pytest.fixture(scope="session")
def aio_session() -> AioSession:
    # One session for the run: it caches the service models botocore would load per client.
    return get_session()


@pytest.fixture
async def clients(aws_settings: AwsSettings, aio_session: AioSession) -> AsyncIterator[AwsClients]:
    async with AwsClients(aws_settings, config=TEST_CONFIG, session=aio_session) as opened:
        yield opened


@pytest.fixture
async def moto(moto_url: str, aio_session: AioSession) -> AsyncIterator[MotoClient]:
    """`await moto("ecs")`: a client straight to moto, for arranging and reading back state."""
    direct = AwsSettings(endpoint_url=moto_url, max_attempts=1)
    async with AwsClients(direct, config=TEST_CONFIG, session=aio_session) as opened:
        yield opened.client


@pytest.fixture
def clock() -> FakeClock:
    # Real time at the start: moto stamps resources with the wall clock.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def ledger() -> InMemoryBlockLedger:
    return InMemoryBlockLedger()


@pytest.fixture
def deps(settings: Settings, clock: FakeClock, clients: AwsClients, ledger: InMemoryBlockLedger) -> ActionDeps:
    return ActionDeps(settings=settings, clock=clock, extras={AWS_EXTRA: clients, LEDGER_EXTRA: ledger})


@pytest.fixture
def ctx_for(deps: ActionDeps, clock: FakeClock) -> CtxFactory:
    """`ctx_for(action, params, dry_run=False, execution=None)`: the context of one request."""

    def build(action: AnyAction, params: Mapping[str, Any], *, dry_run: bool = False,
              execution: Execution | None = None) -> ActionContext:
        request = make_request(action, params, created_at=clock.now() - timedelta(seconds=5))
        return make_ctx(deps, request, dry_run=dry_run, execution=execution)

    return build


class Notes(TimelineWriter):
    """The incident timeline as a list (what the action noted, in order)."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str, dict[str, Any]]] = []

    async def note(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        self.notes.append((kind, message, dict(data or {})))


class ContextFactory(Protocol):
    def __call__(self, targets: dict[str, Any], dry_run: bool = False) -> ActionContext: ...


@pytest.fixture
async def action_context() -> AsyncIterator[ContextFactory]:
    """Builds an ActionContext on the given `targets:` settings; closes their connections after."""
    opened: list[TargetConnections] = []

    def make(targets: dict[str, Any], dry_run: bool = False) -> ActionContext:
        settings = Settings.model_validate({"targets": targets})
        connections = TargetConnections(settings.targets, environ={})
        opened.append(connections)
        deps = ActionDeps(settings, SystemClock(), extras={TARGETS_EXTRA: connections})
        return ActionContext(builders.request(), deps, Notes(), structlog.get_logger(), dry_run)

    yield make
    for connections in opened:
        await connections.close()


@pytest.fixture
def aws_daemon(start_daemon: DaemonFactory, proxy: FaultProxy) -> DaemonFactory:
    """`await aws_daemon(POLICIES, mode="enforce", **settings)`: the in-process daemon (shipped
    registry, real SQLite, this test's fake clock) whose AWS clients call moto through the proxy.

    Its own timer loop only wakes once a fake day has passed, so a test fires due timers itself
    (`daemon.engine.timers.fire_due()`) at exactly the moments it chooses.
    """

    async def start(policies: str, mode: str = "enforce", **overrides: Any) -> Daemon:
        overrides.setdefault("aws", {"endpoint_url": proxy.url, "max_attempts": 2})
        overrides.setdefault("engine", {"timer_interval": "1d"})
        daemon: Daemon = await start_daemon(policies, mode=mode, **overrides)
        return daemon

    return start


async def post_alert(daemon: Daemon, name: str, labels: Mapping[str, str], *, fingerprint: str,
                     starts_at: datetime, group: str = "") -> None:
    """Deliver one firing alert through the Alertmanager webhook and wait until it is processed."""
    body = webhook_body(name, labels, fingerprint=fingerprint, starts_at=starts_at, group=group)
    answer = await daemon.client.post("/webhooks/alertmanager", data=body,
                                      headers={"Authorization": "Bearer am-secret"})
    assert answer.status == 200, await answer.text()
    await daemon.engine.drain()
