"""Typed application keys: what handlers may take from the app."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aiohttp import web

from remediator.deps import Deps
from remediator.engine.pipeline import Engine
from remediator.model import Alert
from remediator.web.sessions import SessionKeeper


class Intake(Protocol):
    """Where a webhook handler records alerts: the engine itself (which records them durably and
    queues the new ones), or, in an intake process, the core's engine over its private socket."""

    @property
    def accepting(self) -> bool: ...

    async def record(self, alerts: Sequence[Alert]) -> list[bool]:
        """Record durably (deduplicated) and queue; True per alert that was new. Raises
        StoreUnavailable when nothing could be stored (the sender must retry)."""


DEPS = web.AppKey("deps", Deps)
ENGINE = web.AppKey("engine", Engine)
INTAKE = web.AppKey("intake", Intake)
SESSIONS = web.AppKey("sessions", SessionKeeper)
