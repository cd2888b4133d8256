"""What every settings section is made of: the section base, durations, window limits."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
)

DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """`90s`, `15m`, `1h30m`, `2d`, a number of seconds, a timedelta, or ISO 8601 (`PT1H`).

    ISO 8601 is how a timedelta is dumped to JSON: parameters stored with a request must
    validate again when verify or an approval reads them back.
    """
    found = _parse(value)
    if found < timedelta(0):
        raise ValueError(f"{value!r} is negative: a duration is never negative")
    return found


def _parse(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and value.strip().upper().startswith(("P", "-P")):
        return _ISO_DURATION.validate_python(value.strip())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a duration like 30s, 15m, 1h or 2d")
    text, total, number = value.strip().lower(), 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in DURATION_UNITS or not number:
            raise ValueError(f"{value!r} is not a duration like 30s, 15m, 1h or 2d")
        total += float(number) * DURATION_UNITS[unit]
        number, i = "", i + len(unit)
    if number:
        raise ValueError(f"{value!r} lacks a unit (s, m, h, d)")
    return timedelta(seconds=total)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


_ISO_DURATION = TypeAdapter(timedelta)
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]  # zero allowed (e.g. no cooldown)
# Timeouts, intervals, leases, windows and targets: zero would mean "never wait" or "always late".
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(_positive)]
IDENTIFIER_RE = r"^[a-z_][a-z0-9_]{0,62}$"  # a lower-case SQL identifier that needs no quoting


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowLimit(Section):
    max: int = Field(ge=0)
    window: PositiveDuration

def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
