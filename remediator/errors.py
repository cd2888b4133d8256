"""A small exception tree: what callers may catch and what each means."""

from __future__ import annotations


class RemediatorError(Exception):
    """Base of every error the daemon raises on purpose."""


class SettingsError(RemediatorError):
    """The settings are invalid; `problems` lists every one, each with its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class PolicyError(RemediatorError):
    """Policies failed to load; `problems` lists every one with file and policy path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid policies:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class BadRequest(RemediatorError):
    """Input that will never be valid: answered with a 4xx and recorded nowhere."""

    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(f"{error}: {detail}" if detail else error)
        self.status = status
        self.error = error
        self.detail = detail


class StoreUnavailable(RemediatorError):
    """The store cannot be written: the sender must retry (503)."""


class CoordinationUnavailable(RemediatorError):
    """Shared limits cannot be checked: actions needing them are denied, never run unlimited."""


class TemplateError(RemediatorError):
    """An action parameter template could not be filled from the alert."""


class FixtureError(RemediatorError):
    """Policy fixtures failed to load; `problems` lists every one with file and case path."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid policy fixtures:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems
