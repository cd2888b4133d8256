"""The domain types that flow through the pipeline (DESIGN.md §1).

Everything here is a frozen dataclass or an enum. Reasons are bounded enums because they are
also Prometheus label values: adding a member is a deliberate, reviewed change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """Incident severity as the runbook defines it; P1 is the most severe."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    @property
    def rank(self) -> int:
        """1 for P1 … 4 for P4: lower is more severe."""
        return _RANKS[self]

    @staticmethod
    def highest(severities: list[Severity]) -> Severity | None:
        return min(severities, key=lambda s: s.rank) if severities else None


_RANKS = {Severity.P1: 1, Severity.P2: 2, Severity.P3: 3, Severity.P4: 4}


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Risk(StrEnum):
    """An action's declared risk; `high` is always held for approval."""

    NORMAL = "normal"
    HIGH = "high"


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"


class DecisionReason(StrEnum):
    """Why a guardrail decided what it decided (bounded: a metric label)."""

    ALLOWED = "allowed"
    KILL_SWITCH = "kill_switch"
    PAUSED = "paused"
    MAINTENANCE_WINDOW = "maintenance_window"
    CIRCUIT_OPEN = "circuit_open"
    PROTECTED_TARGET = "protected_target"
    COOLDOWN = "cooldown"
    RATE_LIMITED = "rate_limited"
    BUDGET_EXHAUSTED = "budget_exhausted"
    BLAST_RADIUS = "blast_radius"
    FLAPPING = "flapping"
    APPROVAL_REQUIRED = "approval_required"
    APPROVED = "approved"
    TARGET_BUSY = "target_busy"
    INVALID_PARAMS = "invalid_params"
    UNKNOWN_ACTION = "unknown_action"
    COORDINATION_UNAVAILABLE = "coordination_unavailable"
    SKIPPED = "skipped"  # an ordered step whose condition on the step before it was not met
    ERROR = "error"  # the daemon failed while deciding; the audit record says how


class Outcome(StrEnum):
    """What became of an action request."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DRY_RUN = "dry_run"
    NOT_RUN = "not_run"  # denied or held: the decision says why
    UNKNOWN = "unknown"  # the daemon died while it ran; never re-run blindly


class FailureReason(StrEnum):
    """Why an execution failed (bounded: a metric label)."""

    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    ACCESS_DENIED = "access_denied"
    VALIDATION = "validation"
    NOT_FOUND = "not_found"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    CONFLICT = "conflict"
    PRECHECK_FAILED = "precheck_failed"
    LIMIT_EXCEEDED = "limit_exceeded"
    # The action ran, and what it checked is out of its bound (data older than allowed after a
    # failover, no recent backup): nothing broke in the action, the estate needs a person.
    CHECK_FAILED = "check_failed"
    CRASHED = "crashed"
    INTERNAL = "internal"


class Phase(StrEnum):
    """Incident phases of the runbook's response flow (§4.1, its seven), in order; then closed."""

    DETECT = "detect"
    TRIAGE = "triage"
    CONTAIN = "contain"
    ROOT_CAUSE = "root_cause"
    RECOVER = "recover"
    VERIFY = "verify"
    POSTMORTEM = "postmortem"
    CLOSED = "closed"


class IncidentStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    CLOSED = "closed"


def stable_id(*parts: str, size: int = 16) -> str:
    """A deterministic hex id from its parts: replaying the same input gives the same id."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[: size * 2]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def alert_id(received_at: datetime, delivery_key: str) -> str:
    """An alert's id: when it was received (microseconds since 1970, 14 hex digits), then a hash of
    its first dedup key; 32 hex digits in all.

    Ids in order of receipt keep the store's id index growing at its end: recording an alert
    changes the index's last page, not a random one (with hashed ids that was a third of all the
    pages an alert storm wrote). A re-delivery is recognised by its dedup keys, never by its id.
    """
    moment = received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)
    return f"{(moment - _EPOCH) // _MICROSECOND:014x}{stable_id(delivery_key, size=9)}"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert occurrence as a source normalised it.

    `dedup_keys` identify this occurrence (a re-delivery carries at least one key already seen);
    `fingerprint` identifies the alert across its occurrences; `group_key` correlates alerts into
    one incident.
    """

    source: str
    name: str
    status: AlertStatus
    fingerprint: str
    dedup_keys: tuple[str, ...]
    group_key: str
    starts_at: datetime
    received_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    ends_at: datetime | None = None
    actionable: bool = True  # False: recorded (and noted on an open incident), never acted on
    summary: str = ""
    severity_hint: Severity | None = None  # the source's own severity (e.g. GuardDuty), if any
    # `alert_id(received_at, dedup_keys[0])` unless given (as the store gives the one it recorded).
    id: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", alert_id(self.received_at, self.dedup_keys[0]))


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    correlation_key: str
    title: str
    severity: Severity
    status: IncidentStatus
    phase: Phase
    opened_at: datetime
    updated_at: datetime
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    alert_count: int = 1
    firing_count: int = 0  # alerts of this incident firing now (their fingerprints are in the store)
    phase_times: Mapping[str, datetime] = field(default_factory=dict)
    root_cause: str = ""
    acknowledged_by: str = ""
    acknowledged_at: datetime | None = None  # the first acknowledgement by a person: "responded"

    @property
    def recovered(self) -> bool:
        """No alert of it is firing any more (resolved), or people closed it."""
        return self.status is not IncidentStatus.OPEN


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    incident_id: str
    at: datetime
    kind: str
    message: str
    alert_id: str = ""
    request_id: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """A planned action: typed, validated parameters bound to one alert occurrence.

    `id` is deterministic (alert occurrence, policy, step), so the same occurrence delivered to
    several replicas or replayed after a crash yields the same request and the same claim key.
    """

    id: str
    alert_id: str
    incident_id: str
    policy: str
    step: int
    action: str
    target: str
    params: Mapping[str, Any]
    severity: Severity
    risk: Risk
    plan_hash: str
    created_at: datetime
    origin: str = "policy"  # "policy" | "approval:<id>" | "system"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: DecisionReason
    detail: str = ""
    guard: str = ""

    @staticmethod
    def allow(detail: str = "") -> Decision:
        return Decision(Verdict.ALLOW, DecisionReason.ALLOWED, detail)

    @staticmethod
    def deny(reason: DecisionReason, detail: str, guard: str = "") -> Decision:
        return Decision(Verdict.DENY, reason, detail, guard)

    @staticmethod
    def hold(detail: str, guard: str = "") -> Decision:
        return Decision(Verdict.HOLD, DecisionReason.APPROVAL_REQUIRED, detail, guard)


@dataclass(frozen=True, slots=True)
class Execution:
    """What an action reports about one run; only the engine decides to retry."""

    outcome: Outcome
    retryable: bool = False
    reason: FailureReason | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    attempts: int = 1

    @staticmethod
    def succeeded(**detail: Any) -> Execution:
        return Execution(Outcome.SUCCEEDED, detail=detail)

    @staticmethod
    def failed(reason: FailureReason, message: str, *, retryable: bool = False, **detail: Any) -> Execution:
        return Execution(Outcome.FAILED, retryable, reason, {"error": message, **detail})


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """Exactly one per action request, whatever became of it."""

    request_id: str
    at: datetime
    incident_id: str
    alert_id: str
    policy: str
    action: str
    target: str
    params: Mapping[str, Any]
    plan_hash: str
    mode: str
    verdict: Verdict
    decision_reason: DecisionReason
    decision_detail: str
    outcome: Outcome
    failure_reason: FailureReason | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    duration_ms: float = 0.0
    origin: str = "policy"


class ApprovalStatus(StrEnum):
    """Where an approval stands (bounded: a metric label)."""

    PENDING = "pending"
    APPROVED = "approved"  # enough people approved; `outcome` says what became of the run
    REJECTED = "rejected"
    EXPIRED = "expired"  # nobody decided in time: closed, nothing ran, escalated
    NO_LONGER_NEEDED = "no_longer_needed"  # the alert resolved first: closed, nothing ran


class Choice(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Vote:
    """One person's decision on one approval, bound to the plan hash they were shown."""

    by: str
    choice: Choice
    reason: str
    plan_hash: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Approval:
    """A held request waiting for people: the plan exactly as validated, and who decided what.

    `id` derives from the held request's id, so a replayed hold finds the same approval. An
    approved plan runs as a new request (`run_request_id`, origin `approval:<id>`) that passes
    every guardrail except the approval hold.
    """

    id: str
    request_id: str
    incident_id: str
    alert_id: str
    policy: str
    step: int
    action: str
    target: str
    params: Mapping[str, Any]
    plan_hash: str
    severity: Severity
    requested_by: str  # the requester never counts as an approver
    reason: str  # why it was held
    required: int  # distinct approvers needed
    created_at: datetime
    expires_at: datetime
    status: ApprovalStatus = ApprovalStatus.PENDING
    votes: tuple[Vote, ...] = ()
    decided_at: datetime | None = None
    run_request_id: str = ""
    outcome: Outcome | None = None  # of the approved run, once it is known
    detail: str = ""  # why it closed, or what the run reported

    @property
    def approvers(self) -> tuple[str, ...]:
        return tuple(v.by for v in self.votes if v.choice is Choice.APPROVE)

    @property
    def open(self) -> bool:
        return self.status is ApprovalStatus.PENDING


@dataclass(frozen=True, slots=True)
class WafBlock:
    """One address remediator added to one WAF IP set, and when it must come out again.

    Kept in the ledger of `waf.block_ip` (see `remediator.actions.waf_expiry`); `request_id` and
    `incident_id` are those of the block request that set `expires_at`, so the unblock that ends
    it lands on that incident's timeline.
    """

    ip_set_arn: str
    address: str  # the network as the action normalised it ("203.0.113.7/32")
    blocked_at: datetime
    expires_at: datetime
    request_id: str = ""
    incident_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"ip_set": self.ip_set_arn, "address": self.address, "blocked_at": self.blocked_at.isoformat(),
                "expires_at": self.expires_at.isoformat(), "request_id": self.request_id,
                "incident_id": self.incident_id}


def alert_to_wire(alert: Alert) -> dict[str, Any]:
    """An alert as plain JSON values (intake process → core)."""
    return {
        "source": alert.source, "name": alert.name, "status": alert.status, "fingerprint": alert.fingerprint,
        "dedup_keys": list(alert.dedup_keys), "group_key": alert.group_key, "starts_at": alert.starts_at.isoformat(),
        "received_at": alert.received_at.isoformat(), "labels": dict(alert.labels),
        "annotations": dict(alert.annotations), "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        "actionable": alert.actionable, "summary": alert.summary, "severity_hint": alert.severity_hint,
        "id": alert.id,
    }


def alert_from_wire(data: Mapping[str, Any]) -> Alert:
    return Alert(
        source=data["source"], name=data["name"], status=AlertStatus(data["status"]), fingerprint=data["fingerprint"],
        dedup_keys=tuple(data["dedup_keys"]), group_key=data["group_key"],
        starts_at=datetime.fromisoformat(data["starts_at"]), received_at=datetime.fromisoformat(data["received_at"]),
        labels=data["labels"], annotations=data["annotations"],
        ends_at=datetime.fromisoformat(data["ends_at"]) if data["ends_at"] else None, actionable=data["actionable"],
        summary=data["summary"], severity_hint=Severity(data["severity_hint"]) if data["severity_hint"] else None,
        id=data["id"],
    )
