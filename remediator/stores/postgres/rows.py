"""Row shapes of the PostgreSQL store: domain objects to bind arguments and back.

Native types throughout: timestamps are timestamptz (aware datetimes both ways), JSON is jsonb
(encoded with the same `rows.dumps` as SQLite, decoded by the connection's codec), lists of
names are text[]. Batched writes pass one array per column and `unnest` them server-side, so a
batch of any size is one statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

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
from remediator.stores import rows
from remediator.stores.base import RequestState, StoredRequest, Timer

Record = Any  # asyncpg.Record: a read-only mapping by column name

# -- alerts -------------------------------------------------------------------------------------
ALERT_COLUMNS = ("id, source, name, status, fingerprint, group_key, starts_at, ends_at, received_at, labels, "
                 "annotations, summary, actionable, severity_hint, dedup_keys")

# A batch of alerts in one transaction, two statements. First the keys of the batch's candidates,
# in key order (concurrent batches lock keys in one order: no deadlock); an alert is new when this
# statement inserted every one of its keys. Then the new alerts, claimed by the recording holder,
# and the removal of the keys a duplicate inserted (no key may name an alert never stored).
RECORD_KEYS = """
INSERT INTO alert_keys (key, alert_id) SELECT key, alert_id FROM unnest($1::text[], $2::text[]) AS k(key, alert_id)
ORDER BY key ON CONFLICT (key) DO NOTHING RETURNING key
"""
RECORD_ALERTS = f"""
WITH dropped AS (
    DELETE FROM alert_keys WHERE key = ANY($1::text[])
), a AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::text[], $12::text[],
                         $13::text[], $14::bool[], $15::text[], $16::text[], $17::timestamptz[])
        WITH ORDINALITY AS a({ALERT_COLUMNS}, claimed_until, ord)
)
INSERT INTO alerts ({ALERT_COLUMNS}, claimed_by, claimed_until)
SELECT {ALERT_COLUMNS.replace("labels", "labels::jsonb").replace("annotations", "annotations::jsonb")
        .replace("dedup_keys", "dedup_keys::jsonb")}, $18::text, claimed_until
FROM a ORDER BY a.ord
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


def batch_candidates(batch: Sequence[tuple[Alert, datetime]]) -> list[int]:
    """Positions of the alerts none of whose keys appeared earlier in the batch.

    The others are duplicates already (as SQLite's one-by-one recording would find), and leave
    no key behind.
    """
    seen: set[str] = set()
    candidates: list[int] = []
    for position, (alert, _) in enumerate(batch):
        if not seen.intersection(alert.dedup_keys):
            candidates.append(position)
        seen.update(alert.dedup_keys)
    return candidates


def alerts_args(batch: Sequence[tuple[Alert, datetime]], positions: Sequence[int]) -> list[list[Any]]:
    """The columns of RECORD_ALERTS ($2 on) for the alerts at `positions`."""
    columns: list[list[Any]] = [[] for _ in range(16)]
    for position in positions:
        alert, lease_until = batch[position]
        values = (alert.id, alert.source, alert.name, alert.status.value, alert.fingerprint,
                  alert.group_key, alert.starts_at, alert.ends_at, alert.received_at, rows.dumps(alert.labels),
                  rows.dumps(alert.annotations), alert.summary, alert.actionable,
                  alert.severity_hint.value if alert.severity_hint else None, rows.dumps(alert.dedup_keys),
                  lease_until)
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


def alert_from_record(r: Record) -> Alert:
    return Alert(
        source=r["source"], name=r["name"], status=AlertStatus(r["status"]), fingerprint=r["fingerprint"],
        group_key=r["group_key"], starts_at=r["starts_at"], ends_at=r["ends_at"], received_at=r["received_at"],
        labels=r["labels"], annotations=r["annotations"], summary=r["summary"], actionable=r["actionable"],
        severity_hint=Severity(r["severity_hint"]) if r["severity_hint"] else None,
        dedup_keys=tuple(r["dedup_keys"]), id=r["id"],
    )


# -- incidents ----------------------------------------------------------------------------------
INCIDENT_COLUMNS = rows.INCIDENT_COLUMNS
UPSERT_INCIDENT = (
    f"INSERT INTO incidents ({INCIDENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
    "$14, $15, $16) ON CONFLICT (id) DO UPDATE SET title = excluded.title, severity = excluded.severity, "
    "status = excluded.status, phase = excluded.phase, updated_at = excluded.updated_at, "
    "resolved_at = excluded.resolved_at, closed_at = excluded.closed_at, alert_count = excluded.alert_count, "
    "firing_count = excluded.firing_count, phase_times = excluded.phase_times, root_cause = excluded.root_cause, "
    "acknowledged_by = excluded.acknowledged_by, acknowledged_at = excluded.acknowledged_at"
)


def incident_args(i: Incident) -> tuple[Any, ...]:
    return (i.id, i.correlation_key, i.title, i.severity.value, i.status.value, i.phase.value, i.opened_at,
            i.updated_at, i.resolved_at, i.closed_at, i.alert_count, i.firing_count,
            {k: rows.ts(v) for k, v in i.phase_times.items()}, i.root_cause, i.acknowledged_by, i.acknowledged_at)


def incident_from_record(r: Record) -> Incident:
    return Incident(
        id=r["id"], correlation_key=r["correlation_key"], title=r["title"], severity=Severity(r["severity"]),
        status=IncidentStatus(r["status"]), phase=Phase(r["phase"]), opened_at=r["opened_at"],
        updated_at=r["updated_at"], resolved_at=r["resolved_at"], closed_at=r["closed_at"],
        alert_count=r["alert_count"], firing_count=r["firing_count"],
        phase_times={k: datetime.fromisoformat(v) for k, v in r["phase_times"].items()},
        root_cause=r["root_cause"], acknowledged_by=r["acknowledged_by"], acknowledged_at=r["acknowledged_at"],
    )


# -- timeline -----------------------------------------------------------------------------------
EVENT_COLUMNS = rows.EVENT_COLUMNS
_EVENT_TYPES = ("text", "timestamptz", "text", "text", "text", "text", "text")


def insert_events_sql(first: int = 1) -> str:
    """Insert events given as one array per column, bound from parameter `first` on.

    JSON goes in arrays as text (a list inside a jsonb[] would read as a second dimension).
    """
    arrays = ", ".join(f"${n}::{t}[]" for n, t in enumerate(_EVENT_TYPES, start=first))
    return (f"INSERT INTO timeline ({EVENT_COLUMNS}) SELECT incident_id, at, kind, message, alert_id, request_id, "
            f"data::jsonb FROM unnest({arrays}) AS e({EVENT_COLUMNS})")


INSERT_EVENTS = insert_events_sql()


def events_args(events: Iterable[TimelineEvent]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(7)]
    for e in events:
        for column, value in zip(columns, (e.incident_id, e.at, e.kind, e.message, e.alert_id, e.request_id,
                                           rows.dumps(e.data)), strict=True):
            column.append(value)
    return columns


def event_from_record(r: Record) -> TimelineEvent:
    return TimelineEvent(r["incident_id"], r["at"], r["kind"], r["message"], r["alert_id"], r["request_id"],
                         r["data"])


# -- requests -----------------------------------------------------------------------------------
REQUEST_COLUMNS = rows.REQUEST_COLUMNS


REQUEST_TYPES = ("text", "text", "text", "text", "int4", "text", "text", "text", "text", "text", "text", "text",
                 "timestamptz")
REQUEST_SELECT = REQUEST_COLUMNS.rsplit(", state", 1)[0].replace("params", "params::jsonb")


def unnest_args(types: Sequence[str], first: int = 1) -> str:
    """`$1::text[], $2::int4[], ...`: one array parameter per column (JSON goes as text)."""
    return ", ".join(f"${n}::{'text' if t == 'jsonb' else t}[]" for n, t in enumerate(types, start=first))


def requests_args(requests: Sequence[ActionRequest]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in REQUEST_TYPES]
    for q in requests:
        values = (q.id, q.alert_id, q.incident_id, q.policy, q.step, q.action, q.target, rows.dumps(q.params),
                  q.severity.value, q.risk.value, q.plan_hash, q.origin, q.created_at)
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns


def stored_request_from_record(r: Record) -> StoredRequest:
    request = ActionRequest(
        id=r["id"], alert_id=r["alert_id"], incident_id=r["incident_id"], policy=r["policy"], step=r["step"],
        action=r["action"], target=r["target"], params=r["params"], severity=Severity(r["severity"]),
        risk=Risk(r["risk"]), plan_hash=r["plan_hash"], origin=r["origin"], created_at=r["created_at"],
    )
    return StoredRequest(request, RequestState(r["state"]), r["holder"], r["claimed_at"])


# -- audit --------------------------------------------------------------------------------------
AUDIT_COLUMNS = rows.AUDIT_COLUMNS
AUDIT_TYPES = ("text", "timestamptz", "text", "text", "text", "text", "text", "jsonb", "text", "text", "text",
               "text", "text", "text", "text", "jsonb", "float8", "text")
AUDIT_SELECT = ", ".join(f"{column}::jsonb" if kind == "jsonb" else column
                         for column, kind in zip(AUDIT_COLUMNS.split(", "), AUDIT_TYPES, strict=True))


def audit_args(a: AuditRecord) -> tuple[Any, ...]:
    return (a.request_id, a.at, a.incident_id, a.alert_id, a.policy, a.action, a.target, dict(a.params),
            a.plan_hash, a.mode, a.verdict.value, a.decision_reason.value, a.decision_detail, a.outcome.value,
            a.failure_reason.value if a.failure_reason else None, dict(a.detail), a.duration_ms, a.origin)


def audits_args(records: Sequence[AuditRecord]) -> list[list[Any]]:
    """Audit columns as arrays (JSON as text) for `unnest`."""
    columns: list[list[Any]] = [[] for _ in AUDIT_TYPES]
    for record in records:
        values = audit_args(record)
        for column, value, kind in zip(columns, values, AUDIT_TYPES, strict=True):
            column.append(rows.dumps(value) if kind == "jsonb" else value)
    return columns


def audit_from_record(r: Record) -> AuditRecord:
    return AuditRecord(
        request_id=r["request_id"], at=r["at"], incident_id=r["incident_id"], alert_id=r["alert_id"],
        policy=r["policy"], action=r["action"], target=r["target"], params=r["params"], plan_hash=r["plan_hash"],
        mode=r["mode"], verdict=Verdict(r["verdict"]), decision_reason=DecisionReason(r["decision_reason"]),
        decision_detail=r["decision_detail"], outcome=Outcome(r["outcome"]),
        failure_reason=FailureReason(r["failure_reason"]) if r["failure_reason"] else None,
        detail=r["detail"], duration_ms=r["duration_ms"], origin=r["origin"],
    )


# -- timers -------------------------------------------------------------------------------------
def timer_from_record(r: Record) -> Timer:
    return Timer(r["id"], r["kind"], r["due_at"], r["payload"])


# -- approvals ----------------------------------------------------------------------------------
APPROVAL_COLUMNS = rows.APPROVAL_COLUMNS
INSERT_APPROVAL = (f"INSERT INTO approvals ({APPROVAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, "
                   "$11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) ON CONFLICT (id) DO NOTHING RETURNING 1")
UPDATE_APPROVAL = ("UPDATE approvals SET status = $1, decided_at = $2, run_request_id = $3, outcome = $4, detail = $5 "
                   "WHERE id = $6")
INSERT_VOTE = f"INSERT INTO approval_votes ({rows.VOTE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"


def approval_args(a: Approval) -> tuple[Any, ...]:
    return (a.id, a.request_id, a.incident_id, a.alert_id, a.policy, a.step, a.action, a.target, dict(a.params),
            a.plan_hash, a.severity.value, a.requested_by, a.reason, a.required, a.created_at, a.expires_at,
            a.status.value, a.decided_at, a.run_request_id, a.outcome.value if a.outcome else None, a.detail)


def approval_state_args(a: Approval) -> tuple[Any, ...]:
    return (a.status.value, a.decided_at, a.run_request_id, a.outcome.value if a.outcome else None, a.detail, a.id)


def approval_from_record(r: Record, votes: Sequence[Vote] = ()) -> Approval:
    return Approval(
        id=r["id"], request_id=r["request_id"], incident_id=r["incident_id"], alert_id=r["alert_id"],
        policy=r["policy"], step=r["step"], action=r["action"], target=r["target"], params=r["params"],
        plan_hash=r["plan_hash"], severity=Severity(r["severity"]), requested_by=r["requested_by"],
        reason=r["reason"], required=r["required"], created_at=r["created_at"], expires_at=r["expires_at"],
        status=ApprovalStatus(r["status"]), decided_at=r["decided_at"], run_request_id=r["run_request_id"],
        outcome=Outcome(r["outcome"]) if r["outcome"] else None, detail=r["detail"], votes=tuple(votes),
    )


def vote_args(approval_id: str, v: Vote) -> tuple[Any, ...]:
    return (approval_id, v.by, v.choice.value, v.reason, v.plan_hash, v.at)


def vote_from_record(r: Record) -> Vote:
    return Vote(by=r["voter"], choice=Choice(r["choice"]), reason=r["reason"], plan_hash=r["plan_hash"], at=r["at"])
