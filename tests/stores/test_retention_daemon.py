"""Retention inside the daemon: its passes run on their own, and /metrics shows the store's size and age."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.conftest import corpus_file
from tests.support.daemon import Daemon, DaemonFactory

BEARER = {"Authorization": "Bearer am-secret"}
FIRING = corpus_file("am-v0.25-firing-2-alerts.json").read_bytes()
RESOLVED = corpus_file("am-v0.25-resolved-all.json").read_bytes()


async def _wait_for_a_pass(daemon: Daemon) -> None:
    """Until a purge pass has finished after the clock moved (its last success is stamped `now`)."""
    done = daemon.clock.now().timestamp()
    for _ in range(600):  # bounded (30 s): a pass every 50 ms
        if daemon.metric("remediator_retention_last_success_timestamp_seconds") == done:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("no purge pass finished")


async def test_the_daemon_purges_expired_alerts_and_keeps_the_incident_and_its_timeline(
        start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon(retention={"interval": "50ms", "pause": "0s"})
    for payload in (FIRING, RESOLVED):
        assert (await daemon.client.post("/webhooks/alertmanager", data=payload, headers=BEARER)).status == 200
        await daemon.engine.drain()
    (incident,) = await daemon.deps.store.list_incidents()
    timeline = await daemon.deps.store.timeline(incident.id)
    assert daemon.count("alerts") == 4

    daemon.clock.advance(timedelta(days=31))  # the alerts' 30 days are over; the incident's 400 are not
    await _wait_for_a_pass(daemon)

    assert daemon.count("alerts") == 0 and daemon.count("alert_keys") == 0
    later = await daemon.deps.store.timeline(incident.id)  # the clock's jump may add events (a declaration)
    assert later[:len(timeline)] == timeline  # nothing the timeline showed is gone with the alerts
    response = await daemon.admin.get("/metrics")
    text = await response.text()
    assert 'remediator_store_rows{table="alerts"} 0.0' in text
    assert 'remediator_store_rows{table="incidents"} 1.0' in text
    assert daemon.metric("remediator_retention_deleted_total", kind="alerts") == 4
    assert daemon.metric("remediator_store_size_bytes") > 0
    age = daemon.metric("remediator_store_oldest_row_age_seconds", kind="incidents")
    assert timedelta(days=30) < timedelta(seconds=age) < timedelta(days=32)


async def test_a_daemon_with_retention_off_deletes_nothing(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon(retention={"enabled": False, "interval": "50ms"})
    for payload in (FIRING, RESOLVED):
        await daemon.client.post("/webhooks/alertmanager", data=payload, headers=BEARER)
        await daemon.engine.drain()
    daemon.clock.advance(timedelta(days=3650))
    await asyncio.sleep(0.3)  # six intervals: a purge, had one been started, would have run
    assert daemon.count("alerts") == 4
    await daemon.admin.get("/metrics")
    assert daemon.metric("remediator_retention_last_success_timestamp_seconds") == 0
