"""The guardrail extension point.

A *check* looks at a request and returns a Decision (deny or hold) or None to pass it on. A
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
from remediator.stores.base import Quota


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
    """A rule that can deny or hold a request on its own."""

    name: str

    async def check(self, given: GuardInput) -> Decision | None: ...


class QuotaRule(Protocol):
    """A rule that limits how often: it contributes a quota, the runner admits them together."""

    name: str

    def quota(self, given: GuardInput) -> Quota | None: ...
