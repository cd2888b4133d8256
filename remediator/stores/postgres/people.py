"""The PostgreSQL store's part that records what people decide and do: approvals and their votes,
commands on incidents, and the reads statistics and postmortems need.

A mixin of `PostgresStore`, mirroring `sqlite_people`. Where SQLite relies on its single writer,
every read-modify-write here runs in one transaction that locks the row it changes first
(`SELECT ... FOR UPDATE`), so concurrent people on several replicas are serialised on the
incident or the approval: one acknowledgement and one refusal, a quorum counted once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from remediator.incidents import approvals
from remediator.incidents import lifecycle as incidents
from remediator.incidents.approvals import VoteEffect
from remediator.incidents.lifecycle import Command, CommandEffect
from remediator.model import Approval, ApprovalStatus, AuditRecord, Incident, TimelineEvent, Vote
from remediator.stores import rows
from remediator.stores.base import Timer
from remediator.stores.postgres import rows as pr

INSERT_TIMERS = ("INSERT INTO timers (id, kind, due_at, payload, state) SELECT id, kind, due_at, payload::jsonb, "
                 "'pending' FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) "
                 "AS t(id, kind, due_at, payload) ON CONFLICT (id) DO NOTHING")
VOTES = ("SELECT approval_id, voter, choice, reason, plan_hash, at FROM approval_votes "
         "WHERE approval_id = ANY($1::text[]) ORDER BY seq")


async def insert_events(conn: Any, events: Sequence[TimelineEvent]) -> None:
    if events:
        await conn.execute(pr.INSERT_EVENTS, *pr.events_args(events))


async def insert_timers(conn: Any, timers: Sequence[Timer]) -> None:
    if timers:
        await conn.execute(INSERT_TIMERS, [t.id for t in timers], [t.kind for t in timers],
                           [t.due_at for t in timers], [rows.dumps(t.payload) for t in timers])


async def select_approvals(conn: Any, where: str, *args: Any, tail: str = "") -> list[Approval]:
    found = await conn.fetch(f"SELECT {pr.APPROVAL_COLUMNS} FROM approvals {where} {tail}", *args)
    votes: dict[str, list[Vote]] = {r["id"]: [] for r in found}
    if votes:
        for row in await conn.fetch(VOTES, list(votes)):
            votes[row["approval_id"]].append(pr.vote_from_record(row))
    return [pr.approval_from_record(r, votes[r["id"]]) for r in found]


async def locked_approval(conn: Any, approval_id: str) -> Approval | None:
    found = await select_approvals(conn, "WHERE id = $1", approval_id, tail="FOR UPDATE")
    return found[0] if found else None


class PeopleRecords:
    """Approvals, votes, incident commands and report reads on PostgreSQL."""

    def _conn(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore provides it

    def _tx(self, what: str) -> contextlib.AbstractAsyncContextManager[Any]:
        raise NotImplementedError  # PostgresStore provides it

    # -- incidents --------------------------------------------------------------------------------
    async def apply_incident_command(self, incident_id: str, command: Command, now: datetime) -> CommandEffect | None:
        async with self._tx("incident command") as conn:
            row = await conn.fetchrow(f"SELECT {pr.INCIDENT_COLUMNS} FROM incidents WHERE id = $1 FOR UPDATE",
                                      incident_id)
            if row is None:
                return None
            effect = incidents.apply_command(pr.incident_from_record(row), command, now)
            if not effect.refusal:
                await conn.execute(pr.UPSERT_INCIDENT, *pr.incident_args(effect.incident))
                await insert_events(conn, effect.events)
        return effect

    async def list_incidents_opened(self, since: datetime, until: datetime) -> list[Incident]:
        async with self._conn("incidents opened") as conn:
            found = await conn.fetch(f"SELECT {pr.INCIDENT_COLUMNS} FROM incidents WHERE opened_at >= $1 "
                                     "AND opened_at < $2 ORDER BY opened_at, id", since, until)
        return [pr.incident_from_record(r) for r in found]

    async def audit_for_incidents(self, incident_ids: Collection[str]) -> list[AuditRecord]:
        async with self._conn("audit of incidents") as conn:
            found = await conn.fetch(f"SELECT {pr.AUDIT_COLUMNS} FROM audit WHERE incident_id = ANY($1::text[]) "
                                     "ORDER BY seq", sorted(set(incident_ids)))
        return [pr.audit_from_record(r) for r in found]

    # -- approvals --------------------------------------------------------------------------------
    async def create_approval(
        self, approval: Approval, events: Sequence[TimelineEvent] = (), timers: Sequence[Timer] = ()
    ) -> bool:
        async with self._tx("create approval") as conn:
            if await conn.fetchval(pr.INSERT_APPROVAL, *pr.approval_args(approval)) is None:
                return False
            if approval.votes:
                await conn.executemany(pr.INSERT_VOTE, [pr.vote_args(approval.id, v) for v in approval.votes])
            await insert_events(conn, events)
            await insert_timers(conn, timers)
        return True

    async def get_approval(self, approval_id: str) -> Approval | None:
        async with self._conn("get approval") as conn:
            found = await select_approvals(conn, "WHERE id = $1", approval_id)
        return found[0] if found else None

    async def list_approvals(
        self, status: ApprovalStatus | None = None, *, incident_id: str | None = None,
        since: datetime | None = None, until: datetime | None = None, limit: int = 100,
    ) -> list[Approval]:
        where = ("WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR incident_id = $2) "
                 "AND ($3::timestamptz IS NULL OR created_at >= $3) AND ($4::timestamptz IS NULL OR created_at < $4)")
        async with self._conn("list approvals") as conn:
            return await select_approvals(conn, where, status.value if status else None, incident_id, since, until,
                                          limit, tail="ORDER BY created_at DESC, id DESC LIMIT $5")

    async def record_vote(
        self, approval_id: str, vote: Vote, now: datetime, on_approved: Sequence[Timer] = ()
    ) -> VoteEffect | None:
        async with self._tx("record vote") as conn:
            current = await locked_approval(conn, approval_id)
            if current is None:
                return None
            effect = approvals.apply_vote(current, vote, now)
            if effect.refusal is not None:
                return effect
            await conn.execute(pr.INSERT_VOTE, *pr.vote_args(approval_id, vote))
            await conn.execute(pr.UPDATE_APPROVAL, *pr.approval_state_args(effect.approval))
            await insert_events(conn, effect.events)
            if effect.approval.status is ApprovalStatus.APPROVED:
                await insert_timers(conn, on_approved)
        return effect

    async def close_approval(
        self, approval_id: str, expected: Collection[ApprovalStatus], status: ApprovalStatus, now: datetime,
        detail: str,
    ) -> Approval | None:
        async with self._tx("close approval") as conn:
            current = await locked_approval(conn, approval_id)
            if current is None or current.status not in expected:
                return None
            closed, event = approvals.close(current, status, now, detail)
            await conn.execute(pr.UPDATE_APPROVAL, *pr.approval_state_args(closed))
            await insert_events(conn, [event])
        return closed

    async def record_approval_outcome(self, approval_id: str, record: AuditRecord) -> Approval | None:
        async with self._tx("approval outcome") as conn:
            await conn.execute(
                "UPDATE approvals SET run_request_id = $1, outcome = $2, detail = $3 "
                "WHERE id = $4 AND status = 'approved' AND outcome IS NULL",
                record.request_id, record.outcome.value, approvals.outcome_detail(record), approval_id)
            found = await select_approvals(conn, "WHERE id = $1", approval_id)
        return found[0] if found else None

