"""Answer catalog queries from PostgreSQL-shaped catalog tables in a private DuckDB database.

The database (:mod:`.database`, defined in :mod:`.tables`) holds ``pg_namespace``,
``pg_class``, ``pg_attribute``, ``pg_type``, ``pg_description``, ``pg_constraint``,
``pg_index`` (and the empty catalogs psql and drivers join against) filled from the surface's
relations (:mod:`.model`) and rebuilt when they change. ``information_schema`` tables are views
over them; PostgreSQL functions the clients call are macros. A catalog query is rewritten with
sqlglot (:mod:`.rewrite`) and planned like any DuckDB statement
(:class:`~fsql_server.pg.duckdb_backend.DuckDBBackend`: parameter typing, Describe, streaming).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from fsql_server.pg import errors, search_path
from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.catalog.database import CatalogBackend, temp_namespace_oid
from fsql_server.pg.catalog.rewrite import (
    catalog_table_name,
    is_catalog_query,
    rewrite,
    vector_columns,
    zero_based_output,
)
from fsql_server.pg.catalog.tables import TABLES
from fsql_server.pg.errors import PgError
from fsql_server.pg.origins import Origin, Resolver, origins
from fsql_server.pg.session import Session
from fsql_server.pg.types import INT2VECTOR, OIDVECTOR, ZERO_BASED_TEXT_ARRAY, PgType
from sqlglot import exp


def plan_catalog(session: Session, sql: str, tree: exp.Expression,
                 param_oids: Sequence[int]) -> Plan | None:
    """A plan over the catalog database for a catalog query, None for any other statement."""
    if not is_catalog_query(tree):
        return None
    relations = session.server.relations
    check_data_tables(tree, relations.schemas if relations is not None else ())
    backend = catalog_backend(session)
    temp = temp_namespace_oid(session.pid)  # fixed per session, listed once it has tables
    rewritten = rewrite(tree, temp, session.database, session.user, session.pid,
                        searched_schemas(session))
    hide_other_users_activity(rewritten, session.user)
    # planned (and run) on the session's own connection to the catalog database
    plan = backend.for_session(session).plan(sql, rewritten,
                                             _array_parameters(tree, param_oids))
    return CatalogPlan(backend, plan, _vector_outputs(tree), tree)


#: the int2vector columns (the other vector columns are oidvectors); psqlODBC's SQLStatistics
#: reads ``indkey`` as a vector only when its column says int2vector
_INT2VECTORS = frozenset(("indkey", "indoption", "stxkeys", "partattrs"))


def searched_schemas(session: Session) -> list[str]:
    """Where an unqualified relation name is looked up, in order: the session's temporary
    schema, ``pg_catalog`` (unless the path places it), then the ``search_path``."""
    path = search_path.current_schemas(session, implicit=True)
    return ["pg_temp", *path] if "pg_temp" not in path else path


def _vector_outputs(tree: exp.Expression) -> dict[int, PgType]:
    """Positions of the select list that are int2vector/oidvector columns, with their type."""
    if not isinstance(tree, exp.Select):
        return {}
    out: dict[int, PgType] = {}
    for position, projection in enumerate(tree.expressions):
        target = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(target, exp.Column) and target.name.lower() in vector_columns():
            out[position] = INT2VECTOR if target.name.lower() in _INT2VECTORS else OIDVECTOR
        elif any(zero_based_output(cast) for cast in projection.find_all(exp.Cast)):
            out[position] = ZERO_BASED_TEXT_ARRAY  # proargtypes::regtype[]: [0:1]={...}
    return out


#: pg_stat_activity's columns PostgreSQL shows for another user's session to a user who is
#: neither superuser nor in pg_read_all_stats (the others are NULL; query says so)
_ACTIVITY_SHOWN = ("datid", "datname", "pid", "leader_pid", "usesysid", "usename",
                   "application_name", "backend_type")
_ACTIVITY_COLUMNS = [c.split()[0] for c in TABLES["pg_stat_activity"].split(",")]


def hide_other_users_activity(tree: exp.Expression, user: str) -> None:
    """``pg_stat_activity`` as a non-superuser sees it in PostgreSQL: other users' sessions
    show ``<insufficient privilege>`` as their query and NULL for their state and times
    (no fsql user is superuser or has pg_read_all_stats)."""
    for table in list(tree.find_all(exp.Table)):
        if table.db or table.name.lower() != "pg_stat_activity":
            continue
        mine = exp.EQ(this=exp.column("usename"), expression=exp.Literal.string(user))
        columns: list[Any] = []
        for name in _ACTIVITY_COLUMNS:
            if name in _ACTIVITY_SHOWN:
                columns.append(exp.column(name))
                continue
            hidden = exp.Literal.string("<insufficient privilege>") if name == "query" \
                else exp.null()
            value = exp.Case(ifs=[exp.If(this=mine.copy(), true=exp.column(name))],
                             default=hidden)
            columns.append(exp.alias_(value, name))
        visible = exp.select(*columns).from_(exp.to_table("pg_stat_activity"))
        alias = table.args.get("alias") or exp.TableAlias(
            this=exp.to_identifier("pg_stat_activity"))
        table.replace(exp.Subquery(this=visible, alias=alias))


def check_data_tables(tree: exp.Expression, data_schemas: Sequence[str]) -> None:
    """A catalog query may join the surface's data tables (``data_schemas``: fsql's
    ``features.*``, ``offline.*``, ``sources.*`` and ``fsql.*``, registered in the catalog
    database like in a session's); other tables (the session's own) live elsewhere: 0A000
    that says how to get the same answer."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or catalog_table_name(table) is not None:
            continue
        schema, name = table.db.lower(), table.name
        if schema in data_schemas or (not schema and name.lower() in ctes):
            continue
        what = f"{schema}.{name}" if schema else name
        raise PgError(
            errors.FEATURE_NOT_SUPPORTED,
            f"a catalog query (one reading pg_catalog or information_schema) cannot also read "
            f"{what}",
            hint=f"Catalog queries can join {_listed(data_schemas)} tables; read "
                 f"{what} in a statement of its own.")


def _listed(schemas: Sequence[str]) -> str:
    """``a.*, b.* and c.*``"""
    names = [f"{s}.*" for s in schemas] or ["no other"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _array_parameters(tree: exp.Expression, param_oids: Sequence[int]) -> list[int]:
    """``relkind = ANY($2)`` (ADBC's get_objects): a parameter compared with ANY is an array
    (text[], 1009) unless the client declared an array type itself."""
    oids = list(param_oids)
    for node in tree.find_all(exp.Any):
        param = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
        if isinstance(param, exp.Parameter):
            index = int(param.this.name if isinstance(param.this, exp.Expression)
                        else param.this) - 1
            oids += [0] * (index + 1 - len(oids))
            if oids[index] in (0, 25, 705, 1043):
                oids[index] = 1009
    return oids


def catalog_backend(session: Session) -> CatalogBackend:
    """The server process's catalog database (created on first use)."""
    state = session.server
    backend = state.catalog_backend
    if backend is None:
        backend = CatalogBackend(state.relation_catalog, state.relations)
        state.catalog_backend = backend
    assert isinstance(backend, CatalogBackend)
    return backend


class CatalogPlan(Plan):
    """A catalog statement: refresh the catalog from the registry, then run on it."""

    interruptible = True
    #: light (fsql_server.pg.workers): the catalog database runs one thread, and the
    #: statement timeout interrupts a pathological query
    heavy = False

    def __init__(self, backend: CatalogBackend, inner: Plan,
                 vectors: dict[int, PgType] | None = None, tree: exp.Expression | None = None):
        self.backend = backend
        self.inner = inner
        #: output positions sent as int2vector/oidvector (DuckDB computes their text)
        self.vectors = vectors or {}
        self.sql = inner.sql
        self.param_types = inner.param_types
        self.command = inner.command
        #: the statement as the client wrote it, whose columns' origins are described
        self.tree = tree
        self._origins: list[Origin] | None = None

    def describe_blocks(self, session: Session) -> bool:
        return True  # the refresh reads the registry, and the first one builds the catalog

    def describe(self, session: Session) -> list[Column] | None:
        self.backend.refresh(session)
        try:
            columns = self.inner.describe(session)
        except PgError as error:
            raise _with_sqlstate(error) from None
        if columns is None:
            return columns
        columns = [replace(column, type=self.vectors[i]) if i in self.vectors else column
                   for i, column in enumerate(columns)]
        return self._with_origins(session, columns)

    def _with_origins(self, session: Session, columns: list[Column]) -> list[Column]:
        """``columns`` with the table OID and attribute number of those that are plain
        columns of catalog tables, as PostgreSQL describes them (followed through
        subqueries and CTEs: :func:`~fsql_server.pg.origins.origins`)."""
        if self.tree is None:
            return columns
        if self._origins is None:
            found = origins(session, self.tree, catalog_columns(
                self.backend.for_session(session)))
            self._origins = found if found is not None else []
        if len(self._origins) != len(columns):
            return columns
        return [replace(column, table_oid=origin.table_oid, attnum=origin.attnum)
                for column, origin in zip(columns, self._origins, strict=True)]

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        # in a thread: the first refresh builds the catalog database (seconds), which must
        # not hold up the other sessions, and counts against this statement's timeout
        await asyncio.get_running_loop().run_in_executor(None, self._prepare, session)
        try:
            result = await self.inner.run(session, params)
        except PgError as error:
            raise _with_sqlstate(error) from None
        if result.columns is not None:
            columns = [replace(column, type=self.vectors[i]) if i in self.vectors else column
                       for i, column in enumerate(result.columns)]
            result.columns = self._with_origins(session, columns)
        return result


    def _prepare(self, session: Session) -> None:
        self.backend.refresh(session)
        self.backend.record_activity(session, self.sql)


#: catalog table → its columns in order with their origins (PostgreSQL's own catalog, fixed)
_CATALOG_ORIGINS: dict[str, list[tuple[str, Origin]] | None] = {}


def catalog_columns(catalog: Any) -> Resolver:
    """The resolver of catalog tables (``pg_catalog.pg_class``, ``information_schema.tables``)
    to their columns, in the catalog database's order, each with the table's OID and its
    attribute number from the emulated ``pg_class``/``pg_attribute`` (``catalog``: a
    session's connection to the catalog database)."""
    def resolve(table: exp.Table) -> list[tuple[str, Origin]] | None:
        name = catalog_table_name(table)
        if name is None:
            return None
        if name not in _CATALOG_ORIGINS:
            schema, _, relname = name.rpartition("__")
            rows = catalog.execute_sync(
                "SELECT c.oid, a.attname, a.attnum FROM pg_class c JOIN pg_namespace n ON "
                "n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid WHERE "
                "n.nspname = ? AND c.relname = ? AND a.attnum > 0",
                [schema or "pg_catalog", relname])
            attnums = {str(attname): (int(oid), int(attnum)) for oid, attname, attnum in rows}
            order = [str(row[0]) for row in catalog.execute_sync(
                "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                "AND schema_name = 'main' ORDER BY column_index", [name])]
            _CATALOG_ORIGINS[name] = [
                (column, Origin(*attnums[column]) if column in attnums else Origin())
                for column in order] if attnums and order else None
        return _CATALOG_ORIGINS[name]
    return resolve


_SQLSTATE_MESSAGE = re.compile(r"fsql-([0-9A-Z]{5}): (.*)", re.S)


def _with_sqlstate(error: PgError) -> PgError:
    """An error a catalog macro raised on purpose (``fsql-42P01: relation "x" does not
    exist``) with its SQLSTATE and PostgreSQL's message; any other error as it is."""
    match = _SQLSTATE_MESSAGE.search(error.message)
    if match is None:
        return error
    return PgError(match.group(1), match.group(2).strip())
