"""Schema versions: the migration files shipped with the package, and what code may run on a store.

Each file `NNNN_name.sql` is one schema version, run whole (never split on ";": a trigger body
or a string may hold one). A file may declare, in a comment line of its own,

    -- oldest-code: 3

meaning "code that knows schema 3 or later can still run on a store at this version" (an
additive migration: new tables, columns with defaults, indexes). Without the line, only code that
knows this very version may run on it. The declaration is recorded with the version, so code that
has never seen the file can still read it: a store whose versions require newer code than this
one is refused at start, with nothing changed (docs/DESIGN.md, "Schema versions").
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources

from remediator.errors import RemediatorError

_OLDEST_CODE = re.compile(r"^--\s*oldest-code:\s*(\d+)\s*$", re.MULTILINE)


class SchemaTooNew(RemediatorError):
    """The store was written by a newer remediator whose schema this code cannot run on."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str
    oldest_code: int  # the oldest code (by the schema version it knows) that can run on this version


def parse_migration(name: str, sql: str) -> Migration:
    version = int(name.split("_", 1)[0])
    declared = _OLDEST_CODE.search(sql)
    oldest = int(declared.group(1)) if declared else version
    if oldest > version:
        raise ValueError(f"{name}: oldest-code {oldest} is newer than the version itself")
    return Migration(version, name, sql, oldest)


def migrations(dialect: str) -> list[Migration]:
    """Versioned SQL files shipped with the package, in order."""
    folder = resources.files("remediator.stores").joinpath("migrations").joinpath(dialect)
    found = [parse_migration(entry.name, entry.read_text(encoding="utf-8"))
             for entry in folder.iterdir() if entry.name.endswith(".sql")]
    return sorted(found, key=lambda m: m.version)


def check_compatible(applied: Mapping[int, int], known: Iterable[Migration], where: str) -> None:
    """Refuse a store holding versions that require newer code than this (`applied`: version ->
    its recorded oldest code). Versions this code does not know are fine when they say so."""
    knows = max((m.version for m in known), default=0)
    needs = {version: oldest for version, oldest in applied.items() if version > knows and oldest > knows}
    if needs:
        newest = max(applied)
        raise SchemaTooNew(
            f"{where} is at schema version {newest}, written by a newer remediator; this remediator knows "
            f"schema versions up to {knows}, and version(s) {sorted(needs)} require code that knows at least "
            f"{max(needs.values())}. Nothing was changed: run the newer remediator, or restore the backup "
            "taken before the upgrade (README, Backups)")


# -- SQLite ------------------------------------------------------------------------------------------
_SQLITE_TABLE = ("CREATE TABLE IF NOT EXISTS schema_migrations "
                 "(version INTEGER PRIMARY KEY, applied_at TEXT, oldest_code INTEGER)")


def sqlite_applied(conn: sqlite3.Connection) -> dict[int, int]:
    """Versions recorded in the store, each with its oldest code (its own version when not recorded)."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone()
    if not exists:
        return {}
    columns = {row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")}
    oldest = "coalesce(oldest_code, version)" if "oldest_code" in columns else "version"
    return {int(v): int(o) for v, o in conn.execute(f"SELECT version, {oldest} FROM schema_migrations")}


def migrate_sqlite(conn: sqlite3.Connection, known: list[Migration], where: str) -> list[int]:
    """Apply the versions not yet applied, all in one transaction, on a connection in autocommit
    mode (`isolation_level=None`, no transaction open).

    Each file runs whole through `executescript`, inside the script's own BEGIN IMMEDIATE ... COMMIT
    (executescript commits whatever is open before it starts, so the transaction must be in the
    script); when a statement fails, the transaction it leaves open is rolled back here. Another
    process migrating at the same moment makes ours fail on its versions' rows: then we look again.
    """
    for _attempt in range(3):
        applied = sqlite_applied(conn)
        check_compatible(applied, known, where)
        pending = [m for m in known if m.version not in applied]
        if not pending and applied:
            return []
        parts = ["BEGIN IMMEDIATE;", _SQLITE_TABLE + ";"]
        columns = {row[1] for row in conn.execute("PRAGMA table_info(schema_migrations)")}
        if columns and "oldest_code" not in columns:
            parts.append("ALTER TABLE schema_migrations ADD COLUMN oldest_code INTEGER;")
        for m in pending:
            parts += [m.sql, "\n;", f"INSERT INTO schema_migrations (version, applied_at, oldest_code) "
                                   f"VALUES ({m.version}, datetime('now'), {m.oldest_code});"]
        parts.append("COMMIT;")
        try:
            conn.executescript("\n".join(parts))
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if {m.version for m in pending} & set(sqlite_applied(conn)):
                continue  # another process applied them meanwhile
            raise
        return [m.version for m in pending]
    raise RuntimeError(f"{where}: migrations kept racing with another process")
