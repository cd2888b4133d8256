"""Typed application keys: what handlers may take from the app."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from aiohttp import web

from remediator.deps import Deps
from remediator.engine import Engine
from remediator.model import Alert
from remediator.web.sessions import SessionKeeper


class Intake(Protocol):
    """Where a webhook handler hands freshly recorded alerts: the engine itself, or, in an intake
    process, nobody (the core process's engine picks them up from the store)."""

    @property
    def accepting(self) -> bool: ...

    def lease_until(self, now: datetime) -> datetime:
        """Until when the recorded alerts are claimed for processing by this process."""

    def submit(self, alerts: Sequence[Alert]) -> None: ...


DEPS = web.AppKey("deps", Deps)
ENGINE = web.AppKey("engine", Engine)
INTAKE = web.AppKey("intake", Intake)
SESSIONS = web.AppKey("sessions", SessionKeeper)
