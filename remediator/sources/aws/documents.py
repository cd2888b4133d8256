"""Lenient reading of AWS JSON documents, shared by the CloudWatch, EventBridge and RDS parsers.

AWS payloads gain fields, lose old ones and use `null`, `""` and "missing" interchangeably
(docs/wire-formats.md §6). Everything here therefore accepts `object` and never raises on an unexpected
type: a wrong type reads as "not given". Label values must always be strings, so `text` is the one
way a JSON value becomes a label.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

LABEL_MAX = 1024  # a label is for matching; longer text belongs in an annotation
SUMMARY_MAX = 256
REASON_LABEL_MAX = 512

# `us-east-1`, `eu-south-1`, `us-gov-west-1`, `cn-north-1`, `us-isob-east-1` ... A placeholder such
# as `REGION` (AWS samples) or `<region>` (LocalStack snapshots) is not a region code.
_REGION_CODE = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
_EMPTY: Mapping[str, Any] = {}


def mapping(value: object) -> Mapping[str, Any]:
    """`value` if it is a JSON object, else an empty mapping."""
    return value if isinstance(value, Mapping) else _EMPTY


def items(value: object) -> Sequence[Any]:
    """`value` if it is a JSON array, else an empty sequence."""
    return value if isinstance(value, list | tuple) else ()


def text(value: object) -> str:
    """A JSON scalar as label text; `null`, objects and arrays read as ""."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    return ""


def number_text(value: float) -> str:
    """One spelling per number, so `15`, `15.0` and `1.5e1` all match the policy value "15"."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def clip(value: str, limit: int) -> str:
    """`value` cut to at most `limit` characters, marking the cut with an ellipsis."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def joined(values: Sequence[str], limit: int = LABEL_MAX) -> str:
    """Non-empty `values` joined with commas, bounded like any label."""
    return clip(",".join(v for v in values if v), limit)


def bounded(labels: Mapping[str, str]) -> dict[str, str]:
    """Labels with every value clipped to `LABEL_MAX` (dimension values, stop reasons ...)."""
    return {key: clip(value, LABEL_MAX) for key, value in labels.items()}


def dedup_keys(delivery_key: str, *occurrence_keys: str) -> tuple[str, ...]:
    """The delivery key first, always (`Alert.id` ends with its hash), then the occurrence keys that
    could be built ("" marks one that could not)."""
    return (delivery_key, *(key for key in occurrence_keys if key))


def loads(document: str) -> Any:
    """Decoded JSON, or None when `document` is not JSON (plain text, truncated, nested too deep)."""
    try:
        return orjson.loads(document)
    except (orjson.JSONDecodeError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class Arn:
    """The parts of `arn:<partition>:<service>:<region>:<account>:<resource>`."""

    partition: str
    service: str
    region: str
    account: str
    resource: str

    @property
    def region_code(self) -> str:
        """The region if it looks like a region code, else "" (placeholders, global ARNs)."""
        return region_code(self.region)

    @property
    def resource_name(self) -> str:
        """The last part of the resource: `cluster/prod` → `prod`, `db:main` → `main`."""
        return re.split(r"[/:]", self.resource, maxsplit=1)[-1]


def region_code(value: str) -> str:
    """`value` if it looks like a region code (`eu-south-1`), else ""."""
    return value if _REGION_CODE.fullmatch(value) else ""


def parse_arn(value: object) -> Arn | None:
    """The ARN's parts, or None if `value` is not an ARN."""
    if not isinstance(value, str):
        return None
    parts = value.split(":", 5)  # the resource may itself contain colons (alarm names do)
    if len(parts) != 6 or parts[0] != "arn":
        return None
    return Arn(parts[1], parts[2], parts[3], parts[4], parts[5])


def as_utc(moment: datetime) -> datetime:
    """`moment` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_iso_time(value: object) -> datetime | None:
    """ISO 8601 as AWS writes it (`…Z`, `…+0000`, naive RDS `2019-01-02 12:45:06.000`) in UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):  # OverflowError: year 1 shifted out of range by an offset
        return None


def parse_http_time(value: object) -> datetime | None:
    """An RFC 1123 time (`Sat, 04 Jun 2016 05:01:10 GMT`, AWS Health) in UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(parsedate_to_datetime(value))
    except (ValueError, TypeError, IndexError, OverflowError):
        return None


def time_key(value: object) -> str:
    """A timestamp spelled one way for dedup keys, so two senders' spellings of one instant agree.

    "" when `value` is not a time: a key built without a real time would match every other
    occurrence of the same thing, so callers leave such a key out.
    """
    parsed = parse_iso_time(value)
    return parsed.isoformat(timespec="milliseconds") if parsed else ""
