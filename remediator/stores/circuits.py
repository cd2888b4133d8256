"""Circuit state, part of the Coordination contract: consecutive failures of an action type on a
target, shared by every replica (guardrails/circuit.py decides what they mean)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Circuit:
    """Failures in a row of one action type on one target, since its last success or closing.

    `opened_at`: when the count last reached the threshold (None: still closed).
    """

    key: str  # "<action type>:<target>"
    failures: int
    last_failure_at: datetime
    reason: str  # the last failure's reason
    opened_at: datetime | None = None


class CircuitStore(Protocol):
    async def count_failure(self, key: str, now: datetime, threshold: int, reason: str) -> Circuit:
        """One more failure in a row; the circuit (re)opens at `now` once `threshold` is reached."""

    async def count_success(self, key: str) -> None:
        """A success: the count starts again (the circuit closes)."""

    async def circuit(self, key: str) -> Circuit | None: ...

    async def circuits(self) -> list[Circuit]:
        """Every circuit with failures counted, open or not."""

    async def close_circuit(self, key: str) -> bool:
        """A person closes it (the count starts again); False when there was nothing to close."""
