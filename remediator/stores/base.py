"""The store and coordination protocols every backend implements (DESIGN.md §4).

`Store` keeps the durable record: alerts (with their dedup keys), incidents and their timeline,
action requests with their claims, the audit trail, approvals with their votes, timers, and the
ledger of WAF blocks remediator placed.
`Coordination` keeps the shared, short-lived state: rate-limit windows, cooldowns, the kill switch,
flap counters, target leases and console sessions.
One contract test suite runs against every implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from remediator.incidents.approvals import VoteEffect
from remediator.incidents.lifecycle import Command, CommandEffect
from remediator.model import (
    ActionRequest,
    Alert,
    Approval,
    ApprovalStatus,
    AuditRecord,
    DecisionReason,
    Incident,
    IncidentStatus,
    Phase,
    Severity,
    TimelineEvent,
    Vote,
    WafBlock,
    stable_id,
)
from remediator.stores.circuits import CircuitStore
from remediator.stores.controls import ControlStore
from remediator.stores.retention import RetentionStore


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
    # This alert was correlated before (a replay after a crash): the flags above are all False and
    # `incident` is its incident as it is now, so whatever follows correlation must be idempotent.
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """An alert to correlate, with the severity and names of the policies it matched."""

    alert: Alert
    severity: Severity
    matched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decided:
    """A request with its audit record and timeline events, decided without acting."""

    request: ActionRequest
    record: AuditRecord
    events: tuple[TimelineEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Timer:
    """A durable, once-only wake-up (verification, escalation, approval expiry, WAF unblock...)."""

    id: str
    kind: str
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)


WAF_EXPIRY_TIMER = "waf.expire"  # the kind of the timers that end WAF blocks


def waf_expiry_prefix(ip_set_arn: str, address: str) -> str:
    """What the ids of every expiry timer of one ledger entry start with."""
    return f"{WAF_EXPIRY_TIMER}:{stable_id(ip_set_arn, address)}:"


def waf_expiry_timer(block: WafBlock, attempt: int = 1, due_at: datetime | None = None) -> Timer:
    """The timer that ends `block`: one id per (entry, expiry, attempt), due at the expiry.

    A later attempt (after a failed unblock) is due when the caller says. The id carries the
    expiry, so a block extended to a later time gets a timer of its own and the old one can be
    cancelled, never confused with it; both store backends derive ids with this function.
    """
    stamp = block.expires_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return Timer(f"{waf_expiry_prefix(block.ip_set_arn, block.address)}{stamp}:{attempt}", WAF_EXPIRY_TIMER,
                 due_at or block.expires_at,
                 {"ip_set_arn": block.ip_set_arn, "address": block.address,
                  "expires_at": block.expires_at.isoformat(), "attempt": attempt})


@dataclass(frozen=True, slots=True)
class StoredRequest:
    request: ActionRequest
    state: RequestState
    holder: str
    claimed_at: datetime


class Store(RetentionStore, Protocol):
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
        """Unprocessed alerts whose claim is free, expired or a dead holder's, oldest first, now claimed."""

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

    async def is_firing(self, incident_id: str, fingerprint: str) -> bool:
        """Whether the alert with this fingerprint is in the incident's firing set now."""

    async def update_phase(
        self, incident_id: str, phase: Phase, at: datetime, events: Sequence[TimelineEvent] = ()
    ) -> Incident | None:
        """Advance an incident's phase (never backwards) and add events, in one transaction."""

    async def apply_incident_command(self, incident_id: str, command: Command, now: datetime) -> CommandEffect | None:
        """What a person does to an incident (acknowledge, note, root cause, close), in one transaction.

        Reads the incident, calls `incidents.apply_command(incident, command, now)` and, unless the
        effect carries a `refusal`, writes the incident it returns and its events. A refused command
        writes nothing. None when there is no such incident. Concurrent commands and alerts on any
        replica are serialised on the incident's row (PostgreSQL: `SELECT ... FOR UPDATE`), so two
        people acknowledging at once give one acknowledgement and one refusal, never a lost update.
        """

    async def list_incidents_opened(self, since: datetime, until: datetime) -> list[Incident]:
        """Every incident with `since <= opened_at < until`, oldest first (for statistics)."""

    async def audit_for_incidents(self, incident_ids: Collection[str]) -> list[AuditRecord]:
        """Every audit record of these incidents, in the order they were written."""

    # -- requests, executions, audit --------------------------------------------------------------
    async def claim_request(self, request: ActionRequest, now: datetime) -> bool:
        """Take ownership of a request by inserting its unique key; False when a replica has it already.

        A claim that is still CLAIMED (nothing ran under it) may be taken again by the same holder,
        and by anyone once reconcile released it because its holder died (never act twice, never
        leave a request without an owner).
        """

    async def claim_requests(self, requests: Sequence[ActionRequest], now: datetime) -> list[bool]:
        """`claim_request` for several requests in one transaction; one answer per request."""

    async def start_execution(self, request_id: str, now: datetime) -> None:
        """Mark a claimed request as running: from here a crash leaves it UNKNOWN.

        Raise ClaimLost unless this holder still owns the claim and is alive in the store's eyes:
        a process that was presumed dead must not act.
        """

    async def finish_request(self, record: AuditRecord, events: Sequence[TimelineEvent] = ()) -> None:
        """Write the request's one audit record and its timeline events, and mark it done.

        Only the holder of an open (claimed or running) claim writes the record; a request already
        finished or reconciled as UNKNOWN keeps its record, and the events are added regardless.
        """

    async def finish_requests(self, records: Sequence[AuditRecord], events: Sequence[TimelineEvent] = ()) -> None:
        """`finish_request` for several requests in one transaction."""

    async def record_decisions(self, decided: Sequence[Decided], now: datetime) -> list[bool]:
        """Requests decided without acting (denied, held): each one's claim and its one audit record
        in one write, with its events. False for a request that already has a row (another replica,
        or an earlier run, decided it: its record stands, nothing is written). A request this holder
        claimed but never finished is finished. One transaction; one answer per request, in order."""

    async def reconcile_running(self, now: datetime) -> list[StoredRequest]:
        """Requests of dead holders: RUNNING ones become UNKNOWN (with their audit record), returned.

        A holder is dead when its liveness lock is free: every open store holds one for its whole
        life (PostgreSQL: an advisory lock on a dedicated session; SQLite: flock on a file), and it
        vanishes when the process exits or is killed, never while the process lives. So a live
        replica's long-running action is never marked UNKNOWN, however long it runs, and no clock is
        involved. CLAIMED requests of dead holders (nothing ran) are released for any holder to claim.
        Never marks this holder's own requests. Safe to call from several replicas at once."""

    async def claim_orphaned_requests(self, now: datetime, exclude: Collection[str], limit: int,
                                      unstarted: Collection[str] = ()) -> list[StoredRequest]:
        """CLAIMED requests reconcile released, or this holder's claimed before `now`, both not in `exclude`, and
        its open `unstarted` ones (their start went unconfirmed; nothing ran): now this holder's and CLAIMED."""

    async def get_request(self, request_id: str) -> StoredRequest | None: ...

    async def existing_requests(self, request_ids: Collection[str]) -> set[str]:
        """Which of these requests exist already (claimed, decided or done, by anyone)."""

    async def get_audit(self, request_id: str) -> AuditRecord | None: ...

    async def list_audit(self, incident_id: str | None = None, limit: int = 100) -> list[AuditRecord]: ...

    # -- approvals ------------------------------------------------------------------------------
    async def create_approval(
        self, approval: Approval, events: Sequence[TimelineEvent] = (), timers: Sequence[Timer] = ()
    ) -> bool:
        """Store a new approval (status, votes and outcome as given) with its events and timers.

        One transaction; when an approval with this id exists already nothing at all is written
        and the answer is False. Approval ids derive from the held request, so replicas (or a
        replay after a crash) racing to create the same approval get exactly one True: only that
        caller tells people. Timers are scheduled as by `schedule_timer` (idempotent by id).
        """

    async def get_approval(self, approval_id: str) -> Approval | None:
        """The approval with its votes in the order they were cast."""

    async def list_approvals(
        self, status: ApprovalStatus | None = None, *, incident_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None, limit: int = 100,
    ) -> list[Approval]:
        """Approvals (with votes), newest first by `created_at` then id; every given filter applies.

        `since <= created_at < until` for the time filters.
        """

    async def record_vote(
        self, approval_id: str, vote: Vote, now: datetime, on_approved: Sequence[Timer] = ()
    ) -> VoteEffect | None:
        """Take one person's vote, in one transaction; None when there is no such approval.

        Reads the approval with its votes, calls `approvals.apply_vote(approval, vote, now)` and,
        unless the effect carries a `refusal`, stores the vote, the approval's new status and
        `decided_at`/`detail`, and the effect's timeline events. When this very vote approved it,
        the `on_approved` timers are scheduled in the same transaction. A refused vote writes
        nothing. One vote per (approval, voter) is also a unique key: concurrent votes of one
        person on two replicas give one vote and one ALREADY_VOTED refusal; concurrent votes of
        two people are serialised on the approval's row, so the quorum is counted exactly once.
        """

    async def close_approval(
        self, approval_id: str, expected: Collection[ApprovalStatus], status: ApprovalStatus, now: datetime,
        detail: str,
    ) -> Approval | None:
        """Compare-and-set: close an approval that is in one of the `expected` states.

        Writes `status`, `detail` and `decided_at` (kept when it is set already: an approval that
        was approved keeps the time people approved it) plus the timeline event of
        `approvals.close`, in one transaction, and returns the closed approval. None, writing
        nothing, when it does not exist or is in another state (someone, or another replica,
        decided first).
        """

    async def record_approval_outcome(self, approval_id: str, record: AuditRecord) -> Approval | None:
        """Note what the approved run did: `run_request_id`, `outcome`, and `detail` as
        `approvals.outcome_detail(record)` gives it, from the run's audit record.

        Only an APPROVED approval without an outcome is written (first writer wins); otherwise
        nothing changes. Returns the approval as stored afterwards; None when it does not exist.
        """

    # -- timers ---------------------------------------------------------------------------------
    async def schedule_timer(self, timer: Timer) -> bool:
        """Store a timer unless one with its id exists; True when it was new."""

    async def claim_due_timers(self, now: datetime, lease_until: datetime, limit: int) -> list[Timer]:
        """Due timers no live process holds, claimed by this holder (each fires once)."""

    async def complete_timer(self, timer_id: str, now: datetime) -> None: ...

    async def cancel_timers(self, prefix: str) -> int:
        """Cancel pending timers whose id starts with `prefix`; how many were cancelled."""

    # -- WAF blocks: the ledger of waf.block_ip (remediator/waf_blocks.py adapts it) -------------
    async def record_waf_block(self, block: WafBlock) -> WafBlock:
        """Keep `block` in the ledger together with its expiry timer, in one transaction.

        One entry per (ip_set_arn, address). No entry yet: `block` is stored as given and counts
        as one addition for `count_waf_blocks_added`. An entry exists: it is kept and never
        shortened; when `block.expires_at` is later, the entry takes that expiry and the
        request_id and incident_id of `block` (blocked_at stays the first one); otherwise it is
        left as it is. Then, in the same transaction, `waf_expiry_timer(stored)` is made the one
        pending expiry of the entry: inserted, or revived as pending and unclaimed (due at the
        stored expiry) when a row with its id exists in another state, and every other pending
        timer whose id starts with `waf_expiry_prefix(...)` is cancelled. A block therefore never
        exists without a timer that ends it, and re-blocks replace the timer, never add one.

        Returns the entry as stored. Concurrent calls for one entry, on any replicas, are
        serialised on its row (PostgreSQL: INSERT ... ON CONFLICT DO UPDATE ... RETURNING), so two
        racing blocks give one addition and the later of the two expiries.
        """

    async def get_waf_block(self, ip_set_arn: str, address: str) -> WafBlock | None:
        """The ledger entry for this address in this IP set, as committed now."""

    async def due_waf_blocks(self, now: datetime, limit: int = 100) -> list[WafBlock]:
        """Entries with `expires_at <= now`, soonest expiry first (then ip_set_arn, address)."""

    async def forget_waf_block(self, ip_set_arn: str, address: str) -> None:
        """Drop the entry (the address is out of the set) and cancel its pending expiry timers,
        in one transaction; nothing happens when there is none. Its addition stays counted."""

    async def count_waf_blocks_added(self, ip_set_arn: str, since: datetime) -> int:
        """How many entries were added to this IP set at or after `since` (by `blocked_at`),
        forgotten ones included: the hourly cap of `waf.block_ip`. Additions more than a day old
        may be pruned (the cap looks back one hour)."""


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
