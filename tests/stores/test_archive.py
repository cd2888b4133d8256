"""The retention archive on moto (server mode, through aiobotocore): export first, SSE-KMS, then delete."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from botocore.config import Config

from remediator.aws.clients import AwsClients
from remediator.clock import FakeClock
from remediator.model import ApprovalStatus, Severity, TimelineEvent
from remediator.observability import Metrics
from remediator.settings import ArchiveSettings, AwsSettings, RetentionSettings
from remediator.stores.archive import S3Archive
from remediator.stores.base import Store
from remediator.stores.purge import Purger
from remediator.stores.retention import Kind
from tests.conftest import T0
from tests.support import builders
from tests.support.builders import alert
from tests.support.moto import TEST_ENV, moto_server, reset_moto
from tests.support.store_calls import claim_request, correlate, finish_request

NOW = T0 + timedelta(days=60)
BUCKET = "erp-remediator-archive"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
async def s3(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AwsClients]:
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    async with AwsClients(AwsSettings(endpoint_url=moto_url, max_attempts=1),
                          config=Config(s3={"addressing_style": "path"})) as clients:
        yield clients
    reset_moto(moto_url)


async def _kms_key(clients: AwsClients) -> str:
    kms = await clients.client("kms")
    created = await kms.create_key(Description="remediator archive")
    arn: str = created["KeyMetadata"]["Arn"]
    return arn


async def _expired_alerts(store: Store, days: int, per_day: int) -> list[str]:
    ids = []
    for day in range(days):
        batch = [alert(fingerprint=f"fp-{day}-{i}", starts_at=T0 + timedelta(days=day, hours=i))
                 for i in range(per_day)]
        await store.record_alerts(batch, T0)
        await store.mark_processed([a.id for a in batch], T0 + timedelta(days=day))
        ids += [a.id for a in batch]
    return ids


def _purger(store: Store, clients: AwsClients, key: str, metrics: Metrics, bucket: str = BUCKET) -> Purger:
    settings = RetentionSettings(pause=timedelta(0), batch_size=2,
                                 archive=ArchiveSettings(bucket=bucket, kms_key_id=key, kinds=["alerts"]))
    return Purger(store, settings, FakeClock(NOW), archive=S3Archive(settings.archive, clients), metrics=metrics)


async def test_each_day_is_one_encrypted_gzip_jsonl_object_written_before_its_rows_go(
        store: Store, s3: AwsClients) -> None:
    key = await _kms_key(s3)
    client = await s3.client("s3")
    await client.create_bucket(Bucket=BUCKET)
    ids = await _expired_alerts(store, days=2, per_day=3)
    metrics = Metrics()

    reports = await _purger(store, s3, key, metrics).run([Kind.ALERTS])

    assert reports[0].deleted == reports[0].exported == 6
    listed = await client.list_objects_v2(Bucket=BUCKET)
    names = sorted(o["Key"] for o in listed["Contents"])
    assert [n.rsplit("/", 1)[0] for n in names] == ["remediator/archive/alerts/2026/01/05",
                                                    "remediator/archive/alerts/2026/01/06"]
    exported: list[dict[str, Any]] = []
    for name in names:
        got = await client.get_object(Bucket=BUCKET, Key=name)
        assert got["ServerSideEncryption"] == "aws:kms" and got["SSEKMSKeyId"] == key
        lines = gzip.decompress(await got["Body"].read()).splitlines()
        exported += [orjson.loads(line) for line in lines]
    assert sorted(row["id"] for row in exported) == sorted(ids)
    assert exported[0]["labels"]["alertname"] == "PostgresTooManyConnections"  # JSON, not JSON in a string
    assert [await store.get_alert(i) for i in ids] == [None] * 6
    assert metrics.retention_exported.labels("alerts")._value.get() == 6
    assert metrics.retention_last_success._value.get() == NOW.timestamp()


async def test_nothing_is_deleted_when_the_export_fails(store: Store, s3: AwsClients) -> None:
    key = await _kms_key(s3)
    ids = await _expired_alerts(store, days=1, per_day=2)
    metrics = Metrics()

    # The bucket does not exist: PutObject fails, so the rows it should have held must stay.
    reports = await _purger(store, s3, key, metrics, bucket="no-such-bucket").run([Kind.ALERTS])

    assert reports[0].deleted == 0 and reports[0].exported == 0
    assert all([await store.get_alert(i) is not None for i in ids])
    assert metrics.retention_failures.labels("alerts", "export")._value.get() == 1
    assert metrics.retention_last_success._value.get() == 0


def test_an_archive_is_never_configured_without_a_kms_key() -> None:
    with pytest.raises(ValueError, match="kms_key_id is required"):
        ArchiveSettings(bucket=BUCKET)


async def test_an_incident_is_archived_with_its_timeline_and_approvals_and_a_request_with_its_audit(
        store: Store, s3: AwsClients) -> None:
    key = await _kms_key(s3)
    client = await s3.client("s3")
    await client.create_bucket(Bucket=BUCKET)
    firing = alert(group="g", fingerprint="fp-g")
    resolved = alert(group="g", fingerprint="fp-g", status="resolved")
    await store.record_alerts([firing], T0)
    opened = await correlate(store, firing, Severity.P2, T0)
    assert opened.incident is not None
    incident_id = opened.incident.id
    held = builders.approval(alert_id=firing.id, incident_id=incident_id)
    await store.create_approval(held, [TimelineEvent(incident_id, T0, "approval_requested", "held")])
    await store.close_approval(held.id, [ApprovalStatus.PENDING], ApprovalStatus.EXPIRED, T0, "nobody answered")
    await store.record_alerts([resolved], T0)
    await correlate(store, resolved, Severity.P2, T0 + timedelta(minutes=5))
    request = builders.request("req-archived", incident_id=incident_id, alert_id=firing.id)
    await claim_request(store, request, T0)
    await finish_request(store, builders.audit(request, at=T0))
    timeline = await store.timeline(incident_id)
    settings = RetentionSettings(pause=timedelta(0), incidents=timedelta(days=30), audit=timedelta(days=30),
                                 archive=ArchiveSettings(bucket=BUCKET, kms_key_id=key, kinds=["incidents", "audit"]))
    purger = Purger(store, settings, FakeClock(NOW), archive=S3Archive(settings.archive, s3))

    reports = await purger.run([Kind.INCIDENTS, Kind.AUDIT])

    assert [(r.deleted, r.exported) for r in reports] == [(1, 1), (1, 1)]
    rows: dict[str, dict[str, Any]] = {}
    for name in sorted(o["Key"] for o in (await client.list_objects_v2(Bucket=BUCKET))["Contents"]):
        got = await client.get_object(Bucket=BUCKET, Key=name)
        (line,) = gzip.decompress(await got["Body"].read()).splitlines()
        rows[name.split("/")[2]] = orjson.loads(line)
    incident, audited = rows["incidents"], rows["audit"]
    assert incident["id"] == incident_id
    assert [e["kind"] for e in incident["timeline"]] == [e.kind for e in timeline]
    assert [a["id"] for a in incident["approvals"]] == [held.id] and incident["approvals"][0]["votes"] == []
    assert audited["id"] == "req-archived"
    outcome = audited.get("outcome") or audited["audit"]["outcome"]  # SQLite: on the row; PostgreSQL: nested
    assert outcome == "dry_run"
    assert await store.get_incident(incident_id) is None and await store.timeline(incident_id) == []
    assert await store.get_audit("req-archived") is None
