"""PostgreSQL meanings DuckDB reads otherwise, rewritten on the parsed statement before it
runs in a session's DuckDB (:mod:`.duckdb_backend`).

- ``'\\x0102'::bytea`` is hex;
- a bare ``CURRENT_TIMESTAMP``, ``CURRENT_DATE``, ``LOCALTIME`` or ``LOCALTIMESTAMP`` is the
  function, where DuckDB resolves it to an output column of that name (the select list's
  ``CURRENT_DATE AS "current_date"``, which :mod:`.colnames` writes);
- ``pg_catalog.f()`` and ``x::pg_catalog.text`` are ``f()`` and ``x::text`` (DuckDB has no
  schema pg_catalog);
- division by zero is error 22012, where DuckDB answers NULL or infinity: every divisor goes
  through the session macro ``fsql_divisor`` (:mod:`.macros`). Integer division itself is
  DuckDB's ``integer_division`` setting (``7 / 2`` is 3).
"""

from __future__ import annotations

from fsql_server.pg.macros import DIVISOR
from sqlglot import exp
from sqlglot.errors import ParseError

#: keywords that are functions in PostgreSQL → DuckDB's function of the same value
_KEYWORD_FUNCTIONS: dict[type[exp.Expression], str] = {
    exp.CurrentTimestamp: "now", exp.CurrentDate: "current_date",
    exp.Localtime: "current_localtime", exp.Localtimestamp: "current_localtimestamp",
}


def rewrite_postgres_meanings(tree: exp.Expression) -> None:
    """Rewrite ``tree`` in place (see the module's docstring)."""
    for cast in list(tree.find_all(exp.Cast)):
        literal = cast.this
        if (
            isinstance(literal, exp.Literal)
            and literal.is_string
            and literal.this.startswith("\\x")
            and cast.to.is_type(exp.DType.VARBINARY, exp.DType.BINARY, exp.DType.BLOB)
        ):
            cast.replace(exp.Anonymous(this="unhex", expressions=[
                exp.Literal.string(literal.this[2:])]))
    for node in list(tree.find_all(*_KEYWORD_FUNCTIONS)):
        if not node.args.get("this"):  # CURRENT_TIMESTAMP(3) keeps its precision
            node.replace(exp.Anonymous(this=_KEYWORD_FUNCTIONS[type(node)], expressions=[]))
    for dot in list(tree.find_all(exp.Dot)):
        if isinstance(dot.this, exp.Identifier) and dot.this.name.lower() == "pg_catalog" and \
                isinstance(dot.expression, exp.Func):
            dot.replace(dot.expression)
    for data_type in list(tree.find_all(exp.DataType)):
        kind = data_type.args.get("kind")
        if data_type.this == exp.DType.USERDEFINED and isinstance(kind, exp.Dot) and \
                kind.this.name.lower() == "pg_catalog":
            try:
                data_type.replace(exp.DataType.build(kind.expression.name, dialect="postgres"))
            except ParseError:
                continue  # a type of PostgreSQL's DuckDB has no name for: DuckDB says so
    for division in list(tree.find_all(exp.Div)):
        divisor = division.expression
        if isinstance(divisor, exp.Literal) and not divisor.is_string and divisor.name.strip(
                "0.") != "":
            continue  # a non-zero number needs no check
        division.set("expression", exp.Anonymous(this=DIVISOR, expressions=[divisor]))
