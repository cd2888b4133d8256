"""The explicit list of actions this build ships (no import side effects register anything)."""

from __future__ import annotations

from remediator.actions.base import ActionRegistry
from remediator.actions.notify import NotifyWebhook
from remediator.actions.pg_diagnostics import PostgresDiagnostics
from remediator.actions.postgres import CancelLongQueries, TerminateIdleConnections
from remediator.actions.redis_diagnostics import RedisDiagnostics
from remediator.actions.redis_sessions import InvalidateSessions


def default_registry() -> ActionRegistry:
    """Every action type the daemon knows, one instance each (actions hold no state)."""
    return ActionRegistry([
        NotifyWebhook(),
        TerminateIdleConnections(),
        CancelLongQueries(),
        PostgresDiagnostics(),
        InvalidateSessions(),
        RedisDiagnostics(),
    ])
