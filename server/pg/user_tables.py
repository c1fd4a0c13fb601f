"""Each user's shared tables: one in-memory DuckDB database per user, a connection of it per
session.

A table a session creates with plain ``CREATE TABLE`` lives in its user's database and is
shared by every session of that user (Spark's JDBC writer creates the table on the driver's
connection and inserts from its executors' connections); ``CREATE TEMP TABLE`` stays private
to the session (DuckDB's ``temp`` catalog belongs to one connection), and so do the Arrow
relations a statement registers and the session's macros. Another user's sessions have
another database: they never see these tables. The tables live until ``DROP TABLE`` or the
server process stops (memory only, not durable).

The database is sandboxed like a session's was (no files, no network, no extensions,
configuration locked) and bounded by ``[compute] memory_limit``: the shared tables and the
work of all of the user's sessions count against it together (53200 when exceeded).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
from fsql_server.pg import errors
from fsql_server.pg.errors import PgError
from fsql_server.pg.macros import register_functions


class UserDatabase:
    """One user's DuckDB database (made when the user's first session needs DuckDB)."""

    def __init__(self, user: str, threads: int, memory_limit: str | None):
        self.user = user
        con = duckdb.connect(":memory:")
        con.execute(f"SET threads = {int(threads)}")
        if memory_limit:
            con.execute(f"SET memory_limit = '{memory_limit}'")
        # global, so every session's connection starts with them (the configuration is
        # locked below: no session can change them)
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        con.execute("SET GLOBAL integer_division = true")  # 7 / 2 is 3, as in PostgreSQL
        register_functions(con)  # avg's exact numeric quotient (the database's functions)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        self._con = con
        self._lock = threading.Lock()
        #: the sessions using it now
        self.sessions = 0
        #: closed: its last session ended and it held no table (UserDatabases.release)
        self.closed = False
        #: bumped by every CREATE/DROP/ALTER and COMMIT of the user's sessions: cached plans
        #: describe again, the catalog lists the tables again
        self.generation = 0
        #: lower-case table name → the types its columns were declared with (see
        #: fsql_server.pg.origins), for the shared tables
        self.declared_tables: dict[str, list[tuple[str, object]]] = {}

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A new connection (its own transactions, temporary tables and registrations)."""
        with self._lock:
            return self._con.cursor()

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._con.close()

    def tables(self) -> list[tuple[str, str, str, bool]]:
        """(table, column, DuckDB type, nullable) of the shared tables, in column order
        (none once closed)."""
        with self._lock:
            if self.closed:
                return []
            con = self._con.cursor()
        try:
            rows = con.execute(
                "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
                "WHERE database_name = 'memory' AND schema_name = 'main' "
                "ORDER BY table_name, column_index").fetchall()
        finally:
            con.close()
        return [(str(t), str(c), str(k), bool(n)) for t, c, k, n in rows]


class UserDatabases:
    """The users' databases of one server process, by user name."""

    def __init__(self, threads: int, memory_limit: str | None):
        self.threads = threads
        self.memory_limit = memory_limit
        self._lock = threading.Lock()
        self._databases: dict[str, UserDatabase] = {}

    def of(self, user: str) -> UserDatabase:
        """The user's database, for a new session of the user (:meth:`release` it when the
        session ends)."""
        with self._lock:
            found = self._databases.get(user)
            if found is None:
                found = self._databases[user] = UserDatabase(user, self.threads,
                                                             self.memory_limit)
            found.sessions += 1
            return found

    def release(self, user: str) -> None:
        """A session of ``user`` ended: the database goes when it was the last one and no
        table is left (a server under trust sees many user names; each keeps nothing)."""
        with self._lock:
            found = self._databases.get(user)
            if found is None:
                return
            found.sessions -= 1
            if found.sessions <= 0 and not found.tables():
                del self._databases[user]
                found.close()

    def all(self) -> list[UserDatabase]:
        with self._lock:
            return list(self._databases.values())


class UserTransactions:
    """A session's DuckDB transactions (a part of its DuckDBBackend): the client's blocks,
    a write alone, and the bound of the user's space for tables."""

    user_db: UserDatabase | None
    in_transaction: bool
    _changed_in_transaction: bool
    _registered: set[str]
    memory_bytes: int | None

    def execute_sync(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def begin(self) -> None:
        """Open a DuckDB transaction for the client's transaction block (on its first
        statement here): a rolled-back INSERT into a shared table is never seen by the
        user's other sessions, a committed one is, all at once."""
        if not self.in_transaction:
            self.execute_sync("BEGIN TRANSACTION")
            self.in_transaction = True

    def finish(self, commit: bool) -> None:
        """COMMIT or ROLLBACK the DuckDB transaction of the client's block (if one is open);
        a COMMIT DuckDB refuses (another session changed the same rows) is the client's
        error, with the transaction rolled back."""
        if not self.in_transaction:
            return
        self.in_transaction = False
        try:
            self.execute_sync("COMMIT" if commit else "ROLLBACK")
        except PgError:
            if commit:
                with contextlib.suppress(PgError):  # nothing left open then
                    self.execute_sync("ROLLBACK")
                commit = False
            raise
        finally:
            if not commit:  # relations registered in the block went with it
                self._registered.clear()
            if self._changed_in_transaction and self.user_db is not None:
                self.user_db.generation += 1  # tables made in the block are listed now
            self._changed_in_transaction = False

    @contextlib.contextmanager
    def writing(self, session: Any) -> Iterator[None]:
        """Around a statement that adds rows (INSERT, CREATE TABLE ... AS, COPY FROM): in the
        client's transaction block if one is open, else alone in a transaction of its own,
        then checked against the user's space for tables (:meth:`check_tables_size`): a
        statement that overfills it is undone."""
        if self.user_db is None:
            yield  # a database of its own (the catalog's): no transactions, no shared space
            return
        if session.status == "T":
            self.begin()
        alone = not self.in_transaction
        if alone:
            self.begin()
        try:
            yield
            self.check_tables_size(session.user)
        except BaseException:
            if alone:
                self.finish(commit=False)
            raise
        if alone:
            self.finish(commit=True)

    def recover(self) -> bool:
        """ROLLBACK TO SAVEPOINT: a DuckDB transaction an error aborted is rolled back as a
        whole (DuckDB has no savepoints) so the block goes on; True when that undid work."""
        if not self.in_transaction:
            return False
        try:
            self.execute_sync("SELECT 1")
            return False  # still usable: nothing to undo
        except PgError:
            self.finish(commit=False)
            return True

    def tables_changed(self) -> None:
        """A CREATE/DROP/ALTER ran: the user's sessions describe and list tables again."""
        if self.user_db is not None:
            self.user_db.generation += 1
        self._changed_in_transaction = self.in_transaction

    def check_tables_size(self, user: str) -> None:
        """53200 when the tables of the user's database (shared and every session's
        temporary ones, in memory or spilled) hold more than the memory limit."""
        if self.memory_bytes is None:
            return
        held = self.execute_sync(
            "SELECT coalesce(sum(memory_usage_bytes + temporary_storage_bytes), 0) "
            "FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'")[0][0]
        if held > self.memory_bytes:
            raise PgError(
                errors.OUT_OF_MEMORY, "out of memory",
                detail=f'the tables of user "{user}" (shared tables and the temporary tables '
                       f"of its sessions) would take about {held // 2**20} MiB; the limit is "
                       f"{self.memory_bytes // 2**20} MiB. The statement was undone.",
                hint="DROP tables no longer needed, or raise [compute] memory_limit.")
