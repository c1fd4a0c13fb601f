"""``training_set('<spine>', 'feature_or_set', ...)`` in a DuckDB statement.

The point-in-time join of :func:`fsql.compute.training.training_set` runs over a session
table (or a source) as the spine, and its Arrow result is registered in the session's DuckDB
under the name the statement reads.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from fsql_server.features.lookup import text_position
from fsql_server.features.services import Services
from fsql_server.pg import errors, session_functions
from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.errors import PgError
from fsql_server.pg.session import Session
from sqlglot import exp

from fsql.compute.training import training_set
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


class TrainingSetPlan(Plan):
    """A DuckDB statement reading ``training_set('spine', 'f', ...)``: the point-in-time join
    runs first (through :func:`fsql.compute.training.training_set`, so the result is the Python
    API's), and its Arrow result is registered under the name the statement reads."""

    cacheable = False

    def __init__(self, sql: str, inner: Plan, calls: list[tuple[str, str, list[str]]],
                 services: Services):
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
        await loop.run_in_executor(None, self._materialize, session)
        return await self.inner.run(session, params)

    def _materialize(self, session: Session) -> None:
        backend = session.duckdb
        for alias, spine, features in self.calls:
            table = compute_training_set(session, self.services, spine, features, self.sql)
            with backend._lock:
                backend.con.register(alias, table)


def spine_table(session: Session, services: Services, spine: str, sql: str) -> pa.Table:
    """The spine as Arrow: a table of the session, or a source (``sources.<name>`` or a bare
    source name)."""
    backend = session.duckdb
    name = spine.split(".")[-1]
    if spine.lower().startswith("sources.") or (
        "." not in spine and not _session_has_table(session, spine)
        and services.catalog.current().get(spine) is not None
    ):
        data = services.relation("sources", name)
        if data is None:
            raise PgError(errors.UNDEFINED_TABLE, f'spine "{spine}" does not exist',
                          position=text_position(sql, spine))
        return data.to_table()
    with backend._lock:
        try:
            # the name as quoted identifiers of a tree, never spliced into SQL text
            parts = spine.split(".")
            query = exp.select("*").from_(exp.table_(
                parts[-1], db=parts[-2] if len(parts) > 1 else None,
                catalog=parts[-3] if len(parts) > 2 else None, quoted=True))
            return backend.con.sql(query.sql(dialect="duckdb")).to_arrow_table()
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


def _time_column(table: pa.Table, spine: str) -> str:
    if "event_time" in table.column_names:
        return "event_time"
    stamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if len(stamps) == 1:
        return stamps[0]
    raise PgError(errors.UNDEFINED_COLUMN,
                  f'spine "{spine}" needs one timestamp column (or one named event_time); '
                  f"it has {', '.join(stamps) or 'none'}")


def open_training_engine(services: Services) -> Any:
    """The engine of a training set over the wire. A DuckDB engine is sandboxed like the
    sessions' databases (:meth:`~fsql.engines.duckdb.DuckDBEngine.confine`): it reads files
    only in the offline store (the timelines), whatever SQL it is given."""
    engine = services.workspace.open_engine()
    confine = getattr(engine, "confine", None)
    if confine is not None:
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


def compute_training_set(session: Session, services: Services, spine: str,
                         features: list[str], sql: str) -> pa.Table:
    table = spine_table(session, services, spine, sql)
    engine = open_training_engine(services)
    # a DuckDB engine's connection is interrupted with the session's own (statement timeout,
    # CancelRequest): the join stops instead of computing on for nobody
    side = getattr(engine, "con", None)
    backend = session.duckdb
    if side is not None:
        backend.side_connections.add(side)
    try:
        return training_set(services.workspace, table, features, engine=engine,
                            time_column=_time_column(table, spine))
    except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
        raise errors.to_pg_error(exc, sql) from None
    finally:
        backend.side_connections.discard(side)
        engine.close()


def plan_training_set(session: Session, sql: str, tree: exp.Expression,
                      param_oids: Sequence[int], services: Services) -> Plan | None:
    """A :class:`TrainingSetPlan` when ``tree`` calls ``training_set`` (None otherwise)."""
    calls = find_training_sets(tree)
    if not calls:
        return None
    tree = tree.copy()
    specs: list[tuple[str, str, list[str]]] = []
    for index, call in enumerate(find_training_sets(tree)):
        args = call.expressions
        if len(args) < 2 or not all(isinstance(a, exp.Literal) and a.is_string for a in args):
            raise PgError(errors.UNDEFINED_FUNCTION,
                          "training_set takes a spine table name and one or more feature or "
                          "feature set names, all as string literals",
                          hint="SELECT * FROM training_set('spine', 'user_spend_30d', "
                          "'fraud_model_v1')", position=text_position(sql, "training_set"))
        spine, *features = [a.this for a in args]
        alias = f"__fsql_training_{index}"
        specs.append((alias, spine, features))
        # describe needs the columns: register an empty table of the right schema now
        table = compute_training_set_schema(session, services, spine, features, sql)
        backend = session.duckdb
        with backend._lock:
            backend.con.register(alias, table)
        parent = call.parent
        replacement = exp.to_table(alias)
        if isinstance(parent, exp.Table):
            if parent.alias:
                replacement.set("alias", parent.args.get("alias"))
            else:
                replacement.set("alias", exp.TableAlias(this=exp.to_identifier("training_set")))
            parent.replace(replacement)
        else:
            call.replace(replacement)
    inner = session_functions.plan_on_duckdb(session, sql, tree, param_oids)
    return TrainingSetPlan(sql, inner, specs, services)


def compute_training_set_schema(session: Session, services: Services, spine: str,
                                features: list[str], sql: str) -> pa.Table:
    """An empty table with the training set's columns (spine columns + features)."""
    table = spine_table(session, services, spine, sql)
    try:
        analysis = services.catalog.analysis()
        names = analysis.expand(features)
    except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs in one place
        raise errors.to_pg_error(exc, sql) from None
    fields = list(table.schema) + [
        pa.field(n, arrow_type(analysis.features[n].value_type)) for n in names
    ]
    return pa.schema(fields).empty_table()
