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

import threading

import duckdb
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

    def tables(self) -> list[tuple[str, str, str, bool]]:
        """(table, column, DuckDB type, nullable) of the shared tables, in column order."""
        con = self.connect()
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
        with self._lock:
            found = self._databases.get(user)
            if found is None:
                found = self._databases[user] = UserDatabase(user, self.threads,
                                                             self.memory_limit)
            return found

    def all(self) -> list[UserDatabase]:
        with self._lock:
            return list(self._databases.values())
