"""Several daemon processes on one PostgreSQL and one Redis: never acting twice, never losing one.

- Three replicas receive the same deliveries at once (Alertmanager posts every group to each of
  them; SNS delivers every message to each of them): every occurrence is executed exactly once,
  counted at the action's target (a webhook receiver), no alert is lost and no lease is left held.
- A replica killed with SIGKILL during an action leaves an execution that the next start marks
  `unknown` and escalates; it is never re-run on its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from remediator.clock import SystemClock
from remediator.model import Outcome
from remediator.settings import CoordinationSettings, StoreSettings
from remediator.stores.base import RequestState
from remediator.stores.postgres.store import PostgresStore
from remediator.stores.redis import RedisCoordination
from tests.conftest import corpus_file
from tests.sources.sns_testkit import TOPIC, local_pki, pem
from tests.support.daemons import DaemonProcess
from tests.support.harness import AM_HEADERS, Receiver, am_alert, am_body, eventually, notify_policy, write_policies
from tests.support.sns import TEXT_PLAIN, CertMirror, signed

pytestmark = pytest.mark.integration
AM_PATH = "/webhooks/alertmanager"
# An exclusive action on one target for some occurrences: replicas contend for its lease. The
# database it sweeps does not exist, so it signals nothing on the shared test server.
SNS_POLICY = {
    "name": "notify-each-alarm", "severity": "P3",
    "match": {"source": "cloudwatch", "alertname": {"glob": "SnsOccurrence-*"}},
    "actions": [{"type": "notify.webhook", "params": {"to": "receiver", "text": "{alert.name}"},
                 "guardrails": {"cooldown": "0s"}}],
}
ALARM = json.loads(corpus_file("cloudwatch-alarm-message-log-metric-tokyo-2025.json").read_text())
SWEEP_POLICY = {
    "name": "idle-sweep", "severity": "P3", "match": {"alertname": "Occurrence", "labels": {"sweep": "yes"}},
    "actions": [{"type": "postgres.terminate_idle_connections", "guardrails": {"cooldown": "0s"},
                 "params": {"target": "estate", "database": "no_such_database", "idle_for": "1h"}}],
}


@dataclass
class Estate:
    """The shared servers, a receiver counting executions, and an inspector on the store."""

    folder: Path
    settings: dict[str, Any]
    receiver: Receiver
    store: PostgresStore
    coordination: RedisCoordination
    daemons: list[DaemonProcess]

    async def spawn(self, name: str) -> DaemonProcess:
        daemon = DaemonProcess(name, self.settings, self.folder)
        self.daemons.append(daemon)
        await daemon.start()
        return daemon


@pytest.fixture
async def estate(
    tmp_path: Path, pg_dsn: str, pg_schema: str, redis_url: str, redis_prefix: str
) -> AsyncIterator[Estate]:
    # Some actions outlast their alert's processing claim (2 s), so another replica takes the alert
    # over from the backlog while the first still runs it: only the request claim stops a second run.
    receiver = Receiver(slow=("-00", 3.0))
    settings: dict[str, Any] = {
        "mode": "enforce",
        "policies_dir": str(write_policies(tmp_path / "policies", [notify_policy(), SNS_POLICY, SWEEP_POLICY])),
        "store": {"url": pg_dsn, "schema_name": pg_schema, "pool_min": 1, "pool_max": 5},
        "coordination": {"url": redis_url, "key_prefix": redis_prefix},
        "engine": {"workers": 8, "alert_lease": "2s", "reconcile_interval": "1s", "retry_attempts": 1},
        "alertmanager": {"bearer_tokens": ["am-secret"]},
        "notify": {"receiver": {"url": await receiver.start(), "timeout": "60s"}},
        "targets": {"postgres": {"estate": {"dsn": pg_dsn}}},
        "log": {"level": "warning"},
    }
    # Signed SNS messages: the local CA is the only trusted issuer; certificates come from a mirror.
    mirror = CertMirror()
    mirror_app = web.Application()
    mirror_app.router.add_get("/{tail:.*}", mirror.handle)
    mirror_server = TestServer(mirror_app, host="127.0.0.1")
    await mirror_server.start_server()
    (tmp_path / "local-ca.pem").write_bytes(pem(local_pki().ca))
    settings["sns"] = {"topics": [TOPIC], "ca_files": [str(tmp_path / "local-ca.pem")],
                       "mirror_url": str(mirror_server.make_url("")).rstrip("/")}
    store = PostgresStore(StoreSettings(url=pg_dsn, schema_name=pg_schema, pool_min=1, pool_max=2),
                          holder="inspector")
    coordination = RedisCoordination(CoordinationSettings(url=redis_url, key_prefix=redis_prefix))
    await store.open()
    await coordination.open()
    estate = Estate(tmp_path, settings, receiver, store, coordination, [])
    try:
        yield estate
    finally:
        receiver.gate.set()
        await asyncio.gather(*(d.stop(10) for d in estate.daemons))
        await receiver.close()
        await mirror_server.close()
        await coordination.close()
        await store.close()


async def _post(http: aiohttp.ClientSession, daemon: DaemonProcess, body: bytes) -> dict[str, int]:
    async with http.post(daemon.url + AM_PATH, data=body, headers=AM_HEADERS) as response:
        assert response.status == 200, await response.text()
        result: dict[str, int] = await response.json()
        return result


async def _post_sns(http: aiohttp.ClientSession, daemon: DaemonProcess, body: bytes) -> dict[str, int]:
    async with http.post(daemon.url + "/webhooks/sns", data=body, headers=TEXT_PLAIN) as response:
        assert response.status == 200, await response.text()
        result: dict[str, int] = await response.json()
        return result


def sns_alarm(number: int) -> bytes:
    """A CloudWatch alarm of its own (name, ARN, state change) in a message signed just now."""
    name = f"SnsOccurrence-{number:02d}"
    alarm = {**ALARM, "AlarmName": name, "AlarmArn": ALARM["AlarmArn"].replace("ErrorAlarm", name),
             "StateChangeTime": f"2026-03-01T12:{number:02d}:00.000+0000"}
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return signed(Message=json.dumps(alarm), MessageId=str(uuid.uuid4()), Timestamp=stamp)


async def _metric(http: aiohttp.ClientSession, daemon: DaemonProcess, name: str) -> float:
    async with http.get(daemon.admin_url + "/metrics") as response:
        text = await response.text()
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_three_replicas_execute_each_occurrence_exactly_once(estate: Estate) -> None:
    replicas = await asyncio.gather(*(estate.spawn(f"replica-{i}") for i in range(3)))
    groups = [[am_alert("Occurrence", f"am-{g:02d}-{i:02d}", labels={"sweep": "yes" if i == 5 else "no"})
               for i in range(10)] for g in range(15)]
    bodies = [am_body(f"group-{g}", alerts) for g, alerts in enumerate(groups)]
    messages = [sns_alarm(n) for n in range(50)]
    occurrences = {a["fingerprint"] for alerts in groups for a in alerts} | \
        {f"SnsOccurrence-{n:02d}" for n in range(50)}
    async with aiohttp.ClientSession() as http:
        # Every group reaches every replica at the same moment (an Alertmanager per replica, say),
        # and SNS delivers every message to each replica's subscription at once.
        answers = await asyncio.gather(*(_post(http, d, body) for body in bodies for d in replicas),
                                       *(_post_sns(http, d, message) for message in messages for d in replicas))
        accepted = sum(a["accepted"] for a in answers)
        duplicate_deliveries = sum(a["duplicates"] for a in answers)

        async def settled() -> bool:
            return await estate.store.count_unprocessed() == 0 and \
                len(await estate.store.list_audit(limit=1000)) >= len(occurrences) + len(groups)

        await eventually(settled, timeout=60, interval=0.1)
        await asyncio.sleep(0.5)  # anything acting twice would show up now
        duplicate_requests = sum([await _metric(http, d, 'remediator_duplicates_total{kind="request"}')
                                  for d in replicas])

    assert (accepted, duplicate_deliveries) == (len(occurrences), 2 * len(occurrences))
    assert duplicate_requests >= 1  # the takeovers happened, and were refused at the claim
    assert dict(estate.receiver.received) == dict.fromkeys(occurrences, 1)
    audit = await estate.store.list_audit(limit=1000)
    notified = [a for a in audit if a.action == "notify.webhook"]
    swept = [a for a in audit if a.action == "postgres.terminate_idle_connections"]
    assert len(notified) == len(occurrences) and {a.outcome for a in notified} == {Outcome.SUCCEEDED}
    # One record per sweep request; overlapping sweeps of the one target were refused, never run together.
    assert len({a.request_id for a in swept}) == len(swept) == len(groups)
    assert {(a.outcome, a.decision_reason.value) for a in swept} <= {
        (Outcome.SUCCEEDED, "allowed"), (Outcome.NOT_RUN, "target_busy")}
    assert await estate.coordination.held_leases(SystemClock().now()) == []
    busy = sum(a.outcome is Outcome.NOT_RUN for a in swept)
    deliveries = 3 * (sum(len(alerts) for alerts in groups) + len(messages))
    print(f"\nthree replicas: occurrences={len(occurrences)} deliveries={deliveries} "
          f"executions={sum(estate.receiver.received.values())} duplicate deliveries suppressed="
          f"{duplicate_deliveries} duplicate requests suppressed={duplicate_requests:.0f}; "
          f"exclusive sweeps: {len(swept) - busy} ran, {busy} refused as target_busy, leases left held: 0")
    assert [await d.stop() for d in replicas] == [0, 0, 0]


async def test_a_replica_killed_during_an_action_leaves_an_unknown_execution_never_rerun(estate: Estate) -> None:
    doomed = await estate.spawn("doomed")
    estate.receiver.slow_suffix = ""
    estate.receiver.gate.clear()  # the notification hangs: the action is running when the kill comes
    async with aiohttp.ClientSession() as http:
        await _post(http, doomed, am_body("group-k", [am_alert("Occurrence", "killed-mid-action")]))
    await eventually(estate.receiver.entered.is_set, timeout=20)
    doomed.kill()
    assert await estate.store.list_audit() == []  # killed before anything was recorded

    successor = await estate.spawn("successor")

    async def unknown() -> list[Any]:
        return [a for a in await estate.store.list_audit() if a.outcome is Outcome.UNKNOWN]

    [record] = await eventually(unknown, timeout=20)
    stored = await estate.store.get_request(record.request_id)
    assert stored is not None and stored.state is RequestState.UNKNOWN
    timeline = await estate.store.timeline(record.incident_id)
    assert any(e.kind == "escalated" and "will not be re-run" in e.message for e in timeline)
    # The alert goes through the pipeline again (its claim expired), and the action is not re-run.
    await eventually(lambda: _all_processed(estate), timeout=20)
    estate.receiver.gate.set()
    await asyncio.sleep(0.5)
    assert dict(estate.receiver.received) == {"killed-mid-action": 1}
    assert await successor.stop() == 0


async def _all_processed(estate: Estate) -> bool:
    return await estate.store.count_unprocessed() == 0
