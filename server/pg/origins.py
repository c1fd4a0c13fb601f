"""Result metadata as PostgreSQL sends it: where a column comes from, and its type modifier.

PostgreSQL's RowDescription says, for each column, the table it was read from (the table's
OID and the column's attribute number; 0 for expressions) and its type modifier
(``numeric(10,2)`` → ``(10 << 16 | 2) + 4``, ``varchar(20)`` → 24, ``timestamp(3)`` → 3).
Clients build on it: pgjdbc's ``getPrecision``/``getScale``/``getBaseTableName``, Spark reads
``numeric(10,2)`` as ``decimal(10,2)`` (``decimal(38,18)`` without a typmod).

DuckDB describes a result by names and DuckDB types only, so this module reads the parsed
statement (:func:`origins`): a plain column of the single table in FROM (``offline.*``,
``sources.*``, the session's temporary tables) carries that table's OID (the same the
catalog emulation lists in ``pg_class``) and attribute number, and the type the table was
declared with (a temporary table's ``jsonb``, ``varchar(20)``... that DuckDB stores as JSON,
VARCHAR); a cast carries its target's type and modifier. :class:`DescribedPlan` applies that
to a plan's columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.catalog.model import object_oid, shared_oid
from fsql_server.pg.colnames import folded, output_name
from fsql_server.pg.errors import UNDEFINED_COLUMN, PgError
from fsql_server.pg.macros import AVERAGE
from fsql_server.pg.types import (
    BPCHAR,
    INT2,
    INT4,
    INT8,
    JSON,
    JSONB,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    VARCHAR,
    PgType,
    pg_type_for_duckdb,
    sql_type_to_pg,
)
from sqlglot import exp

Session = Any

#: described type → the declared types that may replace it (same values on the wire)
_REFINES = {
    JSON.oid: (JSONB.oid, JSON.oid),
    # numeric: avg's exact quotient, as text (numeric_aggregates)
    TEXT.oid: (VARCHAR.oid, BPCHAR.oid, TEXT.oid, NUMERIC.oid),
    NUMERIC.oid: (NUMERIC.oid,),
    TIMESTAMP.oid: (TIMESTAMP.oid,),
    TIMESTAMPTZ.oid: (TIMESTAMPTZ.oid,),
}


@dataclass(frozen=True)
class Declared:
    """A column's declared PostgreSQL type and type modifier."""

    type: PgType
    typmod: int = -1


@dataclass(frozen=True)
class Origin:
    """What the statement says about one result column: its table (OID, attribute number;
    0 when it is an expression) and its declared type (None: as DuckDB describes it)."""

    table_oid: int = 0
    attnum: int = 0
    declared: Declared | None = None


def declared_type(datatype: exp.DataType) -> Declared:
    """The PostgreSQL type and type modifier of a type as written in SQL."""
    kind = datatype.this
    params = [p.this if isinstance(p, exp.DataTypeParam) else p for p in datatype.expressions]
    numbers = [int(p.name) for p in params if isinstance(p, exp.Literal) and p.name.isdigit()]
    if kind in (exp.DataType.Type.DECIMAL, exp.DataType.Type.BIGDECIMAL):
        if numbers:
            precision, scale = numbers[0], numbers[1] if len(numbers) > 1 else 0
            return Declared(NUMERIC, ((precision << 16) | scale) + 4)
        return Declared(NUMERIC)
    if kind in (exp.DataType.Type.VARCHAR, exp.DataType.Type.NVARCHAR):
        return Declared(VARCHAR, numbers[0] + 4 if numbers else -1)
    if kind in (exp.DataType.Type.CHAR, exp.DataType.Type.NCHAR, exp.DataType.Type.BPCHAR):
        # char without a length is char(1), as in PostgreSQL
        return Declared(BPCHAR, (numbers[0] if numbers else 1) + 4)
    if kind == exp.DataType.Type.TIMESTAMP:
        return Declared(TIMESTAMP, numbers[0] if numbers else -1)
    if kind in (exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ):
        return Declared(TIMESTAMPTZ, numbers[0] if numbers else -1)
    if kind == exp.DataType.Type.JSONB:
        return Declared(JSONB)
    return Declared(sql_type_to_pg(datatype.sql(dialect="postgres")))


def declared_columns(tree: exp.Expression) -> tuple[str, list[tuple[str, Declared]]] | None:
    """(table name, its columns' declared types) for ``CREATE [TEMP] TABLE t (columns)``."""
    if not isinstance(tree, exp.Create) or (tree.kind or "").upper() != "TABLE":
        return None
    schema = tree.this
    if not isinstance(schema, exp.Schema) or not isinstance(schema.this, exp.Table):
        return None
    columns = []
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef) and isinstance(item.args.get("kind"), exp.DataType):
            columns.append((item.name, declared_type(item.args["kind"])))
    return schema.this.name, columns


#: a table reference → its columns in order (name, origin), None when it is no table known
Resolver = Callable[[exp.Table], "list[tuple[str, Origin]] | None"]


def relations_of(session: Session) -> Resolver:
    """The resolver of fsql's relations and the session's temporary tables."""
    def resolve(table: exp.Table) -> list[tuple[str, Origin]] | None:
        relation = _relation(session, table)
        return list(relation[1].items()) if relation is not None else None
    return resolve


def origins(session: Session, tree: exp.Expression,
            resolve: Resolver | None = None) -> list[Origin] | None:
    """One :class:`Origin` per result column of a query (None when the statement is no
    query, or its columns cannot be told apart). Columns are followed, as PostgreSQL does,
    into the tables of FROM and its JOINs (by qualifier, else by the one table that has the
    name), and through subqueries and CTEs to the table a plain column comes from; the
    columns of a UNION (or INTERSECT, EXCEPT) come from no table."""
    if not isinstance(tree, exp.Query):
        return None
    ctes = {cte.alias_or_name.lower(): cte.this for cte in tree.find_all(exp.CTE)}
    found = _query_columns(resolve or relations_of(session), tree, ctes, depth=0)
    return [origin for _, origin in found] if found is not None else None


#: how deep subqueries and CTEs are followed (a CTE naming itself is recursive)
_MAX_DEPTH = 16

#: (names a FROM item goes by, its columns in order: output name → origin)
#: (None: a FROM item whose columns are not known, e.g. a table function: a column qualified
#: with its name comes from no table, and the others cannot be its, the query being valid)
_Source = tuple[set[str], list[tuple[str, Origin]] | None]


def _query_columns(resolve: Resolver, query: exp.Expression,
                   ctes: dict[str, exp.Expression], depth: int) -> list[tuple[str, Origin]] | None:
    """(output name, origin) of each column of ``query``."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(query, exp.Subquery):
        return _query_columns(resolve, query.this, ctes, depth + 1)
    if isinstance(query, exp.SetOperation):
        left = _query_columns(resolve, query.this, ctes, depth + 1)
        return [(name, Origin()) for name, _ in left] if left is not None else None
    if not isinstance(query, exp.Select):
        return None
    _items, joins = _from_items(query)
    sources: list[_Source] | None = _sources(resolve, query, ctes, depth)
    out: list[tuple[str, Origin]] = []
    for projection in query.expressions:
        node = projection.this if isinstance(projection, exp.Alias) else projection
        if isinstance(node, exp.Star) or (
                isinstance(node, exp.Column) and isinstance(node.this, exp.Star)):
            qualifier = node.table.lower() if isinstance(node, exp.Column) else ""
            if sources is None:
                return None
            expanded = _star(sources, joins, qualifier)
            if expanded is None:
                return None
            out.extend(expanded)
            continue
        name = output_name(projection)
        if isinstance(node, exp.Column) and sources is not None:
            out.append((name, _column(node, sources)))
            continue
        if depth == 0 and sources is not None and _exact_average(node, sources):
            out.append((name, Origin(declared=Declared(NUMERIC))))  # see numeric_aggregates
            continue
        if isinstance(node, exp.Cast) and isinstance(node.to, exp.DataType):
            target = declared_type(node.to)
            inner = _column(node.this, sources) if isinstance(node.this, exp.Column) and \
                sources is not None else Origin()
            if inner.declared is not None and inner.declared.type == target.type and \
                    target.typmod in (-1, inner.declared.typmod):
                out.append((name, inner))  # a cast to the column's own type is no cast
            else:
                out.append((name, Origin(declared=target)))
            continue
        out.append((name, Origin()))
    return out


def _sources(resolve: Resolver, select: exp.Select, ctes: dict[str, exp.Expression],
             depth: int) -> list[_Source]:
    """The FROM item and JOINed items of a SELECT, in order."""
    items, _joins = _from_items(select)
    return [_source(resolve, item, ctes, depth) for item in items]


def _from_items(select: exp.Select) -> tuple[list[exp.Expression], list[exp.Join]]:
    """The FROM item and the JOINed items of a SELECT, in order, with the joins (those of a
    parenthesized join ``FROM ((a JOIN b ...) JOIN c ...)`` too, which sqlglot holds in the
    first table's ``joins``)."""
    items: list[exp.Expression] = []
    joins: list[exp.Join] = []

    def add(item: exp.Expression) -> None:
        if isinstance(item, exp.Subquery) and not item.alias and not isinstance(
                item.this, (exp.Select, exp.SetOperation, exp.Values)):
            add(item.this)  # (a JOIN b ...): a parenthesized join, no subquery
        else:
            items.append(item)
        if isinstance(item, (exp.Table, exp.Subquery)):
            for join in item.args.get("joins") or []:
                joins.append(join)
                add(join.this)

    source = select.args.get("from_")
    if isinstance(source, exp.From):
        add(source.this)
    for join in select.args.get("joins") or []:
        joins.append(join)
        add(join.this)
    return items, joins


#: argument types whose avg is numeric in PostgreSQL (DuckDB's is DOUBLE), and whose sum is
#: bigint (DuckDB's is HUGEINT, sent as numeric)
_NUMERIC_AVERAGE = frozenset((INT2.oid, INT4.oid, INT8.oid, NUMERIC.oid))
_BIGINT_SUM = frozenset((INT2.oid, INT4.oid))


def _argument_type(aggregate: exp.Expr, sources: list[_Source]) -> int | None:
    """The declared type OID of an aggregate's argument, when it is a plain column."""
    argument = aggregate.this
    if not isinstance(argument, exp.Column) or isinstance(argument.this, exp.Star):
        return None
    declared = _column(argument, sources).declared
    return declared.type.oid if declared is not None else None


def _exact_average(node: exp.Expression, sources: list[_Source]) -> bool:
    return isinstance(node, exp.Avg) and _argument_type(node, sources) in _NUMERIC_AVERAGE


def numeric_aggregates(session: Session, tree: exp.Expression) -> None:
    """Type ``sum`` and ``avg`` of integer and numeric columns as PostgreSQL does, with exact
    values: ``sum(int2|int4)`` is bigint (a cast of DuckDB's HUGEINT); ``avg(int|numeric)``
    in the statement's select list is numeric, at PostgreSQL's scale (the sum divided by the
    count in :func:`~fsql_server.pg.macros.pg_average`; sent as the text PostgreSQL prints,
    described as numeric by :func:`origins`). An avg inside an expression or a window stays
    DuckDB's DOUBLE."""
    if not isinstance(tree, exp.Query):
        return
    ctes = {cte.alias_or_name.lower(): cte.this for cte in tree.find_all(exp.CTE)}
    for select in list(tree.find_all(exp.Select)):
        sources = _sources(relations_of(session), select, ctes, 0)
        if sources is None:
            continue
        for aggregate in list(select.find_all(exp.Sum, exp.Avg)):
            if aggregate.find_ancestor(exp.Select) is not select or isinstance(
                    aggregate.parent, (exp.Window, exp.Filter)):
                continue
            kind = _argument_type(aggregate, sources)
            if isinstance(aggregate, exp.Sum) and kind in _BIGINT_SUM:
                aggregate.replace(exp.cast(aggregate.copy(), "BIGINT"))
            elif (isinstance(aggregate, exp.Avg) and kind in _NUMERIC_AVERAGE
                  and select is tree and isinstance(aggregate.parent, exp.Alias)
                  and aggregate.parent.parent is select):
                argument = aggregate.this
                _order_by_value(select, aggregate)
                aggregate.replace(exp.Anonymous(this=AVERAGE, expressions=[
                    exp.cast(exp.Sum(this=argument.copy()), "VARCHAR"),
                    exp.Count(this=argument.copy())]))


def _order_by_value(select: exp.Select, average: exp.Expression) -> None:
    """ORDER BY the projection ``average`` is in (by its name, its position or the same
    expression) sorts by DuckDB's avg, a number, not by the exact quotient's text."""
    projection = average.parent
    assert isinstance(projection, exp.Alias)
    position = select.expressions.index(projection) + 1
    order = select.args.get("order")
    for ordered in order.expressions if isinstance(order, exp.Order) else []:
        key = ordered.this
        if (isinstance(key, exp.Column) and not key.table and folded(key.this) == projection.alias
                or isinstance(key, exp.Literal) and not key.is_string
                and key.name == str(position) or key == average):
            ordered.set("this", average.copy())


def _column(node: exp.Column, sources: list[_Source]) -> Origin:
    """The origin of a column reference: the one column of that name (of the table the
    qualifier names), or none."""
    column, qualifier = node.name.lower(), node.table.lower()
    matches = [origin for names, columns in sources if not qualifier or qualifier in names
               for named, origin in columns or [] if named.lower() == column]
    return matches[0] if len(matches) == 1 else Origin()


def _source(resolve: Resolver, item: exp.Expression, ctes: dict[str, exp.Expression],
            depth: int) -> _Source:
    """A FROM item's names (its alias hides its name) and columns: a table of fsql's (or a
    temporary one), a CTE, or a subquery; a table function's columns are not known."""
    alias = item.args.get("alias")
    renamed = [folded(c) for c in alias.columns] if isinstance(alias, exp.TableAlias) else []
    aliased = folded(alias.this) if isinstance(alias, exp.TableAlias) and isinstance(
        alias.this, exp.Identifier) else ""
    columns: list[tuple[str, Origin]] | None = None
    if isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
        name = item.name.lower()
        if not item.db and name in ctes:
            columns = _query_columns(resolve, ctes[name], ctes, depth + 1)
        else:
            columns = resolve(item)
        names = {aliased or name}
    elif isinstance(item, exp.Subquery):
        columns = _query_columns(resolve, item.this, ctes, depth + 1)
        names = {aliased}
    else:
        names = {aliased or item.alias_or_name.lower()}
    if columns is not None and renamed:
        columns = [(renamed[i] if i < len(renamed) else named, origin)
                   for i, (named, origin) in enumerate(columns)]
    return names, columns


def _star(sources: list[_Source], joins: list[exp.Join], qualifier: str
          ) -> list[tuple[str, Origin]] | None:
    """The columns ``*`` (or ``t.*``) stands for, in DuckDB's order: with ``JOIN ... USING``
    or ``NATURAL JOIN``, the joined columns appear once, where the left side has them (from
    the left table, or the right one for a RIGHT JOIN; from none for a FULL JOIN)."""
    if qualifier:
        chosen = [columns for names, columns in sources if qualifier in names]
        return chosen[0] if len(chosen) == 1 else None
    if any(columns is None for _, columns in sources) or len(joins) != len(sources) - 1:
        return None
    out = list(sources[0][1] or [])
    for join, (_, found) in zip(joins, sources[1:], strict=True):
        columns = found or []
        side = str(join.args.get("side") or "").upper()
        using = {folded(c) if isinstance(c, exp.Identifier) else c.name.lower()
                 for c in join.args.get("using") or []}
        if "NATURAL" in (str(join.args.get("kind") or "").upper(),
                         str(join.args.get("method") or "").upper()):
            using = {name.lower() for name, _ in out} & {name.lower() for name, _ in columns}
        if using and side not in ("", "LEFT"):
            right = {name.lower(): origin for name, origin in columns}
            out = [(name, (right.get(name.lower(), Origin()) if side == "RIGHT" else Origin()))
                   if name.lower() in using else (name, origin) for name, origin in out]
        out.extend((name, origin) for name, origin in columns if name.lower() not in using)
    return out


def _relation(session: Session, table: exp.Table
              ) -> tuple[int, dict[str, Origin], list[str]] | None:
    """(table OID, lower-case column name → origin, column names in order) for a surface
    relation or a temporary table."""
    schema = table.db.lower()
    if schema and schema != "public":
        catalog = session.server.relation_catalog
        if catalog is None:
            return None
        for relation in catalog.relations():
            if relation.schema == schema and relation.name == table.name:
                oid = relation.oid
                return oid, {
                    column.name.lower(): Origin(oid, i, Declared(column.type, column.typmod))
                    for i, column in enumerate(relation.columns, start=1)
                }, [column.name for column in relation.columns]
        return None
    if not session.has_duckdb:
        return None
    rows = None
    # a temporary table hides a shared one (the user's, in ``memory``); public.t is the latter
    for database in ("temp", "memory") if not schema else ("memory",):
        rows = session.duckdb.execute_sync(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? "
            "AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
            [database, table.name])
        if rows:
            break
    if not rows:
        return None
    if database == "temp":
        oid = object_oid(f"pg_temp_{session.pid}.{table.name}")
        declared = dict(session.declared_tables.get(table.name.lower(), ()))
    else:
        oid = shared_oid(session.user, table.name)
        declared = dict(session.declared().get(table.name.lower(), ()))
    if set(declared) != {name for name, _ in rows}:
        declared = {}  # the table was made again since (CREATE ... AS, other columns)
    return oid, {
        str(name).lower(): Origin(oid, i, declared.get(name) or _duckdb_declared(str(kind)))
        for i, (name, kind) in enumerate(rows, start=1)
    }, [str(name) for name, _ in rows]


def _duckdb_declared(kind: str) -> Declared:
    """The type and modifier of a DuckDB column type (``DECIMAL(10,2)`` keeps its modifier)."""
    pg = pg_type_for_duckdb(kind)
    upper = kind.upper()
    if pg is NUMERIC and "(" in upper:
        precision, _, scale = upper[upper.index("(") + 1 : upper.rindex(")")].partition(",")
        if precision.strip().isdigit() and scale.strip().isdigit():
            return Declared(NUMERIC, ((int(precision) << 16) | int(scale)) + 4)
    return Declared(pg)


def refine(columns: Sequence[Column], found: Sequence[Origin]) -> list[Column]:
    """``columns`` (as described) with their origins and declared types where those agree
    with what is sent (a declared ``jsonb`` refines a described json, never an int)."""
    out = []
    for column, origin in zip(columns, found, strict=True):
        declared = origin.declared
        if declared is not None and declared.type.oid in _REFINES.get(column.type.oid, ()):
            column = replace(column, type=declared.type, typmod=declared.typmod)
        out.append(replace(column, table_oid=origin.table_oid, attnum=origin.attnum))
    return out


def columns_here(session: Session, tree: exp.Expression) -> str | None:
    """Every column of the tables a SELECT reads (FROM and JOIN), for the hint of an unknown
    column: ``Columns here: t.a, t.b, u.c.`` (None when a table is no plain one)."""
    if not isinstance(tree, exp.Select) or not isinstance(tree.args.get("from_"), exp.From):
        return None
    tables = [tree.args["from_"].this, *(join.this for join in tree.args.get("joins") or [])]
    names = []
    for table in tables:
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            return None
        relation = _relation(session, table)
        if relation is None:
            return None
        prefix = table.alias_or_name if len(tables) > 1 else ""
        names += [f"{prefix}.{name}" if prefix else name for name in relation[2]]
    return "Columns here: " + ", ".join(names) + "."


class DescribedPlan(Plan):
    """A plan whose result columns carry origins and type modifiers (:func:`origins`)."""

    def __init__(self, inner: Plan, tree: exp.Expression):
        self.inner = inner
        self.tree = tree
        self.sql = inner.sql
        self.command = inner.command
        self.param_types = inner.param_types
        self.cacheable = inner.cacheable
        self.fast_lookup = inner.fast_lookup
        self.interruptible = getattr(inner, "interruptible", True)
        self._cache: tuple[Any, int, list[Column] | None] | None = None

    def stale(self) -> bool:
        stale = getattr(self.inner, "stale", None)
        return bool(stale is not None and stale())

    def describe(self, session: Session) -> list[Column] | None:
        try:
            columns = self.inner.describe(session)
        except PgError as error:
            raise self.explained(session, error) from None
        if columns is None:
            return None
        cached = self._cache
        generation = session.tables_generation()
        if cached is not None and cached[0] is columns and cached[1] == generation:
            return cached[2] or columns
        found = origins(session, self.tree)
        refined = refine(columns, found) if found is not None and len(found) == len(
            columns) else None
        # the described list is kept alive with its refinement: same list, same answer
        self._cache = (columns, generation, refined)
        return refined or columns

    def explained(self, session: Session, error: PgError) -> PgError:
        """``error`` with every column of the statement's tables in its hint when it is about
        an unknown column (DuckDB's own hint names one or two)."""
        if error.code == UNDEFINED_COLUMN:
            listed = columns_here(session, self.tree)
            if listed:
                error.hint = listed
        return error

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        try:
            result = await self.inner.run(session, params)
        except PgError as error:
            raise self.explained(session, error) from None
        if result.columns is not None:
            result.columns = self.describe(session)
        return result


class DeclaringPlan(Plan):
    """``CREATE TABLE t (columns)``: remembers the declared types once the table exists
    (DuckDB keeps ``jsonb`` as JSON and ``varchar(20)`` as VARCHAR)."""

    def __init__(self, inner: Plan, table: str, columns: list[tuple[str, Declared]]):
        self.inner = inner
        self.sql = inner.sql
        self.command = inner.command
        self.param_types = inner.param_types
        self.cacheable = inner.cacheable
        self.interruptible = getattr(inner, "interruptible", True)
        self.table = table
        self.columns = columns

    def describe(self, session: Session) -> list[Column] | None:
        return self.inner.describe(session)

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        result = await self.inner.run(session, params)
        name = self.table.lower()
        temporary = session.duckdb.execute_sync(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'temp' "
            "AND lower(table_name) = ?", [name])[0][0]
        shared = session.duckdb.user_db
        if temporary or shared is None:
            session.declared_tables[name] = self.columns
        else:  # a shared table: every session of the user reads it with these types
            shared.declared_tables[name] = self.columns
            session.declared_tables.pop(name, None)
        return result
