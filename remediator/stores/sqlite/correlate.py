"""Correlating a batch of alerts on SQLite, set by set rather than alert by alert.

The rules are `incidents.apply_alert`, applied to each alert in order. What is batched is the
database work around them: which alerts were correlated already, which fingerprints resolved
already, which are in an incident's firing set — one query each per batch — and the writes,
which go out with `executemany` (one write per touched incident). In an alert storm this is
most of the engine's cost, and most of it was statement overhead.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from remediator.incidents import lifecycle as incidents
from remediator.model import AlertStatus, Incident, IncidentStatus, TimelineEvent
from remediator.stores import rows
from remediator.stores.base import Correlation, Observation

CHUNK = 500  # bound parameters per IN (...) query

IncidentLookup = Callable[[str], Incident | None]


def chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    """`values` in pieces small enough for one `IN (...)` each."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def marks(values: Sequence[Any]) -> str:
    """The `?, ?, ...` placeholders for `values`."""
    return ", ".join("?" * len(values))


class BatchCorrelation:
    """One batch's correlation inside the writer's transaction."""

    def __init__(
        self, conn: sqlite3.Connection, now: datetime, *, open_incident: IncidentLookup,
        by_id: IncidentLookup, new_id: Callable[[], str], save: Callable[[Sequence[Incident]], None],
    ) -> None:
        self.conn, self.now = conn, now
        self.open_incident, self.by_id, self.new_id, self.save = open_incident, by_id, new_id, save
        self.touched: dict[str, Incident] = {}  # incident id → its state after this batch
        self.open_by_key: dict[str, Incident | None] = {}
        self.firing: dict[str, set[str]] = {}  # incident id → fingerprints firing (this batch's view)
        self.was_firing: dict[tuple[str, str], bool] = {}  # (incident, fingerprint) → before this batch
        self.events: list[TimelineEvent] = []
        self.alert_rows: list[tuple[str | None, str]] = []

    def run(self, observations: Sequence[Observation]) -> list[Correlation]:
        done = self._correlated_already([o.alert.id for o in observations])
        resolved = self._resolved_since([o.alert.fingerprint for o in observations
                                         if o.alert.status is AlertStatus.FIRING])
        self._load_firing(observations)
        results = [self._one(o, done, resolved) for o in observations]
        self._write()
        return results

    # -- reads, one per batch -------------------------------------------------------------------
    def _correlated_already(self, ids: Sequence[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for chunk in chunks(ids):
            found.update(self.conn.execute(
                f"SELECT id, incident_id FROM alerts WHERE correlated = 1 AND id IN ({marks(chunk)})", chunk))
        return found

    def _resolved_since(self, fingerprints: Sequence[str]) -> dict[str, str]:
        """The latest `starts_at` of a recorded resolution, per fingerprint (for the stale check)."""
        found: dict[str, str] = {}
        unique = sorted(set(fingerprints))
        for chunk in chunks(unique):
            found.update(self.conn.execute(
                f"SELECT fingerprint, max(starts_at) FROM alerts WHERE status = 'resolved' "
                f"AND fingerprint IN ({marks(chunk)}) GROUP BY fingerprint", chunk))
        return found

    def _load_firing(self, observations: Sequence[Observation]) -> None:
        wanted: dict[str, set[str]] = {}
        for o in observations:
            current = self._current(o.alert.group_key)
            if current is not None:
                wanted.setdefault(current.id, set()).add(o.alert.fingerprint)
        pairs = [(incident_id, fp) for incident_id, fingerprints in wanted.items() for fp in sorted(fingerprints)]
        for incident_id in wanted:
            self.firing.setdefault(incident_id, set())
        for start in range(0, len(pairs), CHUNK // 2):  # one query for the whole batch
            chunk = pairs[start : start + CHUNK // 2]
            values = ", ".join(["(?, ?)"] * len(chunk))
            # CROSS JOIN fixes the order: each pair is one primary-key lookup, never a table scan.
            found = self.conn.execute(f"SELECT f.incident_id, f.fingerprint FROM (VALUES {values}) AS v "
                                      "CROSS JOIN incident_firing AS f "
                                      "ON f.incident_id = v.column1 AND f.fingerprint = v.column2",
                                      [part for pair in chunk for part in pair])
            for incident_id, fp in found:
                self.firing[incident_id].add(fp)

    def _current(self, key: str) -> Incident | None:
        if key not in self.open_by_key:
            self.open_by_key[key] = self.open_incident(key)
        return self.open_by_key[key]

    # -- one alert --------------------------------------------------------------------------------
    def _one(self, seen: Observation, done: dict[str, str | None], resolved: dict[str, str]) -> Correlation:
        alert = seen.alert
        if alert.id in done:
            incident_id = done[alert.id]
            replayed = self.touched.get(incident_id) if incident_id else None
            return Correlation(replayed or (self.by_id(incident_id) if incident_id else None), replayed=True)
        current = self._current(alert.group_key)
        if alert.status is AlertStatus.FIRING and resolved.get(alert.fingerprint, "") >= rows.ts(alert.starts_at):
            return Correlation(current, stale=True)
        firing = self.firing.setdefault(current.id, set()) if current is not None else set()
        effect = incidents.apply_alert(current, alert, seen.severity, self.now, self.new_id,
                                       known=alert.fingerprint in firing, matched=seen.matched)
        incident = effect.incident
        if incident is not None:
            self._track_firing(incident, alert.fingerprint, effect.firing_change)
            self.touched[incident.id] = incident
            self.open_by_key[incident.correlation_key] = incident if incident.status is IncidentStatus.OPEN \
                else None
        self.events += effect.events
        self.alert_rows.append((incident.id if incident else None, alert.id))
        done[alert.id] = incident.id if incident else None  # the same alert again in this batch: a replay
        return Correlation(incident, effect.opened, effect.resolved, False, effect.severity_raised)

    def _track_firing(self, incident: Incident, fingerprint: str, change: int) -> None:
        if not change:
            return
        firing = self.firing.setdefault(incident.id, set())
        self.was_firing.setdefault((incident.id, fingerprint), fingerprint in firing)
        if change > 0:
            firing.add(fingerprint)
        else:
            firing.discard(fingerprint)

    # -- writes, set by set -----------------------------------------------------------------------
    def _write(self) -> None:
        conn = self.conn
        self.save(list(self.touched.values()))
        # Only the net change of each firing set: an alert may fire and resolve within one batch.
        changed = [(key, key[1] in self.firing.get(key[0], ())) for key, before in self.was_firing.items()]
        removed = [key for key, now_firing in changed if not now_firing and self.was_firing[key]]
        added = [key for key, now_firing in changed if now_firing and not self.was_firing[key]]
        if removed:
            conn.executemany("DELETE FROM incident_firing WHERE incident_id = ? AND fingerprint = ?", removed)
        if added:
            conn.executemany("INSERT OR IGNORE INTO incident_firing VALUES (?, ?)", added)
        if self.events:
            conn.executemany(rows.INSERT_EVENT, [rows.event_row(e) for e in self.events])
        if self.alert_rows:
            conn.executemany("UPDATE alerts SET correlated = 1, incident_id = ? WHERE id = ?", self.alert_rows)
