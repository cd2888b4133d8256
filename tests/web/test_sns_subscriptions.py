"""SNS subscriptions and raw delivery over real HTTP: confirmed, refused, unsubscribed, authenticated.

ConfirmSubscription goes to moto server through a recording proxy, so each test sees exactly
which calls left the daemon, with which parameters.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterator, MutableMapping
from typing import Any

import botocore.retries.standard
import pytest
import structlog

from remediator.model import IncidentStatus, Severity
from remediator.sources.sns.delivery import UNSUBSCRIBED
from tests.sources.sns_testkit import TOPIC
from tests.support.daemon import Daemon
from tests.support.faultproxy import Rule
from tests.support.sns import (
    SUBSCRIBE_URL,
    TOKEN,
    CertMirror,
    RecordingProxy,
    SnsDaemonFactory,
    create_topic,
    nothing_recorded,
    post,
    signed,
)

OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-elses"
RAW_PATH = "/webhooks/sns-raw/erp"
RAW_SECRET = "raw-delivery-secret-0123456789"
ALARM = '{"AlarmName": "erp-5xx", "NewStateValue": "ALARM", "StateChangeTime": "2026-01-05T08:59:00.000+0000", ' \
        '"AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:erp-5xx"}'
Logs = list[MutableMapping[str, Any]]


def confirmations(daemon: Daemon, result: str) -> float:
    return daemon.metric("remediator_sns_confirmations_total", result=result)


@pytest.fixture
async def moto_daemon(start_sns_daemon: SnsDaemonFactory, moto_proxy: RecordingProxy, moto: str,
                      monkeypatch: pytest.MonkeyPatch) -> Any:
    """`await moto_daemon(**settings)`: AWS calls go through the proxy to moto, where TOPIC exists."""
    monkeypatch.setattr(botocore.retries.standard.ExponentialBackoff, "delay_amount", lambda self, ctx: 0)
    assert await create_topic(moto, "remediator-alerts") == TOPIC

    async def start(**overrides: Any) -> Daemon:
        aws = {"endpoint_url": moto_proxy.url, "region": "eu-west-1", "max_attempts": 2, **overrides.pop("aws", {})}
        daemon: Daemon = await start_sns_daemon(aws=aws, **overrides)
        return daemon

    return start


@pytest.fixture
def logs() -> Iterator[Logs]:
    with structlog.testing.capture_logs() as captured:
        yield captured


def assert_no_capability_in(logs: Logs) -> None:
    text = json.dumps(logs, default=str)
    assert TOKEN not in text and "SubscribeURL=" not in text and "Action=" not in text


# -- confirmation ------------------------------------------------------------------------------------------
async def test_an_allow_listed_confirmation_is_confirmed_once_through_the_api_and_recorded(
    moto_daemon: Any, moto_proxy: RecordingProxy, logs: Logs,
) -> None:
    daemon = await moto_daemon()
    confirmation = signed("SubscriptionConfirmation")
    status, answer = await post(daemon, confirmation)
    assert (status, answer) == (200, {"accepted": 1, "duplicates": 0})
    [call] = moto_proxy.calls("ConfirmSubscription")
    # In the topic's region (us-east-1), not the daemon's default (eu-west-1); never unauthenticated unsubscribes.
    assert call == {"Action": "ConfirmSubscription", "Version": "2010-03-31", "TopicArn": TOPIC, "Token": TOKEN,
                    "AuthenticateOnUnsubscribe": "true"}
    assert moto_proxy.log[0].status == 200 and moto_proxy.regions == ["us-east-1"]
    # SNS retries confirmations: the same message again is answered, and confirmed no second time.
    again = await post(daemon, confirmation)
    assert again == (200, {"accepted": 0, "duplicates": 1})
    assert len(moto_proxy.calls("ConfirmSubscription")) == 1
    assert confirmations(daemon, "confirmed") == 1 and daemon.count("alerts") == 1
    assert [entry["event"] for entry in logs if entry["event"].startswith("sns_")] == ["sns_subscription_confirmed"]
    assert_no_capability_in(logs)


async def test_a_confirmation_from_any_other_topic_is_refused_and_nothing_is_called(
    moto_daemon: Any, moto_proxy: RecordingProxy, cert_mirror: CertMirror,
) -> None:
    daemon = await moto_daemon()
    status, answer = await post(daemon, signed("SubscriptionConfirmation", TopicArn=OTHER_TOPIC))
    assert (status, answer["error"]) == (403, "unknown_topic")
    assert moto_proxy.log == [] and cert_mirror.requests == []
    assert confirmations(daemon, "refused") == 1 and nothing_recorded(daemon)


async def test_a_forged_confirmation_is_refused_and_nothing_is_called(
    moto_daemon: Any, moto_proxy: RecordingProxy,
) -> None:
    daemon = await moto_daemon()
    status, answer = await post(daemon, signed("SubscriptionConfirmation", key_name="intruder"))
    assert (status, answer["error"]) == (403, "bad_signature")
    assert moto_proxy.log == [] and confirmations(daemon, "refused") == 1 and nothing_recorded(daemon)


async def test_a_failed_confirm_call_gets_503_so_sns_retries_and_the_retry_confirms(
    moto_daemon: Any, moto_proxy: RecordingProxy, logs: Logs,
) -> None:
    daemon = await moto_daemon(aws={"max_attempts": 1})
    moto_proxy.add(Rule("ConfirmSubscription", status=500, code="InternalError"))
    status, answer = await post(daemon, signed("SubscriptionConfirmation"))
    assert (status, answer["error"]) == (503, "confirmation_failed") and "InternalError" in answer["detail"]
    assert confirmations(daemon, "failed") == 1 and nothing_recorded(daemon)
    status, _ = await post(daemon, signed("SubscriptionConfirmation"))
    assert status == 200 and confirmations(daemon, "confirmed") == 1
    assert [hit.status for hit in moto_proxy.log] == [500, 200]
    assert_no_capability_in(logs)


async def test_a_confirmation_that_cannot_be_recorded_gets_503_and_the_retry_records_it(
    moto_daemon: Any, moto_proxy: RecordingProxy,
) -> None:
    daemon = await moto_daemon(store={"sqlite_busy_timeout": "100ms"})
    blocker = sqlite3.connect(daemon.db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock; reads still work (WAL)
    try:
        status, answer = await post(daemon, signed("SubscriptionConfirmation"))
        assert (status, answer["error"]) == (503, "store_unavailable")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert nothing_recorded(daemon)
    # Confirmed, but not on record: SNS delivers again; this process remembers it confirmed it.
    assert (await post(daemon, signed("SubscriptionConfirmation")))[0] == 200
    assert len(moto_proxy.calls("ConfirmSubscription")) == 1 and daemon.count("alerts") == 1
    assert daemon.metric("remediator_alerts_received_total", source="sns", result="store_unavailable") == 1


async def test_confirming_by_subscribe_url_gets_only_the_pinned_url(
    start_sns_daemon: SnsDaemonFactory, cert_mirror: CertMirror,
) -> None:
    daemon = await start_sns_daemon(sns={"confirm_method": "SubscribeURL"})
    status, _ = await post(daemon, signed("SubscriptionConfirmation"))
    assert status == 200
    assert cert_mirror.confirmations == [{"Action": ["ConfirmSubscription"], "TopicArn": [TOPIC], "Token": [TOKEN]}]


UNPINNED = {
    "another parameter": SUBSCRIBE_URL + "&Next=https://evil.example/",
    "another host": SUBSCRIBE_URL.replace("sns.us-east-1.amazonaws.com", "evil.example"),
    "another region": SUBSCRIBE_URL.replace("us-east-1.amazonaws", "eu-west-1.amazonaws"),
    "plain http": SUBSCRIBE_URL.replace("https://", "http://"),
    "user info": SUBSCRIBE_URL.replace("https://", "https://sns@"),
    "another token": SUBSCRIBE_URL.replace(TOKEN, "0" * 40),
    "another action": SUBSCRIBE_URL.replace("Action=ConfirmSubscription", "Action=Unsubscribe"),
}


@pytest.mark.parametrize("subscribe_url", UNPINNED.values(), ids=UNPINNED.keys())
async def test_a_subscribe_url_not_in_the_pinned_form_is_refused_for_good_with_a_4xx(
    start_sns_daemon: SnsDaemonFactory, cert_mirror: CertMirror, subscribe_url: str,
) -> None:
    # Signed by SNS and allow-listed, but its SubscribeURL can never be followed: a retry cannot
    # succeed, so SNS must not be asked for one (a 503 is retried, a 4xx is not).
    daemon = await start_sns_daemon(sns={"confirm_method": "SubscribeURL"})
    status, answer = await post(daemon, signed("SubscriptionConfirmation", SubscribeURL=subscribe_url))
    assert (status, answer["error"]) == (403, "subscribe_url_refused") and "SubscribeURL" in answer["detail"]
    assert cert_mirror.confirmations == [] and nothing_recorded(daemon)
    assert (confirmations(daemon, "refused"), confirmations(daemon, "failed")) == (1, 0)


# What the confirming call's failure means: retry (503) only where a retry can succeed.
CONFIRM_ANSWERS = [
    ("ConfirmSubscription", Rule("ConfirmSubscription", status=400, code="InvalidParameter"), 403,
     "confirmation_refused"),
    ("ConfirmSubscription", Rule("ConfirmSubscription", status=404, code="NotFound"), 403, "confirmation_refused"),
    ("ConfirmSubscription", Rule("ConfirmSubscription", status=403, code="AuthorizationError"), 403,
     "confirmation_refused"),
    ("ConfirmSubscription", Rule("ConfirmSubscription", status=400, code="Throttling"), 503, "confirmation_failed"),
    ("ConfirmSubscription", Rule("ConfirmSubscription", status=500, code="InternalError"), 503,
     "confirmation_failed"),
    ("SubscribeURL", 403, 403, "confirmation_refused"),
    ("SubscribeURL", 404, 403, "confirmation_refused"),
    ("SubscribeURL", 429, 503, "confirmation_failed"),
    ("SubscribeURL", 500, 503, "confirmation_failed"),
    ("SubscribeURL", 503, 503, "confirmation_failed"),
]


@pytest.mark.parametrize(("method", "answer", "status", "error"), CONFIRM_ANSWERS,
                         ids=[f"{m}-{getattr(a, 'code', a)}" for m, a, _, _ in CONFIRM_ANSWERS])
async def test_a_permanent_refusal_of_the_confirmation_is_a_4xx_and_a_passing_failure_a_503(
    moto_daemon: Any, moto_proxy: RecordingProxy, cert_mirror: CertMirror, logs: Logs,
    method: str, answer: Rule | int, status: int, error: str,
) -> None:
    daemon = await moto_daemon(aws={"max_attempts": 1}, sns={"confirm_method": method})
    if isinstance(answer, Rule):
        moto_proxy.add(answer)
    else:
        cert_mirror.confirm_status = answer
    got, body = await post(daemon, signed("SubscriptionConfirmation"))
    assert (got, body["error"]) == (status, error) and nothing_recorded(daemon)
    result = "failed" if status == 503 else "refused"
    assert confirmations(daemon, result) == 1 and confirmations(daemon, "confirmed") == 0
    assert_no_capability_in(logs)


# -- unsubscription --------------------------------------------------------------------------------------
async def test_an_unsubscription_opens_an_incident_is_logged_and_counted_once(
    start_sns_daemon: SnsDaemonFactory, logs: Logs,
) -> None:
    daemon = await start_sns_daemon()
    unsubscribe = signed("UnsubscribeConfirmation")
    assert await post(daemon, unsubscribe) == (200, {"accepted": 1, "duplicates": 0})
    assert (await post(daemon, unsubscribe))[1] == {"accepted": 0, "duplicates": 1}
    await daemon.engine.drain()
    [incident] = await daemon.deps.store.list_incidents()
    assert incident.title == UNSUBSCRIBED and incident.severity is Severity.P2
    assert incident.status is IncidentStatus.OPEN
    [detected] = await daemon.deps.store.timeline(incident.id)
    assert "subscribe the endpoint again" in detected.message
    assert daemon.metric("remediator_sns_unsubscriptions_total") == 1
    warnings = [entry for entry in logs if entry["event"] == "sns_unsubscribed"]
    assert len(warnings) == 1 and warnings[0]["log_level"] == "warning" and warnings[0]["topic_arn"] == TOPIC
    assert_no_capability_in(logs)


async def test_subscribing_again_resolves_the_unsubscription_incident(
    moto_daemon: Any, moto_proxy: RecordingProxy,
) -> None:
    daemon = await moto_daemon()
    await post(daemon, signed("UnsubscribeConfirmation", MessageId="unsubscribed"))
    await daemon.engine.drain()
    daemon.clock.advance(600)
    later = "2026-01-05T09:09:50.000Z"  # published after the unsubscription
    assert (await post(daemon, signed("SubscriptionConfirmation", MessageId="again", Timestamp=later)))[0] == 200
    await daemon.engine.drain()
    [incident] = await daemon.deps.store.list_incidents()
    assert incident.status is IncidentStatus.RESOLVED
    assert len(moto_proxy.calls("ConfirmSubscription")) == 1  # resubscribing is a person's act, confirmed here


# -- raw message delivery ----------------------------------------------------------------------------------
def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


RAW_SETTINGS = {"raw_delivery": [{"path": RAW_PATH, "topic_arn": TOPIC, "secret": RAW_SECRET}], "topics": []}


async def test_raw_delivery_is_challenged_then_refused_without_the_secret(start_sns_daemon: SnsDaemonFactory) -> None:
    daemon = await start_sns_daemon(sns=RAW_SETTINGS)
    for headers in ({}, basic("sns", "wrong-secret-wrong-secret"), basic("someone", RAW_SECRET),
                    {"Authorization": "Bearer wrong"}, {"Authorization": "Basic !!"}):
        response = await daemon.client.post(RAW_PATH, data=ALARM, headers=headers)
        assert response.status == 401, headers
        # SNS sends the credentials of the subscription URL only after this challenge.
        assert response.headers["WWW-Authenticate"] == 'Basic realm="remediator-sns"'
        assert (await response.json())["error"] == "unauthorized"
    assert nothing_recorded(daemon)
    assert daemon.metric("remediator_sns_deliveries_total", type="raw", result="unauthorized") == 5


async def test_raw_delivery_with_the_secret_is_recorded_once_per_message_id(
    start_sns_daemon: SnsDaemonFactory,
) -> None:
    daemon = await start_sns_daemon(sns=RAW_SETTINGS)
    sns_headers = {**basic("sns", RAW_SECRET), "x-amz-sns-message-id": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
                   "x-amz-sns-topic-arn": TOPIC, "x-amz-sns-rawdelivery": "true"}
    assert await post(daemon, ALARM.encode(), RAW_PATH, sns_headers) == (200, {"accepted": 1, "duplicates": 0})
    assert (await post(daemon, ALARM.encode(), RAW_PATH, sns_headers))[1] == {"accepted": 0, "duplicates": 1}
    plain = b"This is a test message."
    bearer = {"Authorization": f"Bearer {RAW_SECRET}"}
    assert (await post(daemon, plain, RAW_PATH, bearer))[1] == {"accepted": 1, "duplicates": 0}
    # Without x-amz-sns-message-id the body's hash is the id: the identical body again is a duplicate.
    assert (await post(daemon, plain, RAW_PATH, bearer))[1] == {"accepted": 0, "duplicates": 1}
    await daemon.engine.drain()
    [incident] = await daemon.deps.store.list_incidents()  # the alarm; the plain text is recorded, not actionable
    assert incident.title.startswith("erp-5xx")
    assert daemon.metric("remediator_sns_deliveries_total", type="raw", result="authenticated") == 4


async def test_raw_delivery_for_another_topic_or_not_utf8_is_refused(start_sns_daemon: SnsDaemonFactory) -> None:
    daemon = await start_sns_daemon(sns=RAW_SETTINGS)
    auth = basic("sns", RAW_SECRET)
    status, answer = await post(daemon, ALARM.encode(), RAW_PATH, {**auth, "x-amz-sns-topic-arn": OTHER_TOPIC})
    assert (status, answer["error"]) == (403, "unknown_topic")
    status, answer = await post(daemon, b"\xff\xfe", RAW_PATH, auth)
    assert (status, answer["error"]) == (400, "malformed")
    assert nothing_recorded(daemon)


async def test_the_raw_path_verifies_and_confirms_its_own_topics_subscription(
    moto_daemon: Any, moto_proxy: RecordingProxy,
) -> None:
    daemon = await moto_daemon(sns=RAW_SETTINGS)
    auth = basic("sns", RAW_SECRET)
    forged = await post(daemon, signed("SubscriptionConfirmation", key_name="intruder"), RAW_PATH, auth)
    assert forged[0] == 403 and moto_proxy.log == []
    assert (await post(daemon, signed("SubscriptionConfirmation"), RAW_PATH, auth))[0] == 200
    assert len(moto_proxy.calls("ConfirmSubscription")) == 1
    # The signed endpoint knows the raw topic too; the raw path knows no other topic.
    other = await post(daemon, signed("SubscriptionConfirmation", TopicArn=OTHER_TOPIC), RAW_PATH, auth)
    assert other[1]["error"] == "unknown_topic"
