"""The storage interface the registry needs from a database, and the schema both backends share.

A backend is a connection plus a few capabilities (how to lock, how to store a timestamp, the
DDL types that differ). All queries are written once, with ``?`` placeholders and values always
passed as parameters; each backend adapts the placeholder style.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

from fsql.errors import RegistryError

SCHEMA_VERSION = 1

#: ``{ts}`` and ``{id}`` are the only per-backend parts (see ``Backend.ddl_types``)
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS fsql_state (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        revision INTEGER NOT NULL,
        schema_version INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS fsql_revisions (
        revision INTEGER PRIMARY KEY,
        created_at {ts} NOT NULL,
        created_by TEXT,
        plan TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS fsql_versions (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        kind TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        own_fingerprint TEXT NOT NULL,
        semantic_fingerprint TEXT NOT NULL,
        canonical_sql TEXT NOT NULL,
        definition TEXT NOT NULL,
        dependencies TEXT NOT NULL,
        source_text TEXT,
        file TEXT,
        line INTEGER,
        col INTEGER,
        change TEXT NOT NULL,
        reason TEXT NOT NULL,
        revision INTEGER NOT NULL REFERENCES fsql_revisions (revision),
        created_at {ts} NOT NULL,
        created_by TEXT,
        retired_revision INTEGER REFERENCES fsql_revisions (revision),
        retired_at {ts},
        retired_by TEXT,
        retired_reason TEXT,
        PRIMARY KEY (name, version)
    )""",
    """CREATE TABLE IF NOT EXISTS fsql_lineage (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,
        from_kind TEXT NOT NULL,
        from_name TEXT NOT NULL,
        to_kind TEXT NOT NULL,
        to_name TEXT NOT NULL,
        column_name TEXT,
        FOREIGN KEY (name, version) REFERENCES fsql_versions (name, version)
    )""",
    "CREATE INDEX IF NOT EXISTS fsql_lineage_version ON fsql_lineage (name, version)",
    """CREATE TABLE IF NOT EXISTS fsql_ledger (
        id {id},
        feature TEXT NOT NULL,
        version INTEGER NOT NULL,
        start_ts {ts} NOT NULL,
        end_ts {ts} NOT NULL,
        engine TEXT NOT NULL,
        row_count BIGINT,
        location TEXT NOT NULL,
        stats TEXT NOT NULL,
        created_at {ts} NOT NULL,
        created_by TEXT,
        inputs TEXT,
        FOREIGN KEY (feature, version) REFERENCES fsql_versions (name, version)
    )""",
    "CREATE INDEX IF NOT EXISTS fsql_ledger_version ON fsql_ledger (feature, version, start_ts)",
    """CREATE TABLE IF NOT EXISTS fsql_ledger_online (
        id {id},
        feature TEXT NOT NULL,
        version INTEGER NOT NULL,
        start_ts {ts} NOT NULL,
        end_ts {ts} NOT NULL,
        created_at {ts} NOT NULL,
        FOREIGN KEY (feature, version) REFERENCES fsql_versions (name, version)
    )""",
    "CREATE INDEX IF NOT EXISTS fsql_ledger_online_version ON fsql_ledger_online (feature, version)",
    # committed intervals found stale (late data: a source file added or changed since, or an
    # input feature recomputed since); replaced by each detection, cut by each recommit
    """CREATE TABLE IF NOT EXISTS fsql_ledger_stale (
        id {id},
        feature TEXT NOT NULL,
        version INTEGER NOT NULL,
        start_ts {ts} NOT NULL,
        end_ts {ts} NOT NULL,
        reason TEXT NOT NULL,
        created_at {ts} NOT NULL,
        FOREIGN KEY (feature, version) REFERENCES fsql_versions (name, version)
    )""",
    "CREATE INDEX IF NOT EXISTS fsql_ledger_stale_version ON fsql_ledger_stale (feature, version)",
]

#: Columns added to existing tables after schema version 1, as (table, column, type): a
#: registry created before them gets them when it is opened (:meth:`Backend.add_columns`), and
#: their rows hold NULL there. New tables need nothing: ``CREATE TABLE IF NOT EXISTS`` runs on
#: every open. Additive changes like these keep ``SCHEMA_VERSION`` (an older fsql ignores them).
ADDED_COLUMNS = [
    # what an interval read from each source (JSON; see fsql.registry.ledger.InputFile)
    ("fsql_ledger", "inputs", "TEXT"),
]


class Backend(ABC):
    """One database connection holding a registry."""

    #: shown in messages, e.g. "sqlite:///repo/.fsql/registry.db"
    url: str
    #: DDL types that differ between databases: ``ts`` (a UTC instant), ``id`` (an
    #: auto-numbered primary key)
    ddl_types: dict[str, str]
    #: True when ``SELECT ... FOR UPDATE`` locks rows (PostgreSQL); SQLite instead locks the
    #: whole database for the length of a write transaction
    row_locks: bool

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement in the current transaction; rows it returns (empty if none)."""

    @abstractmethod
    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[None]:
        """A transaction, committed on success and rolled back on any exception.

        ``write=True`` starts a transaction that will write: on SQLite it takes the database
        write lock up front (BEGIN IMMEDIATE), so two writers queue instead of failing midway.
        ``write=False`` is a consistent read-only snapshot.
        """

    @contextmanager
    def _commit_or_rollback(self, errors: type[BaseException]) -> Iterator[None]:
        """The body of a started transaction: COMMIT after it, ROLLBACK on any exception (a
        failed ROLLBACK, one of ``errors``, is ignored: the original error is what matters)."""
        try:
            yield
            self.execute("COMMIT")
        except BaseException:
            with suppress(errors, RegistryError):  # execute() wraps the driver's errors
                self.execute("ROLLBACK")
            raise

    @abstractmethod
    def try_lock(self, key: int) -> bool:
        """Try to take the exclusive, process-wide lock ``key`` (a 31-bit number) without
        waiting. Every process using this registry sees the same locks; a lock dies with the
        process (or connection) holding it, so a killed writer never leaves one behind."""

    @abstractmethod
    def unlock(self, key: int) -> None:
        """Release a lock taken with :meth:`try_lock`."""

    def initialize(self) -> None:
        """Create the schema if missing (and add the columns an older registry lacks), safely
        when several processes open a new registry."""
        with self.transaction(write=True):
            self.lock_schema()
            for statement in self.schema_statements():
                self.execute(statement)
            self.add_columns()
            if not self.execute("SELECT 1 FROM fsql_state"):
                self.execute(
                    "INSERT INTO fsql_state (id, revision, schema_version) VALUES (1, 0, ?)",
                    (SCHEMA_VERSION,),
                )

    def lock_schema(self) -> None:  # noqa: B027 - optional hook: SQLite's write lock suffices
        """Serialise schema creation between processes, inside ``initialize``'s transaction
        (PostgreSQL: ``CREATE TABLE IF NOT EXISTS`` can collide; SQLite's write transaction
        already excludes others)."""

    @abstractmethod
    def ts_param(self, value: datetime) -> Any:
        """A UTC datetime as this database stores it."""

    @abstractmethod
    def ts_value(self, value: Any) -> datetime:
        """A stored timestamp back as an aware UTC datetime."""

    @abstractmethod
    def close(self) -> None: ...

    def for_update(self) -> str:
        """The row-locking suffix for a SELECT that precedes a write of those rows."""
        return " FOR UPDATE" if self.row_locks else ""

    def schema_statements(self) -> list[str]:
        return [s.format(**self.ddl_types) for s in SCHEMA]

    @abstractmethod
    def table_columns(self, table: str) -> set[str]:
        """The column names of ``table`` (in the current transaction)."""

    def add_columns(self) -> None:
        """Add the :data:`ADDED_COLUMNS` an older registry lacks (inside ``initialize``'s
        transaction, after the tables exist)."""
        for table, column, sql_type in ADDED_COLUMNS:
            if column not in self.table_columns(table):
                self.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")
