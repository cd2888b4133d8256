"""The retention archive: what is about to be deleted, exported first to S3.

One object per day and kind and purge run, JSON Lines compressed with gzip, written with SSE-KMS
under the configured key (the archive holds patient-related data: the bucket policy should refuse
anything else, see docs/wire-formats.md, "Retention archive"). The key names the first row of the
object, so an export repeated after a crash (rows exported, not yet deleted) rewrites the same
object with the same rows or more, and never leaves two copies of one row behind one name.
"""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import Iterable
from datetime import date
from typing import Any, Protocol

import orjson

from remediator.aws.clients import AwsClients
from remediator.settings import ArchiveSettings
from remediator.stores.retention import Kind

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class DayObject:
    """The rows of one day and kind, as gzip'd JSON Lines, compressed as they are added."""

    def __init__(self) -> None:
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member
        self._parts: list[bytes] = []
        self.count = 0

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._parts.append(self._gzip.compress(orjson.dumps(row, default=str) + b"\n"))
            self.count += 1

    def body(self) -> bytes:
        return b"".join([*self._parts, self._gzip.flush()])


class Archive(Protocol):
    def archives(self, kind: Kind) -> bool: ...

    async def put(self, kind: Kind, day: date, first_key: str, body: bytes) -> str: ...


def object_key(prefix: str, kind: Kind, day: date, first_key: str) -> str:
    return f"{prefix}{kind.value}/{day:%Y/%m/%d}/{kind.value}-{day:%Y-%m-%d}-{_UNSAFE.sub('_', first_key)}.jsonl.gz"


class S3Archive:
    """Writes archive objects with the daemon's AWS clients (credentials from the standard chain)."""

    def __init__(self, settings: ArchiveSettings, clients: AwsClients) -> None:
        self.settings, self.clients = settings, clients

    def archives(self, kind: Kind) -> bool:
        return self.settings.enabled and kind.value in self.settings.kinds

    async def put(self, kind: Kind, day: date, first_key: str, body: bytes) -> str:
        key = object_key(self.settings.key_prefix, kind, day, first_key)
        client = await self.clients.client("s3", self.settings.region)
        async with asyncio.timeout(self.clients.call_timeout):
            await client.put_object(
                Bucket=self.settings.bucket, Key=key, Body=body, ContentType="application/x-ndjson",
                ContentEncoding="gzip", ServerSideEncryption="aws:kms", SSEKMSKeyId=self.settings.kms_key_id)
        return key
