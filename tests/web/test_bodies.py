"""Compressed bodies over real HTTP (web/bodies.py): inflated only after authentication, never past
the limit, and refused with a clear 4xx when corrupt, unknown, or sent where credentials are
inside the body (SNS). Nothing is recorded when a body is refused.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import pytest
from aiohttp import ClientResponse

from remediator.settings import token_digest
from remediator.web.bodies import INFLATE_STEP
from tests.conftest import corpus_file
from tests.support.alertmanager import gzip_bomb
from tests.support.daemon import Daemon, DaemonFactory
from tests.support.sns import CertMirror, SnsDaemonFactory, nothing_recorded, post, signed

BEARER = {"Authorization": "Bearer am-secret"}
PAYLOAD = corpus_file("am-v0.25-firing-2-alerts.json").read_bytes()
LIMIT = 64 * 1024  # max_body_bytes of these daemons


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


async def start(start_daemon: DaemonFactory) -> Daemon:
    daemon: Daemon = await start_daemon(max_body_bytes=LIMIT)
    return daemon


async def send(start_daemon: DaemonFactory, body: bytes, coding: str) -> tuple[Daemon, ClientResponse]:
    """A fresh daemon, and its answer to `body` sent with credentials under `coding`."""
    daemon = await start(start_daemon)
    response = await daemon.client.post("/webhooks/alertmanager", data=body,
                                        headers={**BEARER, "Content-Encoding": coding})
    return daemon, response


def inflated(daemon: Daemon) -> float:
    return daemon.metric("remediator_webhook_inflated_bytes_total", source="alertmanager")


ACCEPTED = [
    ("gzip", gzip.compress(PAYLOAD)),
    ("x-gzip", gzip.compress(PAYLOAD)),
    ("GZIP", gzip.compress(PAYLOAD)),
    ("deflate", zlib.compress(PAYLOAD)),  # the zlib framing HTTP names "deflate"
    ("deflate", raw_deflate(PAYLOAD)),  # and the headerless one some clients send under that name
    ("identity", PAYLOAD),
    ("gzip", gzip.compress(PAYLOAD[:100]) + gzip.compress(PAYLOAD[100:])),  # two gzip members
]


@pytest.mark.parametrize(("coding", "body"), ACCEPTED)
async def test_an_authenticated_compressed_body_is_inflated_recorded_and_acknowledged(
    start_daemon: DaemonFactory, coding: str, body: bytes
) -> None:
    daemon, response = await send(start_daemon, body, coding)
    # The server hands the handler the bytes as sent: had it inflated them itself, they would not
    # inflate a second time and this would be a 400.
    assert (response.status, await response.json()) == (200, {"accepted": 2, "duplicates": 0})
    assert daemon.count("alerts") == 2
    assert inflated(daemon) == (0 if coding == "identity" else len(PAYLOAD))


async def test_a_bomb_without_credentials_is_401_and_nothing_is_inflated(start_daemon: DaemonFactory) -> None:
    daemon = await start(start_daemon)
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = await daemon.client.post("/webhooks/alertmanager", data=gzip_bomb(32 * 1024 * 1024),
                                            headers={**headers, "Content-Encoding": "gzip"})
        assert response.status == 401
    assert inflated(daemon) == 0
    assert daemon.count("alerts") == 0


async def test_a_bomb_with_credentials_is_413_once_the_limit_is_passed(start_daemon: DaemonFactory) -> None:
    daemon = await start(start_daemon)
    body = gzip_bomb(32 * 1024 * 1024)  # 32 MiB of zeros in about 32 KiB: within the limit as sent
    assert len(body) < LIMIT
    response = await daemon.client.post("/webhooks/alertmanager", data=body,
                                        headers={**BEARER, "Content-Encoding": "gzip"})
    answer = await response.json()
    assert (response.status, answer["error"]) == (413, "too_large")
    assert "inflates past the limit" in answer["detail"]
    # It stopped within one step of the limit, not at the bomb's 64 MiB.
    assert LIMIT < inflated(daemon) <= LIMIT + INFLATE_STEP
    assert daemon.count("alerts") == 0
    assert daemon.metric("remediator_webhook_rejected_total", source="alertmanager", reason="too_large") == 1


async def test_a_compressed_body_over_the_limit_as_sent_is_413_before_inflating(
    start_daemon: DaemonFactory,
) -> None:
    daemon = await start(start_daemon)
    noise = gzip.compress(bytes(range(256)) * (LIMIT // 128), compresslevel=0)  # does not compress
    assert len(noise) > LIMIT
    response = await daemon.client.post("/webhooks/alertmanager", data=noise,
                                        headers={**BEARER, "Content-Encoding": "gzip"})
    assert response.status == 413
    assert daemon.count("alerts") == 0


CORRUPT = [
    ("gzip", b"this was never gzip"),
    ("gzip", gzip.compress(PAYLOAD)[:-30]),  # truncated: the stream never ends
    ("gzip", gzip.compress(PAYLOAD)[:20] + bytes(40) + gzip.compress(PAYLOAD)[60:]),  # damaged inside
    ("gzip", gzip.compress(PAYLOAD) + b"trailing junk"),
    ("deflate", zlib.compress(PAYLOAD) + b"trailing junk"),
    ("deflate", zlib.compress(PAYLOAD)[:-8]),
    ("deflate", b"\x78\x9c" + bytes(50)),
    ("gzip", b""),
    ("gzip", gzip.compress(b"not JSON at all")),  # inflates fine; the JSON is what is wrong
]


@pytest.mark.parametrize(("coding", "body"), CORRUPT)
async def test_a_corrupt_encoding_is_400_and_nothing_is_recorded(
    start_daemon: DaemonFactory, coding: str, body: bytes
) -> None:
    daemon, response = await send(start_daemon, body, coding)
    answer = await response.json()
    assert response.status == 400, answer
    assert answer["error"] in ("corrupt_encoding", "malformed_json") and answer["detail"]
    assert daemon.count("alerts") == 0 and daemon.count("incidents") == 0


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, gzip", "gzip, deflate", "identity, gzip"])
async def test_an_unknown_or_stacked_encoding_is_415_and_nothing_is_recorded(
    start_daemon: DaemonFactory, coding: str
) -> None:
    daemon = await start(start_daemon)
    response = await daemon.client.post("/webhooks/alertmanager", data=gzip.compress(PAYLOAD),
                                        headers={**BEARER, "Content-Encoding": coding})
    answer = await response.json()
    assert (response.status, answer["error"]) == (415, "unsupported_encoding")
    assert "gzip" in answer["detail"]  # it says what would be accepted
    assert daemon.count("alerts") == 0 and inflated(daemon) == 0
    assert daemon.metric("remediator_webhook_rejected_total", source="alertmanager",
                         reason="unsupported_encoding") == 1


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "x-anything"])
async def test_sns_refuses_any_encoding_but_identity_with_415(
    start_sns_daemon: SnsDaemonFactory, cert_mirror: CertMirror, coding: str
) -> None:
    daemon = await start_sns_daemon()
    message = signed(Message="an alarm")  # valid and signed: only its encoding is wrong
    status, answer = await post(daemon, gzip.compress(message), headers={"Content-Encoding": coding})
    assert (status, answer["error"]) == (415, "unsupported_encoding")
    assert nothing_recorded(daemon)
    assert cert_mirror.certificate_fetches == []  # refused before verification began
    assert daemon.metric("remediator_sns_deliveries_total", type="unknown", result="unsupported_encoding") == 1
    status, _ = await post(daemon, message, headers={"Content-Encoding": "identity"})
    assert status == 200


async def test_sns_raw_delivery_paths_refuse_encodings_too(start_sns_daemon: SnsDaemonFactory) -> None:
    raw: dict[str, Any] = {"path": "/webhooks/sns/raw", "topic_arn": "arn:aws:sns:us-east-1:123456789012:raw",
                           "secret": "raw-path-secret-0123456789"}
    daemon = await start_sns_daemon(sns={"raw_delivery": [raw]})
    headers = {"Authorization": f"Bearer {raw['secret']}", "Content-Encoding": "gzip"}
    status, answer = await post(daemon, gzip.compress(b"disk full"), path=raw["path"], headers=headers)
    assert (status, answer["error"]) == (415, "unsupported_encoding")
    assert nothing_recorded(daemon)


async def test_the_api_refuses_compressed_bodies_and_changes_nothing(start_daemon: DaemonFactory) -> None:
    root = "root-bodies-token"
    daemon: Daemon = await start_daemon(api={"tokens": [{"name": "root", "sha256": token_digest(root),
                                                          "roles": ["admin"]}]})
    response = await daemon.admin.post("/api/v1/killswitch", data=gzip.compress(b'{"enabled": true, "reason": "x"}'),
                                       headers={"Authorization": f"Bearer {root}", "Content-Encoding": "gzip"})
    assert (response.status, (await response.json())["error"]) == (415, "unsupported_encoding")
    state = await daemon.admin.get("/api/v1/killswitch", headers={"Authorization": f"Bearer {root}"})
    assert (await state.json())["enabled"] is False  # the switch was not thrown
