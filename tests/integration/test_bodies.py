"""Bodies against `remediator serve` in its default process layout (the core and one intake process).

Compressed bodies: a gzip bomb (1 MB inflating to about 1 GiB) without credentials is refused before a byte is inflated,
with credentials it is refused as soon as it inflates past `max_body_bytes`; corrupt and unknown
encodings are 4xx without a traceback in the log; SNS takes no encoding. Nothing of these is
recorded. And every valid body within `max_body_bytes` is recorded and acknowledged, alone or with
others: the intake hands the core any body the public limit accepts.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from remediator.web.bodies import INFLATE_STEP
from tests.support.alertmanager import gzip_bomb, many_alerts_body, one_large_alert_body
from tests.support.process import DaemonProcess

pytestmark = pytest.mark.integration

TOKEN = "am-bodies-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
LIMIT = 1024 * 1024  # max_body_bytes by default
BOMB = 1000 * 1024 * 1024  # inflated: about a GiB, from just under a MiB (deflate's best is about 1:1030)


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    (tmp_path / "policies").mkdir()
    process = DaemonProcess({
        "listen": {"port": 0}, "admin_listen": {"port": 0}, "policies_dir": str(tmp_path / "policies"),
        "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"}, "alertmanager": {"bearer_tokens": [TOKEN]},
    }, tmp_path)
    process.start()
    try:
        yield process
    finally:
        assert process.terminate() == 0


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


def db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "remediator.db")


def recorded(tmp_path: Path) -> tuple[int, int]:
    """(alerts, distinct dedup keys) on disk."""
    with db(tmp_path) as conn:
        alerts = conn.execute("SELECT count(*) FROM alerts").fetchone()[0]
        keys = conn.execute("SELECT count(DISTINCT key) FROM alert_keys").fetchone()[0]
    return int(alerts), int(keys)


async def post(http: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    async with http.post(url, data=body, headers=headers) as answer:
        return answer.status, await answer.json()


async def metric(http: aiohttp.ClientSession, daemon: DaemonProcess, name: str, labels: str = "") -> float:
    async with http.get(daemon.admin_url + "/metrics") as answer:
        text = await answer.text()
    for line in text.splitlines():
        if line.startswith(f"{name}{{{labels}}} " if labels else f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def inflated(http: aiohttp.ClientSession, daemon: DaemonProcess) -> float:
    return await metric(http, daemon, "remediator_webhook_inflated_bytes_total", 'source="alertmanager"')


async def wait_for_rejections(http: aiohttp.ClientSession, daemon: DaemonProcess, reason: str, count: int,
                              source: str = "alertmanager") -> None:
    """Intake processes relay their counters to the core every second."""
    labels = f'reason="{reason}",source="{source}"'

    async def counted() -> bool:
        return await metric(http, daemon, "remediator_webhook_rejected_total", labels) >= count

    await daemon.wait_for(counted, f"{count} rejections ({reason}) in /metrics")


def traceback_lines(daemon: DaemonProcess) -> list[str]:
    found = []
    for line in daemon.lines:
        event = json.loads(line)  # every line is JSON (test_log_lines.py), so this must not fail
        if "traceback" in event or event["level"] in ("error", "critical"):
            found.append(line)
    return found


async def test_a_gzip_bomb_without_credentials_is_401_and_nothing_is_inflated(
    daemon: DaemonProcess, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    bomb = gzip_bomb(BOMB)
    assert len(bomb) <= LIMIT
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        status, answer = await post(http, daemon.url + "/webhooks/alertmanager", bomb,
                                    {**headers, "Content-Encoding": "gzip"})
        assert (status, answer["error"]) == (401, "unauthorized")
    await wait_for_rejections(http, daemon, "unauthorized", 2)
    assert await inflated(http, daemon) == 0
    assert recorded(tmp_path) == (0, 0)


async def test_a_gzip_bomb_with_credentials_is_413_within_one_step_of_the_limit(
    daemon: DaemonProcess, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    status, answer = await post(http, daemon.url + "/webhooks/alertmanager", gzip_bomb(BOMB),
                                {**BEARER, "Content-Encoding": "gzip"})
    assert (status, answer["error"]) == (413, "too_large")
    await wait_for_rejections(http, daemon, "too_large", 1)
    # Stopped as soon as it passed the limit: about a thousandth of the bomb was inflated.
    assert LIMIT < await inflated(http, daemon) <= LIMIT + INFLATE_STEP
    assert recorded(tmp_path) == (0, 0)
    # and the intake still serves: a compressed, valid body is recorded.
    body, count = many_alerts_body(4096, "after-bomb-")
    status, answer = await post(http, daemon.url + "/webhooks/alertmanager", gzip.compress(body),
                                {**BEARER, "Content-Encoding": "gzip"})
    assert (status, answer) == (200, {"accepted": count, "duplicates": 0})


async def test_corrupt_and_unknown_encodings_are_4xx_without_a_traceback_and_sns_takes_none(
    daemon: DaemonProcess, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    valid, _ = many_alerts_body(4096, "never-")
    cases = [
        ("gzip", b"\x1f\x8b\x08\x00garbage that is not deflate", 400, "corrupt_encoding"),
        ("gzip", gzip.compress(valid)[:-40], 400, "corrupt_encoding"),
        ("deflate", b"\x78\x9c\xff\xff\xff\xff not deflate", 400, "corrupt_encoding"),
        ("deflate", zlib.compress(valid) + b"junk", 400, "corrupt_encoding"),
        ("br", gzip.compress(valid), 415, "unsupported_encoding"),
        ("gzip, br", gzip.compress(valid), 415, "unsupported_encoding"),
    ]
    for coding, body, status, error in cases:
        got, answer = await post(http, daemon.url + "/webhooks/alertmanager", body,
                                 {**BEARER, "Content-Encoding": coding})
        assert (got, answer["error"]) == (status, error), coding
    # SNS: whatever the encoding, 415 before the envelope is even read.
    for coding in ("gzip", "deflate", "br"):
        got, answer = await post(http, daemon.url + "/webhooks/sns", gzip.compress(b'{"Type": "Notification"}'),
                                 {"Content-Type": "text/plain; charset=UTF-8", "Content-Encoding": coding})
        assert (got, answer["error"]) == (415, "unsupported_encoding"), coding
    await wait_for_rejections(http, daemon, "bad_request", 4)
    await wait_for_rejections(http, daemon, "unsupported_encoding", 2)
    await wait_for_rejections(http, daemon, "unsupported_encoding", 3, source="sns")
    assert recorded(tmp_path) == (0, 0)
    assert traceback_lines(daemon) == []


async def test_a_body_of_exactly_max_body_bytes_is_recorded(
    daemon: DaemonProcess, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    body = one_large_alert_body(LIMIT, "exactly-the-limit")  # its parsed form is about twice the body
    assert len(body) == LIMIT
    assert await post(http, daemon.url + "/webhooks/alertmanager", body, BEARER) == \
        (200, {"accepted": 1, "duplicates": 0})
    assert recorded(tmp_path) == (1, 1)
    # One byte more is refused, and nothing more is recorded.
    status, answer = await post(http, daemon.url + "/webhooks/alertmanager", body + b" ", BEARER)
    assert (status, answer["error"]) == (413, "too_large")
    assert recorded(tmp_path) == (1, 1)


async def test_one_byte_under_the_limit_with_as_many_alerts_as_fit_is_recorded_once(
    daemon: DaemonProcess, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    body, count = many_alerts_body(LIMIT - 1, "under-")
    assert len(body) == LIMIT - 1 and count > 9000  # parsed, they are several hand-off calls' worth
    assert await post(http, daemon.url + "/webhooks/alertmanager", body, BEARER) == \
        (200, {"accepted": count, "duplicates": 0})
    assert recorded(tmp_path) == (count, count)
    # Delivered again (Alertmanager retries what it was not sure of): all duplicates, nothing new.
    assert await post(http, daemon.url + "/webhooks/alertmanager", body, BEARER) == \
        (200, {"accepted": 0, "duplicates": count})
    assert recorded(tmp_path) == (count, count)


async def test_eight_concurrent_bodies_of_half_the_limit_are_all_recorded_once(
    daemon: DaemonProcess, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    bodies = [many_alerts_body(LIMIT // 2, f"c{n}-") for n in range(8)]
    answers = await asyncio.gather(*(post(http, daemon.url + "/webhooks/alertmanager", body, BEARER)
                                     for body, _ in bodies))
    assert answers == [(200, {"accepted": count, "duplicates": 0}) for _, count in bodies]
    total = sum(count for _, count in bodies)
    assert recorded(tmp_path) == (total, total)
