"""Correlation on PostgreSQL: a batch of alerts into incidents in one transaction, safe across replicas.

Replicas correlating alerts of one group at the same time must neither both open an incident nor
lose each other's update. So the transaction first takes a transaction-level advisory lock per
correlation key (all of the batch's keys, in one fixed order, so two batches cannot deadlock),
then reads the open incidents `FOR UPDATE`. `incidents.apply_alert` runs for each alert in order,
exactly as in SQLite; what it decides is written at the end, a handful of statements per batch
whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from remediator.incidents import lifecycle as incidents
from remediator.model import AlertStatus, Incident, IncidentStatus, TimelineEvent
from remediator.stores import rows
from remediator.stores.base import Correlation, Observation
from remediator.stores.postgres import rows as pr
from remediator.stores.postgres.connect import NS_INCIDENT

LOCK_KEYS = ("SELECT count(pg_advisory_xact_lock($1, h)) FROM "
             "(SELECT DISTINCT hashtext(k) AS h FROM unnest($2::text[]) AS k ORDER BY 1) AS keys")
STATE = """
SELECT o.ord, coalesce(a.correlated, false) AS correlated, a.incident_id,
       EXISTS (SELECT 1 FROM alerts r WHERE r.fingerprint = o.fingerprint AND r.status = 'resolved'
               AND r.starts_at >= o.starts_at) AS stale
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) WITH ORDINALITY AS o(id, fingerprint, starts_at, ord)
LEFT JOIN alerts a ON a.id = o.id
"""
OPEN_INCIDENTS = (f"SELECT {pr.INCIDENT_COLUMNS} FROM incidents WHERE correlation_key = ANY($1::text[]) "
                  "AND status = 'open' FOR UPDATE")
FIRING = ("SELECT incident_id, fingerprint FROM incident_firing WHERE incident_id = ANY($1::text[]) "
          "AND fingerprint = ANY($2::text[])")
NEXT_NUMBER = ("INSERT INTO counters (name, value) VALUES ($1, 1) "
               "ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value")
ADD_FIRING = ("INSERT INTO incident_firing (incident_id, fingerprint) SELECT * FROM unnest($1::text[], $2::text[]) "
              "ON CONFLICT DO NOTHING")
DROP_FIRING = ("DELETE FROM incident_firing WHERE (incident_id, fingerprint) IN "
               "(SELECT * FROM unnest($1::text[], $2::text[]))")
MARK_CORRELATED = ("UPDATE alerts SET correlated = true, incident_id = u.incident_id "
                   "FROM unnest($1::text[], $2::text[]) AS u(id, incident_id) WHERE alerts.id = u.id")


class _Writes:
    """What a batch changes, written once at the end (incidents in the order they last changed)."""

    def __init__(self) -> None:
        self.incidents: dict[str, Incident] = {}
        self.firing: dict[tuple[str, str], bool] = {}  # True: now firing; False: no longer
        self.events: list[TimelineEvent] = []
        self.alerts: list[tuple[str, str | None]] = []

    def save(self, incident: Incident) -> None:
        self.incidents.pop(incident.id, None)
        self.incidents[incident.id] = incident

    async def flush(self, conn: Any) -> None:
        if self.incidents:
            await conn.executemany(pr.UPSERT_INCIDENT, [pr.incident_args(i) for i in self.incidents.values()])
        for wanted, statement in ((False, DROP_FIRING), (True, ADD_FIRING)):
            pairs = [pair for pair, firing in self.firing.items() if firing is wanted]
            if pairs:
                await conn.execute(statement, [p[0] for p in pairs], [p[1] for p in pairs])
        if self.events:
            await conn.execute(pr.INSERT_EVENTS, *pr.events_args(self.events))
        if self.alerts:
            await conn.execute(MARK_CORRELATED, [a[0] for a in self.alerts], [a[1] for a in self.alerts])


async def correlate_batch(conn: Any, observations: Sequence[Observation], now: datetime) -> list[Correlation]:
    """Correlate `observations` in order inside the caller's transaction on `conn`."""
    alerts = [o.alert for o in observations]
    await conn.fetchval(LOCK_KEYS, NS_INCIDENT, [a.group_key for a in alerts])
    states = {r["ord"]: r for r in await conn.fetch(STATE, [a.id for a in alerts], [a.fingerprint for a in alerts],
                                                    [a.starts_at for a in alerts])}
    found = await conn.fetch(OPEN_INCIDENTS, sorted({a.group_key for a in alerts}))
    open_by_key = {r["correlation_key"]: pr.incident_from_record(r) for r in found}
    firing = {(r["incident_id"], r["fingerprint"]) for r in await conn.fetch(
        FIRING, [i.id for i in open_by_key.values()], sorted({a.fingerprint for a in alerts}))}
    writes, done = _Writes(), dict[str, str | None]()
    results: list[Correlation] = []
    for position, seen in enumerate(observations, start=1):
        alert, state = seen.alert, states[position]
        if state["correlated"] or alert.id in done:
            incident_id = done.get(alert.id, state["incident_id"])
            results.append(Correlation(await _incident(conn, writes, incident_id) if incident_id else None,
                                       replayed=True))
            continue
        current = open_by_key.get(alert.group_key)
        if alert.status is AlertStatus.FIRING and state["stale"]:
            results.append(Correlation(current, stale=True))
            continue
        known = current is not None and (current.id, alert.fingerprint) in firing
        effect = await _apply(conn, current, seen, now, known)
        incident = effect.incident
        if incident is not None and effect.firing_change:
            pair = (incident.id, alert.fingerprint)
            writes.firing[pair] = effect.firing_change > 0
            (firing.add if effect.firing_change > 0 else firing.discard)(pair)
        if incident is not None:
            writes.save(incident)
            if incident.status is IncidentStatus.OPEN:
                open_by_key[incident.correlation_key] = incident
            else:
                open_by_key.pop(incident.correlation_key, None)
        writes.events += effect.events
        done[alert.id] = incident.id if incident else None
        writes.alerts.append((alert.id, done[alert.id]))
        results.append(Correlation(incident, effect.opened, effect.resolved, False, effect.severity_raised))
    await writes.flush(conn)
    return results


async def _apply(
    conn: Any, current: Incident | None, seen: Observation, now: datetime, known: bool
) -> incidents.AlertEffect:
    """`apply_alert`, numbering a new incident only when it opens one (the number is a round trip)."""
    wanted: list[bool] = []

    def probe() -> str:
        wanted.append(True)
        return ""

    effect = incidents.apply_alert(current, seen.alert, seen.severity, now, probe, known=known, matched=seen.matched)
    if not wanted:
        return effect
    number = int(await conn.fetchval(NEXT_NUMBER, f"incident-{now.year}"))
    return incidents.apply_alert(current, seen.alert, seen.severity, now, lambda: rows.incident_id(now.year, number),
                                 known=known, matched=seen.matched)


async def _incident(conn: Any, writes: _Writes, incident_id: str) -> Incident | None:
    if incident_id in writes.incidents:
        return writes.incidents[incident_id]
    row = await conn.fetchrow(f"SELECT {pr.INCIDENT_COLUMNS} FROM incidents WHERE id = $1", incident_id)
    return pr.incident_from_record(row) if row else None
