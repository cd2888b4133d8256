"""The coordination contract every backend implements (DESIGN.md §4): shared, short-lived state.

`Coordination` keeps rate-limit windows, cooldowns, the kill switch, flap counters, target leases,
console sessions, circuits (`stores.circuits`) and controls (`stores.controls`). Raise
CoordinationUnavailable when it cannot be reached. One contract test suite runs against every
implementation (in-process and Redis).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from remediator.model import DecisionReason
from remediator.stores.circuits import CircuitStore
from remediator.stores.controls import ControlStore


@dataclass(frozen=True, slots=True)
class Quota:
    """One limit a request must fit: at most `limit` admissions (or distinct `member`s) per window."""

    key: str
    limit: int
    window: timedelta
    reason: DecisionReason
    member: str | None = None  # counted once however often it is admitted (blast radius)

    def describe(self) -> str:
        unit = "distinct targets" if self.member is not None else "actions"
        return f"at most {self.limit} {unit} per {_human(self.window)} for {self.key}"


def _human(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class Admission:
    admitted: bool
    denied_by: Quota | None = None
    retry_after: float = 0.0  # seconds until the denying quota would admit again


@dataclass(frozen=True, slots=True)
class Lease:
    key: str
    holder: str
    token: int  # fencing token: strictly increasing per key
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class KillSwitch:
    enabled: bool
    by: str = ""
    reason: str = ""
    at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A console sign-in, kept where every replica sees it: whose token (its digest), until when."""

    token_sha256: str
    expires_at: datetime


class Coordination(CircuitStore, ControlStore, Protocol):
    """Shared short-lived state. Raise CoordinationUnavailable when it cannot be reached."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def admit(self, quotas: Sequence[Quota], now: datetime, request_id: str = "") -> Admission:
        """All or nothing: admit (and count) every quota, or none and say which one denied.

        Idempotent per `request_id`: a quota already counting this request admits it again
        without counting it twice. Two replicas deciding the same request (the same occurrence
        delivered to both) therefore reach the same verdict, and whichever claims it first runs it.
        """

    async def kill_switch(self) -> KillSwitch: ...

    async def set_kill_switch(self, state: KillSwitch) -> None: ...

    async def record_change(self, key: str, window: timedelta, now: datetime, member: str = "") -> int:
        """Count one change of `key` (once per `member`, if given); how many happened within `window`."""

    async def recent_changes(self, key: str, window: timedelta, now: datetime) -> list[datetime]:
        """When the changes `record_change` counted for `key` within `window` happened, oldest first."""

    async def acquire_lease(self, key: str, holder: str, ttl: timedelta, now: datetime) -> Lease | None: ...

    async def release_lease(self, lease: Lease) -> bool: ...

    async def held_leases(self, now: datetime) -> list[Lease]: ...

    async def start_session(self, session_id: str, session: ConsoleSession, now: datetime) -> None: ...

    async def find_session(self, session_id: str, now: datetime) -> ConsoleSession | None:
        """The session started under `session_id` (a digest, never a cookie), unless it expired or ended."""

    async def end_session(self, session_id: str) -> None: ...
