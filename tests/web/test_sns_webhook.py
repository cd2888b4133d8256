"""SNS notifications over real HTTP: what is answered, recorded, processed and counted; and what is not.

Messages are signed by a local CA the daemon is told to trust; the daemon fetches the certificate
from a mirror by the unchanged, pinned SigningCertURL (tests/support/sns.py).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from remediator.observability import SNS_DELIVERY_RESULTS
from remediator.sources.sns.envelope import VerifyResult, parse_envelope
from remediator.web.sns import TYPE_LABELS
from tests.conftest import corpus_file
from tests.sources.sns_testkit import (
    CERT_URL,
    TOPIC,
    at,
    body,
    corpus_bytes,
    corpus_cert_for,
    local_pki,
    make_leaf,
    pem,
    real_signed_names,
    sign,
    unsigned_message,
)
from tests.support.daemon import Daemon, DaemonFactory
from tests.support.sns import SIGNED_AT, CertMirror, SnsDaemonFactory, nothing_recorded, post, signed

ALARM = corpus_file("cloudwatch-alarm-message-log-metric-tokyo-2025.json").read_text()
EVENT = corpus_file("eventbridge-rds-db-instance-event-failover.json").read_text()
MESSAGE_ID = "5b1c4e3a-7f0e-4b8e-9a55-0c2f0f3f9d10"


def deliveries(daemon: Daemon, kind: str, result: str) -> float:
    return daemon.metric("remediator_sns_deliveries_total", type=kind, result=result)


def test_every_verification_result_is_a_metric_label() -> None:
    assert {r.value for r in VerifyResult} <= set(SNS_DELIVERY_RESULTS)


async def test_a_signed_alarm_is_verified_recorded_then_acknowledged_and_processed(
    start_sns_daemon: SnsDaemonFactory, cert_mirror: CertMirror,
) -> None:
    daemon = await start_sns_daemon()
    status, answer = await post(daemon, signed(Message=ALARM))
    assert (status, answer) == (200, {"accepted": 1, "duplicates": 0})
    assert daemon.count("alerts") == 1  # on disk before the 200 went out
    await daemon.engine.drain()
    [incident] = await daemon.deps.store.list_incidents()
    assert incident.title.startswith("ErrorAlarm")
    [alert] = [await daemon.deps.store.get_alert(a) for a in [_only_alert_id(daemon)]]
    assert alert is not None and alert.labels["sns_topic_arn"] == TOPIC and alert.labels["new_state"] == "ALARM"
    assert cert_mirror.certificate_fetches == ["/" + CERT_URL.rsplit("/", 1)[1]]
    assert deliveries(daemon, "notification", "verified") == 1
    assert daemon.metric("remediator_alerts_received_total", source="sns", result="accepted") == 1


def _only_alert_id(daemon: Daemon) -> str:
    with sqlite3.connect(daemon.db) as conn:
        [(alert_id,)] = conn.execute("SELECT id FROM alerts").fetchall()
    return str(alert_id)


@pytest.mark.parametrize("name", real_signed_names())
async def test_every_real_aws_signed_message_is_accepted_by_the_endpoint(
    start_daemon: DaemonFactory, cert_mirror: CertMirror, name: str,
) -> None:
    """Real SNS messages, real certificates, the production trust policy; only the clock is moved back."""
    payload = corpus_bytes(name)
    env = parse_envelope(payload)
    cert_mirror.certificates = {urlsplit(env.signing_cert_url).path: corpus_cert_for(env.signing_cert_url)}
    daemon = await start_daemon(sns={"topics": [env.topic_arn], "mirror_url": cert_mirror.url,
                                     "confirm_method": "SubscribeURL"})
    daemon.clock.set(at(env.timestamp))
    assert await post(daemon, payload) == (200, {"accepted": 1, "duplicates": 0})
    assert deliveries(daemon, TYPE_LABELS[env.type], "verified") == 1


async def test_lambda_spelling_and_any_content_type_are_fine_and_the_certificate_is_cached(
    start_sns_daemon: SnsDaemonFactory, cert_mirror: CertMirror,
) -> None:
    daemon = await start_sns_daemon()
    fields = json.loads(signed(Message=EVENT, MessageId="m-lambda"))
    fields["SigningCertUrl"] = fields.pop("SigningCertURL")
    fields["UnsubscribeUrl"] = fields.pop("UnsubscribeURL")
    fields["MessageAttributes"] = {}
    lambda_style = await daemon.client.post("/webhooks/sns", data=json.dumps(fields))  # no Content-Type at all
    as_json = await daemon.client.post("/webhooks/sns", data=signed(Message=ALARM, MessageId="m-json"),
                                       headers={"Content-Type": "application/json"})
    assert (lambda_style.status, as_json.status) == (200, 200)
    assert daemon.count("alerts") == 2 and len(cert_mirror.certificate_fetches) == 1


async def test_a_redelivery_is_answered_200_counted_and_not_processed_again(
    start_sns_daemon: SnsDaemonFactory,
) -> None:
    daemon = await start_sns_daemon()
    message = signed(Message=ALARM)
    assert (await post(daemon, message))[0] == 200
    await daemon.engine.drain()
    events_before = daemon.count("timeline")
    status, answer = await post(daemon, message)
    await daemon.engine.drain()
    assert (status, answer) == (200, {"accepted": 0, "duplicates": 1})
    assert daemon.count("alerts") == 1 and daemon.count("timeline") == events_before
    assert daemon.metric("remediator_duplicates_total", kind="delivery") == 1
    assert daemon.metric("remediator_alerts_received_total", source="sns", result="duplicate") == 1


@pytest.mark.parametrize(("message", "why"), [
    (ALARM, "the same alarm state change (AlarmArn + StateChangeTime + NewStateValue)"),
    (EVENT, "the same EventBridge event id"),
])
async def test_the_same_occurrence_in_another_sns_message_is_a_duplicate(
    start_sns_daemon: SnsDaemonFactory, message: str, why: str,
) -> None:
    daemon = await start_sns_daemon()
    first = await post(daemon, signed(Message=message, MessageId="first"))
    # A second subscription, or a re-publish: a new MessageId around the same occurrence.
    second = await post(daemon, signed(Message=message, MessageId="second"))
    assert (first[1]["accepted"], second[1]) == (1, {"accepted": 0, "duplicates": 1}), why
    assert daemon.count("alerts") == 1


def _forgeries() -> dict[str, tuple[bytes, VerifyResult, bool]]:
    """name → (body, result, whether the certificate had to be fetched to tell)."""
    other = json.loads(signed(Message=ALARM))
    other["Message"] = ALARM.replace("ALARM", "OK")  # tampered after signing
    return {
        "tampered message": (json.dumps(other).encode(), VerifyResult.BAD_SIGNATURE, True),
        "signed by another key": (signed(key_name="intruder"), VerifyResult.BAD_SIGNATURE, True),
        "unsupported version": (signed(version="3"), VerifyResult.BAD_SIGNATURE, False),
        "unknown topic": (signed(TopicArn="arn:aws:sns:us-east-1:123456789012:someone-elses"),
                          VerifyResult.UNKNOWN_TOPIC, False),
        "cert URL over http": (signed(cert_url=CERT_URL.replace("https", "http")), VerifyResult.BAD_CERT_URL, False),
        "cert URL of another region": (signed(cert_url=CERT_URL.replace("us-east-1", "eu-west-1")),
                                       VerifyResult.BAD_CERT_URL, False),
        "cert URL on an S3 bucket named sns": (
            signed(cert_url=CERT_URL.replace("sns.us-east-1", "sns.s3-us-east-1")), VerifyResult.BAD_CERT_URL, False),
        "three hours old": (signed(Timestamp="2026-01-05T06:00:00.000Z"), VerifyResult.STALE, False),
        "from the future": (signed(Timestamp="2026-01-05T09:30:00.000Z"), VerifyResult.STALE, False),
    }


async def test_forgeries_get_403_nothing_is_recorded_and_each_is_counted(
    start_sns_daemon: SnsDaemonFactory, cert_mirror: CertMirror,
) -> None:
    daemon = await start_sns_daemon()
    for name, (payload, result, fetched) in _forgeries().items():
        before = len(cert_mirror.certificate_fetches)
        status, answer = await post(daemon, payload)
        assert (status, answer["error"]) == (403, result.value), name
        assert answer["detail"] and TOPIC not in answer["detail"]
        assert len(cert_mirror.certificate_fetches) - before <= int(fetched), name  # refused before any fetch
    assert nothing_recorded(daemon)
    assert deliveries(daemon, "notification", "bad_signature") == 3
    assert deliveries(daemon, "notification", "bad_cert_url") == 3
    assert deliveries(daemon, "notification", "stale") == 2
    assert deliveries(daemon, "notification", "unknown_topic") == 1
    assert daemon.metric("remediator_webhook_rejected_total", source="sns", reason="unauthorized") == 9


async def test_a_certificate_from_an_untrusted_issuer_is_refused(
    start_sns_daemon: SnsDaemonFactory, cert_mirror: CertMirror,
) -> None:
    # The right name on a certificate the configured CA did not issue (the mirror serves it).
    impostor = make_leaf(local_pki().other_ca)
    cert_mirror.certificates[next(iter(cert_mirror.certificates))] = pem(impostor)
    daemon = await start_sns_daemon()
    status, answer = await post(daemon, signed())
    assert (status, answer["error"]) == (403, "bad_certificate")
    assert nothing_recorded(daemon)


@pytest.mark.parametrize(("payload", "detail"), [
    (b"{oops", "not UTF-8 JSON"),
    (b"[]", "JSON object"),
    (b'{"Type": "Unknown"}', "Type must be one of"),
    (json.dumps({**unsigned_message("Notification"), "SignatureVersion": "2"}).encode(), "Signature is missing"),
    (b"This is a test message.", "not UTF-8 JSON"),  # a raw delivery: refused on this path
])
async def test_malformed_bodies_get_400_naming_the_problem(
    start_sns_daemon: SnsDaemonFactory, payload: bytes, detail: str,
) -> None:
    daemon = await start_sns_daemon()
    status, answer = await post(daemon, payload)
    assert (status, answer["error"]) == (400, "malformed") and detail in answer["detail"]
    assert nothing_recorded(daemon)
    assert daemon.metric("remediator_webhook_rejected_total", source="sns", reason="bad_request") == 1


async def test_raw_delivery_is_refused_on_the_signed_endpoint(start_sns_daemon: SnsDaemonFactory) -> None:
    daemon = await start_sns_daemon()
    status, answer = await post(daemon, b'{"AlarmName": "x"}', headers={"x-amz-sns-rawdelivery": "true"})
    assert (status, answer["error"]) == (403, "raw_delivery_refused") and "sns.raw_delivery" in answer["detail"]
    assert nothing_recorded(daemon) and deliveries(daemon, "raw", "raw_refused") == 1


async def test_a_body_over_the_cap_gets_413(start_sns_daemon: SnsDaemonFactory) -> None:
    daemon = await start_sns_daemon(max_body_bytes=4096)
    status, answer = await post(daemon, signed(Message="x" * 5000))
    assert (status, answer["error"]) == (413, "too_large")
    assert nothing_recorded(daemon) and deliveries(daemon, "unknown", "too_large") == 1


async def test_a_certificate_that_cannot_be_fetched_gets_503_and_the_retry_200(
    start_sns_daemon: SnsDaemonFactory, cert_mirror: CertMirror,
) -> None:
    daemon = await start_sns_daemon()
    cert_mirror.failures = 1
    status, answer = await post(daemon, signed(Message=ALARM))
    assert (status, answer["error"]) == (503, "cert_fetch_failed") and "HTTP 500" in answer["detail"]
    assert nothing_recorded(daemon)
    daemon.clock.advance(timedelta(seconds=20))  # SNS's default policy retries 20 s later
    status, answer = await post(daemon, signed(Message=ALARM))
    assert (status, answer) == (200, {"accepted": 1, "duplicates": 0})
    assert deliveries(daemon, "notification", "cert_fetch_failed") == 1
    assert deliveries(daemon, "notification", "verified") == 1


async def test_an_unreachable_mirror_gets_503(start_sns_daemon: SnsDaemonFactory) -> None:
    daemon = await start_sns_daemon(sns={"mirror_url": "http://127.0.0.1:9", "certificate_timeout": "1s"})
    status, answer = await post(daemon, signed())
    assert (status, answer["error"]) == (503, "cert_fetch_failed")
    assert nothing_recorded(daemon)


async def test_when_the_store_cannot_write_the_answer_is_503_and_the_retry_is_recorded(
    start_sns_daemon: SnsDaemonFactory,
) -> None:
    daemon = await start_sns_daemon(store={"sqlite_busy_timeout": "100ms"})
    blocker = sqlite3.connect(daemon.db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
    try:
        status, answer = await post(daemon, signed(Message=ALARM))
        assert (status, answer["error"]) == (503, "store_unavailable")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert nothing_recorded(daemon)
    assert daemon.metric("remediator_alerts_received_total", source="sns", result="store_unavailable") == 1
    status, answer = await post(daemon, signed(Message=ALARM))
    assert (status, answer) == (200, {"accepted": 1, "duplicates": 0})
    await asyncio.wait_for(daemon.engine.drain(), 5)


async def test_the_insufficient_data_setting_reaches_the_parser(start_sns_daemon: SnsDaemonFactory) -> None:
    daemon = await start_sns_daemon(sns={"insufficient_data": "resolved"})
    alarm: dict[str, Any] = json.loads(ALARM)
    alarm["NewStateValue"] = "INSUFFICIENT_DATA"
    assert (await post(daemon, signed(Message=json.dumps(alarm))))[0] == 200
    with sqlite3.connect(daemon.db) as conn:
        assert conn.execute("SELECT status FROM alerts").fetchone()[0] == "resolved"


def test_messages_here_are_signed_like_sns_signs_them() -> None:
    # Guard for the helpers above: the default message is the testkit's, with the daemon's time.
    assert json.loads(signed())["Timestamp"] == SIGNED_AT
    assert body(sign(unsigned_message("Notification", Timestamp=SIGNED_AT))) == signed()
