"""Alertmanager intake over real HTTP: what is answered, what is recorded, what is counted."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator

from tests.conftest import corpus_file
from tests.support.daemon import Daemon, DaemonFactory

BEARER = {"Authorization": "Bearer am-secret"}
PAYLOAD = corpus_file("am-v0.25-firing-2-alerts.json").read_bytes()


async def test_a_delivery_is_recorded_then_acknowledged_and_processed(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    response = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=BEARER)
    assert response.status == 200
    assert await response.json() == {"accepted": 2, "duplicates": 0}
    assert daemon.count("alerts") == 2  # on disk before the 200 went out
    await daemon.engine.drain()
    incidents = await daemon.deps.store.list_incidents()
    assert len(incidents) == 1 and incidents[0].alert_count == 2
    assert daemon.metric("remediator_alerts_received_total", source="alertmanager", result="accepted") == 2


async def test_a_redelivery_is_acknowledged_counted_and_not_processed_again(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    first = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=BEARER)
    await daemon.engine.drain()
    audit_before = daemon.count("audit")
    again = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=BEARER)
    await daemon.engine.drain()
    assert (first.status, again.status) == (200, 200)
    assert await again.json() == {"accepted": 0, "duplicates": 2}
    assert daemon.count("alerts") == 2 and daemon.count("audit") == audit_before
    assert daemon.metric("remediator_duplicates_total", kind="delivery") == 2


async def test_text_plain_content_type_is_fine(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    response = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD,
                                        headers={**BEARER, "Content-Type": "text/plain; charset=UTF-8"})
    assert response.status == 200


def _assert_nothing_recorded(daemon: Daemon) -> None:
    assert daemon.count("alerts") == 0 and daemon.count("alert_keys") == 0 and daemon.count("incidents") == 0


async def test_bad_credentials_are_refused_and_nothing_is_recorded(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    cases = [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic bm9wZTpub3Bl"},
             {"Authorization": "Basic !!!"}, {"Authorization": "Bearer"}]
    for headers in cases:
        response = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=headers)
        assert response.status == 401, headers
        body = await response.json()
        assert body["error"] == "unauthorized" and body["detail"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    _assert_nothing_recorded(daemon)
    assert daemon.metric("remediator_webhook_rejected_total", source="alertmanager", reason="unauthorized") == 5


async def test_basic_auth_as_alertmanager_sends_it(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon(alertmanager={"basic_auth": [{"username": "alertmanager", "password": "s3cr3t"}]})
    # The exact header a real Alertmanager 0.25 sent (corpus am-v0.25-http-request-headers.json).
    response = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD,
                                        headers={"Authorization": "Basic YWxlcnRtYW5hZ2VyOnMzY3IzdA=="})
    assert response.status == 200


async def test_without_configured_credentials_every_sender_is_refused(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon(alertmanager={"bearer_tokens": []})
    response = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD)
    assert response.status == 401
    assert "no credentials are configured" in (await response.json())["detail"]
    _assert_nothing_recorded(daemon)


async def test_anonymous_loopback_senders_only_when_explicitly_allowed(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon(alertmanager={"allow_anonymous_loopback": True})
    response = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD)
    assert response.status == 200


async def test_malformed_and_misshapen_bodies_get_400_naming_the_problem(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    cases = {b"{oops": "malformed_json", b"[]": "invalid_payload",
             b'{"version": "4", "alerts": [{"status": "firing"}]}': "invalid_payload"}
    for body, error in cases.items():
        response = await daemon.client.post("/webhooks/alertmanager", data=body, headers=BEARER)
        assert response.status == 400
        assert (await response.json())["error"] == error
    _assert_nothing_recorded(daemon)
    assert daemon.metric("remediator_webhook_rejected_total", source="alertmanager", reason="bad_request") == 3


async def test_a_body_over_the_cap_gets_413(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon(max_body_bytes=4096)
    big = PAYLOAD[:-2] + b', "padding": "' + b"x" * 5000 + b'"}'
    response = await daemon.client.post("/webhooks/alertmanager", data=big, headers=BEARER)
    assert response.status == 413 and (await response.json())["error"] == "too_large"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    chunked = await daemon.client.post("/webhooks/alertmanager", data=chunks(), headers=BEARER)
    assert chunked.status == 413
    _assert_nothing_recorded(daemon)
    assert daemon.metric("remediator_webhook_rejected_total", source="alertmanager", reason="too_large") == 2


async def test_when_the_store_cannot_write_the_answer_is_503_and_nothing_is_acked(
    start_daemon: DaemonFactory,
) -> None:
    daemon = await start_daemon(store={"sqlite_busy_timeout": "100ms"})
    # Another process holds the write lock (e.g. a backup tool): writes cannot get through.
    blocker = sqlite3.connect(daemon.db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        response = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=BEARER)
        assert response.status == 503
        assert (await response.json())["error"] == "store_unavailable"
        ready = await daemon.admin.get("/readyz")
        assert ready.status == 503
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    _assert_nothing_recorded(daemon)
    assert daemon.metric("remediator_alerts_received_total", source="alertmanager", result="store_unavailable") == 2
    retry = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=BEARER)
    assert retry.status == 200 and await retry.json() == {"accepted": 2, "duplicates": 0}
    await asyncio.wait_for(daemon.engine.drain(), 5)
