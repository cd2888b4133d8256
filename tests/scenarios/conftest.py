"""The runbook's scenarios end to end: the shipped policy file in a running daemon (enforce mode),
its fixture payload posted to the webhook, AWS on moto, real PostgreSQL and Redis where a step
touches them, notifications caught by a real HTTP sink, approvals given through the API.

One daemon per test (it starts in well under a second); moto is reset after each test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from remediator.clock import FakeClock
from remediator.model import AuditRecord, TimelineEvent
from remediator.settings import token_digest
from tests.actions.conftest import (  # noqa: F401  (fixtures: moto behind the fault proxy, real time)
    aio_session,
    aws_env,
    clock,
    moto,
    moto_reset,
    moto_url,
    proxy,
)
from tests.conftest import ROOT
from tests.sources.sns_testkit import TOPIC, local_pki, pem
from tests.support.daemon import Daemon, DaemonFactory
from tests.support.engine import WebhookSink
from tests.support.faultproxy import FaultProxy
from tests.support.sns import CertMirror, signed

POLICIES = ROOT / "policies"
PAYLOADS = POLICIES / "fixtures" / "payloads"
APPROVER = ("alice", "alice-scenario-token")
# Where each role's notifications go: one path of the sink per notify target.
ROLES = ("oncall", "dba", "infra_lead", "dev_lead", "security")
NODE_TYPES = ["cache.r6g.large", "cache.r6g.xlarge", "cache.r6g.2xlarge"]


@dataclass
class Scenario:
    """A daemon running one shipped policy file, and what a person would look at."""

    daemon: Daemon
    sink: WebhookSink
    clock: FakeClock

    async def alertmanager(self, payload: str, **labels: str) -> None:
        """Alertmanager delivers the fixture payload (started 2 minutes ago; `labels` added to or
        replacing its alerts' labels); returns once the daemon has processed it."""
        body = orjson.loads((PAYLOADS / payload).read_bytes())
        started = (self.clock.now() - timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
        for alert in body["alerts"]:
            alert["startsAt"] = started
            alert["labels"].update(labels)
        answer = await self.daemon.client.post("/webhooks/alertmanager", data=orjson.dumps(body),
                                               headers={"Authorization": "Bearer am-secret"})
        assert answer.status == 200, await answer.text()
        await self.daemon.engine.drain()

    async def sns(self, payload: str, **message: Any) -> None:
        """SNS delivers the fixture payload's message (signed for the test topic, sent now); `message`
        overrides fields of the message inside it."""
        fixture = orjson.loads((PAYLOADS / payload).read_bytes())
        inner = orjson.loads(fixture["Message"])
        inner.update(message)
        sent = (self.clock.now() - timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
        body = signed(TopicArn=TOPIC, MessageId=fixture["MessageId"], Message=orjson.dumps(inner).decode(),
                      Timestamp=sent)
        answer = await self.daemon.client.post("/webhooks/sns", data=body,
                                               headers={"Content-Type": "text/plain; charset=UTF-8"})
        assert answer.status == 200, await answer.text()
        await self.daemon.engine.drain()

    async def audit(self) -> list[AuditRecord]:
        return list(await self.daemon.deps.store.list_audit())

    async def outcomes(self) -> list[tuple[str, str, str]]:
        """(action, verdict, outcome) of every request, in the order they were recorded."""
        return [(r.action, r.verdict.value, r.outcome.value) for r in await self.audit()]

    async def timeline(self, kind: str | None = None) -> list[TimelineEvent]:
        """Events of every incident (one alert may open its own), oldest incident first."""
        store = self.daemon.deps.store
        incidents = sorted(await store.list_incidents(), key=lambda i: i.id)
        events = [e for i in incidents for e in await store.timeline(i.id)]
        return [e for e in events if kind is None or e.kind == kind]

    async def approve_all(self) -> list[dict[str, Any]]:
        """Approve every pending approval through the API, as the approver would; their answers."""
        auth = {"Authorization": f"Bearer {APPROVER[1]}"}
        listed = await self.daemon.admin.get("/api/v1/approvals", headers=auth)
        assert listed.status == 200, await listed.text()
        answers = []
        for approval in (await listed.json())["approvals"]:
            answer = await self.daemon.admin.post(
                f"/api/v1/approvals/{approval['id']}/approve", headers=auth,
                json={"plan_hash": approval["plan"]["hash"], "reason": "runbook step confirmed on the phone"})
            assert answer.status == 200, await answer.text()
            answers.append(await answer.json())
        await self.daemon.engine.drain()
        return answers

    async def pending(self) -> list[dict[str, Any]]:
        auth = {"Authorization": f"Bearer {APPROVER[1]}"}
        listed = await self.daemon.admin.get("/api/v1/approvals", headers=auth)
        return list((await listed.json())["approvals"])

    async def tick(self, delta: timedelta) -> None:
        """Move the clock and fire the timers due (verification, the next step)."""
        self.clock.advance(delta)
        await self.daemon.engine.timers.fire_due()
        await self.daemon.engine.drain()

    def told(self, role: str) -> list[str]:
        """The titles of what `role` was sent."""
        return [str(body.get("title", body)) for body in self.sink.to(role)]


ScenarioFactory = Callable[..., Any]


@pytest.fixture
def scenario(start_daemon: DaemonFactory, proxy: FaultProxy, sink: WebhookSink, clock: FakeClock,  # noqa: F811
             cert_mirror: CertMirror, tmp_path: Path) -> ScenarioFactory:
    """`await scenario("database.yaml", targets={...})`: the daemon running that policy file;
    `edits={shipped: changed}` replaces text of it where real time cannot be faked."""
    ca = tmp_path / "local-ca.pem"

    async def start(policy_file: str, edits: dict[str, str] | None = None, **overrides: Any) -> Scenario:
        ca.write_bytes(pem(local_pki().ca))
        settings: dict[str, Any] = {
            "mode": "enforce",
            "aws": {"endpoint_url": proxy.url, "max_attempts": 2, "elasticache": {"node_types": NODE_TYPES}},
            "engine": {"timer_interval": "1d"},
            "notify": {role: {"url": f"{sink.url}/{role}"} for role in ROLES},
            "guardrails": {"default_cooldown": "0s"},
            "api": {"tokens": [{"name": APPROVER[0], "sha256": token_digest(APPROVER[1]), "roles": ["approver"]}]},
            "approvals": {"notify": "oncall"},
            "incidents": {"notify": "oncall"},
            "sns": {"topics": [TOPIC], "ca_files": [str(ca)], "mirror_url": cert_mirror.url},
            "public_url": "http://remediator.test",
        }
        settings.update(overrides)
        text = (POLICIES / policy_file).read_text()
        for shipped, changed in (edits or {}).items():  # only where a test cannot wait real minutes
            assert shipped in text, shipped
            text = text.replace(shipped, changed)
        daemon: Daemon = await start_daemon(text, **settings)
        return Scenario(daemon, sink, clock)

    return start


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)
