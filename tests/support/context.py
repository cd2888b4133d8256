"""Building the ActionContext an engine would pass to an action, for tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from remediator.actions.base import ActionContext, ActionDeps, AnyAction, TimelineWriter
from remediator.model import ActionRequest, Execution, Severity, stable_id

MotoClient = Callable[[str], Awaitable[Any]]  # `await moto("ecs")`: a client straight to moto
CtxFactory = Callable[..., ActionContext]  # `ctx_for(action, params, dry_run=, execution=)`


@dataclass
class RecordingTimeline(TimelineWriter):
    """Keeps what actions note, for assertions."""

    notes: list[tuple[str, str, Mapping[str, Any]]] = field(default_factory=list)

    async def note(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        self.notes.append((kind, message, dict(data or {})))


def make_request(action: AnyAction, params: Mapping[str, Any], *, incident_id: str = "inc-0001",
                 step: int = 0, created_at: datetime | None = None) -> ActionRequest:
    """The request the engine would plan for `action` with `params` (validated into Params)."""
    validated = action.Params.model_validate(params)
    request_id = stable_id("alert-1", "test-policy", str(step), action.type_name)
    return ActionRequest(
        id=request_id, alert_id="alert-1", incident_id=incident_id, policy="test-policy", step=step,
        action=action.type_name, target=action.target(validated), params=dict(params),
        severity=Severity.P2, risk=action.risk, plan_hash=stable_id(request_id, "plan"),
        created_at=created_at or datetime.now(UTC),
    )


def make_ctx(deps: ActionDeps, request: ActionRequest, *, dry_run: bool = False,
             execution: Execution | None = None) -> ActionContext:
    return ActionContext(request=request, deps=deps, timeline=RecordingTimeline(),
                         log=structlog.get_logger("test"), dry_run=dry_run, execution=execution)
