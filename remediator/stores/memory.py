"""In-process coordination: the embedded default for a single daemon process.

Every operation runs without awaiting, so on one event loop it is atomic by construction.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta

from remediator.stores.circuits import Circuit
from remediator.stores.coordination import Admission, ConsoleSession, KillSwitch, Lease, Quota


class InProcessCoordination:
    """Sliding windows, leases, the kill switch and console sessions in dictionaries."""

    def __init__(self) -> None:
        self._windows: dict[str, deque[tuple[datetime, str]]] = {}
        self._members: dict[str, dict[str, datetime]] = {}
        self._changes: dict[str, deque[tuple[datetime, str]]] = {}
        self._leases: dict[str, Lease] = {}
        self._tokens: dict[str, int] = {}
        self._kill = KillSwitch(False)
        self._sessions: dict[str, ConsoleSession] = {}
        self._circuits: dict[str, Circuit] = {}
        self._controls: dict[str, dict[str, bytes]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    def _window(self, key: str, window: timedelta, now: datetime) -> deque[tuple[datetime, str]]:
        times = self._windows.setdefault(key, deque())
        while times and times[0][0] <= now - window:
            times.popleft()
        return times

    def _members_in(self, key: str, window: timedelta, now: datetime) -> dict[str, datetime]:
        members = self._members.setdefault(key, {})
        for member in [m for m, at in members.items() if at <= now - window]:
            del members[member]
        return members

    def _denial(self, quota: Quota, now: datetime, request_id: str) -> Admission | None:
        if quota.member is not None:
            members = self._members_in(quota.key, quota.window, now)
            if quota.member in members or len(members) < quota.limit:
                return None
            oldest = min(members.values())
        else:
            times = self._window(quota.key, quota.window, now)
            if len(times) < quota.limit or (request_id and any(r == request_id for _, r in times)):
                return None
            oldest = times[0][0] if times else now
        retry = (oldest + quota.window - now).total_seconds()
        return Admission(False, quota, max(retry, 0.0))

    async def admit(self, quotas: Sequence[Quota], now: datetime, request_id: str = "") -> Admission:
        for quota in quotas:
            denial = self._denial(quota, now, request_id)
            if denial is not None:
                return denial
        for quota in quotas:
            if quota.member is not None:
                self._members[quota.key][quota.member] = now
            elif not request_id or all(r != request_id for _, r in self._windows[quota.key]):
                self._windows[quota.key].append((now, request_id))
        return Admission(True)

    async def kill_switch(self) -> KillSwitch:
        return self._kill

    async def set_kill_switch(self, state: KillSwitch) -> None:
        self._kill = state

    async def record_change(self, key: str, window: timedelta, now: datetime, member: str = "") -> int:
        times = self._changes.setdefault(key, deque())
        while times and times[0][0] <= now - window:
            times.popleft()
        if not member or all(m != member for _, m in times):
            times.append((now, member))
        return len(times)

    async def recent_changes(self, key: str, window: timedelta, now: datetime) -> list[datetime]:
        return [at for at, _ in self._changes.get(key, ()) if at > now - window]

    async def acquire_lease(self, key: str, holder: str, ttl: timedelta, now: datetime) -> Lease | None:
        current = self._leases.get(key)
        if current is not None and current.expires_at > now and current.holder != holder:
            return None
        token = self._tokens.get(key, 0) + 1
        self._tokens[key] = token
        lease = Lease(key, holder, token, now + ttl)
        self._leases[key] = lease
        return lease

    async def release_lease(self, lease: Lease) -> bool:
        current = self._leases.get(lease.key)
        if current is None or current.token != lease.token:
            return False
        del self._leases[lease.key]
        return True

    async def held_leases(self, now: datetime) -> list[Lease]:
        return [lease for lease in self._leases.values() if lease.expires_at > now]

    async def start_session(self, session_id: str, session: ConsoleSession, now: datetime) -> None:
        for expired in [key for key, kept in self._sessions.items() if kept.expires_at <= now]:
            del self._sessions[expired]
        self._sessions[session_id] = session

    async def find_session(self, session_id: str, now: datetime) -> ConsoleSession | None:
        session = self._sessions.get(session_id)
        return session if session is not None and session.expires_at > now else None

    async def end_session(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    async def count_failure(self, key: str, now: datetime, threshold: int, reason: str) -> Circuit:
        failures = (self._circuits[key].failures if key in self._circuits else 0) + 1
        opened = now if failures >= threshold else None
        circuit = self._circuits[key] = Circuit(key, failures, now, reason, opened)
        return circuit

    async def count_success(self, key: str) -> None:
        self._circuits.pop(key, None)

    async def circuit(self, key: str) -> Circuit | None:
        return self._circuits.get(key)

    async def circuits(self) -> list[Circuit]:
        return sorted(self._circuits.values(), key=lambda c: c.key)

    async def close_circuit(self, key: str) -> bool:
        return self._circuits.pop(key, None) is not None

    async def put_control(self, kind: str, name: str, value: bytes) -> None:
        self._controls.setdefault(kind, {})[name] = value

    async def controls(self, kind: str) -> dict[str, bytes]:
        return dict(self._controls.get(kind, {}))

    async def remove_control(self, kind: str, name: str) -> bool:
        return self._controls.get(kind, {}).pop(name, None) is not None
