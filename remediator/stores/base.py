"""The store contract every backend implements (DESIGN.md §4), split by concern.

`Store` keeps the durable record and is the composition of its parts: `IncidentStore` (alerts with
their dedup keys, incidents and their timeline), `RequestStore` (action requests with their claims,
the audit trail), `ApprovalStore` (approvals with their votes), `TimerStore` (timers), the WAF
ledger `WafBlockStore` (an extension `waf.block_ip` owns, in `stores.waf_ledger`) and
`RetentionStore` (`stores.retention`). A caller depends on the part it uses.
The shared, short-lived state is `stores.coordination.Coordination`.
One contract test suite runs against every implementation.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
    Incident,
    IncidentStatus,
    Phase,
    Severity,
    TimelineEvent,
    Vote,
    WafBlock,
    stable_id,
)
from remediator.stores.retention import RetentionStore
from remediator.stores.waf_ledger import WafBlockStore


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


class IncidentStore(Protocol):
    """Alerts (with their dedup keys and processing claims), incidents and their timelines."""

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
    async def correlate_many(self, observations: Sequence[Observation], now: datetime) -> list[Correlation]:
        """Open, update or resolve the incident of each alert's `group_key`, in order, in one
        transaction; idempotent per alert. An alert that matched policies also adds a `matched`
        event and moves its (open) incident to triage."""

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


class RequestStore(Protocol):
    """Action requests with their claims and executions, and the audit trail (one record each)."""

    async def claim_requests(self, requests: Sequence[ActionRequest], now: datetime) -> list[bool]:
        """Take ownership of each request by inserting its unique key, in one transaction; one answer
        per request, False when a replica has it already.

        A claim that is still CLAIMED (nothing ran under it) may be taken again by the same holder,
        and by anyone once reconcile released it because its holder died (never act twice, never
        leave a request without an owner).
        """

    async def start_execution(self, request_id: str, now: datetime) -> None:
        """Mark a claimed request as running: from here a crash leaves it UNKNOWN.

        Raise ClaimLost unless this holder still owns the claim and is alive in the store's eyes:
        a process that was presumed dead must not act.
        """

    async def finish_requests(self, records: Sequence[AuditRecord], events: Sequence[TimelineEvent] = ()) -> None:
        """Write each request's one audit record and the timeline events, and mark them done, in one
        transaction.

        Only the holder of an open (claimed or running) claim writes a record; a request already
        finished or reconciled as UNKNOWN keeps its record, and the events are added regardless.
        """

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

    async def audit_for_incidents(self, incident_ids: Collection[str]) -> list[AuditRecord]:
        """Every audit record of these incidents, in the order they were written."""


class ApprovalStore(Protocol):
    """Approvals of held requests, with the votes people cast."""

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


class TimerStore(Protocol):
    """Durable, once-only wake-ups shared by every replica."""

    async def schedule_timer(self, timer: Timer) -> bool:
        """Store a timer unless one with its id exists; True when it was new."""

    async def claim_due_timers(self, now: datetime, lease_until: datetime, limit: int) -> list[Timer]:
        """Due timers no live process holds, claimed by this holder (each fires once)."""

    async def complete_timer(self, timer_id: str, now: datetime) -> None: ...

    async def cancel_timers(self, prefix: str) -> int:
        """Cancel pending timers whose id starts with `prefix`; how many were cancelled."""


class Store(IncidentStore, RequestStore, ApprovalStore, TimerStore, WafBlockStore, RetentionStore, Protocol):
    """The durable record: every part above, the WAF ledger and retention, in one backend.

    Every write is committed before its coroutine returns. A caller that uses one part asks for
    that part's protocol; the daemon holds the whole.
    """

    holder: str  # this process's identity in claims

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise StoreUnavailable unless a write would succeed now."""
