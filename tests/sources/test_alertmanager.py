"""Alertmanager webhook payloads → alerts, over every captured payload in the corpus."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from remediator.errors import BadRequest
from remediator.model import AlertStatus
from remediator.sources.alertmanager import label_fingerprint, parse_alertmanager
from tests.conftest import CORPUS, T0, corpus_file

PG_GROUP = 'alertmanager:{}:{alertname="PostgresTooManyConnections", cluster="prod-eu"}'
STARTS = datetime(2026, 11, 26, 11, 54, 8, 551990, tzinfo=UTC)

# file → [(status, alertname, instance, fingerprint, ends_at)], group key, starts_at of every alert
EXPECTED: dict[str, tuple[list[tuple[str, str, str, str, datetime | None]], str, datetime]] = {
    "am-v0.25-firing-2-alerts.json": ([
        ("firing", "PostgresTooManyConnections", "db-1:9187", "c9f75c09d90195e5", None),
        ("firing", "PostgresTooManyConnections", "db-2:9187", "025cc091d9936184", None),
    ], PG_GROUP, STARTS),
    "am-v0.25-firing-mixed-one-resolved.json": ([
        ("firing", "PostgresTooManyConnections", "db-1:9187", "c9f75c09d90195e5", None),
        ("resolved", "PostgresTooManyConnections", "db-2:9187", "025cc091d9936184",
         datetime(2026, 11, 26, 12, 1, 29, 743512, tzinfo=UTC)),
    ], PG_GROUP, STARTS),
    "am-v0.25-resolved-all.json": ([
        ("resolved", "PostgresTooManyConnections", "db-1:9187", "c9f75c09d90195e5",
         datetime(2026, 11, 26, 12, 1, 41, 863996, tzinfo=UTC)),
        ("resolved", "PostgresTooManyConnections", "db-2:9187", "025cc091d9936184",
         datetime(2026, 11, 26, 12, 1, 41, 863996, tzinfo=UTC)),
    ], PG_GROUP, STARTS),
    "am-v0.25-group-by-all-bearer.json": ([
        ("firing", "BearerCheck", "y:1", "3cc1ee5f50962a0d", None),
    ], 'alertmanager:{}/{recv="bearer"}:{alertname="BearerCheck", cluster="prod-eu", instance="y:1", '
       'job="postgres-exporter", recv="bearer", severity="critical"}', STARTS),
    "am-v0.25-truncated-max-alerts-2.json": ([
        ("firing", "DiskFull", "node-1:9100", "7c7575c230f858b1", None),
        ("firing", "DiskFull", "node-2:9100", "4532c90356a7f21e", None),
    ], 'alertmanager:{}/{recv="trunc"}:{alertname="DiskFull", cluster="prod-eu"}', STARTS),
    "am-v0.34-shape-mixed.derived.json": ([
        ("firing", "PostgresTooManyConnections", "db-1:9187", "c9f75c09d90195e5", None),
        ("resolved", "PostgresTooManyConnections", "db-2:9187", "025cc091d9936184",
         datetime(2026, 11, 26, 12, 1, 29, 743512, tzinfo=UTC)),
    ], PG_GROUP, STARTS),
    # No fingerprint in 2018: derived from the labels exactly as Alertmanager computes it.
    "am-v4-legacy-2018-no-fingerprint.json": ([
        ("firing", "Test", "localhost:9090", "4ca62d040e78b6d8", None),
    ], 'alertmanager:{}:{alertname="Test", job="prometheus24"}',
       datetime(2018, 8, 3, 7, 52, 26, 739266, tzinfo=UTC)),
}
NOT_PAYLOADS = {"am-v0.25-http-request-headers.json"}


def test_every_alertmanager_payload_in_the_corpus_is_in_the_table() -> None:
    found = {p.name for p in CORPUS.glob("am-*.json")} - NOT_PAYLOADS
    assert found == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_payload_parses_into_the_expected_alerts(name: str) -> None:
    rows, group, starts = EXPECTED[name]
    alerts = parse_alertmanager(corpus_file(name).read_bytes(), T0)
    got = [(a.status.value, a.name, a.labels["instance"], a.fingerprint, a.ends_at) for a in alerts]
    assert got == rows
    for a in alerts:
        assert a.source == "alertmanager" and a.group_key == group and a.starts_at == starts
        assert a.received_at == T0 and a.actionable
        assert a.dedup_keys == (f"alertmanager:{a.fingerprint}:{starts.isoformat(timespec='microseconds')}:"
                                f"{a.status.value}",)


def test_the_derived_fingerprint_equals_alertmanagers_own_for_every_captured_alert() -> None:
    for name in sorted(EXPECTED):
        for item in json.loads(corpus_file(name).read_text())["alerts"]:
            if "fingerprint" in item:
                assert label_fingerprint(item["labels"]) == item["fingerprint"], name


def test_unicode_and_go_escapes_survive() -> None:
    alert = parse_alertmanager(corpus_file("am-v0.25-firing-mixed-one-resolved.json").read_bytes(), T0)[0]
    assert alert.annotations["description"] == "Connections > 90% of max_connections for 5m — Überlast ⚠"
    assert alert.summary == "Too many connections on db-1:9187"


def test_firing_and_resolved_occurrences_share_the_fingerprint_but_not_the_dedup_key() -> None:
    firing = parse_alertmanager(corpus_file("am-v0.25-firing-2-alerts.json").read_bytes(), T0)
    resolved = parse_alertmanager(corpus_file("am-v0.25-resolved-all.json").read_bytes(), T0)
    assert [a.fingerprint for a in firing] == [a.fingerprint for a in resolved]
    assert not {k for a in firing for k in a.dedup_keys} & {k for a in resolved for k in a.dedup_keys}
    assert {a.id for a in firing}.isdisjoint({a.id for a in resolved})


def _payload(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = json.loads(corpus_file("am-v0.25-firing-2-alerts.json").read_text())
    base.update(changes)
    return base


def _alert_change(**changes: Any) -> dict[str, Any]:
    payload = _payload()
    payload["alerts"][1].update(changes)
    return payload


INVALID: list[tuple[str, bytes, str, str]] = [
    ("not json", b"{not json", "malformed_json", "not JSON"),
    ("empty body", b"", "malformed_json", "not JSON"),
    ("a list", b"[]", "invalid_payload", "must be a JSON object"),
    ("version 3", json.dumps(_payload(version="3")).encode(), "invalid_payload", "version"),
    ("version as number", json.dumps(_payload(version=4)).encode(), "invalid_payload", "version"),
    ("no alerts", json.dumps({"version": "4"}).encode(), "invalid_payload", "alerts: must be a list"),
    ("alerts not a list", json.dumps(_payload(alerts={})).encode(), "invalid_payload", "alerts: must be a list"),
    ("alert not an object", json.dumps(_payload(alerts=["x"])).encode(), "invalid_payload", "alerts[0]"),
    ("bad status", json.dumps(_alert_change(status="pending")).encode(), "invalid_payload", "alerts[1].status"),
    ("labels missing", json.dumps(_alert_change(labels=None)).encode(), "invalid_payload", "alerts[1].labels"),
    ("label not a string", json.dumps(_alert_change(labels={"alertname": "X", "n": 1})).encode(),
     "invalid_payload", "alerts[1].labels.n"),
    ("no alertname", json.dumps(_alert_change(labels={"job": "x"})).encode(), "invalid_payload",
     "alerts[1].labels.alertname"),
    ("bad startsAt", json.dumps(_alert_change(startsAt="yesterday")).encode(), "invalid_payload",
     "alerts[1].startsAt"),
    ("naive startsAt", json.dumps(_alert_change(startsAt="2026-01-01T00:00:00")).encode(), "invalid_payload",
     "time zone"),
    ("bad endsAt", json.dumps(_alert_change(endsAt=5)).encode(), "invalid_payload", "alerts[1].endsAt"),
    ("empty fingerprint", json.dumps(_alert_change(fingerprint="")).encode(), "invalid_payload",
     "alerts[1].fingerprint"),
    ("groupKey not a string", json.dumps(_payload(groupKey=[1])).encode(), "invalid_payload", "groupKey"),
]


@pytest.mark.parametrize(("case", "body", "error", "mentions"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_payloads_are_refused_with_the_field_named(case: str, body: bytes, error: str, mentions: str) -> None:
    with pytest.raises(BadRequest) as raised:
        parse_alertmanager(body, T0)
    assert raised.value.status == 400 and raised.value.error == error
    assert mentions in raised.value.detail


def test_new_fields_of_later_versions_are_ignored() -> None:
    payload = _payload(notification_reason="first notification", routeLabels={"team": "db"}, something_new=[1])
    assert len(parse_alertmanager(json.dumps(payload).encode(), T0)) == 2
    assert parse_alertmanager(json.dumps(_payload())[:-1].encode() + b"}", T0)[0].status is AlertStatus.FIRING


def test_a_long_group_key_is_replaced_by_its_digest_so_parsed_alerts_stay_small() -> None:
    """Each alert carries the group's key: a huge groupKey beside thousands of alerts must not
    turn a 1 MiB body into gigabytes to hand over and store."""
    alerts = [{"status": "firing", "labels": {"alertname": "A"}, "startsAt": "2026-01-05T09:00:00Z",
               "fingerprint": f"{n:08x}"} for n in range(4000)]
    long_key, other_key = "k" * 500_000, "k" * 499_999 + "j"
    first = parse_alertmanager(json.dumps(_payload(groupKey=long_key, alerts=alerts)).encode(), T0)
    second = parse_alertmanager(json.dumps(_payload(groupKey=other_key, alerts=alerts[:1])).encode(), T0)
    digest = hashlib.sha256(f"alertmanager:{long_key}".encode()).hexdigest()
    assert {a.group_key for a in first} == {f"alertmanager:sha256:{digest}"}
    assert second[0].group_key != first[0].group_key  # still one incident per group
    short = parse_alertmanager(json.dumps(_payload(groupKey="{}:{alertname=\"A\"}")).encode(), T0)
    assert short[0].group_key == 'alertmanager:{}:{alertname="A"}'  # real group keys are kept as they are
