"""Catalog queries rewritten for the catalog database, with sqlglot.

A statement is a catalog query when it reads ``pg_catalog``/``information_schema`` tables or
calls catalog functions (:func:`is_catalog_query`). Before it runs, catalog tables lose their
schema, casts to ``regclass``/``regtype``/``regnamespace`` become macro calls,
``OPERATOR(pg_catalog.~)`` becomes a regular expression match, ``COLLATE pg_catalog.default``
disappears and output columns get PostgreSQL's names (:func:`rewrite`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import sqlglot
from fsql_server.pg.catalog.model import (
    OWNER,
)
from fsql_server.pg.catalog.tables import (
    RENAMED_FUNCTIONS,
    TABLES,
    VIEWS,
    builtin_catalog,
    regproc_columns,
    system_relation_oids,
    vector_columns,
)
from fsql_server.pg.colnames import name_select_lists
from fsql_server.pg.dialect import keep_joins
from fsql_server.pg.session import VERSION_STRING
from fsql_server.pg.types import ZERO_BASED
from sqlglot import exp

_CATALOG_FUNCTIONS = frozenset(RENAMED_FUNCTIONS)
#: functions that make a statement a catalog query (the others are only renamed inside one)
_ROUTING_FUNCTIONS = _CATALOG_FUNCTIONS - {
    "current_setting", "array_upper", "array_lower", "quote_ident"}


def catalog_table_name(table: exp.Table) -> str | None:
    """The catalog database's name for a table reference, or None when it is not a catalog
    table (``pg_catalog.pg_class`` and bare ``pg_class`` → ``pg_class``;
    ``information_schema.tables`` → ``information_schema__tables``)."""
    schema = table.db.lower()
    name = table.name.lower()
    if schema == "information_schema":
        return f"information_schema__{name}"
    if schema in ("pg_catalog", "") and (name in TABLES or name in VIEWS
                                          or name in builtin_catalog()):
        return name
    return None


def is_catalog_query(tree: exp.Expression) -> bool:
    """A SELECT that reads the catalog (tables, catalog functions or reg* casts)."""
    if not isinstance(tree, (exp.Query,)):
        return False
    for node in tree.walk():
        if isinstance(node, exp.Table) and catalog_table_name(node) is not None:
            return True
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in _ROUTING_FUNCTIONS:
            return True
        if isinstance(node, exp.DataType) and _reg_type(node) is not None:
            return True
        if isinstance(node, exp.CurrentSchemas):
            return True
    return False


def _user_type_name(data_type: exp.DataType) -> str | None:
    kind = data_type.args.get("kind")
    if data_type.this == exp.DType.USERDEFINED and kind is not None:
        return kind.sql().split(".")[-1].lower().strip('"')
    return None


def _reg_type(data_type: exp.DataType) -> str | None:
    name = _user_type_name(data_type) or data_type.sql(dialect="postgres").lower()
    return name if name in ("regclass", "regtype", "regnamespace", "regproc",
                            "regprocedure", "regrole") else None


#: reg* type → (macro from a name to the oid, macro from the oid to the name)
_REG_FUNCTIONS = {
    "regclass": ("fsql_regclass", "fsql_regclass_name"),
    "regtype": ("fsql_regtype", "fsql_format_type"),
    "regnamespace": ("fsql_regnamespace", "fsql_regnamespace_name"),
    "regproc": ("fsql_regproc", "fsql_regproc_name"),
    "regprocedure": ("fsql_regprocedure", "fsql_regprocedure_name"),
    "regrole": ("fsql_regrole", "fsql_pg_get_userbyid"),
}


#: macros that take the session's temporary schema as their last argument
_TEMP_AWARE = frozenset(("fsql_regclass", "fsql_regclass_strict", "fsql_regclass_name",
                         "fsql_pg_table_is_visible"))

#: the largest value of PostgreSQL's integer (int4)
_INT4_MAX = 2**31 - 1


def _integer_series(tree: exp.Expression) -> None:
    """``generate_series(1, 32) pos(n)`` in FROM yields integers (int4) in PostgreSQL when its
    bounds are integer literals, DuckDB's BIGINT (pgjdbc's getImportedKeys: KEY_SEQ is
    pos.n); and a column list-less alias names the column, as in PostgreSQL."""
    for table in list(tree.find_all(exp.Table)):
        series = table.this
        if not isinstance(series, exp.ExplodingGenerateSeries):
            continue
        bounds = [series.args.get(k) for k in ("start", "end", "step") if series.args.get(k)]
        if not all(isinstance(b, exp.Literal) and not b.is_string and b.name.lstrip("-").isdigit()
                   and abs(int(b.name)) <= _INT4_MAX for b in bounds):
            continue
        alias = table.args.get("alias")
        name = alias.name if isinstance(alias, exp.TableAlias) and alias.name else \
            "generate_series"
        if isinstance(alias, exp.TableAlias) and not alias.columns:
            alias.set("columns", [exp.to_identifier(name)])
        integers = exp.select(exp.alias_(exp.cast(exp.column("generate_series"), "INTEGER"),
                                         "generate_series")).from_(
            exp.Table(this=series.copy()))
        subquery: exp.Expression = exp.Subquery(this=integers, alias=alias or exp.TableAlias(
            this=exp.to_identifier(name)))
        if table.args.get("joins"):
            subquery = exp.Table(this=subquery, joins=table.args["joins"])
        table.replace(subquery)


def rewrite(tree: exp.Expression, temp_namespace: int = -1, database: str = "fsql",
            user: str = OWNER, pid: int = 0,
            searched: Sequence[str] = ("pg_temp", "pg_catalog", "public")) -> exp.Expression:
    """The catalog query as DuckDB runs it against the catalog database (``temp_namespace``:
    the oid of the session's temporary schema, -1 for none; ``database`` and ``user``: the
    session's, for ``current_database()`` and ``current_user``; ``searched``: the schemas an
    unqualified name is looked up in, in order, ``pg_temp`` for the session's temporary one,
    for ``pg_table_is_visible``)."""
    tree = tree.copy()
    # name the select lists as PostgreSQL would, before the rewrites change them (pgcli's
    # casing query: WITH Words AS (SELECT ..., COUNT(1) ...) ... ORDER BY Count)
    name_select_lists(tree)
    session_values = {exp.CurrentDatabase: database, exp.CurrentCatalog: database,
                      exp.CurrentUser: user, exp.SessionUser: user,
                      exp.CurrentVersion: VERSION_STRING}
    for func in list(tree.find_all(exp.Anonymous)):
        called = str(func.this).lower()
        if called in ("pg_backend_pid", "version") and not func.expressions:
            whole = func.parent if isinstance(func.parent, exp.Dot) else func
            whole.replace(exp.Literal.number(pid) if called == "pg_backend_pid"
                          else exp.Literal.string(VERSION_STRING))
    for value in list(tree.find_all(*session_values)):
        if value.parent is not None or value is not tree:
            value.replace(exp.Literal.string(session_values[type(value)]))
    for schemas in list(tree.find_all(exp.CurrentSchemas)):
        schemas.replace(exp.Anonymous(this="current_schemas",
                                      expressions=[schemas.this or exp.true()]))
    for func in list(tree.find_all(exp.Anonymous)):
        # to_regclass(x) is x::regclass that gives NULL instead of an error
        target = {"to_regclass": "regclass", "to_regtype": "regtype",
                  "to_regproc": "regproc"}.get(str(func.this).lower())
        if target and func.expressions:
            lenient = exp.Cast(this=func.expressions[0], to=exp.DataType(
                this=exp.DType.USERDEFINED, kind=exp.to_identifier(target)))
            lenient.meta["fsql_lenient"] = True  # NULL for an unknown name, not an error
            func.replace(lenient)
    _replace_tableoid(tree)
    _integer_series(tree)
    for concat in list(tree.find_all(exp.DPipe)):
        # an array || another: PostgreSQL's array_cat skips a NULL side, DuckDB's || is NULL
        # (psql's \d: c.reloptions || array(select ... from unnest(tc.reloptions)))
        if isinstance(concat.this, exp.Array) or isinstance(concat.expression, exp.Array):
            concat.replace(exp.Anonymous(this="list_concat",
                                         expressions=[concat.this, concat.expression]))
    for table in list(tree.find_all(exp.Table)):
        name = catalog_table_name(table)
        if name is None and table.db.lower() == "pg_catalog":
            table.set("db", None)  # pg_catalog.generate_series(...)
        if name is not None:
            new = exp.to_table(name)
            alias = table.args.get("alias")
            if alias is None and table.db:
                # columns may still say pg_catalog.pg_class.relname: keep the bare name usable
                alias = exp.TableAlias(this=exp.to_identifier(table.name))
            if alias is not None:
                new.set("alias", alias)
            keep_joins(table, new)
            if name in ("information_schema__tables", "information_schema__columns"):
                # PostgreSQL's information_schema hides other sessions' temporary tables
                mine = f"pg_temp_{pid}"
                visible = exp.select("*").from_(name).where(
                    f"table_schema NOT LIKE 'pg\\_temp\\_%' ESCAPE '\\' "
                    f"OR table_schema = '{mine}'", dialect="duckdb")
                subquery: exp.Expression = exp.Subquery(
                    this=visible, alias=alias or exp.TableAlias(
                        this=exp.to_identifier(table.name)))
                if table.args.get("joins"):
                    # (information_schema.tables t JOIN ...): the joins stay on the outside
                    subquery = exp.Table(this=subquery, joins=table.args["joins"])
                table.replace(subquery)
                continue
            table.replace(new)
    # pg_catalog.pg_class.relname → pg_class.relname
    for column in list(tree.find_all(exp.Column)):
        if column.args.get("db") is not None and column.args["db"].name.lower() in (
                "pg_catalog", "information_schema"):
            column.set("db", None)
        if column.args.get("catalog") is not None:
            column.set("catalog", None)
    for like in list(tree.find_all(exp.Like, exp.ILike)):
        # PostgreSQL's LIKE escapes with a backslash unless told otherwise (psql's completion
        # queries send 'pg\_get\_%'); DuckDB's has no escape character by default
        if not isinstance(like.parent, exp.Escape):
            like.replace(exp.Escape(this=like.copy(), expression=exp.Literal.string("\\")))
    for collate in list(tree.find_all(exp.Collate)):
        collate.replace(collate.this)
    for node in list(tree.find_all(exp.Operator)):
        op = str(node.args.get("operator")).split(".")[-1].strip()
        left, right = node.this, node.expression
        if isinstance(right, exp.Collate):
            right = right.this
        replacement: exp.Expression
        if op == "~":
            replacement = exp.RegexpLike(this=left, expression=right)
        elif op == "!~":
            replacement = exp.not_(exp.RegexpLike(this=left, expression=right))
        elif op == "~~":
            replacement = exp.Like(this=left, expression=right)
        elif op == "=":
            replacement = exp.EQ(this=left, expression=right)
        elif op == "<>":
            replacement = exp.NEQ(this=left, expression=right)
        else:
            continue
        node.replace(replacement)
    for cast in list(tree.find_all(exp.Cast)):
        # proallargtypes::regtype[] (pgcli): each oid's name
        to = cast.to
        if to.is_type(exp.DType.ARRAY) and to.expressions and _reg_type(to.expressions[0]):
            name_of = _REG_FUNCTIONS[_reg_type(to.expressions[0]) or ""][1]
            null_arg = ", NULL" if name_of == "fsql_format_type" else ""
            # (the name macros hold subqueries, which DuckDB's lambdas do not take)
            each = sqlglot.parse_one(
                "CASE WHEN __fsql_list IS NULL THEN NULL ELSE coalesce((SELECT list("
                f"{name_of}(__u.e{null_arg}) ORDER BY __u.i) FROM unnest(__fsql_list) "
                "WITH ORDINALITY AS __u(e, i)), CAST([] AS VARCHAR[])) END", read="duckdb")
            for column in list(each.find_all(exp.Column)):
                if column.name == "__fsql_list":
                    column.replace(cast.this.copy())
            if zero_based_output(cast):
                # proargtypes::regtype[] in the select list: PostgreSQL prints the vector's
                # subscripts, from 0 ([0:1]={oid,integer}); the mark says so to the encoder
                # (fsql_server.pg.types.ZERO_BASED_TEXT_ARRAY, set by the catalog engine)
                mark = exp.Array(expressions=[exp.Literal.string(ZERO_BASED)])
                each = exp.Anonymous(this="list_concat", expressions=[mark, each])
                each = exp.Case(ifs=[exp.If(this=exp.Is(this=cast.this.copy(),
                                                         expression=exp.Null()),
                                            true=exp.Null())], default=each)
            cast.replace(each)
    for cast in list(tree.find_all(exp.Cast)):
        # CAST($2::REGCLASS AS REGCLASS) (SQLAlchemy over asyncpg) is one cast
        reg = _reg_type(cast.to)
        if reg is not None and isinstance(cast.this, exp.Cast) and _reg_type(
                cast.this.to) == reg:
            cast.replace(cast.this)
    for cast in list(tree.find_all(exp.Cast)):
        reg = _reg_type(cast.to)
        inner = cast.this
        if reg is None:
            continue
        is_text = (isinstance(inner, exp.Literal) and inner.is_string) or isinstance(
            inner, (exp.Parameter, exp.Placeholder))
        to_oid, name_of = _REG_FUNCTIONS[reg]
        if reg in ("regclass", "regtype", "regproc") and not cast.meta.get("fsql_lenient"):
            to_oid += "_strict"
        if not is_text and _compared_with_reg(cast):
            # prorettype::regtype != 'trigger'::regtype (pgcli): regtypes compare as oids
            cast.replace(inner)
            continue
        call = to_oid if is_text else name_of
        args = [inner] if call != "fsql_format_type" else [inner, exp.Null()]
        replacement = exp.Anonymous(this=call, expressions=args)
        parent = cast.parent
        if is_text and isinstance(parent, exp.Cast) and parent.to.is_type(
                exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.NAME):
            # 'features.user'::regclass::text is the name again, normalized
            extra = [exp.Null()] if reg == "regtype" else []
            replacement = exp.Anonymous(this=name_of, expressions=[replacement, *extra])
        if is_text and isinstance(parent, exp.Cast) and _user_type_name(parent.to) == "oid":
            parent.replace(replacement)
        else:
            cast.replace(replacement)
    for data_type in list(tree.find_all(exp.DataType)):
        user_type = _user_type_name(data_type)
        if user_type is not None and _reg_type(data_type) is None:
            data_type.replace(exp.DataType.build("BIGINT" if user_type == "oid" else user_type,
                                                 dialect="postgres"))
        elif data_type.sql(dialect="postgres").upper() == "OID":
            data_type.replace(exp.DataType.build("BIGINT"))
        elif data_type.this == exp.DType.NAME:
            data_type.replace(exp.DataType.build("VARCHAR"))  # 'fsql'::name (psqlODBC)
    _expand_stars(tree)
    _rewrite_vectors(tree)
    regprocs = regproc_columns()
    for column in list(tree.find_all(exp.Column)):
        # a regproc column in a select list is shown as the function's name
        parent = column.parent
        if column.name.lower() in regprocs and isinstance(parent, exp.Select) and any(
                column is e for e in parent.expressions):
            column.replace(exp.alias_(exp.Anonymous(this="fsql_regproc_name",
                                                    expressions=[column.copy()]),
                                      column.name))
        elif column.name.lower() in regprocs and (isinstance(parent, exp.Alias) and isinstance(
                parent.parent, exp.Select) or isinstance(parent, exp.Cast) and parent.to.is_type(
                exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.NAME)):
            # oprcode AS x, oprcode::text: the name
            column.replace(exp.Anonymous(this="fsql_regproc_name", expressions=[column.copy()]))
    for func in list(tree.find_all(exp.Anonymous)):
        name = str(func.this).lower()
        if name == "_pg_expandarray" and func.find_ancestor(exp.Table) is None:
            # in a select list: one row per element, as a (x, n) record
            func.set("this", "fsql__pg_expandarray_rows")
        elif name in _CATALOG_FUNCTIONS:
            func.set("this", f"fsql_{name}")
        if str(func.this) in _TEMP_AWARE:
            func.append("expressions", exp.Literal.number(temp_namespace))
        if str(func.this) == "fsql_pg_table_is_visible":
            func.append("expressions", exp.Array(
                expressions=[exp.Literal.string(name) for name in searched]))
        elif name == "json_build_object":
            func.set("this", "json_object")
    for dot in list(tree.find_all(exp.Dot)):
        if isinstance(dot.this, exp.Identifier) and dot.this.name.lower() in (
                "pg_catalog", "information_schema") and isinstance(dot.expression, exp.Func):
            dot.replace(dot.expression)
    return tree


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def _compared_with_reg(cast: exp.Cast) -> bool:
    """``cast`` is compared with another reg* cast (``a::regtype = 'text'::regtype``)."""
    parent = cast.parent
    if not isinstance(parent, _COMPARISONS):
        return False
    other = parent.expression if parent.this is cast else parent.this
    return isinstance(other, exp.Cast) and _reg_type(other.to) is not None


@functools.cache
def catalog_columns(table: str) -> tuple[str, ...]:
    """PostgreSQL's columns of a catalog table fsql holds (empty for views and unknowns)."""
    if table in TABLES:
        names = [c.split()[0] for c in TABLES[table].split(",")]
    elif table in builtin_catalog():
        names = [c for c, _t in builtin_catalog()[table]["columns"]]
    else:
        return ()
    return tuple(n for n in names if not n.startswith("fsql_"))


def _expand_stars(tree: exp.Expression) -> None:
    """``SELECT *`` / ``SELECT t.*`` over catalog tables with regproc or int2vector/oidvector
    columns (``pg_type``, ``pg_index``, ``pg_proc``, ...) lists the columns, so that those
    columns are shown as PostgreSQL shows them (function names, ``1 2``)."""
    for select in list(tree.find_all(exp.Select)):
        sources: list[tuple[str, str]] = []  # (alias, catalog table) in FROM/JOIN order
        first = select.args.get("from_") or select.args.get("from")
        tables: list[exp.Expression] = [first.this] if first is not None else []
        tables += [j.this for j in select.args.get("joins") or []]
        for table in tables:
            name = catalog_table_name(table) if isinstance(table, exp.Table) else None
            if name is None or not catalog_columns(name):
                sources.append(("", ""))
                continue
            sources.append((table.alias_or_name, name))
        special = regproc_columns() | vector_columns()
        for projection in list(select.expressions):
            if isinstance(projection, exp.Star):
                chosen = sources
            elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                chosen = [s for s in sources if s[0].lower() == projection.table.lower()]
            else:
                continue
            if not chosen or any(not name for _a, name in chosen) or not any(
                    c in special for _a, name in chosen for c in catalog_columns(name)):
                continue
            columns = [exp.column(c, table=alias) for alias, name in chosen
                       for c in catalog_columns(name)]
            projection.replace(columns[0])
            parent_list = select.expressions
            index = next(i for i, e in enumerate(parent_list) if e is columns[0])
            select.set("expressions", [*parent_list[:index], *columns,
                                       *parent_list[index + 1:]])


def zero_based_output(cast: exp.Cast) -> bool:
    """``vector::regtype[]`` (an int2vector/oidvector column cast to a reg* array) that is
    what a select-list column shows, through casts, COALESCE and parentheses only: its value
    is sent with the vector's subscripts (from 0), as PostgreSQL prints it."""
    to = cast.to
    if not (to.is_type(exp.DType.ARRAY) and to.expressions and _reg_type(to.expressions[0])
            and _is_vector(cast.this)):
        return False
    node: exp.Expression = cast
    while isinstance(node.parent, (exp.Cast, exp.Coalesce, exp.Paren, exp.Alias)):
        node = node.parent
    select = node.parent
    return isinstance(select, exp.Select) and any(node is e for e in select.expressions)


def _is_vector(node: exp.Expression) -> bool:
    return isinstance(node, exp.Column) and node.name.lower() in vector_columns()


def _rewrite_vectors(tree: exp.Expression) -> None:
    """int2vector/oidvector columns are DuckDB lists here: ``indkey[0]`` (PostgreSQL's
    subscripts start at 0) is the list's first element, ``generate_subscripts(indkey, 1)``
    counts from 0, ``array_upper``/``array_lower`` say so, and a vector in a select list is
    printed as PostgreSQL prints it (``1 2``, what pgjdbc parses)."""
    for bracket in list(tree.find_all(exp.Bracket)):
        if _is_vector(bracket.this) and bracket.expressions:
            index = bracket.expressions[0]
            bracket.set("expressions", [exp.Add(this=index.copy(),
                                                expression=exp.Literal.number(1))])
    for func in list(tree.find_all(exp.Func)):
        args = [func.this, *func.expressions] if isinstance(func, exp.Anonymous) else [
            func.this]
        name = (str(func.this) if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        vector = next((a for a in (func.expressions if isinstance(func, exp.Anonymous)
                                   else args) if isinstance(a, exp.Expression)
                       and _is_vector(a)), None)
        if vector is None:
            continue
        if name == "generate_subscripts":
            func.replace(exp.Paren(this=exp.Sub(this=func.copy(),
                                                expression=exp.Literal.number(1))))
        elif name == "array_upper":
            func.replace(exp.Sub(this=exp.Anonymous(this="len", expressions=[vector.copy()]),
                                 expression=exp.Literal.number(1)))
        elif name == "array_lower":
            func.replace(exp.Literal.number(0))
    select = tree if isinstance(tree, exp.Select) else None
    for projection in list(select.expressions if select is not None else []):
        target = projection.this if isinstance(projection, exp.Alias) else projection
        if _is_vector(target):
            text = exp.Anonymous(this="array_to_string",
                                 expressions=[target.copy(), exp.Literal.string(" ")])
            if isinstance(projection, exp.Alias):
                target.replace(text)
            else:
                projection.replace(exp.alias_(text, target.name))


def _replace_tableoid(tree: exp.Expression) -> None:
    """``c.tableoid`` (the system column: the oid of the catalog a row is in) → that oid."""
    columns = [c for c in tree.find_all(exp.Column) if c.name.lower() == "tableoid"]
    if not columns:
        return
    oids = system_relation_oids()
    by_alias: dict[str, int] = {}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if catalog_table_name(table) is not None and name in oids:
            by_alias[(table.alias_or_name or name).lower()] = oids[name]
    for column in columns:
        qualifier = column.table.lower()
        oid = by_alias.get(qualifier) if qualifier else (
            next(iter(by_alias.values())) if len(by_alias) == 1 else None)
        if oid is not None:
            column.replace(exp.Literal.number(oid))
