"""Action tests run against real servers; this builds the context an action sees."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import pytest
import structlog

from remediator.actions.base import ActionContext, ActionDeps, TimelineWriter
from remediator.actions.targets import TARGETS_EXTRA, TargetConnections
from remediator.clock import SystemClock
from remediator.settings import Settings
from tests.support import builders


class Notes(TimelineWriter):
    """The incident timeline as a list (what the action noted, in order)."""

    def __init__(self) -> None:
        self.notes: list[tuple[str, str, dict[str, Any]]] = []

    async def note(self, kind: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        self.notes.append((kind, message, dict(data or {})))


class ContextFactory(Protocol):
    def __call__(self, targets: dict[str, Any], dry_run: bool = False) -> ActionContext: ...


@pytest.fixture
async def action_context() -> AsyncIterator[ContextFactory]:
    """Builds an ActionContext on the given `targets:` settings; closes their connections after."""
    opened: list[TargetConnections] = []

    def make(targets: dict[str, Any], dry_run: bool = False) -> ActionContext:
        settings = Settings.model_validate({"targets": targets})
        connections = TargetConnections(settings.targets, environ={})
        opened.append(connections)
        deps = ActionDeps(settings, SystemClock(), extras={TARGETS_EXTRA: connections})
        return ActionContext(builders.request(), deps, Notes(), structlog.get_logger(), dry_run)

    yield make
    for connections in opened:
        await connections.close()
