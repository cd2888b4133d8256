"""An engine on a real SQLite store with a fake clock, a restartable action and a webhook sink.

Tests deliver alerts, move the clock and fire due timers by hand, so every wait is exact. The
sink is a real HTTP server on 127.0.0.1: notifications travel the same path as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import Field

from remediator.actions.base import Action, ActionContext, ActionParams, ActionRegistry, PlannedCall
from remediator.actions.notify import NotifyWebhook
from remediator.clock import FakeClock
from remediator.daemon.app import build_deps
from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.model import Alert, Execution, FailureReason
from remediator.settings import Settings
from remediator.stores.sqlite.store import SqliteStore
from tests.conftest import T0
from tests.support.receiver import Receiver, running_receiver

CONTACT_TARGETS = {"team_lead": "team-lead", "head_of_department": "hod", "cto": "cto", "ceo": "ceo",
                   "external_support": "vendor", "executives": "execs"}


class RestartParams(ActionParams):
    service: str = Field(pattern=r"^[a-z][a-z0-9-]{0,40}$")


class RestartService(Action[RestartParams]):
    """Restart a service (a test action standing in for an AWS one; it records what it is asked).

    ```yaml
    type: test.restart
    params: {service: erp-api}
    ```
    """

    type_name = "test.restart"
    Params = RestartParams

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.precheck_says: str | None = None
        self.fails_with: str | None = None
        self.recovered: bool | None = None

    def target(self, params: RestartParams) -> str:
        return f"svc:{params.service}"

    async def precheck(self, params: RestartParams, ctx: ActionContext) -> str | None:
        return self.precheck_says

    async def plan_calls(self, params: RestartParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [PlannedCall("svc", "Restart", {"service": params.service})]

    async def run(self, params: RestartParams, ctx: ActionContext) -> Execution:
        if self.fails_with:
            return Execution.failed(FailureReason.ACCESS_DENIED, self.fails_with)
        self.runs.append(params.service)
        return Execution.succeeded(service=params.service)

    async def verify(self, params: RestartParams, ctx: ActionContext) -> bool | None:
        return self.recovered


@dataclass
class WebhookSink:
    """What was posted to http://127.0.0.1:<port>/<target> (a view of a `Receiver`)."""

    receiver: Receiver

    @property
    def url(self) -> str:
        return self.receiver.url.removesuffix("/hook")

    def to(self, target: str) -> list[dict[str, Any]]:
        return [body for path, body in zip(self.receiver.paths, self.receiver.received, strict=True)
                if path == f"/{target}"]


@dataclass
class Harness:
    deps: Deps
    engine: Engine
    clock: FakeClock
    action: RestartService
    sink: WebhookSink

    async def deliver(self, *alerts: Alert) -> None:
        """Record and process, as the webhook and a worker would."""
        await self.deps.store.record_alerts(list(alerts), self.clock.now())
        for alert in alerts:
            await self.engine.process([alert])

    async def tick(self, delta: timedelta) -> int:
        """Move the clock and fire what is due; how many timers fired."""
        self.clock.advance(delta)
        return await self.engine.timers.fire_due()

    async def kinds(self, incident_id: str) -> list[str]:
        return [e.kind for e in await self.deps.store.timeline(incident_id)]


HarnessFactory = Callable[..., Awaitable[Harness]]


def harness_settings(tmp_path: Path, sink_url: str, policies: str, **overrides: Any) -> Settings:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "test.yaml").write_text(policies)
    targets = ["oncall", "sec", "csirt", *CONTACT_TARGETS.values()]
    base: dict[str, Any] = {
        "mode": "enforce",
        "public_url": "https://remediator.hospital.example",
        "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
        "policies_dir": str(tmp_path / "policies"),
        "notify": {name: {"url": f"{sink_url}/{name}"} for name in targets},
        "guardrails": {"default_cooldown": "0s"},
        "approvals": {"notify": "oncall"},
        "incidents": {"contacts": CONTACT_TARGETS, "notify": "oncall"},
    }
    for key, value in overrides.items():
        base[key] = {**base[key], **value} if isinstance(base.get(key), dict) else value
    return Settings.model_validate(base)


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    async with running_receiver() as receiver:
        yield WebhookSink(receiver)


@pytest.fixture
async def make_harness(tmp_path: Path, sink: WebhookSink) -> AsyncIterator[HarnessFactory]:
    """`await make_harness(POLICIES, approvals={...})`; `holder=` and `clock=` make another process."""
    opened: list[Deps] = []

    async def make(policies: str, *, holder: str = "replica-a", clock: FakeClock | None = None,
                   action: RestartService | None = None, **overrides: Any) -> Harness:
        settings = harness_settings(tmp_path, sink.url, policies, **overrides)
        clock = clock or FakeClock(T0)
        action = action or RestartService()
        store = SqliteStore(settings.store.sqlite_path, holder=holder)
        deps = build_deps(settings, clock=clock, registry=ActionRegistry([NotifyWebhook(), action]), store=store)
        await deps.store.open()
        deps.actions.http = aiohttp.ClientSession()
        opened.append(deps)
        return Harness(deps, Engine(deps), clock, action, sink)

    yield make
    for deps in opened:
        if deps.actions.http is not None:
            await deps.actions.http.close()
        await deps.store.close()
