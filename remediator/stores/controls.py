"""Operators' controls set at run time (scoped pauses), part of the Coordination contract: named
JSON documents by kind, shared by every replica. guardrails/pause.py says what they mean."""

from __future__ import annotations

from typing import Protocol


class ControlStore(Protocol):
    async def put_control(self, kind: str, name: str, value: bytes) -> None:
        """Set (or replace) the control `name` of `kind`."""

    async def controls(self, kind: str) -> dict[str, bytes]:
        """Every control of `kind`, by name."""

    async def remove_control(self, kind: str, name: str) -> bool:
        """False when there was no such control."""
