"""Subscription confirmation by SubscribeURL: which URLs are followed, how, and what an error may quote.

The ConfirmSubscription path runs against moto through the daemon (tests/web/test_sns_webhook.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from remediator.sources.sns.confirm import ConfirmationFailed, SubscribeUrlConfirmer, validate_subscribe_url
from remediator.sources.sns.envelope import SnsEnvelope, parse_envelope
from tests.sources.sns_testkit import TOPIC, body, corpus_bytes, sign, unsigned_message

TOKEN = "2336412f37fb687f5d51e6e2425ba1f2SECRET-TOKEN"
GOOD_URL = f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={TOKEN}"


def confirmation(subscribe_url: str = GOOD_URL, **overrides: str) -> SnsEnvelope:
    fields = unsigned_message("SubscriptionConfirmation", Token=TOKEN, SubscribeURL=subscribe_url, **overrides)
    return parse_envelope(body(sign(fields)))


def test_real_subscribe_urls_are_accepted() -> None:
    for kind in ("v1-subscription-confirmation", "v2-unsubscribe-confirmation"):
        validate_subscribe_url(parse_envelope(corpus_bytes(f"sns-real-signed-{kind}.json")))
    validate_subscribe_url(confirmation())
    # Percent-encoding the ARN changes nothing that is compared: values are compared decoded.
    validate_subscribe_url(confirmation(GOOD_URL.replace(TOPIC, TOPIC.replace(":", "%3A"))))


@pytest.mark.parametrize("url", [
    GOOD_URL.replace("https://", "http://"),
    GOOD_URL.replace("sns.us-east-1", "sns.us-west-2"),  # another region than the TopicArn's
    GOOD_URL.replace("amazonaws.com/", "amazonaws.com.evil.example/"),
    GOOD_URL.replace("amazonaws.com/", "amazonaws.com:443/"),
    GOOD_URL.replace("https://", "https://user:pass@"),
    GOOD_URL.replace("https://sns.", "https://evil.example/#sns."),
    GOOD_URL.replace(".com/?", ".com/redirect?"),
    GOOD_URL + "#fragment",
    GOOD_URL + "&Next=https://evil.example/",
    GOOD_URL + f"&Token={TOKEN}",
    GOOD_URL.replace("ConfirmSubscription", "Unsubscribe"),
    GOOD_URL.replace(TOPIC, TOPIC + "-other"),
    GOOD_URL.replace(TOKEN, TOKEN + "0"),
    GOOD_URL.replace(f"&Token={TOKEN}", ""),
    GOOD_URL.replace("?", "?&&"),
])
def test_any_other_subscribe_url_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(ConfirmationFailed) as caught:
        validate_subscribe_url(confirmation(url))
    assert TOKEN not in str(caught.value) and "evil" not in str(caught.value)


def test_a_notification_cannot_be_confirmed() -> None:
    notification = parse_envelope(body(sign(unsigned_message("Notification"))))
    with pytest.raises(ConfirmationFailed, match="not a SubscriptionConfirmation"):
        validate_subscribe_url(notification)


@dataclass
class FakeSns:
    """Plays the SNS host behind a mirror: records each GET, answers `status` (or hangs)."""

    status: int = 200
    hang: bool = False
    seen: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.path_qs, request.headers.get("Authorization", "")))
        if self.hang:
            await asyncio.sleep(5)
        if self.status in (301, 302):
            raise web.HTTPFound("https://evil.example/")
        return web.Response(status=self.status, text="<ConfirmSubscriptionResponse/>")


@pytest.fixture
async def fake_sns() -> AsyncIterator[FakeSns]:
    fake = FakeSns()
    app = web.Application()
    app.router.add_get("/", fake.handle)
    async with TestServer(app, host="127.0.0.1") as server:
        fake.url = str(server.make_url(""))
        yield fake


async def confirm_through(fake: FakeSns, env: SnsEnvelope, timeout: float = 2.0) -> None:
    async with aiohttp.ClientSession() as session:
        await SubscribeUrlConfirmer(session, timeout=timeout, mirror_base_url=fake.url).confirm(env)


async def test_the_validated_url_is_fetched_as_received(fake_sns: FakeSns) -> None:
    await confirm_through(fake_sns, confirmation())
    [(path_qs, authorization)] = fake_sns.seen
    assert path_qs == GOOD_URL.removeprefix("https://sns.us-east-1.amazonaws.com")
    assert "/us-east-1/sns/aws4_request" in authorization  # the mirror is routed like moto expects


async def test_an_invalid_url_is_never_fetched(fake_sns: FakeSns) -> None:
    with pytest.raises(ConfirmationFailed):
        await confirm_through(fake_sns, confirmation(GOOD_URL + "&Next=x"))
    assert fake_sns.seen == []


@pytest.mark.parametrize(("status", "hang", "reason"), [
    (500, False, "HTTP 500"), (302, False, "HTTP 302"), (200, True, "no answer within 0.2 s"),
])
async def test_failures_say_what_happened_and_follow_nothing(fake_sns: FakeSns, status: int, hang: bool,
                                                           reason: str) -> None:
    fake_sns.status, fake_sns.hang = status, hang
    with pytest.raises(ConfirmationFailed, match=reason) as caught:
        await confirm_through(fake_sns, confirmation(), timeout=0.2)
    assert len(fake_sns.seen) == 1 and TOKEN not in str(caught.value)


async def test_an_unreachable_host_is_a_failure_not_a_crash() -> None:
    env = confirmation()
    async with aiohttp.ClientSession() as session:
        confirmer = SubscribeUrlConfirmer(session, timeout=2, mirror_base_url="http://127.0.0.1:9")
        with pytest.raises(ConfirmationFailed, match="ClientConnectorError"):
            await confirmer.confirm(env)
