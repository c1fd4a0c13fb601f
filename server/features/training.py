"""``training_set('<spine>', 'feature_or_set', ...)`` in a DuckDB statement.

The point-in-time join of :mod:`fsql.compute.training` (:class:`PointInTimeJoin`, the Python
API's core) runs over a session table (or a source) as the spine, on its own engine, and
streams: the spine's keys and times are loaded into the engine batch by batch, and the feature
values come back in spine order as an Arrow stream the session's DuckDB scans beside the
spine's own rows (``POSITIONAL JOIN``), chunk by chunk as the client reads. The statement
timeout and CancelRequest interrupt the engine with the session's DuckDB.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import duckdb
import pyarrow as pa
from fsql_server.features.lookup import text_position
from fsql_server.features.services import Services
from fsql_server.pg import errors, session_functions
from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.errors import PgError
from fsql_server.pg.session import Session
from sqlglot import exp

from fsql.compute.training import (
    BATCH_ROWS,
    PointInTimeJoin,
    check_spine,
    committed_timelines,
)
from fsql.stores.sources import arrow_type


def find_training_sets(tree: exp.Expression) -> list[exp.Expression]:
    found: list[exp.Expression] = []
    for node in tree.find_all(exp.Anonymous, exp.Table):
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == "training_set":
            found.append(node)
        elif isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous) and \
                str(node.this.this).lower() == "training_set":
            found.append(node.this)
    return found


#: training-set relations of each session still registered in its DuckDB (closed and
#: unregistered when the session plans its next training set, unless still being read)
_OPEN: weakref.WeakKeyDictionary[Any, list[TrainingStream]] = weakref.WeakKeyDictionary()
_NAMES = itertools.count()


class TrainingStream:
    """The feature columns of one ``training_set(...)`` call, as an Arrow stream DuckDB scans:
    once armed (:meth:`arm`: the spine loaded into the join's engine), each scan reads the
    point-in-time join batch by batch in spine order, as the engine produces it. The join's
    engine closes when the stream ends, is abandoned or the relation is forgotten."""

    def __init__(self, alias: str, spine_copy: str, schema: pa.Schema):
        self.alias = alias
        #: the session table holding this call's copy of the spine (read positionally)
        self.spine_copy = spine_copy
        self.schema = schema
        self.join: PointInTimeJoin | None = None
        self.backend: Any = None
        self.reading = False
        #: the error that ended the last read (the statement reports it, not DuckDB's text)
        self.failure: Exception | None = None

    def arm(self, join: PointInTimeJoin, backend: Any) -> None:
        self.disarm()
        self.join, self.backend = join, backend

    def disarm(self) -> None:
        """Close the join's engine (a scan still running is interrupted by it)."""
        join, self.join = self.join, None
        if join is not None:
            self.backend.side_connections.discard(getattr(join.engine, "con", None))
            join.close()
            join.engine.close()

    def __arrow_c_schema__(self) -> Any:
        return self.schema.__arrow_c_schema__()

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        reader = pa.RecordBatchReader.from_batches(self.schema, self._batches())
        return reader.__arrow_c_stream__(requested_schema)

    def _batches(self) -> Iterator[pa.RecordBatch]:
        join = self.join
        if join is None:
            self.failure = PgError(
                errors.FEATURE_NOT_SUPPORTED,
                "this statement reads training_set(...) more than once",
                hint="Read it once: CREATE TEMP TABLE t AS SELECT * FROM training_set(...), "
                     "then query t as often as needed.")
            raise self.failure
        self.reading = True
        try:
            for batch in join.batches(BATCH_ROWS):
                yield batch.cast(self.schema)
        except Exception as exc:
            self.failure = exc
            raise
        finally:
            self.reading = False
            self.disarm()


class TrainingSetPlan(Plan):
    """A DuckDB statement reading ``training_set('spine', 'f', ...)``. Each call is replaced by
    ``(SELECT s.*, t.f ... FROM <spine copy> s POSITIONAL JOIN <stream> t)``: the spine is
    copied into a session table, its keys and times go to the join's engine, and the feature
    values stream back in spine order beside the copy's rows (:class:`TrainingStream`), so
    the whole training set is never held in Python. A call inside a CTE that the statement
    reads several times is materialized in a session table first (DuckDB's memory limit:
    53200 when it does not fit)."""

    cacheable = False

    def __init__(self, sql: str, inner: Plan, calls: list[TrainingCall], services: Services):
        self.sql = sql
        self.inner = inner
        self.calls = calls
        self.services = services
        self.param_types = inner.param_types
        self.command = inner.command

    def describe(self, session: Session) -> list[Column] | None:
        return self.inner.describe(session)

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        loop = asyncio.get_running_loop()
        stop = threading.Event()
        try:
            await loop.run_in_executor(None, self._load, session, stop)
        except asyncio.CancelledError:
            # statement timeout or CancelRequest: the connections were interrupted once; the
            # loading thread also stops at its next step instead of starting more work
            stop.set()
            raise
        for call in self.calls:
            call.stream.failure = None
        try:
            result = await self.inner.run(session, params)
        except PgError as error:
            raise self._own_error(error) from None
        more = result.more
        if more is not None:
            async def more_rows() -> list[Any]:
                try:
                    return await more()
                except PgError as error:
                    raise self._own_error(error) from None

            result.more = more_rows
        return result

    def _own_error(self, error: PgError) -> PgError:
        """The error of a training set's stream that failed while DuckDB read it (its own
        SQLSTATE: 53200 when the join's engine ran out of memory), else ``error``."""
        for call in self.calls:
            failure, call.stream.failure = call.stream.failure, None
            if failure is None:
                continue
            if isinstance(failure.__cause__, duckdb.OutOfMemoryException):
                return PgError(errors.OUT_OF_MEMORY, "out of memory", detail=str(failure),
                               hint="Raise [compute] memory_limit, or use a smaller spine.")
            return errors.to_pg_error(failure, self.sql)
        return error

    def _load(self, session: Session, stop: threading.Event) -> None:
        for call in self.calls:
            call.load(session, self.services, self.sql, stop)
        # the result's column origins are looked up in the session's DuckDB: now, before
        # the rows stream, not after the first chunk (which would park the rest)
        self.inner.describe(session)


class TrainingCall:
    """One ``training_set(spine, features...)`` of a statement: the names it registers in the
    session's DuckDB and how its spine is loaded before the statement runs."""

    def __init__(self, spine: str, features: list[str], time_column: str, schema: pa.Schema,
                 materialize: bool, direct: bool):
        n = next(_NAMES)
        self.spine = spine
        self.features = features
        self.time_column = time_column
        self.stream = TrainingStream(f"__fsql_training_{n}", f"__fsql_spine_{n}", schema)
        #: the spine is a table of the session, read as it is (else a view or a source: copied
        #: into a session table first, so that both of its reads see the same rows in order)
        self.direct = direct
        #: read several times by the statement: loaded into this session table first
        self.table = f"__fsql_training_set_{n}" if materialize else None

    def relation(self) -> exp.Expression:
        """What the statement reads in place of the call."""
        if self.table is not None:
            return exp.to_table(self.table)
        query = exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("__s")))
        for field in self.stream.schema:
            query = query.select(exp.column(exp.to_identifier(field.name, quoted=True),
                                            table="__t"))
        query = query.from_(exp.alias_(self.spine_rows(), "__s", table=True))
        query.append("joins", exp.Join(
            this=exp.alias_(exp.to_table(self.stream.alias), "__t", table=True),
            method="POSITIONAL"))
        return query.subquery()

    def spine_rows(self) -> exp.Table:
        """The session table the spine's rows are read from (twice: keys and times for the
        join, then every column beside the values, positionally)."""
        return spine_relation(self.spine) if self.direct else exp.to_table(self.stream.spine_copy)

    def register(self, session: Session, services: Services, sql: str) -> None:
        """Plan time: the spine copy (empty) and the stream (unarmed), for describing."""
        backend = session.duckdb
        source = None if self.direct else self._spine_source(session, services, sql)
        with backend._lock:
            con = backend.con
            if source is not None:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {self.stream.spine_copy} AS "
                            f"SELECT * FROM {source} LIMIT 0")
            con.register(self.stream.alias, self.stream)
            if self.table is not None:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {self.table} AS "
                            f"{self.relation_of_stream()} LIMIT 0")
        _OPEN.setdefault(backend, []).append(self.stream)

    def relation_of_stream(self) -> str:
        saved, self.table = self.table, None
        try:
            return self.relation().this.sql(dialect="duckdb")
        finally:
            self.table = saved

    def _spine_source(self, session: Session, services: Services, sql: str) -> str:
        """The spine as SQL the session's DuckDB reads: a table of the session, or a source
        (registered under a name of this call)."""
        spine = self.spine
        if is_source(session, services, spine):
            data = services.relation("sources", spine.split(".")[-1])
            if data is None:
                raise PgError(errors.UNDEFINED_TABLE, f'spine "{spine}" does not exist',
                              position=text_position(sql, spine))
            name = f"{self.stream.spine_copy}_source"
            with session.duckdb._lock:
                session.duckdb.con.register(name, data)
            return name
        return spine_relation(spine).sql(dialect="duckdb")

    def load(self, session: Session, services: Services, sql: str,
             stop: threading.Event) -> None:
        """Run time: copy the spine into the session table, give its keys and times to a new
        engine (batch by batch), arm the stream. Stops between steps once ``stop`` is set."""
        backend = session.duckdb
        source = None if self.direct else self._spine_source(session, services, sql)
        _check(stop)
        engine = open_training_engine(services, backend.memory_limit)
        side = getattr(engine, "con", None)
        if side is not None:
            # interrupted with the session's connection (statement timeout, CancelRequest)
            backend.side_connections.add(side)
        try:
            join = PointInTimeJoin(engine, committed_timelines(services.workspace,
                                                               self.features), self.time_column)
            with backend._lock:
                con = backend.con
                if source is not None:
                    con.execute(f"CREATE OR REPLACE TEMP TABLE {self.stream.spine_copy} AS "
                                f"SELECT * FROM {source}")
                needed = ", ".join(_quote(c) for c in join.needed)
                rows = self.spine_rows().sql(dialect="duckdb")
                reader = con.sql(f"SELECT {needed} FROM {rows}").to_arrow_reader(
                    BATCH_ROWS)
                try:
                    join.load(reader.schema, _until(stop, reader))
                finally:
                    reader.close()  # (a cancelled load leaves no open result behind)
            _check(stop)
            self.stream.arm(join, backend)
            if self.table is not None:
                with backend._lock:
                    backend.con.execute(f"CREATE OR REPLACE TEMP TABLE {self.table} AS "
                                        f"{self.relation_of_stream()}")
        except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
            backend.side_connections.discard(side)
            self.stream.disarm()
            engine.close()
            raise errors.to_pg_error(exc, sql) from None


def _until(stop: threading.Event, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        _check(stop)
        yield batch


def _check(stop: threading.Event) -> None:
    if stop.is_set():
        raise PgError(errors.QUERY_CANCELED, "canceling statement")


def forget_finished(session: Session) -> None:
    """Unregister this session's training-set relations that no open result reads any more
    (closing their engines) and drop their spine copies."""
    backend = session.duckdb
    streams = _OPEN.get(backend, [])
    keep = [s for s in streams if s.reading]
    for stream in streams:
        if stream.reading:
            continue
        stream.disarm()
        with backend._lock:
            con = backend.con
            con.unregister(stream.alias)
            con.execute(f"DROP TABLE IF EXISTS {stream.spine_copy}")
            con.unregister(f"{stream.spine_copy}_source")
    _OPEN[backend] = keep


def is_source(session: Session, services: Services, spine: str) -> bool:
    return spine.lower().startswith("sources.") or (
        "." not in spine and not _session_has_table(session, spine)
        and services.catalog.current().get(spine) is not None)


def spine_relation(spine: str) -> exp.Table:
    """A session table's name as a tree of quoted identifiers, never spliced into SQL text."""
    parts = spine.split(".")
    return exp.table_(parts[-1], db=parts[-2] if len(parts) > 1 else None,
                      catalog=parts[-3] if len(parts) > 2 else None, quoted=True)


def spine_schema(session: Session, services: Services, spine: str, sql: str) -> pa.Schema:
    """The spine's columns: a table of the session, or a source."""
    if is_source(session, services, spine):
        data = services.relation("sources", spine.split(".")[-1])
        if data is None:
            raise PgError(errors.UNDEFINED_TABLE, f'spine "{spine}" does not exist',
                          position=text_position(sql, spine))
        return data.schema
    backend = session.duckdb
    with backend._lock:
        try:
            query = exp.select("*").from_(spine_relation(spine)).limit(0)
            return backend.con.sql(query.sql(dialect="duckdb")).to_arrow_table().schema
        except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
            error = errors.to_pg_error(exc, None, errors.from_duckdb)
            if error.code == errors.UNDEFINED_TABLE:
                error.message = f'spine table "{spine}" does not exist'
                error.hint = ("Create it in this session first: CREATE TEMP TABLE spine (...) "
                              "then INSERT or COPY spine FROM STDIN.")
                error.position = text_position(sql, spine)
            raise error from None


def _session_has_table(session: Session, name: str) -> bool:
    backend = session.duckdb
    with backend._lock:
        rows = backend.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE lower(table_name) = lower($1)", [name]
        ).fetchall()
    return bool(rows and rows[0][0])


def _is_base_table(session: Session, spine: str) -> bool:
    """Whether ``spine`` names a table (not a view) of the session's DuckDB."""
    *schema, name = spine.lower().split(".")
    backend = session.duckdb
    with backend._lock:
        rows = backend.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE lower(table_name) = $1 AND "
            "($2 IS NULL OR lower(schema_name) = $2 OR lower(database_name) = $2)",
            [name, schema[-1] if schema else None]).fetchall()
    return bool(rows and rows[0][0] == 1)


def _time_column(schema: pa.Schema, spine: str) -> str:
    if "event_time" in schema.names:
        return "event_time"
    stamps = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    if len(stamps) == 1:
        return stamps[0]
    raise PgError(errors.UNDEFINED_COLUMN,
                  f'spine "{spine}" needs one timestamp column (or one named event_time); '
                  f"it has {', '.join(stamps) or 'none'}")


def _quote(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect="duckdb")


def open_training_engine(services: Services, memory_limit: str | None = None) -> Any:
    """The engine of a training set over the wire. A DuckDB engine is sandboxed like the
    sessions' databases (:meth:`~fsql.engines.duckdb.DuckDBEngine.confine`): it reads files
    only in the offline store (the timelines), whatever SQL it is given; and it gets
    ``memory_limit`` (the session's: bounded even when ``[compute] memory_limit`` is not
    set, where DuckDB's default is 80% of the RAM)."""
    engine = services.workspace.open_engine()
    confine = getattr(engine, "confine", None)
    if confine is not None:
        if memory_limit:
            engine.con.execute("SET memory_limit = ?", [memory_limit])
        config = services.config
        offline = config.offline_store.uri
        # the store's files as listed (the repo's path as given) and with links resolved
        local = [] if offline.startswith("s3://") else sorted(
            {os.path.normpath(config.repo / offline), config.resolve_path(offline)})
        try:
            confine(local)
        except Exception:
            engine.close()
            raise
    return engine


def plan_training_set(session: Session, sql: str, tree: exp.Expression,
                      param_oids: Sequence[int], services: Services) -> Plan | None:
    """A :class:`TrainingSetPlan` when ``tree`` calls ``training_set`` (None otherwise)."""
    calls = find_training_sets(tree)
    if not calls:
        return None
    forget_finished(session)
    tree = tree.copy()
    specs: list[TrainingCall] = []
    for call in find_training_sets(tree):
        args = call.expressions
        if len(args) < 2 or not all(isinstance(a, exp.Literal) and a.is_string for a in args):
            raise PgError(errors.UNDEFINED_FUNCTION,
                          "training_set takes a spine table name and one or more feature or "
                          "feature set names, all as string literals",
                          hint="SELECT * FROM training_set('spine', 'user_spend_30d', "
                          "'fraud_model_v1')", position=text_position(sql, "training_set"))
        spine, *features = [a.this for a in args]
        schema = spine_schema(session, services, spine, sql)
        try:
            analysis = services.catalog.analysis()
            names = analysis.expand(features)
            time_column = _time_column(schema, spine)
            check_spine(list(schema.names), [(analysis.features[n], None) for n in names],
                        time_column)
        except PgError:
            raise
        except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
            raise errors.to_pg_error(exc, sql) from None
        values = pa.schema([pa.field(n, arrow_type(analysis.features[n].value_type))
                            for n in names])
        spec = TrainingCall(spine, features, time_column, values, read_several_times(call),
                            direct=_is_base_table(session, spine))
        spec.register(session, services, sql)
        specs.append(spec)
        parent = call.parent
        replacement = spec.relation()
        if isinstance(parent, exp.Table):
            alias = parent.args.get("alias") or exp.TableAlias(
                this=exp.to_identifier("training_set"))
            replacement.set("alias", alias)
            parent.replace(replacement)
        else:
            call.replace(replacement)
    inner = session_functions.plan_on_duckdb(session, sql, tree, param_oids)
    return TrainingSetPlan(sql, inner, specs, services)


def read_several_times(call: exp.Expression) -> bool:
    """Whether the statement reads ``call`` more than once: it is inside a CTE that is
    referenced several times (DuckDB inlines CTEs, scanning the call once per reference)."""
    root = call.root()
    cte = call.find_ancestor(exp.CTE)
    while cte is not None:
        name = cte.alias_or_name.lower()
        uses = [t for t in root.find_all(exp.Table) if not t.db and t.name.lower() == name]
        if len(uses) > 1:
            return True
        cte = cte.find_ancestor(exp.CTE)
    return False
