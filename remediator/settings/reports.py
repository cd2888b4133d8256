"""Named read-only reports of a PostgreSQL target (`targets.postgres.<name>.reports`).

The DBAs write a report's SQL here, where it is reviewed with the rest of the settings; a policy
only names the report and may give values for the bind parameters the report declares, which are
validated into their declared types. Nothing from an alert ever becomes SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError, model_validator

from remediator.settings.base import IDENTIFIER_RE, PositiveDuration, Section, parse_duration

ReportParamType = Literal["text", "int", "float", "bool", "timestamp", "duration"]
BindValue = str | int | float | bool | datetime | timedelta
MAX_TEXT = 1000  # a bind value of type text is at most this long
MAX_TIMEOUT = timedelta(minutes=5)
REPORT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
ReportName = Annotated[str, Field(pattern=REPORT_NAME)]
# A report is one query: it starts with SELECT, WITH, VALUES or TABLE (after comments). The
# read-only transaction it runs in refuses writes anyway; this refuses the obvious ones at start.
_QUERY_START = re.compile(r"^\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*(select|with|values|table)\b", re.I | re.S)
_PLACEHOLDER = re.compile(r"\$([0-9]+)")
_AWARE = TypeAdapter(AwareDatetime)


class ReportParam(Section):
    """A bind parameter of a report: `$1` is the first declared, `$2` the second, and so on."""

    name: str = Field(pattern=IDENTIFIER_RE)
    type: ReportParamType = "text"
    default: str | int | float | bool | None = None  # None: every policy using the report must give it

    @model_validator(mode="after")
    def _default_fits(self) -> ReportParam:
        if self.default is not None:
            bind_value(self, self.default)
        return self


class FreshnessCheck(Section):
    """Timestamp columns of the report whose newest value must be within `max_gap` of a reference
    time (when the report runs, or the time a policy gives): the runbook's integrity check after a
    failover asks how far the newest patient and vital-sign rows lie behind it."""

    columns: list[str] = Field(min_length=1, max_length=20)
    max_gap: PositiveDuration


class NamedReport(Section):
    """One named query, run by `postgres.report` in a read-only transaction."""

    description: str = Field("", max_length=300)
    sql: str = Field(min_length=1, max_length=20_000)
    params: list[ReportParam] = Field([], max_length=20)
    max_rows: int = Field(100, ge=1, le=1000)
    timeout: PositiveDuration = timedelta(seconds=5)
    freshness: FreshnessCheck | None = None

    @model_validator(mode="after")
    def _one_query_with_its_params(self) -> NamedReport:
        if not _QUERY_START.match(self.sql):
            raise ValueError("sql must be one query starting with SELECT, WITH, VALUES or TABLE")
        if self.timeout > MAX_TIMEOUT:
            raise ValueError(f"timeout must be at most {MAX_TIMEOUT}")
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError("params must have distinct names")
        used = {int(n) for n in _PLACEHOLDER.findall(self.sql)}
        declared = set(range(1, len(self.params) + 1))
        if used != declared:
            raise ValueError(f"sql uses {_placeholders(used)} but params declares {_placeholders(declared)} "
                             "($1 is the first declared parameter)")
        return self


def _placeholders(numbers: set[int]) -> str:
    return ", ".join(f"${n}" for n in sorted(numbers)) or "none"


def bind_value(param: ReportParam, value: object) -> BindValue:
    """`value` (from a policy, maybe rendered from an alert) as the declared type; ValueError if it is not."""
    try:
        return _CONVERT[param.type](value)
    except (TypeError, ValueError, ValidationError) as exc:
        raise ValueError(f"{param.name}: {value!r} is not a {param.type}") from exc


def _text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError
    text = str(value)
    if len(text) > MAX_TEXT:
        raise ValueError
    return text


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError
    return int(value)


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError
    return float(value)


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TypeError


def _timestamp(value: object) -> datetime:
    return _AWARE.validate_python(value)


_CONVERT: dict[str, Callable[[object], BindValue]] = {
    "text": _text, "int": _int, "float": _float, "bool": _bool, "timestamp": _timestamp, "duration": parse_duration}
