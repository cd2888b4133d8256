"""The guardrail extension point.

A *check* looks at a request and returns a Decision (deny or hold) or None to pass it on; an
ALLOW decision also passes it on, with a note the final decision carries into the record. A
*quota* names a limit the request must fit; the runner admits all quotas of a request at once
through the coordination backend, so a denied request never uses up another rule's allowance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from remediator.actions.base import AnyAction
from remediator.model import ActionRequest, Alert, Decision
from remediator.policy.model import StepGuardrails
from remediator.stores.coordination import Quota


@dataclass(frozen=True, slots=True)
class GuardInput:
    """Everything a guardrail may look at; no guardrail does I/O except through coordination."""

    request: ActionRequest
    step: StepGuardrails
    alert: Alert
    action: AnyAction | None
    now: datetime
    flap_count: int = 0


class CheckRule(Protocol):
    """A rule that can deny or hold a request on its own (or let it pass with a note: ALLOW)."""

    name: str

    async def check(self, given: GuardInput) -> Decision | None: ...


class QuotaRule(Protocol):
    """A rule that limits how often: it contributes a quota, the runner admits them together."""

    name: str

    def quota(self, given: GuardInput) -> Quota | None: ...


def lifts_own_restriction(given: GuardInput) -> bool:
    """The daemon ending one of its own restrictions on schedule (a WAF block's expiry).

    Origin "system" alone is not enough: the action must declare that it only loosens, so a
    future system request that changes something else stays under every rule.
    """
    return given.request.origin == "system" and given.action is not None and given.action.only_loosens
