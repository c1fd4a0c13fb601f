"""PostgreSQL's array literals (``'{a,"b c",NULL}'``) rewritten for DuckDB, which does not
read them: ``x = ANY('{a,b}')``, ``x <> ALL('{a,b}')``, ``'{a,b}'::T[]``."""

from __future__ import annotations

from typing import Any

from fsql_server.pg.errors import PgError
from fsql_server.pg.types import TEXT, TYPES
from sqlglot import exp


def _array_literal(node: exp.Expression) -> list[Any] | None:
    """The elements of a PostgreSQL array literal (``'{a,"b c",NULL}'``) as text, None when
    ``node`` is no such literal (or a nested one)."""
    if not (isinstance(node, exp.Literal) and node.is_string):
        return None
    text = node.this.strip()
    if not (text.startswith("{") and text.endswith("}")) or "{" in text[1:]:
        return None
    try:
        values = TYPES[TEXT.array_oid].text_in(text.encode())
    except (PgError, ValueError):
        return None
    return list(values) if isinstance(values, list) else None


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)


def rewrite_array_literals(tree: exp.Expression) -> None:
    """PostgreSQL's array literals, which DuckDB does not read: ``x = ANY('{a,b}')`` becomes
    ``x IN ('a', 'b')`` (DuckDB types the literals after ``x``, as PostgreSQL types the
    array), ``x <> ALL('{a,b}')`` ``x NOT IN (...)``, and ``'{a,b}'::T[]`` a list cast to
    ``T[]``."""
    for cast in list(tree.find_all(exp.Cast)):
        values = _array_literal(cast.this)
        if values is not None and cast.to.is_type(exp.DType.ARRAY):
            cast.set("this", exp.Array(expressions=[_text_literal(v) for v in values]))
    for quantified in list(tree.find_all(exp.Any, exp.All, exp.Anonymous)):
        is_all = isinstance(quantified, exp.All)
        if isinstance(quantified, exp.Anonymous):  # sqlglot reads ALL(...) as a function
            if str(quantified.this).upper() != "ALL" or len(quantified.expressions) != 1:
                continue
            is_all = True
            inner = quantified.expressions[0]
        else:
            inner = quantified.this
        while isinstance(inner, exp.Paren):
            inner = inner.this
        values = _array_literal(inner)
        if values is None:
            continue
        parent = quantified.parent
        items = [_text_literal(v) for v in values]
        if isinstance(parent, exp.EQ) and not is_all and parent.expression is quantified \
                and items:
            parent.replace(exp.In(this=parent.this, expressions=items))
        elif isinstance(parent, exp.NEQ) and is_all and parent.expression is quantified \
                and items:
            parent.replace(exp.not_(exp.In(this=parent.this, expressions=items)))
        elif isinstance(parent, _COMPARISONS) and parent.expression is quantified:
            # x > ANY('{1,3}'): x > '1' OR x > '3', the literals typed after x (an empty
            # array: false for ANY, true for ALL), as PostgreSQL types the array
            terms = [type(parent)(this=parent.this.copy(), expression=i) for i in items]
            combined = (exp.and_ if is_all else exp.or_)(*terms) if terms else \
                exp.Boolean(this=is_all)
            parent.replace(exp.Paren(this=combined))
        elif isinstance(quantified, exp.Anonymous):
            quantified.set("expressions", [exp.Array(expressions=items)])
        else:
            quantified.set("this", exp.Array(expressions=items))


def _text_literal(value: Any) -> exp.Expression:
    return exp.Null() if value is None else exp.Literal.string(str(value))
