"""The sandboxed DuckDB backend: general SQL over fsql's offline data, a connection per session.

Each session gets a connection (created on first use, so point lookups never pay for it) of
its user's in-memory DuckDB database (:mod:`fsql_server.pg.user_tables`): temporary tables,
spines uploaded with ``COPY FROM STDIN`` into them and the Arrow relations a statement
registers are private to the session and vanish with it; tables made with plain ``CREATE
TABLE`` are shared by the user's sessions. The database is sandboxed before any user SQL runs:
``enable_external_access = false`` (no files, no network, no extensions) and then
``lock_configuration = true`` (user SQL cannot undo it). fsql's data reaches DuckDB only
as registered Arrow datasets (``offline.<feature>``, ``sources.<source>``), resolved by the
:class:`~fsql_server.pg.planner.DataRelations` the surface passes in, so the sandbox never
needs a file path. A backend made without a user's database (unit tests, the catalog) has a
database of its own, sandboxed the same way.

Statements are checked on the sqlglot AST before they reach DuckDB (``ATTACH``, ``COPY ... TO
'file'``, ``INSTALL``/``LOAD``, file-reading table functions are refused with 42501), then
transpiled to DuckDB SQL once per statement.
"""

from __future__ import annotations

import asyncio
import re
import threading
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import duckdb
from fsql_server.pg import errors
from fsql_server.pg.array_literals import rewrite_array_literals
from fsql_server.pg.backend import Backend, Column, Plan, Result
from fsql_server.pg.data_relations import INTERNAL_PREFIX, DataRef, rewrite_relations
from fsql_server.pg.errors import PgError
from fsql_server.pg.macros import SESSION_MACROS, register_functions
from fsql_server.pg.meanings import rewrite_postgres_meanings
from fsql_server.pg.memory import estimate_bytes, memory_bytes, out_of_memory
from fsql_server.pg.planner import DataRelations
from fsql_server.pg.pushdown import resolve
from fsql_server.pg.types import (
    INT8,
    TEXT,
    TYPES,
    PgType,
    duckdb_type_for_pg,
    pg_type_for_duckdb,
    sql_type_to_pg,
    type_by_oid,
)
from fsql_server.pg.user_tables import UserDatabase, UserTransactions
from sqlglot import exp

#: a :class:`fsql_server.pg.session.Session` (the session module is built on this one: a
#: session opens its DuckDB database)
Session = Any

#: table functions that read files or the network: refused before DuckDB sees them
FILE_FUNCTIONS = re.compile(
    r"^(read_\w+|\w+_scan|glob|sniff_csv|parquet_\w+|iceberg_\w+|delta_\w+|getenv|"
    r"query_table|query|load_\w+|duckdb_secrets|which_secret|install_\w+)$",
    re.I,
)

#: rows fetched from DuckDB per chunk when a result streams to the client (at most)
STREAM_CHUNK = 10_000
#: rows of the first chunk, fetched before the rows' size is known
FIRST_CHUNK = 256
#: bytes of rows per chunk (at most; an eighth of the session's memory limit if lower)
CHUNK_BYTES = 16 * 2**20

_COMMAND_TAGS = {
    exp.Insert: "INSERT",
    exp.Update: "UPDATE",
    exp.Delete: "DELETE",
}


def refuse(what: str, hint: str | None = None) -> PgError:
    """42501 for something the sandbox does not allow."""
    return PgError(
        errors.INSUFFICIENT_PRIVILEGE,
        f"permission denied: {what} is not allowed through fsql's SQL interface",
        hint=hint or "Only fsql's own data (features, offline, sources, fsql.* and your "
        "session's temporary tables) can be read or written.",
    )


def check_sandbox(tree: exp.Expression) -> None:
    """Refuse statements that would touch anything but fsql's data or the session's tables."""
    if isinstance(tree, exp.Command):
        word = str(tree.this).upper()
        raise refuse(word, None)
    if isinstance(tree, (exp.Attach, exp.Detach)):
        raise refuse("ATTACH/DETACH")
    if isinstance(tree, exp.Copy):
        raise refuse("COPY to or from a file", "Use COPY ... TO STDOUT or COPY ... FROM STDIN.")
    if isinstance(tree, (exp.Set, exp.Pragma)):
        raise refuse("changing engine settings")
    if type(tree).__name__ in ("Install", "Load", "Export", "Import", "Use"):
        raise refuse(type(tree).__name__.upper())
    for node in tree.walk():
        # the name as DuckDB resolves it: "read_text"(...) and READ_TEXT(...) are read_text
        if isinstance(node, exp.Anonymous) and FILE_FUNCTIONS.match(node.name):
            raise refuse(f"the function {node.name.lower()}()")
        if isinstance(node, exp.Func) and not isinstance(node, exp.Anonymous):
            name = node.sql_name()
            if FILE_FUNCTIONS.match(name):
                raise refuse(f"the function {name.lower()}()")
        if isinstance(node, exp.Table):
            if isinstance(node.this, exp.Literal) and node.this.is_string:
                raise refuse(f"reading the file '{node.this.this}'")
            if node.catalog:
                raise refuse(f"the database {node.catalog}")
            if node.db.lower() in ("information_schema",):
                continue
        if isinstance(node, exp.Create) and node.kind and node.kind.upper() in (
            "MACRO", "FUNCTION", "SECRET", "SCHEMA", "TYPE", "DATABASE",
        ):
            raise refuse(f"CREATE {node.kind.upper()}")
        if isinstance(node, exp.Create) and isinstance(target := node.find(exp.Table), exp.Table) \
                and target.name.lower().startswith(INTERNAL_PREFIX):
            raise PgError(errors.RESERVED_NAME,
                          f'relation name "{target.name}" is reserved for fsql\'s own objects',
                          hint=f"Choose a name that does not begin with {INTERNAL_PREFIX}.")


def _partner(node: exp.Expression) -> exp.Expression | None:
    """The expression a parameter is compared with (its type is the parameter's type)."""
    parent = node.parent
    while isinstance(parent, (exp.Paren, exp.Any, exp.All)):
        node, parent = parent, parent.parent
    if isinstance(parent, (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like,
                           exp.ILike, exp.Is, exp.NullSafeEQ, exp.NullSafeNEQ)):
        other = parent.expression if parent.this is node else parent.this
        return other
    if isinstance(parent, exp.In) and parent.this is not node:
        return parent.this
    if isinstance(parent, exp.Between) and parent.this is not node:
        return parent.this
    return None


def _param_index(node: exp.Expression) -> int | None:
    text = node.name if isinstance(node, exp.Parameter) else None
    if text is None:
        return None
    inner = node.this
    value = inner.name if isinstance(inner, exp.Expression) else str(inner)
    return int(value) if value.isdigit() else None


def parameters(tree: exp.Expression) -> list[exp.Parameter]:
    return [p for p in tree.find_all(exp.Parameter) if _param_index(p) is not None]


class DuckDBPlan(Plan):
    """A statement for DuckDB: transpiled once, described once, run many times."""

    def __init__(
        self,
        backend: DuckDBBackend,
        sql: str,
        duck_sql: str,
        describe_sql: str | None,
        param_types: tuple[PgType, ...],
        command: str,
        relations: dict[str, DataRef],
    ):
        self.backend = backend
        self.sql = sql
        self.duck_sql = duck_sql
        self.describe_sql = describe_sql
        self.param_types = param_types
        self.command = command
        self.relations = relations
        self._columns: list[Column] | None | bool = False  # False: not described yet
        self._generation = -1
        #: CREATE TABLE ... AS query (its tag counts the rows written)
        self.creates_from_query = False
        provider = backend.provider
        #: the surface's version of its tables when planned (see :meth:`stale`)
        self._version = provider.version() if relations and provider is not None \
            and provider.version is not None else None

    def stale(self) -> bool:
        """True when the surface's tables may have other columns now (a feature was added to
        the entity ``features.<entity>`` shows): the session's plan cache plans again."""
        provider = self.backend.provider
        if self._version is None or provider is None or provider.version is None:
            return False
        return provider.version() is not self._version

    def describe_blocks(self, session: Session) -> bool:
        return self.describe_sql is not None and (
            self._columns is False or self._generation != session.tables_generation())

    def describe(self, session: Session) -> list[Column] | None:
        # Re-describe after the session (or another of the user's: shared tables) changed
        # its tables (DROP + CREATE of a spine with other columns): the cached plan must not
        # send a stale RowDescription.
        generation = session.tables_generation()
        if self._generation != generation:
            self._columns = False
            self._generation = generation
        if self._columns is False:
            if self.describe_sql is None:
                self._columns = None
            else:
                try:
                    with self.backend._lock:
                        self.backend.register(self.relations)
                        rows = self.backend.con.execute(self.describe_sql).fetchall()
                except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
                    raise errors.to_pg_error(exc, self.sql, errors.from_duckdb) from None
                self._columns = [Column(name, pg_type_for_duckdb(kind)) for name, kind, *_ in rows]
        return self._columns  # type: ignore[return-value]

    async def explain(self, session: Session) -> list[str]:
        """DuckDB's physical plan of the statement (parameters left unbound)."""
        if self.describe_sql is None:
            return [f"DuckDB: {self.command}"]
        probe = "EXPLAIN " + self.describe_sql[len("DESCRIBE "):]
        rows = await self.backend.run_in_thread(probe, [], self.relations, self.sql)
        lines = ["DuckDB (session database):"]
        for _key, text in rows:
            lines.extend(line for line in str(text).splitlines() if line.strip())
        return lines

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        if session.status == "T" and self.backend.user_db is not None:
            self.backend.begin()  # the client's block, in the user's database too
        columns = self.describe(session)
        backend = self.backend
        if self.command.startswith(("CREATE", "DROP", "ALTER")):
            session.ddl_generation += 1
            backend.tables_changed()
        if columns is not None:
            rows, more = await backend.stream_in_thread(
                self.duck_sql, list(params), self.relations, self.sql)
            return Result(columns, rows, "SELECT", more=more)
        if self.command in ("INSERT", "UPDATE", "CREATE TABLE"):
            with backend.writing(session):
                rows = await backend.run_in_thread(self.duck_sql, list(params),
                                                   self.relations, self.sql)
        else:
            rows = await backend.run_in_thread(self.duck_sql, list(params), self.relations,
                                               self.sql)
        count = rows[0][0] if rows and rows[0] and isinstance(rows[0][0], int) else 0
        if self.command == "INSERT":
            return Result(None, (), f"INSERT 0 {count}", counted=False)
        if self.command in ("UPDATE", "DELETE"):
            return Result(None, (), f"{self.command} {count}", counted=False)
        if self.creates_from_query:
            # PostgreSQL tags CREATE TABLE ... AS with the rows it wrote: "SELECT n"
            return Result(None, (), f"SELECT {count}", counted=False)
        return Result(None, (), self.command, counted=False)


class DuckDBBackend(Backend, UserTransactions):
    """One session's sandboxed DuckDB database."""

    def __init__(self, provider: DataRelations | None = None, threads: int = 2,
                 memory_limit: str | None = None, user_db: UserDatabase | None = None):
        #: the user's database whose connection this is (None: a database of its own)
        self.user_db = user_db
        #: a DuckDB transaction is open (BEGIN ... COMMIT of the client's, on first use)
        self.in_transaction = False
        #: the open transaction created, dropped or altered a table
        self._changed_in_transaction = False
        #: the surface's tables (``offline.*`` ...), registered when a statement reads them
        self.provider = provider
        self.data_schemas = provider.schemas if provider is not None else ()
        self.threads = threads
        self.memory_limit = memory_limit
        self._con: duckdb.DuckDBPyConnection | None = None
        self._registered: set[str] = set()
        #: other DuckDB connections doing this session's work now (a training set's join):
        #: a cancel or timeout interrupts them with the session's own
        self.side_connections: set[duckdb.DuckDBPyConnection] = set()
        #: results still being fetched (held weakly: a result nobody reads is not parked)
        self._streams: weakref.WeakSet[ResultStream] = weakref.WeakSet()
        #: bytes of rows held for open results (parked rows), against ``memory_bytes``
        self.held_bytes = 0
        self.memory_bytes = memory_bytes(memory_limit) if memory_limit else None
        #: what is registered under each name (to ask a stream that failed for its error)
        self._objects: dict[str, Any] = {}
        #: one statement at a time on the connection (a statement interrupted by a cancel may
        #: still be finishing in its thread); re-entrant for nested registration
        self._lock = threading.RLock()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection, for running a statement on it. A new statement ends DuckDB's
        pending result, so the rows still to come of open results (a cursor, a portal read
        in pieces) are fetched first (:meth:`ResultStream.park`)."""
        if self._streams:
            with self._lock:
                for stream in list(self._streams):
                    stream.park()
        if self._con is None:
            self._con = self._connect()
        return self._con

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """A connection of the user's database, or a new sandboxed database (made on first
        use)."""
        if self.user_db is not None:
            con = self.user_db.connect()  # sandboxed and configured by the user's database
            for macro in SESSION_MACROS:  # temporary: the connection's own
                con.execute(macro)
            return con
        con = duckdb.connect(":memory:")
        con.execute(f"SET threads = {int(self.threads)}")
        if self.memory_limit:
            con.execute(f"SET memory_limit = '{self.memory_limit}'")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET integer_division = true")  # 7 / 2 is 3, as in PostgreSQL
        for macro in SESSION_MACROS:  # quote_ident, quote_literal... (PostgreSQL's)
            con.execute(macro)
        register_functions(con)  # avg's exact numeric quotient
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    # -- planning -----------------------------------------------------------------------------

    def plan(self, sql: str, tree: Any, param_oids: Sequence[int]) -> Plan:
        check_sandbox(tree)
        tree = tree.copy()
        for table in tree.find_all(exp.Table):
            if table.db.lower() == "public" and not table.catalog:
                # public.t: the user's shared table, never a temporary one of that name
                table.set("db", exp.to_identifier("main"))
                table.set("catalog", exp.to_identifier("memory"))
        relations = self._rewrite_relations(tree)
        params = parameters(tree)
        count = max((_param_index(p) or 0 for p in params), default=0)
        count = max(count, len(param_oids))
        types: list[PgType | None] = [None] * count
        for i, oid in enumerate(param_oids):
            if oid and oid != 705:  # 0 and "unknown" both leave the type to be inferred
                types[i] = type_by_oid(oid)
        for p in params:
            idx = (_param_index(p) or 1) - 1
            if types[idx] is None and isinstance(p.parent, exp.Cast):
                types[idx] = _cast_type(p.parent)
            if types[idx] is None and isinstance(p.parent, (exp.Limit, exp.Offset, exp.Fetch)):
                types[idx] = INT8
        rewrite_postgres_meanings(tree)
        rewrite_array_literals(tree)
        if isinstance(tree, exp.Insert) and any(t is None for t in types):
            self._infer_insert(tree, types)
        is_query = isinstance(tree, exp.Query) or (
            isinstance(tree, (exp.Insert, exp.Update, exp.Delete)) and tree.args.get("returning")
        )
        if is_query and any(t is None for t in types):
            self._infer_from_partners(tree, params, types, relations)
        for p in params:
            # key = ANY($1) untyped (and not typed after the key above): a text[] as in PG
            idx = (_param_index(p) or 1) - 1
            if types[idx] is None and _under_any(p):
                types[idx] = TYPES[TEXT.array_oid]
        final = tuple(t or TEXT for t in types)
        # Parameters whose type is known are cast, so DuckDB binds them as the client meant.
        for p in params:
            idx = (_param_index(p) or 1) - 1
            duck = duckdb_type_for_pg(final[idx].oid)
            if duck and final[idx] is not TEXT and not isinstance(p.parent, exp.Cast):
                p.replace(exp.cast(p.copy(), duck, dialect="duckdb"))
        duck_sql = tree.sql(dialect="duckdb")
        describe_sql = None
        if is_query:
            probe = tree.copy()
            for p in parameters(probe):
                idx = (_param_index(p) or 1) - 1
                duck = duckdb_type_for_pg(final[idx].oid) if final[idx] is not TEXT else None
                null = exp.Null()
                p.replace(exp.cast(null, duck, dialect="duckdb") if duck else null)
            describe_sql = "DESCRIBE " + probe.sql(dialect="duckdb")
        command = _command_tag(tree)
        plan = DuckDBPlan(self, sql, duck_sql, describe_sql, final, command, relations)
        plan.creates_from_query = isinstance(tree, exp.Create) and isinstance(
            tree.expression, exp.Query)
        return plan

    def _rewrite_relations(self, tree: exp.Expression) -> dict[str, DataRef]:
        filtered = self.provider.filtered if self.provider is not None else frozenset()
        return rewrite_relations(tree, self.data_schemas, filtered)

    def _values_of(self, query: str) -> list[Any] | None:
        """The first column of a query over the session's tables (None when it fails: the
        statement reports the table's own error when it runs)."""
        try:
            return [row[0] for row in self.con.execute(query).fetchall()]
        except Exception:  # noqa: BLE001 - no filter then; the statement itself errs
            return None

    def register(self, relations: dict[str, DataRef],
                 params: Sequence[Any] | None = None) -> None:
        """Register the statement's relations (``params``: the statement's bound parameters,
        for filters that name them; None while describing)."""
        provider = self.provider
        for alias, (schema, name, filters) in relations.items():
            if alias in self._registered and (provider is None or
                                              schema not in provider.volatile):
                continue  # volatile tables (the registry's) are read for every statement
            equal_to = resolve(filters, params, self._values_of) \
                if filters and params is not None else None
            data = provider.provide(schema, name, equal_to) if provider is not None else None
            if data is None:
                raise PgError(
                    errors.UNDEFINED_TABLE,
                    f'relation "{schema}.{name}" does not exist',
                    hint=provider.hints.get(schema) if provider is not None else None,
                )
            with self._lock:
                self.con.register(alias, data)
            self._registered.add(alias)
            self._objects[alias] = data

    def _infer_insert(self, tree: exp.Insert, types: list[PgType | None]) -> None:
        """``INSERT INTO t (cols) VALUES ($1, ...)``: parameters take the columns' types."""
        values = tree.expression
        target = tree.this
        if not isinstance(values, exp.Values):
            return
        table = target.this if isinstance(target, exp.Schema) else target
        if not isinstance(table, exp.Table):
            return
        try:
            with self._lock:
                described = self.con.execute(
                    f"DESCRIBE {table.sql(dialect='duckdb')}").fetchall()
        except Exception:  # noqa: BLE001 - unknown table: DuckDB reports it when it runs
            return
        by_name = {row[0].lower(): row[1] for row in described}
        if isinstance(target, exp.Schema) and target.expressions:
            names = [c.name.lower() for c in target.expressions]
        else:
            names = [row[0].lower() for row in described]
        for row in values.expressions:
            for position, item in enumerate(row.expressions):
                index = _param_index(item) if isinstance(item, exp.Parameter) else None
                if index is None or position >= len(names) or types[index - 1] is not None:
                    continue
                kind = by_name.get(names[position])
                if kind:
                    types[index - 1] = pg_type_for_duckdb(kind)

    def _infer_from_partners(
        self,
        tree: exp.Expression,
        params: list[exp.Parameter],
        types: list[PgType | None],
        relations: dict[str, DataRef],
    ) -> None:
        """Type untyped parameters after the expression they are compared with, by asking
        DuckDB for that expression's type in a probe over the same FROM clause."""
        probes: dict[int, tuple[exp.Select, exp.Expression]] = {}
        params_by_index = {(_param_index(p) or 1) - 1: p for p in params}
        for p in params:
            idx = (_param_index(p) or 1) - 1
            if types[idx] is not None or idx in probes:
                continue
            partner = _partner(p)
            select = p.find_ancestor(exp.Select)
            if partner is None or select is None or parameters(partner):
                continue
            probes[idx] = (select, partner)
        if not probes:
            return
        try:
            self.register(relations)
        except PgError:
            return
        for idx, (select, partner) in probes.items():
            probe = exp.Select(expressions=[partner.copy()])
            for key in ("from_", "joins", "with_"):
                if select.args.get(key):
                    probe.set(key, select.args[key].copy() if key != "joins" else
                              [j.copy() for j in select.args[key]])
            top_with = select.find_ancestor(exp.Query)
            while top_with is not None and not probe.args.get("with_"):
                if top_with.args.get("with_"):
                    probe.set("with_", top_with.args["with_"].copy())
                top_with = top_with.find_ancestor(exp.Query)
            for p in parameters(probe):
                p.replace(exp.Null())
            try:
                with self._lock:
                    rows = self.con.execute("DESCRIBE " + probe.sql(dialect="duckdb")).fetchall()
            except Exception:  # noqa: BLE001 - an unprobeable parameter stays text, as in PG
                continue
            if rows:
                found = pg_type_for_duckdb(rows[0][1])
                if _under_any(params_by_index[idx]):  # key = ANY($1): an array of the key's
                    found = TYPES.get(found.array_oid) or TYPES[TEXT.array_oid]
                types[idx] = found

    # -- running ------------------------------------------------------------------------------

    async def run_in_thread(
        self, sql: str, params: list[Any], relations: dict[str, DataRef],
        client_sql: str | None = None,
    ) -> list[tuple[Any, ...]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._run, sql, params, relations, client_sql)

    def _run(
        self, sql: str, params: list[Any], relations: dict[str, DataRef],
        client_sql: str | None = None,
    ) -> list[tuple[Any, ...]]:
        with self._lock:
            self.register(relations, params)
            try:
                cursor = self.con.execute(sql, params) if params else self.con.execute(sql)
                return cursor.fetchall()
            except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
                raise self._error(exc, relations, client_sql) from None

    async def stream_in_thread(
        self, sql: str, params: list[Any], relations: dict[str, DataRef],
        client_sql: str | None = None,
    ) -> tuple[list[tuple[Any, ...]], Callable[[], Awaitable[list[Any]]] | None]:
        """Run a query and return its first chunk of rows plus a function fetching the next
        chunks (None when the first chunk was everything). DuckDB produces the rows as they
        are fetched, so only one chunk is ever held here (see :class:`ResultStream`)."""
        loop = asyncio.get_running_loop()

        def first() -> tuple[list[tuple[Any, ...]], ResultStream]:
            with self._lock:
                self.register(relations, params)
                try:
                    cursor = self.con.execute(sql, params) if params else self.con.execute(sql)
                except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
                    raise self._error(exc, relations, client_sql) from None
                stream = ResultStream(self, cursor,
                                      lambda exc: self._error(exc, relations, client_sql))
                return stream.fetch(), stream

        rows, stream = await loop.run_in_executor(None, first)
        if stream.done():
            return rows, None

        def fetch() -> list[Any]:
            with self._lock:
                return stream.fetch()

        async def more() -> list[Any]:
            return await loop.run_in_executor(None, fetch)

        return rows, more

    def _error(self, exc: Exception, relations: dict[str, DataRef],
               client_sql: str | None) -> PgError:
        """DuckDB's error as a PgError; when a registered stream failed while DuckDB read it
        (``features.<entity>``'s scan: the online store is down), that stream's own error,
        which maps to its own SQLSTATE, instead of DuckDB's wrapping of it."""
        for alias in relations:
            failure = getattr(self._objects.get(alias), "failure", None)
            if isinstance(failure, Exception):
                self._objects[alias].failure = None
                return errors.to_pg_error(failure, client_sql)
        return errors.to_pg_error(exc, client_sql, errors.from_duckdb)

    def execute_sync(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run trusted SQL built by the server itself (COPY FROM loading, cursors)."""
        with self._lock:
            try:
                return self.con.execute(sql, list(params)).fetchall()
            except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
                raise errors.to_pg_error(exc, None, errors.from_duckdb) from None

    def table_columns(self, name: str) -> list[tuple[str, str]]:
        """(column, DuckDB type) of a session table, for COPY FROM STDIN."""
        try:
            with self._lock:
                rows = self.con.execute(f"DESCRIBE {name}").fetchall()
        except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
            raise errors.to_pg_error(exc, None, errors.from_duckdb) from None
        return [(r[0], r[1]) for r in rows]

    def interrupt(self) -> None:
        if self._con is not None:
            self._con.interrupt()
        for con in list(self.side_connections):
            con.interrupt()

    def close(self) -> None:
        """Close the database; waits for a statement still running in a thread (interrupt it
        first) so the close never races it."""
        if self._con is not None:
            self._con.interrupt()
            with self._lock:
                self._con.close()
                self._con = None


class ResultStream:
    """A query result handed out chunk by chunk as DuckDB produces it.

    Chunks are sized by the rows' size (at most :data:`STREAM_CHUNK` rows, at most
    :data:`CHUNK_BYTES` or an eighth of the session's memory limit), so a result of wide rows
    does not hold gigabytes in Python. When another statement needs the connection while
    the result is still open (a cursor, or a portal read in pieces, between fetches) the
    remaining rows are *parked*: fetched and held here, counted against the session's memory
    limit; a result that does not fit fails with 53200 at its next fetch.
    """

    def __init__(self, backend: DuckDBBackend, cursor: duckdb.DuckDBPyConnection,
                 error: Callable[[Exception], PgError]):
        self.backend = backend
        self.cursor: duckdb.DuckDBPyConnection | None = cursor
        #: DuckDB's exception → the statement's PgError (DuckDBBackend._error)
        self.error = error
        self.chunk_rows = FIRST_CHUNK
        self.parked: list[Any] = []
        self.parked_bytes = 0
        self.failure: PgError | None = None
        backend._streams.add(self)

    def done(self) -> bool:
        return self.cursor is None and not self.parked and self.failure is None

    def fetch(self) -> list[Any]:
        """The next chunk (``[]`` at the end); call with the backend's lock held."""
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure
        if self.parked:
            chunk, self.parked = self.parked[:self.chunk_rows], self.parked[self.chunk_rows:]
            released = self.parked_bytes if not self.parked else \
                self.parked_bytes * len(chunk) // (len(chunk) + len(self.parked))
            self.parked_bytes -= released
            self.backend.held_bytes -= released
            return chunk
        if self.cursor is None:
            return []
        rows = self._fetch_chunk()
        if len(rows) < self.chunk_rows:
            self._finish()
        else:
            self._resize(rows)
        return rows

    def _fetch_chunk(self) -> list[Any]:
        assert self.cursor is not None
        try:
            return self.cursor.fetchmany(self.chunk_rows)
        except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
            self._finish()
            raise self.error(exc) from None

    def _resize(self, rows: list[Any]) -> None:
        """Size the next chunks by the bytes of these rows; 53200 when one chunk of a
        single row exceeds the session's memory limit."""
        size = estimate_bytes(rows)
        limit = self.backend.memory_bytes
        budget = CHUNK_BYTES if limit is None else min(CHUNK_BYTES, limit // 8)
        per_row = max(1, size // max(1, len(rows)))
        self.chunk_rows = max(1, min(STREAM_CHUNK, budget // per_row))
        if limit is not None and per_row > limit:
            self._finish()
            raise out_of_memory(per_row, limit, "one row of the result")

    def park(self) -> None:
        """Fetch the remaining rows now (another statement needs the connection)."""
        if self.cursor is None:
            return
        backend = self.backend
        limit = backend.memory_bytes
        while self.cursor is not None:
            rows = self._fetch_chunk()
            size = estimate_bytes(rows)
            if limit is not None and backend.held_bytes + size > limit:
                self._finish()
                self.failure = out_of_memory(
                    backend.held_bytes + size, limit,
                    "the rows still to be fetched of an open cursor or portal, held while "
                    "another statement ran")
                backend.held_bytes -= self.parked_bytes
                self.parked, self.parked_bytes = [], 0
                return
            self.parked.extend(rows)
            self.parked_bytes += size
            backend.held_bytes += size
            if len(rows) < self.chunk_rows:
                self._finish()

    def _finish(self) -> None:
        self.cursor = None
        self.backend._streams.discard(self)

    def __del__(self) -> None:
        self.backend.held_bytes -= self.parked_bytes


def _under_any(node: exp.Expression) -> bool:
    """``x = ANY($1)`` / ``ALL($1)``: the parameter stands for an array."""
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    return isinstance(parent, (exp.Any, exp.All))


def _cast_type(cast: exp.Cast) -> PgType | None:
    try:
        return sql_type_to_pg(cast.to.sql(dialect="postgres"))
    except PgError:
        return None


def _command_tag(tree: exp.Expression) -> str:
    for kind, tag in _COMMAND_TAGS.items():
        if isinstance(tree, kind):
            return tag
    if isinstance(tree, exp.Create):
        return f"CREATE {(tree.kind or 'TABLE').upper()}"
    if isinstance(tree, exp.Drop):
        return f"DROP {(tree.kind or 'TABLE').upper()}"
    if isinstance(tree, exp.Alter):
        return f"ALTER {(tree.kind or 'TABLE').upper()}"
    return "SELECT"
