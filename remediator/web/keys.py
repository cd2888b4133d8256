"""Typed application keys: what handlers may take from the app."""

from __future__ import annotations

from aiohttp import web

from remediator.deps import Deps
from remediator.engine import Engine
from remediator.web.sessions import SessionKeeper

DEPS = web.AppKey("deps", Deps)
ENGINE = web.AppKey("engine", Engine)
SESSIONS = web.AppKey("sessions", SessionKeeper)
