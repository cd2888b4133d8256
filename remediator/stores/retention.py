"""Retention: what each kind of record is, what keeps it, and what a store does to purge it.

Kinds (docs/DESIGN.md, "Retention"):

- `alerts`: raw alerts and their dedup keys, by when they were received;
- `incidents`: a resolved or closed incident's detail (the incident, its timeline, its firing set,
  its approvals and their votes), by its last update: a timeline lives exactly as long as its
  incident, whatever happens to the raw alerts it mentions;
- `audit`: finished requests with their audit records, by when they finished;
- `timers`: fired and cancelled timers, by when they were due.

Whatever its age, a row is kept while anything open refers to it: an alert of an open incident, of
an unfinished (claimed or running) request or of a pending approval, an alert not yet processed;
an incident with a pending approval or an unfinished request; a request a pending approval or a
WAF block in place refers to. These rules are SQL both backends share (`QUERIES`), checked again in
the statement that deletes, so a row that became needed meanwhile stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Kind(StrEnum):
    ALERTS = "alerts"
    INCIDENTS = "incidents"
    AUDIT = "audit"
    TIMERS = "timers"


# The tables `store stats` and the metrics report, in both backends (PostgreSQL adds `audit`).
TABLES = ("alerts", "alert_keys", "incidents", "incident_firing", "timeline", "requests", "approvals",
          "approval_votes", "timers", "waf_blocks", "waf_block_additions")

# Columns stored as JSON text in SQLite, by table; exported as JSON values by both backends
# (approvals.detail is plain text, requests.detail is JSON).
JSON_COLUMNS = {
    "alerts": frozenset({"labels", "annotations", "dedup_keys"}), "incidents": frozenset({"phase_times"}),
    "timeline": frozenset({"data"}), "requests": frozenset({"params", "detail"}),
    "approvals": frozenset({"params"}), "timers": frozenset({"payload"}),
}


@dataclass(frozen=True, slots=True)
class KindQueries:
    """One kind in one dialect: its table, time column, key, and the condition that lets a row go."""

    table: str
    at: str
    key: str
    deletable: str  # true for a row nothing open refers to (the table's own columns unqualified)


# Both backends' rules, in plain SQL that SQLite and PostgreSQL read the same way.
UNFINISHED = "state IN ('claimed', 'running')"
QUERIES = {
    Kind.ALERTS: KindQueries("alerts", "received_at", "id", (
        "processed_at IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = alerts.incident_id AND i.status = 'open')"
        f" AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.alert_id = alerts.id AND r.{UNFINISHED})"
        " AND NOT EXISTS (SELECT 1 FROM approvals p WHERE p.alert_id = alerts.id AND p.status = 'pending')")),
    Kind.INCIDENTS: KindQueries("incidents", "updated_at", "id", (
        "status <> 'open'"
        " AND NOT EXISTS (SELECT 1 FROM approvals p WHERE p.incident_id = incidents.id AND p.status = 'pending')"
        f" AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.incident_id = incidents.id AND r.{UNFINISHED})")),
    Kind.AUDIT: KindQueries("requests", "finished_at", "id", (
        "state IN ('done', 'unknown')"
        " AND NOT EXISTS (SELECT 1 FROM approvals p WHERE p.status = 'pending'"
        " AND requests.id IN (p.request_id, p.run_request_id))"
        " AND NOT EXISTS (SELECT 1 FROM waf_blocks w WHERE w.request_id = requests.id)")),
    Kind.TIMERS: KindQueries("timers", "due_at", "id", "state <> 'pending'"),
}


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What `remediator store stats` prints and the store gauges show."""

    size_bytes: int
    reusable_bytes: int  # freed pages the file keeps for new rows (SQLite), 0 elsewhere
    rows: dict[str, int]
    oldest: dict[Kind, datetime | None]  # the oldest row of each kind (kept or not)
    oldest_unfinished: datetime | None = None  # when the alert of the oldest unfinished request arrived
    auto_vacuum: str = ""  # SQLite: none | incremental | full

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "size_bytes": self.size_bytes, "reusable_bytes": self.reusable_bytes, "rows": self.rows,
            "oldest_age_seconds": {k.value: (now - at).total_seconds() if at else None
                                   for k, at in self.oldest.items()},
            "oldest_unfinished_age_seconds": (now - self.oldest_unfinished).total_seconds()
            if self.oldest_unfinished else None,
            **({"auto_vacuum": self.auto_vacuum} if self.auto_vacuum else {}),
        }


@dataclass(slots=True)
class KindReport:
    kind: Kind
    deleted: int = 0
    exported: int = 0
    objects: list[str] = field(default_factory=list)


class RetentionStore(Protocol):
    """What a store does for retention: page through expired rows, export and delete them."""

    holder: str

    async def oldest_expired(self, kind: Kind, since: datetime, before: datetime) -> datetime | None:
        """The time of the oldest row of `kind` in [since, before) that may be deleted."""
        ...

    async def expired_page(self, kind: Kind, since: datetime, before: datetime,
                           after: tuple[datetime, str] | None, limit: int) -> list[tuple[datetime, str]]:
        """Up to `limit` (time, key) of deletable rows in [since, before), after `after`, oldest first."""
        ...

    async def export_rows(self, kind: Kind, keys: Sequence[str]) -> list[dict[str, Any]]:
        """The rows (with their dependent rows) as JSON-ready dicts, in the order of `keys`."""
        ...

    async def delete_expired(self, kind: Kind, keys: Sequence[str], before: datetime) -> int:
        """Delete those rows (and their dependents) that are still deletable; how many went."""
        ...

    async def reclaim_space(self, pages: int) -> int:
        """Give up to `pages` free pages back to the file system (SQLite); how many were given."""
        ...

    async def store_stats(self) -> StoreStats: ...
