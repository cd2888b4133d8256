"""The store and coordination protocols every backend implements (DESIGN.md §4).

`Store` keeps the durable record: alerts (with their dedup keys), incidents and their timeline,
action requests with their claims, the audit trail and timers. `Coordination` keeps the shared,
short-lived state: rate-limit windows, cooldowns, the kill switch, flap counters and target leases.
One contract test suite runs against every implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from remediator.model import (
    ActionRequest,
    Alert,
    AuditRecord,
    DecisionReason,
    Incident,
    IncidentStatus,
    Phase,
    Severity,
    TimelineEvent,
)


class RequestState(StrEnum):
    CLAIMED = "claimed"  # one replica owns the decision; nothing has run
    RUNNING = "running"  # the action may have touched the target
    DONE = "done"
    UNKNOWN = "unknown"  # the owner died while running: a human must look


@dataclass(frozen=True, slots=True)
class Correlation:
    """What correlating one alert did to its incident."""

    incident: Incident | None
    opened: bool = False
    resolved: bool = False
    stale: bool = False  # an older occurrence arriving after a newer one: recorded, not acted on
    severity_raised: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """An alert to correlate, with the severity and names of the policies it matched."""

    alert: Alert
    severity: Severity
    matched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Timer:
    """A durable, once-only wake-up (verification, escalation, approval expiry, WAF unblock...)."""

    id: str
    kind: str
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredRequest:
    request: ActionRequest
    state: RequestState
    holder: str
    claimed_at: datetime


class Store(Protocol):
    """The durable record. Every write is committed before its coroutine returns."""

    holder: str  # this process's identity in claims

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless a write would succeed now."""

    # -- alerts ---------------------------------------------------------------------------------
    async def record_alerts(self, alerts: Sequence[Alert], lease_until: datetime) -> list[bool]:
        """Store each alert unless one of its dedup keys is known; True per alert that was new.

        New alerts are claimed for processing by this holder until `lease_until`.
        """

    async def claim_backlog(
        self, now: datetime, lease_until: datetime, limit: int, exclude: Collection[str] = ()
    ) -> list[Alert]:
        """Unprocessed alerts whose processing claim is free or expired, oldest first, now claimed."""

    async def mark_processed(self, alert_ids: Sequence[str], now: datetime) -> None: ...

    async def count_unprocessed(self) -> int: ...

    async def release_alerts(self, alert_ids: Sequence[str]) -> None:
        """Give up this holder's processing claims (a graceful stop hands work back)."""

    async def get_alert(self, alert_id: str) -> Alert | None: ...

    # -- incidents ------------------------------------------------------------------------------
    async def correlate(self, alert: Alert, severity: Severity, now: datetime) -> Correlation:
        """Open, update or resolve the incident of `alert.group_key`; idempotent per alert."""

    async def correlate_many(self, observations: Sequence[Observation], now: datetime) -> list[Correlation]:
        """`correlate` for several alerts in order, in one transaction. An alert that matched
        policies also adds a `matched` event and moves its (open) incident to triage."""

    async def add_events(self, events: Sequence[TimelineEvent]) -> None: ...

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def list_incidents(self, status: IncidentStatus | None = None, limit: int = 100) -> list[Incident]: ...

    async def timeline(self, incident_id: str) -> list[TimelineEvent]: ...

    async def open_incident_counts(self) -> dict[Severity, int]: ...

    async def update_phase(
        self, incident_id: str, phase: Phase, at: datetime, events: Sequence[TimelineEvent] = ()
    ) -> Incident | None:
        """Advance an incident's phase (never backwards) and add events, in one transaction."""

    # -- requests, executions, audit --------------------------------------------------------------
    async def claim_request(self, request: ActionRequest, now: datetime) -> bool:
        """Take ownership of a request; False when any replica has it already (never act twice)."""

    async def claim_requests(self, requests: Sequence[ActionRequest], now: datetime) -> list[bool]:
        """`claim_request` for several requests in one transaction; one answer per request."""

    async def start_execution(self, request_id: str, now: datetime) -> None:
        """Mark a claimed request as running: from here a crash leaves it UNKNOWN."""

    async def finish_request(self, record: AuditRecord, events: Sequence[TimelineEvent] = ()) -> None:
        """Write the request's one audit record and its timeline events, and mark it done."""

    async def finish_requests(self, records: Sequence[AuditRecord], events: Sequence[TimelineEvent] = ()) -> None:
        """`finish_request` for several requests in one transaction."""

    async def reconcile_running(self, now: datetime) -> list[StoredRequest]:
        """Requests left RUNNING by a dead process: mark them UNKNOWN (with their audit record)."""

    async def get_request(self, request_id: str) -> StoredRequest | None: ...

    async def get_audit(self, request_id: str) -> AuditRecord | None: ...

    async def list_audit(self, incident_id: str | None = None, limit: int = 100) -> list[AuditRecord]: ...

    # -- timers ---------------------------------------------------------------------------------
    async def schedule_timer(self, timer: Timer) -> bool:
        """Store a timer unless one with its id exists; True when it was new."""

    async def claim_due_timers(self, now: datetime, lease_until: datetime, limit: int) -> list[Timer]:
        """Due timers no live process holds, claimed by this holder (each fires once)."""

    async def complete_timer(self, timer_id: str, now: datetime) -> None: ...

    async def cancel_timers(self, prefix: str) -> int:
        """Cancel pending timers whose id starts with `prefix`; how many were cancelled."""


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


class Coordination(Protocol):
    """Shared short-lived state. Raise CoordinationUnavailable when it cannot be reached."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None: ...

    async def admit(self, quotas: Sequence[Quota], now: datetime) -> Admission:
        """All or nothing: admit (and count) every quota, or none and say which one denied."""

    async def kill_switch(self) -> KillSwitch: ...

    async def set_kill_switch(self, state: KillSwitch) -> None: ...

    async def record_change(self, key: str, window: timedelta, now: datetime) -> int:
        """Count one state change of `key`; how many happened within `window` (flap control)."""

    async def acquire_lease(self, key: str, holder: str, ttl: timedelta, now: datetime) -> Lease | None: ...

    async def release_lease(self, lease: Lease) -> bool: ...

    async def held_leases(self, now: datetime) -> list[Lease]: ...
