"""The SQLite store's part that records what people decide and do: approvals and their votes,
commands on incidents, and the reads statistics and postmortems need.

A mixin of `SqliteStore`: every write is one job on the store's single writer thread, so a
read-modify-write inside one job is one transaction that no other write interleaves with.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

from remediator.incidents import approvals
from remediator.incidents import lifecycle as incidents
from remediator.incidents.approvals import VoteEffect
from remediator.incidents.lifecycle import Command, CommandEffect
from remediator.model import Approval, ApprovalStatus, AuditRecord, Incident, TimelineEvent, Vote
from remediator.stores import rows
from remediator.stores.base import Timer

T = TypeVar("T")


def insert_events(conn: sqlite3.Connection, events: Sequence[TimelineEvent]) -> None:
    if events:
        conn.executemany(rows.INSERT_EVENT, [rows.event_row(e) for e in events])


def insert_timers(conn: sqlite3.Connection, timers: Sequence[Timer]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO timers (id, kind, due_at, payload, state) VALUES (?, ?, ?, ?, 'pending')",
        [(t.id, t.kind, rows.ts(t.due_at), rows.dumps(t.payload)) for t in timers])


def _votes(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, list[Vote]]:
    found: dict[str, list[Vote]] = {i: [] for i in ids}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(f"SELECT approval_id, voter, choice, reason, plan_hash, at FROM approval_votes "
                                f"WHERE approval_id IN ({marks}) ORDER BY seq", chunk):
            found[row[0]].append(rows.vote_from_row(row[1:]))
    return found


def select_approvals(conn: sqlite3.Connection, where: str, args: Sequence[Any], tail: str = "") -> list[Approval]:
    found = conn.execute(f"SELECT {rows.APPROVAL_COLUMNS} FROM approvals {where} {tail}", args).fetchall()
    votes = _votes(conn, [r[0] for r in found])
    return [rows.approval_from_row(r, votes[r[0]]) for r in found]


def one_approval(conn: sqlite3.Connection, approval_id: str) -> Approval | None:
    found = select_approvals(conn, "WHERE id = ?", (approval_id,))
    return found[0] if found else None


class PeopleRecords:
    """Approvals, votes, incident commands and report reads on the SQLite file."""

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore provides it

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        raise NotImplementedError  # SqliteStore provides it

    def _save_incident(self, conn: sqlite3.Connection, incident: Incident) -> None:
        raise NotImplementedError  # SqliteStore provides it (it keeps its open-incident cache true)

    # -- incidents --------------------------------------------------------------------------------
    async def apply_incident_command(self, incident_id: str, command: Command, now: datetime) -> CommandEffect | None:
        def op(conn: sqlite3.Connection) -> CommandEffect | None:
            row = conn.execute(f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE id = ?",
                               (incident_id,)).fetchone()
            if row is None:
                return None
            effect = incidents.apply_command(rows.incident_from_row(row), command, now)
            if not effect.refusal:
                self._save_incident(conn, effect.incident)
                insert_events(conn, effect.events)
            return effect

        return await self._write(op)

    async def list_incidents_opened(self, since: datetime, until: datetime) -> list[Incident]:
        def op(conn: sqlite3.Connection) -> list[Incident]:
            found = conn.execute(f"SELECT {rows.INCIDENT_COLUMNS} FROM incidents WHERE opened_at >= ? "
                                 "AND opened_at < ? ORDER BY opened_at, id", (rows.ts(since), rows.ts(until)))
            return [rows.incident_from_row(r) for r in found]

        return await self._read(op)

    async def audit_for_incidents(self, incident_ids: Collection[str]) -> list[AuditRecord]:
        ids = sorted(set(incident_ids))

        def op(conn: sqlite3.Connection) -> list[AuditRecord]:
            found: list[tuple[int, AuditRecord]] = []
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                for row in conn.execute(f"SELECT seq, {rows.AUDIT_COLUMNS} FROM audit WHERE incident_id IN ({marks})",
                                        chunk):
                    found.append((row[0], rows.audit_from_row(row[1:])))
            return [record for _, record in sorted(found, key=lambda pair: pair[0])]

        return await self._read(op)

    # -- approvals --------------------------------------------------------------------------------
    async def create_approval(
        self, approval: Approval, events: Sequence[TimelineEvent] = (), timers: Sequence[Timer] = ()
    ) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            if conn.execute(rows.INSERT_APPROVAL, rows.approval_row(approval)).rowcount != 1:
                return False
            conn.executemany(rows.INSERT_VOTE, [rows.vote_row(approval.id, v) for v in approval.votes])
            insert_events(conn, events)
            insert_timers(conn, timers)
            return True

        return await self._write(op)

    async def get_approval(self, approval_id: str) -> Approval | None:
        return await self._read(lambda conn: one_approval(conn, approval_id))

    async def list_approvals(
        self, status: ApprovalStatus | None = None, *, incident_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None, limit: int = 100,
    ) -> list[Approval]:
        conditions: list[str] = []
        args: list[Any] = []
        for clause, value in (("status = ?", status.value if status else None), ("incident_id = ?", incident_id),
                              ("created_at >= ?", rows.ts(since) if since else None),
                              ("created_at < ?", rows.ts(until) if until else None)):
            if value is not None:
                conditions.append(clause)
                args.append(value)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        return await self._read(lambda conn: select_approvals(
            conn, where, (*args, limit), "ORDER BY created_at DESC, id DESC LIMIT ?"))

    async def record_vote(
        self, approval_id: str, vote: Vote, now: datetime, on_approved: Sequence[Timer] = ()
    ) -> VoteEffect | None:
        def op(conn: sqlite3.Connection) -> VoteEffect | None:
            current = one_approval(conn, approval_id)
            if current is None:
                return None
            effect = approvals.apply_vote(current, vote, now)
            if effect.refusal is not None:
                return effect
            conn.execute(rows.INSERT_VOTE, rows.vote_row(approval_id, vote))
            conn.execute(rows.UPDATE_APPROVAL, rows.approval_state_row(effect.approval))
            insert_events(conn, effect.events)
            if effect.approval.status is ApprovalStatus.APPROVED:
                insert_timers(conn, on_approved)
            return effect

        return await self._write(op)

    async def close_approval(
        self, approval_id: str, expected: Collection[ApprovalStatus], status: ApprovalStatus, now: datetime,
        detail: str,
    ) -> Approval | None:
        def op(conn: sqlite3.Connection) -> Approval | None:
            current = one_approval(conn, approval_id)
            if current is None or current.status not in expected:
                return None
            closed, event = approvals.close(current, status, now, detail)
            conn.execute(rows.UPDATE_APPROVAL, rows.approval_state_row(closed))
            insert_events(conn, [event])
            return closed

        return await self._write(op)

    async def record_approval_outcome(self, approval_id: str, record: AuditRecord) -> Approval | None:
        def op(conn: sqlite3.Connection) -> Approval | None:
            conn.execute(
                "UPDATE approvals SET run_request_id = ?, outcome = ?, detail = ? "
                "WHERE id = ? AND status = 'approved' AND outcome IS NULL",
                (record.request_id, record.outcome.value, approvals.outcome_detail(record), approval_id))
            return one_approval(conn, approval_id)

        return await self._write(op)
