"""Alertmanager webhook bodies (payload version 4) for tests that go through the real intake."""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Mapping
from datetime import datetime

import orjson


def webhook_body(
    name: str, labels: Mapping[str, str], *, status: str = "firing", fingerprint: str, starts_at: datetime,
    summary: str = "", group: str = "",
) -> bytes:
    alert = {
        "status": status, "labels": {"alertname": name, **labels}, "annotations": {"summary": summary or name},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"), "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph", "fingerprint": fingerprint,
    }
    return orjson.dumps({
        "version": "4", "status": status, "receiver": "remediator", "groupKey": group or f'{{}}:{{alertname="{name}"}}',
        "groupLabels": {"alertname": name}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example", "alerts": [alert],
    })


# -- bodies of a given size, and bombs ---------------------------------------------------------------
def _document(alerts: list[dict[str, object]]) -> dict[str, object]:
    return {"version": "4", "status": "firing", "receiver": "remediator", "groupKey": '{}:{alertname="Sized"}',
            "groupLabels": {"alertname": "Sized"}, "alerts": alerts}


def _minimal_alert(fingerprint: str) -> dict[str, object]:
    return {"status": "firing", "labels": {"alertname": "Sized"}, "startsAt": "2026-01-05T09:00:00Z",
            "fingerprint": fingerprint}


def many_alerts_body(size: int, tag: str) -> tuple[bytes, int]:
    """A valid body of exactly `size` bytes holding as many (small, distinct) alerts as fit; and
    how many. Fingerprints are `tag` plus a fixed-width counter, so every alert is the same size."""
    empty = len(orjson.dumps(_document([])))
    one = len(orjson.dumps(_minimal_alert(f"{tag}{0:08x}")))
    count = (size - empty + 1) // (one + 1)  # alerts are separated by commas
    body = orjson.dumps(_document([_minimal_alert(f"{tag}{n:08x}") for n in range(count)]))
    assert len(body) <= size, (len(body), size)
    return body + b" " * (size - len(body)), count  # JSON may end in whitespace


def one_large_alert_body(size: int, fingerprint: str) -> bytes:
    """A valid body of exactly `size` bytes: one alert whose summary takes all the room (the
    summary is also the alert's `summary`, so its parsed form is about twice the body)."""
    alert = {**_minimal_alert(fingerprint), "annotations": {"summary": ""}}
    room = size - len(orjson.dumps(_document([alert])))
    alert["annotations"] = {"summary": "s" * room}
    body = orjson.dumps(_document([alert]))
    assert len(body) == size
    return body


@functools.cache
def gzip_bomb(inflated: int) -> bytes:
    """One gzip stream of `inflated` zero bytes (in whole MiB, at least 2): about a thousandth on
    the wire. Built from one compressed MiB repeated (each ends in a full flush, which makes the
    next MiB compress to the same bytes), so a GiB takes a second, not half a minute."""
    block = bytes(1024 * 1024)
    blocks = inflated // len(block)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    first = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    middle = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    last = packer.compress(block) + packer.flush()
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (blocks * len(block)) & 0xFFFFFFFF)
    return header + first + middle * (blocks - 2) + last + trailer
