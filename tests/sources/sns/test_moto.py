"""End to end against moto server: SNS publishes to a local receiver; we verify what arrives.

moto signs with a self-signed certificate whose issuer *name* is "Amazon RSA 2048 M01" and
serves it at the same path on its own port, routed by the dummy SigV4 header; so the default
trust policy (issuer names) accepts it, and `mirror_base_url` is how the verifier reaches it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from aiohttp import web
from aiohttp.test_utils import TestServer
from moto.server import ThreadedMotoServer

from remediator.sources.sns.verify import (
    HttpsCertificateFetcher,
    SnsVerificationError,
    SnsVerifier,
    VerifyResult,
    parse_envelope,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
async def received() -> AsyncIterator[tuple[str, asyncio.Queue[bytes]]]:
    bodies: asyncio.Queue[bytes] = asyncio.Queue()

    async def receive(request: web.Request) -> web.Response:
        await bodies.put(await request.read())
        return web.Response()

    app = web.Application()
    app.router.add_post("/webhooks/sns", receive)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("/webhooks/sns")), bodies


async def verify_published(moto_url: str, received: tuple[str, asyncio.Queue[bytes]], **message: Any) -> None:
    endpoint, bodies = received
    async with get_session().create_client(
        "sns",
        endpoint_url=moto_url,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as sns:
        # A topic per test: moto fails Publish while an earlier test's stopped receiver is subscribed.
        topic = (await sns.create_topic(Name=f"remediator-{uuid.uuid4().hex}"))["TopicArn"]
        await sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint)
        await sns.publish(TopicArn=topic, **message)
    env = parse_envelope(await asyncio.wait_for(bodies.get(), timeout=10))
    async with aiohttp.ClientSession() as session:
        fetcher = HttpsCertificateFetcher(session, mirror_base_url=moto_url)
        verifier = SnsVerifier(fetcher=fetcher, allowed_topics={topic}, clock=lambda: datetime.now(UTC))
        await verifier.verify(env)


async def test_a_moto_notification_verifies_through_the_mirror(
    moto_url: str, received: tuple[str, asyncio.Queue[bytes]]
) -> None:
    await verify_published(moto_url, received, Message='{"AlarmName": "rds-cpu"}')


async def test_moto_signs_without_the_subject_so_a_message_with_one_is_refused(
    moto_url: str, received: tuple[str, asyncio.Queue[bytes]]
) -> None:
    with pytest.raises(SnsVerificationError) as caught:
        await verify_published(moto_url, received, Message="m", Subject="ALARM")

    assert caught.value.result is VerifyResult.BAD_SIGNATURE
