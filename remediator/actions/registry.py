"""The explicit list of actions this build ships (no import side effects register anything)."""

from __future__ import annotations

from remediator.actions.base import ActionRegistry
from remediator.actions.notify import NotifyWebhook


def default_registry() -> ActionRegistry:
    """Every action type the daemon knows, one instance each (actions hold no state)."""
    return ActionRegistry([
        NotifyWebhook(),
    ])
