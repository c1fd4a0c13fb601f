"""Result column names as PostgreSQL gives them, read off the parsed statement.

PostgreSQL names a select-list item without ``AS`` after what it is (``FigureColname`` in
its ``parse_target.c``): a column reference → the column's name; a function call → the
function's name as written (``now()`` → now, ``char_length(x)`` → char_length); a cast →
the inner name, else the type's name (``1::int`` → int4); a ``CASE`` → its ``ELSE``'s name
when that is a column or function, else "case"; a scalar subquery → the name of its first
column; ``EXISTS`` → exists, ``ARRAY[...]``/``ARRAY(...)`` → array; operators, literals and
parameters → ``?column?``. Unquoted names are folded to lower case (``AS Foo`` is "foo",
``AS "Foo"`` stays), for aliases as for everything else.

DuckDB names result columns otherwise (after the expression's text, with unquoted aliases
as written), so :func:`name_select_lists` gives every unnamed item of every select list an
explicit alias with PostgreSQL's name, and :func:`fold_aliases` folds unquoted aliases.
"""

from __future__ import annotations

from fsql_server.pg.dialect import CALLED_AS
from sqlglot import exp

UNNAMED = "?column?"

#: strength of a guess, as in PostgreSQL: a column or function name beats a type's name
_NONE, _WEAK, _STRONG = 0, 1, 2

#: expressions PostgreSQL's grammar turns into calls of a fixed name (or names like one)
_CALLS: dict[type[exp.Expression], str] = {
    exp.StrPosition: "position", exp.Substring: "substring", exp.Extract: "extract",
    exp.Overlay: "overlay", exp.AtTimeZone: "timezone", exp.Coalesce: "coalesce",
    exp.Nullif: "nullif", exp.Greatest: "greatest", exp.Least: "least",
    exp.Grouping: "grouping", exp.CurrentTimestamp: "current_timestamp",
    exp.CurrentDate: "current_date", exp.CurrentTime: "current_time",
    exp.Localtime: "localtime", exp.Localtimestamp: "localtimestamp",
    exp.CurrentUser: "current_user", exp.SessionUser: "session_user",
    exp.CurrentSchema: "current_schema", exp.CurrentCatalog: "current_catalog",
    exp.CurrentVersion: "version", exp.Exists: "exists", exp.Array: "array",
    exp.GroupConcat: "string_agg", exp.Tuple: "row",
}

#: PostgreSQL's own names of the types sqlglot spells in SQL's words (``x::int`` is "int4")
_TYPE_NAMES: dict[exp.DType, str] = {
    exp.DType.INT: "int4", exp.DType.BIGINT: "int8", exp.DType.SMALLINT: "int2",
    exp.DType.BOOLEAN: "bool", exp.DType.DOUBLE: "float8", exp.DType.FLOAT: "float4",
    exp.DType.DECIMAL: "numeric", exp.DType.BIGDECIMAL: "numeric",
    exp.DType.VARCHAR: "varchar", exp.DType.NVARCHAR: "varchar", exp.DType.CHAR: "bpchar",
    exp.DType.NCHAR: "bpchar", exp.DType.BPCHAR: "bpchar", exp.DType.TEXT: "text",
    exp.DType.TIMESTAMPTZ: "timestamptz", exp.DType.TIMESTAMPLTZ: "timestamptz",
    exp.DType.TIMESTAMP: "timestamp", exp.DType.TIMETZ: "timetz", exp.DType.TIME: "time",
    exp.DType.DATE: "date", exp.DType.INTERVAL: "interval", exp.DType.JSON: "json",
    exp.DType.JSONB: "jsonb", exp.DType.VARBINARY: "bytea", exp.DType.BINARY: "bytea",
    exp.DType.UUID: "uuid", exp.DType.NAME: "name",
    exp.DType.INET: "inet", exp.DType.BIT: "bit",
}


def folded(identifier: exp.Identifier | str) -> str:
    """An identifier as PostgreSQL reads it: unquoted ones in lower case."""
    if isinstance(identifier, exp.Identifier):
        return identifier.name if identifier.quoted else identifier.name.lower()
    return identifier.lower()


def output_name(projection: exp.Expression) -> str:
    """The name PostgreSQL gives one select-list item (its alias, folded, when it has one)."""
    if isinstance(projection, exp.Alias):
        alias = projection.args.get("alias")
        return folded(alias) if isinstance(alias, exp.Identifier) else projection.alias
    name, _strength = _figure(projection)
    return name or UNNAMED


def type_name(data_type: exp.Expression) -> str:
    """A type's last name as PostgreSQL's grammar records it (``text[]`` → text,
    ``pg_catalog.regtype`` → regtype, ``double precision`` → float8)."""
    if isinstance(data_type, exp.ObjectIdentifier):  # oid, regclass, regtype...
        return str(data_type.this).lower()
    if not isinstance(data_type, exp.DataType):
        return data_type.sql(dialect="postgres").lower()
    if data_type.this == exp.DType.ARRAY and data_type.expressions:
        return type_name(data_type.expressions[0])
    kind = data_type.args.get("kind")
    if data_type.this == exp.DType.USERDEFINED and kind is not None:
        while isinstance(kind, exp.Dot):  # pg_catalog.text
            kind = kind.expression
        return folded(kind) if isinstance(kind, exp.Identifier) else str(kind).lower()
    if data_type.this in _TYPE_NAMES:
        return _TYPE_NAMES[data_type.this]
    return data_type.sql(dialect="postgres").split("(")[0].split("[")[0].strip().lower()


def _figure(node: exp.Expression | None) -> tuple[str | None, int]:
    """PostgreSQL's FigureColnameInternal: (name or None, strength)."""
    if node is None:
        return None, _NONE
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Column):
        if isinstance(node.this, exp.Star):
            return None, _NONE
        return folded(node.this), _STRONG
    if isinstance(node, exp.Dot):  # pg_catalog.f(), (record).field
        if isinstance(node.expression, exp.Identifier):
            return folded(node.expression), _STRONG
        return _figure(node.expression)
    if isinstance(node, (exp.Bracket, exp.Collate, exp.Window, exp.Filter, exp.WithinGroup)):
        return _figure(node.this)  # subscripts, COLLATE, OVER and FILTER keep the name
    if isinstance(node, exp.Cast):
        name, strength = _figure(node.this)
        if strength > _WEAK:
            return name, strength
        return type_name(node.to), _WEAK
    if isinstance(node, exp.Interval):
        return "interval", _WEAK  # INTERVAL '1 day' is a cast of a literal
    if isinstance(node, exp.Case):
        name, strength = _figure(node.args.get("default"))
        return (name, strength) if strength > _WEAK else ("case", _WEAK)
    if isinstance(node, exp.Subquery):
        return _first_column(node.this)
    if isinstance(node, exp.Anonymous):
        called = node.this
        return (folded(called) if isinstance(called, exp.Identifier) else str(called).lower(),
                _STRONG)
    if isinstance(node, exp.Trim):
        position = str(node.args.get("position") or "").upper()
        return {"LEADING": "ltrim", "TRAILING": "rtrim"}.get(position, "btrim"), _STRONG
    if node.meta.get(CALLED_AS):
        return str(node.meta[CALLED_AS]).lower(), _STRONG  # f(...) as written
    for cls, name in _CALLS.items():
        if type(node) is cls:
            return name, _STRONG
    return None, _NONE


def _first_column(query: exp.Expression) -> tuple[str | None, int]:
    """A scalar subquery's name: its first column's (``(SELECT 1)`` is "?column?")."""
    while isinstance(query, exp.SetOperation):
        query = query.this
    if isinstance(query, exp.Subquery):
        return _first_column(query.this)
    if not isinstance(query, exp.Select) or not query.expressions:
        return None, _NONE
    first = query.expressions[0]
    if isinstance(first, exp.Star) or (isinstance(first, exp.Column)
                                       and isinstance(first.this, exp.Star)):
        return None, _NONE
    return output_name(first), _STRONG


def fold_aliases(tree: exp.Expression) -> None:
    """Fold every unquoted alias to lower case, as PostgreSQL's lexer does (``AS TABLE_SCHEM``
    is "table_schem"), quoting it so DuckDB keeps the case: select-list aliases, table and
    CTE aliases and their column lists."""
    for node in tree.find_all(exp.Alias, exp.TableAlias):
        identifiers = [node.args.get("alias")] if isinstance(node, exp.Alias) else [
            node.args.get("this"), *(node.args.get("columns") or [])]
        for identifier in identifiers:
            if isinstance(identifier, exp.Identifier) and not identifier.quoted:
                identifier.set("this", identifier.name.lower())
                identifier.set("quoted", True)


def name_select_lists(tree: exp.Expression) -> None:
    """Alias every unnamed item of every select list with PostgreSQL's name for it: the
    statement's (a UNION's columns are named by its first SELECT, in PostgreSQL as in
    DuckDB) and its CTEs' and subqueries', whose names the rest of the statement refers to
    (``WITH w AS (SELECT k, count(1) ...) ... ORDER BY count``). Columns and ``*`` keep
    their own names."""
    for select in list(tree.find_all(exp.Select)):
        for projection in list(select.expressions):
            if isinstance(projection, (exp.Alias, exp.Column, exp.Star)):
                continue
            if isinstance(projection, exp.Dot) and isinstance(projection.expression, exp.Star):
                continue
            projection.replace(exp.alias_(projection.copy(), output_name(projection),
                                          quoted=True))
