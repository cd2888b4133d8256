"""Row shapes of the SQL stores: domain objects to tuples and back, and the SQL that writes them.

Timestamps are stored as ISO-8601 text in UTC with microseconds, so text order is time order.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from remediator.model import (
    ActionRequest,
    Alert,
    AlertStatus,
    Approval,
    ApprovalStatus,
    AuditRecord,
    Choice,
    DecisionReason,
    FailureReason,
    Incident,
    IncidentStatus,
    Outcome,
    Phase,
    Risk,
    Severity,
    TimelineEvent,
    Verdict,
    Vote,
)
from remediator.stores.base import RequestState, StoredRequest, Timer


def ts(value: datetime) -> str:
    return _format_ts(value)


# Most timestamps of a batch repeat (`now`, an alert storm's `startsAt`): formatted once each. Equal
# aware datetimes are the same instant, so they share one text; the cache is safe across threads.
@functools.lru_cache(maxsize=4096)
def _format_ts(value: datetime) -> str:
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).isoformat(timespec="microseconds")


def parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=_default).decode()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return ts(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def loads(value: str | bytes) -> Any:
    return orjson.loads(value)


def incident_id(year: int, number: int) -> str:
    return f"INC-{year}-{number:05d}"


# -- alerts -------------------------------------------------------------------------------------
ALERT_COLUMNS = ("id, source, name, status, fingerprint, group_key, starts_at, ends_at, received_at, labels, "
                 "annotations, summary, actionable, severity_hint, dedup_keys")
INSERT_ALERT = (f"INSERT OR IGNORE INTO alerts ({ALERT_COLUMNS}, claimed_by, claimed_until) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def alert_row(a: Alert) -> tuple[Any, ...]:
    return (a.id, a.source, a.name, a.status, a.fingerprint, a.group_key, ts(a.starts_at),
            ts(a.ends_at) if a.ends_at else None, ts(a.received_at), dumps(a.labels), dumps(a.annotations),
            a.summary, int(a.actionable), a.severity_hint, dumps(a.dedup_keys))


def alert_from_row(r: Sequence[Any]) -> Alert:
    return Alert(
        source=r[1], name=r[2], status=AlertStatus(r[3]), fingerprint=r[4], group_key=r[5],
        starts_at=_required(r[6]), ends_at=parse_ts(r[7]), received_at=_required(r[8]),
        labels=loads(r[9]), annotations=loads(r[10]), summary=r[11], actionable=bool(r[12]),
        severity_hint=Severity(r[13]) if r[13] else None, dedup_keys=tuple(loads(r[14])), id=r[0],
    )


def _required(value: str) -> datetime:
    parsed = parse_ts(value)
    assert parsed is not None
    return parsed


# -- incidents ----------------------------------------------------------------------------------
INCIDENT_COLUMNS = ("id, correlation_key, title, severity, status, phase, opened_at, updated_at, resolved_at, "
                    "closed_at, alert_count, firing_count, phase_times, root_cause, acknowledged_by, acknowledged_at")
UPSERT_INCIDENT = (
    f"INSERT INTO incidents ({INCIDENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET title = excluded.title, severity = excluded.severity, "
    "status = excluded.status, phase = excluded.phase, updated_at = excluded.updated_at, "
    "resolved_at = excluded.resolved_at, closed_at = excluded.closed_at, alert_count = excluded.alert_count, "
    "firing_count = excluded.firing_count, phase_times = excluded.phase_times, root_cause = excluded.root_cause, "
    "acknowledged_by = excluded.acknowledged_by, acknowledged_at = excluded.acknowledged_at"
)


def incident_row(i: Incident) -> tuple[Any, ...]:
    return (i.id, i.correlation_key, i.title, i.severity.value, i.status.value, i.phase.value, ts(i.opened_at),
            ts(i.updated_at), ts(i.resolved_at) if i.resolved_at else None,
            ts(i.closed_at) if i.closed_at else None, i.alert_count, i.firing_count,
            dumps({k: ts(v) for k, v in i.phase_times.items()}), i.root_cause, i.acknowledged_by,
            ts(i.acknowledged_at) if i.acknowledged_at else None)


def incident_from_row(r: Sequence[Any]) -> Incident:
    return Incident(
        id=r[0], correlation_key=r[1], title=r[2], severity=Severity(r[3]), status=IncidentStatus(r[4]),
        phase=Phase(r[5]), opened_at=_required(r[6]), updated_at=_required(r[7]), resolved_at=parse_ts(r[8]),
        closed_at=parse_ts(r[9]), alert_count=r[10], firing_count=r[11],
        phase_times={k: _required(v) for k, v in loads(r[12]).items()}, root_cause=r[13], acknowledged_by=r[14],
        acknowledged_at=parse_ts(r[15]),
    )


# -- timeline -----------------------------------------------------------------------------------
EVENT_COLUMNS = "incident_id, at, kind, message, alert_id, request_id, data"
INSERT_EVENT = f"INSERT INTO timeline ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"


def event_row(e: TimelineEvent) -> tuple[Any, ...]:
    return (e.incident_id, ts(e.at), e.kind, e.message, e.alert_id, e.request_id, dumps(e.data))


def event_from_row(r: Sequence[Any]) -> TimelineEvent:
    return TimelineEvent(r[0], _required(r[1]), r[2], r[3], r[4], r[5], loads(r[6]))


# -- requests -----------------------------------------------------------------------------------
REQUEST_COLUMNS = ("id, alert_id, incident_id, policy, step, action, target, params, severity, risk, plan_hash, "
                   "origin, created_at, state, holder, claimed_at")
# A claim left in state 'claimed' by this same holder (its outcome was never recorded, e.g. the
# store failed mid-way), or released by reconcile because its holder died before running anything,
# may be taken again: nothing ran under it.
CLAIM_REQUEST = (f"INSERT INTO requests ({REQUEST_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, claimed_at = excluded.claimed_at "
                 "WHERE requests.state = 'claimed' AND requests.holder IN (excluded.holder, '')")


def request_row(q: ActionRequest) -> tuple[Any, ...]:
    return (q.id, q.alert_id, q.incident_id, q.policy, q.step, q.action, q.target, dumps(q.params),
            q.severity, q.risk, q.plan_hash, q.origin, ts(q.created_at))


def stored_request_from_row(r: Sequence[Any]) -> StoredRequest:
    request = ActionRequest(
        id=r[0], alert_id=r[1], incident_id=r[2], policy=r[3], step=r[4], action=r[5], target=r[6],
        params=loads(r[7]), severity=Severity(r[8]), risk=Risk(r[9]), plan_hash=r[10], origin=r[11],
        created_at=_required(r[12]),
    )
    return StoredRequest(request, RequestState(r[13]), r[14], _required(r[15]))


def unknown_audit(item: StoredRequest, now: datetime) -> AuditRecord:
    """The audit record of a request whose process died while it ran."""
    request = item.request
    return AuditRecord(
        request_id=request.id, at=now, incident_id=request.incident_id, alert_id=request.alert_id,
        policy=request.policy, action=request.action, target=request.target, params=request.params,
        plan_hash=request.plan_hash, mode="enforce", verdict=Verdict.ALLOW, decision_reason=DecisionReason.ALLOWED,
        decision_detail="allowed before the process stopped", outcome=Outcome.UNKNOWN,
        failure_reason=FailureReason.CRASHED,
        detail={"error": f"{item.holder} stopped while the action was running; check the target by hand"},
        origin=request.origin,
    )


# -- audit --------------------------------------------------------------------------------------
AUDIT_COLUMNS = ("request_id, at, incident_id, alert_id, policy, action, target, params, plan_hash, mode, "
                 "verdict, decision_reason, decision_detail, outcome, failure_reason, detail, duration_ms, origin")
# The one audit record of a request: written once (a second finish changes nothing).
FINISH_REQUEST = ("UPDATE requests SET state = ?, finished_at = ?, mode = ?, verdict = ?, decision_reason = ?, "
                  "decision_detail = ?, outcome = ?, failure_reason = ?, detail = ?, duration_ms = ? "
                  "WHERE id = ? AND verdict IS NULL")


# Only the holder of an open claim records its outcome (a request reconciled UNKNOWN keeps its record).
FINISH_OWN_REQUEST = FINISH_REQUEST + " AND holder = ? AND state IN ('claimed', 'running')"


# A request decided without acting: its claim and its audit record at once (first writer wins).
DECIDE_REQUEST = (f"INSERT OR IGNORE INTO requests ({REQUEST_COLUMNS}, finished_at, mode, verdict, decision_reason, "
                  "decision_detail, outcome, failure_reason, detail, duration_ms) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def decide_row(q: ActionRequest, a: AuditRecord, holder: str, now: datetime) -> tuple[Any, ...]:
    return (*request_row(q), "done", holder, ts(now), ts(a.at), a.mode, a.verdict, a.decision_reason,
            a.decision_detail, a.outcome, a.failure_reason, dumps(a.detail), a.duration_ms)


def finish_row(a: AuditRecord, state: str = "done") -> tuple[Any, ...]:
    return (state, ts(a.at), a.mode, a.verdict, a.decision_reason, a.decision_detail, a.outcome, a.failure_reason,
            dumps(a.detail), a.duration_ms, a.request_id)


def audit_from_row(r: Sequence[Any]) -> AuditRecord:
    return AuditRecord(
        request_id=r[0], at=_required(r[1]), incident_id=r[2], alert_id=r[3], policy=r[4], action=r[5], target=r[6],
        params=loads(r[7]), plan_hash=r[8], mode=r[9], verdict=Verdict(r[10]), decision_reason=DecisionReason(r[11]),
        decision_detail=r[12], outcome=Outcome(r[13]), failure_reason=FailureReason(r[14]) if r[14] else None,
        detail=loads(r[15]), duration_ms=r[16], origin=r[17],
    )


# -- timers -------------------------------------------------------------------------------------
def timer_from_row(r: Sequence[Any]) -> Timer:
    payload: Mapping[str, Any] = loads(r[3])
    return Timer(r[0], r[1], _required(r[2]), payload)


# -- approvals ----------------------------------------------------------------------------------
APPROVAL_COLUMNS = ("id, request_id, incident_id, alert_id, policy, step, action, target, params, plan_hash, "
                    "severity, requested_by, reason, required, created_at, expires_at, status, decided_at, "
                    "run_request_id, outcome, detail")
INSERT_APPROVAL = (f"INSERT OR IGNORE INTO approvals ({APPROVAL_COLUMNS}) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
UPDATE_APPROVAL = ("UPDATE approvals SET status = ?, decided_at = ?, run_request_id = ?, outcome = ?, detail = ? "
                   "WHERE id = ?")
VOTE_COLUMNS = "approval_id, voter, choice, reason, plan_hash, at"
INSERT_VOTE = f"INSERT INTO approval_votes ({VOTE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"


def approval_row(a: Approval) -> tuple[Any, ...]:
    return (a.id, a.request_id, a.incident_id, a.alert_id, a.policy, a.step, a.action, a.target, dumps(a.params),
            a.plan_hash, a.severity.value, a.requested_by, a.reason, a.required, ts(a.created_at),
            ts(a.expires_at), a.status.value, ts(a.decided_at) if a.decided_at else None, a.run_request_id,
            a.outcome.value if a.outcome else None, a.detail)


def approval_state_row(a: Approval) -> tuple[Any, ...]:
    """The mutable part of an approval, for UPDATE_APPROVAL."""
    return (a.status.value, ts(a.decided_at) if a.decided_at else None, a.run_request_id,
            a.outcome.value if a.outcome else None, a.detail, a.id)


def approval_from_row(r: Sequence[Any], votes: Sequence[Vote] = ()) -> Approval:
    return Approval(
        id=r[0], request_id=r[1], incident_id=r[2], alert_id=r[3], policy=r[4], step=r[5], action=r[6],
        target=r[7], params=loads(r[8]), plan_hash=r[9], severity=Severity(r[10]), requested_by=r[11],
        reason=r[12], required=r[13], created_at=_required(r[14]), expires_at=_required(r[15]),
        status=ApprovalStatus(r[16]), decided_at=parse_ts(r[17]), run_request_id=r[18],
        outcome=Outcome(r[19]) if r[19] else None, detail=r[20], votes=tuple(votes),
    )


def vote_row(approval_id: str, v: Vote) -> tuple[Any, ...]:
    return (approval_id, v.by, v.choice.value, v.reason, v.plan_hash, ts(v.at))


def vote_from_row(r: Sequence[Any]) -> Vote:
    """From (voter, choice, reason, plan_hash, at)."""
    return Vote(by=r[0], choice=Choice(r[1]), reason=r[2], plan_hash=r[3], at=_required(r[4]))
