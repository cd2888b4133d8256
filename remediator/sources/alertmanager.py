"""Alertmanager webhook payload version 4 → `Alert`s (docs/wire-formats.md §5).

Strict about shape (every problem is a 400 that names the field), lenient about what newer
versions add (`notification_reason`, `routeLabels`, ...). Legacy payloads without `fingerprint`
get the fingerprint Alertmanager itself would compute (FNV-1a over the sorted label set), so an
alert keeps its identity when Alertmanager is upgraded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from remediator.errors import BadRequest
from remediator.model import Alert, AlertStatus

SOURCE = "alertmanager"
ZERO_TIME = "0001-01-01T00:00:00Z"
FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211
MASK = (1 << 64) - 1
# Every alert of a body carries its group's correlation key: a longer one is replaced by its digest,
# so that a body's parsed alerts stay within a small multiple of the body (a 500 KB groupKey times
# the 5,000 alerts that fit beside it would otherwise be 2.5 GB to hand over and store).
CORRELATION_KEY_MAX = 1024


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Prometheus `LabelSet.Fingerprint()`: FNV-1a 64 over `name 0xff value 0xff`, names sorted."""
    h = FNV_OFFSET
    for name in sorted(labels):
        for chunk in (name.encode(), b"\xff", labels[name].encode(), b"\xff"):
            for byte in chunk:
                h = ((h ^ byte) * FNV_PRIME) & MASK
    return f"{h:016x}"


def _bad(where: str, problem: str) -> BadRequest:
    return BadRequest(400, "invalid_payload", f"{where}: {problem}")


def _string_map(value: Any, where: str, *, required: bool) -> dict[str, str]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _bad(where, "must be an object of strings")
    for key, item in value.items():
        if not isinstance(item, str):
            raise _bad(f"{where}.{key}", "must be a string")
    return value


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise _bad(where, "must be an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad(where, f"{value[:40]!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise _bad(where, "has no time zone")
    return parsed.astimezone(UTC)


def parse_alertmanager(body: bytes, received_at: datetime) -> list[Alert]:
    """Decode and validate a webhook body; raise BadRequest (400) naming the first problem."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, "malformed_json", f"the body is not JSON ({exc})") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, "invalid_payload", "the body must be a JSON object")
    version = payload.get("version")
    if version != "4":
        raise _bad("version", f"must be \"4\" (Alertmanager webhook payload version 4), got {version!r}")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise _bad("alerts", "must be a list")
    group_labels = _string_map(payload.get("groupLabels"), "groupLabels", required=False)
    group_key = payload.get("groupKey")
    if group_key is not None and not isinstance(group_key, str):
        raise _bad("groupKey", "must be a string")
    receiver = payload.get("receiver", "")
    if not isinstance(receiver, str):
        raise _bad("receiver", "must be a string")
    correlation = f"{SOURCE}:{group_key or receiver + ':' + label_fingerprint(group_labels)}"
    if len(correlation) > CORRELATION_KEY_MAX:
        correlation = f"{SOURCE}:sha256:{hashlib.sha256(correlation.encode()).hexdigest()}"
    return [_alert(item, f"alerts[{i}]", correlation, received_at) for i, item in enumerate(alerts)]


def _alert(item: Any, where: str, group_key: str, received_at: datetime) -> Alert:
    if not isinstance(item, dict):
        raise _bad(where, "must be an object")
    status = item.get("status")
    if status not in ("firing", "resolved"):
        raise _bad(f"{where}.status", f"must be \"firing\" or \"resolved\", got {status!r}")
    labels = _string_map(item.get("labels"), f"{where}.labels", required=True)
    name = labels.get("alertname")
    if not name:
        raise _bad(f"{where}.labels.alertname", "is missing")
    annotations = _string_map(item.get("annotations"), f"{where}.annotations", required=False)
    starts_at = _time(item.get("startsAt"), f"{where}.startsAt")
    ends_raw = item.get("endsAt")
    ends_at = None if ends_raw in (None, "", ZERO_TIME) else _time(ends_raw, f"{where}.endsAt")
    fingerprint = item.get("fingerprint")
    if fingerprint is None:
        fingerprint = label_fingerprint(labels)
    elif not isinstance(fingerprint, str) or not fingerprint:
        raise _bad(f"{where}.fingerprint", "must be a non-empty string")
    stamp = starts_at.isoformat(timespec="microseconds")
    return Alert(
        source=SOURCE, name=name, status=AlertStatus(status), fingerprint=fingerprint,
        dedup_keys=(f"{SOURCE}:{fingerprint}:{stamp}:{status}",), group_key=group_key,
        starts_at=starts_at, ends_at=ends_at, received_at=received_at, labels=labels, annotations=annotations,
        summary=annotations.get("summary") or annotations.get("description", ""),
    )
