"""Approvals as rules: how a held request becomes an approval and what a vote does to it.

Everything here is pure. Stores call `apply_vote` inside their own transaction with the approval
they read (like `incidents.apply_alert`), so every backend decides the same way; the service
around it (notifications, timers, running the approved plan) is `approval_desk.py`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from remediator.model import (
    ActionRequest,
    Approval,
    ApprovalStatus,
    AuditRecord,
    Choice,
    Outcome,
    TimelineEvent,
    Vote,
    stable_id,
)
from remediator.policy.plan import plan_hash

REQUESTER_PREFIX = "policy:"


class Refusal(StrEnum):
    """Why a vote was not taken (nothing changed). Each maps to one HTTP status."""

    NOT_FOUND = "not_found"
    NOT_PENDING = "not_pending"
    EXPIRED = "expired"
    STALE_PLAN = "stale_plan"
    REQUESTER = "requester_cannot_vote"
    ALREADY_VOTED = "already_voted"


REFUSAL_STATUS = {
    Refusal.NOT_FOUND: 404, Refusal.NOT_PENDING: 409, Refusal.EXPIRED: 409, Refusal.STALE_PLAN: 409,
    Refusal.REQUESTER: 403, Refusal.ALREADY_VOTED: 409,
}


@dataclass(frozen=True, slots=True)
class VoteEffect:
    """What one vote did: the approval to write and its events, or why it was refused."""

    approval: Approval
    events: tuple[TimelineEvent, ...] = ()
    refusal: Refusal | None = None
    refusal_detail: str = ""

    @property
    def decided(self) -> bool:
        """This vote closed the approval (approved or rejected)."""
        return self.refusal is None and not self.approval.open


def approval_id(request_id: str) -> str:
    """Deterministic: the same held request, replayed on any replica, names the same approval."""
    return "APR-" + stable_id("approval", request_id, size=6).upper()


def run_request_id(approval: Approval) -> str:
    """The id of the request that runs an approved plan: claimed once, whoever runs it."""
    return stable_id("approved-run", approval.id)


def new_approval(request: ActionRequest, reason: str, required: int, now: datetime, ttl: timedelta) -> Approval:
    return Approval(
        id=approval_id(request.id), request_id=request.id, incident_id=request.incident_id,
        alert_id=request.alert_id, policy=request.policy, step=request.step, action=request.action,
        target=request.target, params=dict(request.params), plan_hash=request.plan_hash, severity=request.severity,
        requested_by=f"{REQUESTER_PREFIX}{request.policy}", reason=reason, required=required, created_at=now,
        expires_at=now + ttl,
    )


def plan_intact(approval: Approval) -> bool:
    """The stored plan still hashes to the hash people approved (nothing was altered in between)."""
    return plan_hash(approval.action, approval.target, approval.params) == approval.plan_hash


def is_requester(approval: Approval, who: str) -> bool:
    return who in (approval.requested_by, approval.policy)


def _refuse(approval: Approval, refusal: Refusal, detail: str) -> VoteEffect:
    return VoteEffect(approval, (), refusal, detail)


def apply_vote(approval: Approval, vote: Vote, now: datetime) -> VoteEffect:
    """Take one vote: refused (nothing changes), recorded, or recorded and deciding."""
    if not approval.open:
        return _refuse(approval, Refusal.NOT_PENDING, f"{approval.id} is {approval.status.value} already")
    if now >= approval.expires_at:
        return _refuse(approval, Refusal.EXPIRED, f"{approval.id} expired at {approval.expires_at.isoformat()}")
    if vote.plan_hash != approval.plan_hash:
        return _refuse(approval, Refusal.STALE_PLAN, f"the plan of {approval.id} is {approval.plan_hash}, "
                       f"not {vote.plan_hash or '(none given)'}: look at the current plan and decide again")
    if is_requester(approval, vote.by):
        return _refuse(approval, Refusal.REQUESTER, f"{vote.by} requested this action and cannot decide on it")
    if any(v.by == vote.by for v in approval.votes):
        return _refuse(approval, Refusal.ALREADY_VOTED, f"{vote.by} has decided on {approval.id} already")
    votes = (*approval.votes, vote)
    updated = dataclasses.replace(approval, votes=votes)
    events = [_vote_event(approval, vote, len(updated.approvers))]
    if vote.choice is Choice.REJECT:
        updated = dataclasses.replace(updated, status=ApprovalStatus.REJECTED, decided_at=now,
                                      detail=f"rejected by {vote.by}: {vote.reason}")
    elif len(updated.approvers) >= approval.required:
        updated = dataclasses.replace(updated, status=ApprovalStatus.APPROVED, decided_at=now,
                                      detail=f"approved by {', '.join(updated.approvers)}")
    if not updated.open:
        events.append(TimelineEvent(approval.incident_id, now, f"approval_{updated.status.value}",
                                    f"{approval.id} {updated.status.value}: {updated.detail}",
                                    request_id=approval.request_id,
                                    data={"approval_id": approval.id, "status": updated.status.value}))
    return VoteEffect(updated, tuple(events))


def _vote_event(approval: Approval, vote: Vote, approvals: int) -> TimelineEvent:
    counted = f" ({approvals} of {approval.required})" if vote.choice is Choice.APPROVE else ""
    return TimelineEvent(
        approval.incident_id, vote.at, "approval_vote",
        f"{vote.by} chose {vote.choice.value} on {approval.id}{counted}: {vote.reason}",
        request_id=approval.request_id,
        data={"approval_id": approval.id, "by": vote.by, "choice": vote.choice.value, "plan_hash": vote.plan_hash},
    )


def close(approval: Approval, status: ApprovalStatus, now: datetime, detail: str) -> tuple[Approval, TimelineEvent]:
    """Close an approval without a vote (expired, no longer needed) and say so on the timeline.

    An approval people approved keeps the time they did: that is what approval latency measures.
    """
    closed = dataclasses.replace(approval, status=status, decided_at=approval.decided_at or now, detail=detail)
    event = TimelineEvent(approval.incident_id, now, f"approval_{status.value}", f"{approval.id} {status.value}: "
                          f"{detail}", request_id=approval.request_id,
                          data={"approval_id": approval.id, "status": status.value})
    return closed, event


def outcome_detail(record: AuditRecord) -> str:
    """One line on what the approved run did, for the approval's record."""
    if record.outcome is Outcome.NOT_RUN:
        return f"not run: {record.decision_reason.value}" + (f" — {record.decision_detail}"
                                                              if record.decision_detail else "")
    failure = f" ({record.failure_reason.value})" if record.failure_reason else ""
    error = record.detail.get("error")
    return f"{record.outcome.value}{failure}" + (f": {error}" if error else "")
