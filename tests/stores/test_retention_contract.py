"""Store contract: retention deletes what has expired and nothing anything open still needs.

Written against the store protocols, for every backend; the purge runs as the daemon runs it
(`Purger`), on a fake clock set 500 days after the records were made.
"""

from __future__ import annotations

from datetime import timedelta

from remediator.clock import FakeClock
from remediator.model import Alert, Incident, Severity, TimelineEvent
from remediator.settings import RetentionSettings
from remediator.stores.base import Store, Timer
from remediator.stores.purge import Purger
from remediator.stores.retention import Kind
from tests.conftest import T0
from tests.support import builders
from tests.support.builders import alert
from tests.support.store_calls import claim_request, correlate, finish_request

NOW = T0 + timedelta(days=500)
KEEP = RetentionSettings(alerts=timedelta(days=30), incidents=timedelta(days=400), audit=timedelta(days=400),
                         timers=timedelta(days=30), pause=timedelta(0), batch_size=2)


async def _incident(store: Store, group: str, at: timedelta, *, resolve: bool) -> tuple[Incident, list[Alert]]:
    firing = alert(group=group, fingerprint=f"fp-{group}", starts_at=T0 + at)
    recorded = [firing]
    await store.record_alerts([firing], T0 + at)
    correlation = await correlate(store, firing, Severity.P2, T0 + at)
    assert correlation.incident is not None
    if resolve:
        resolved = alert(group=group, fingerprint=f"fp-{group}", starts_at=T0 + at, status="resolved")
        await store.record_alerts([resolved], T0 + at)
        await correlate(store, resolved, Severity.P2, T0 + at + timedelta(minutes=20))
        recorded.append(resolved)
    await store.mark_processed([a.id for a in recorded], T0 + at + timedelta(minutes=21))
    return correlation.incident, recorded


async def _purge(store: Store, settings: RetentionSettings = KEEP) -> dict[Kind, int]:
    reports = await Purger(store, settings, FakeClock(NOW)).run()
    return {r.kind: r.deleted for r in reports}


async def test_expired_alerts_go_with_their_keys_and_what_open_work_needs_stays(store: Store) -> None:
    _, gone_alerts = await _incident(store, "gone", timedelta(0), resolve=True)
    still_open, open_alerts = await _incident(store, "open", timedelta(0), resolve=False)
    unprocessed = alert(fingerprint="fp-unprocessed")
    await store.record_alerts([unprocessed], T0)
    running = alert(fingerprint="fp-running")
    await store.record_alerts([running], T0)
    await store.mark_processed([running.id], T0)
    assert await claim_request(store, builders.request("req-open", alert_id=running.id), T0)  # never finished
    held = alert(fingerprint="fp-held")
    await store.record_alerts([held], T0)
    await store.mark_processed([held.id], T0)
    await store.create_approval(builders.approval(alert_id=held.id, incident_id=still_open.id))
    recent = alert(fingerprint="fp-recent", starts_at=NOW - timedelta(days=2))
    await store.record_alerts([recent], NOW)
    await store.mark_processed([recent.id], NOW)

    deleted = await _purge(store)

    assert deleted[Kind.ALERTS] == len(gone_alerts)
    for a in gone_alerts:
        assert await store.get_alert(a.id) is None
    for a in (*open_alerts, unprocessed, running, held, recent):
        assert await store.get_alert(a.id) is not None, a.fingerprint
    # The kept alerts are still recognised when delivered again; the purged ones' keys are gone.
    assert await store.record_alerts([open_alerts[0], recent], NOW) == [False, False]
    stats = await store.store_stats()
    assert stats.rows["alerts"] == 5 and stats.rows["alert_keys"] == 5
    assert await _purge(store) == dict.fromkeys(Kind, 0)  # a second pass finds nothing more


async def test_a_kept_incident_keeps_its_whole_timeline_when_its_alerts_go(store: Store) -> None:
    old, _ = await _incident(store, "old", timedelta(0), resolve=True)
    kept, kept_alerts = await _incident(store, "kept", timedelta(days=200), resolve=True)
    await store.add_events([TimelineEvent(kept.id, T0 + timedelta(days=200), "note", "checked by hand",
                                          alert_id=kept_alerts[0].id)])
    timeline = await store.timeline(kept.id)
    assert len(timeline) >= 3
    still_open, _ = await _incident(store, "open", timedelta(0), resolve=False)
    pending, _ = await _incident(store, "pending", timedelta(0), resolve=True)
    await store.create_approval(builders.approval(alert_id="a-pending", incident_id=pending.id))

    deleted = await _purge(store)

    assert deleted[Kind.INCIDENTS] == 1
    assert await store.get_incident(old.id) is None
    assert await store.timeline(old.id) == []
    assert [await store.get_alert(a.id) for a in kept_alerts] == [None, None]  # 300 days old: gone
    assert await store.timeline(kept.id) == timeline  # ... and what the timeline shows is intact
    for incident in (kept, still_open, pending):
        assert await store.get_incident(incident.id) is not None, incident.id


async def test_finished_requests_go_unfinished_ones_stay_and_audit_can_be_kept_longest(store: Store) -> None:
    done = builders.request("req-done", alert_id="a-1")
    await claim_request(store, done, T0)
    await finish_request(store, builders.audit(done, at=T0))
    unfinished = builders.request("req-claimed", alert_id="a-2")
    await claim_request(store, unfinished, T0)

    default = RetentionSettings(pause=timedelta(0))  # audit: 7 years by default
    assert (await _purge(store, default))[Kind.AUDIT] == 0
    assert await store.get_audit("req-done") is not None

    assert (await _purge(store))[Kind.AUDIT] == 1
    assert await store.get_audit("req-done") is None and await store.get_request("req-done") is None
    assert await store.get_request("req-claimed") is not None


async def test_fired_and_cancelled_timers_go_pending_ones_stay(store: Store) -> None:
    for name in ("fired", "cancelled-x", "pending"):
        await store.schedule_timer(Timer(name, "test", T0, {"name": name}))
    (fired, *_) = [t for t in await store.claim_due_timers(T0, T0 + timedelta(minutes=1), 1)]
    await store.complete_timer(fired.id, T0)
    await store.cancel_timers("cancelled-")

    assert (await _purge(store))[Kind.TIMERS] == 2
    due = await store.claim_due_timers(NOW, NOW + timedelta(minutes=1), 10)
    assert [t.id for t in due] == ["pending"]


async def test_stats_count_rows_and_tell_the_oldest_of_each_kind(store: Store) -> None:
    await _incident(store, "a", timedelta(0), resolve=False)
    stats = await store.store_stats()
    assert stats.size_bytes > 0
    assert stats.rows["alerts"] == 1 and stats.rows["incidents"] == 1 and stats.rows["timeline"] >= 1
    assert stats.oldest[Kind.ALERTS] == T0 + timedelta(seconds=1)
    assert stats.oldest[Kind.AUDIT] is None and stats.oldest_unfinished is None
