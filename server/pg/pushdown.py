"""Equality filters handed to the surface's relations before DuckDB scans them.

DuckDB filters what a registered Arrow stream gives it, but cannot tell the stream which rows
it wants. For ``features.<entity>`` that means listing every key of the online store to answer
``WHERE user_id IN ('a', 'b') AND user_orders > 2``. :func:`equality_filters` reads, on the
parsed statement, the values a relation's columns are held to by its own ``SELECT``'s
``WHERE`` (top-level ``AND`` conjuncts ``col = v``, ``col IN (v, ...)``, ``col = ANY(ARRAY[...])``
or ``= ANY($n)``, with ``v`` a literal or a parameter); the provider
(:class:`~fsql_server.pg.planner.DataRelations`) may then give only those rows. The conditions
stay in the statement, so DuckDB still applies them: a provider that ignores the filters, or
gives more rows, changes nothing but the cost.

A filter is taken only where it restricts the relation's rows in the result: the relation in
the ``FROM`` or an inner/left join of a ``SELECT`` with no right or full join, the column
qualified by the relation's alias (or unqualified when the ``SELECT`` reads one relation).

A join with one of the session's own tables on a column (``FROM spine s JOIN features.user f
ON f.user_id = s.user_id``, or ``USING``) holds that column to the spine's values, when the
join drops the relation's unmatched rows (an inner join, or the relation on the right of a
LEFT JOIN): those values are read from the spine first (at most
:data:`JOIN_VALUES_LIMIT` distinct ones; a bigger spine filters nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp


@dataclass(frozen=True)
class Value:
    """One value a column is held to: a literal, a client parameter (0-based; ``many``: an
    array parameter standing for several values), or the distinct values of a column of a
    session table it is joined with (``query``: the DuckDB SELECT that lists them)."""

    literal: Any = None
    param: int | None = None
    many: bool = False
    query: str | None = None


#: at most this many distinct values are read from a joined session table; a bigger one is
#: no filter (the relation is scanned whole, as without the join)
JOIN_VALUES_LIMIT = 100_000


#: column (lower case) → the values it must equal one of
Filters = Mapping[str, Sequence[Value]]


def equality_filters(table: exp.Table,
                     session_table: Callable[[exp.Table], bool] | None = None
                     ) -> dict[str, list[Value]]:
    """The equality filters on ``table``'s columns (empty when there are none it can use).
    ``session_table`` tells the tables whose rows a join may restrict ``table`` to (the
    session's own: a spine joined on the key)."""
    select = _owning_select(table)
    if select is None:
        return {}
    joins = select.args.get("joins") or []
    if any(join.side.upper() in ("RIGHT", "FULL") for join in joins):
        return {}
    single = not joins
    names = {table.alias_or_name.lower()}
    out: dict[str, list[Value]] = {}
    where = select.args.get("where")
    for condition in conjuncts(where.this) if where is not None else []:
        found = _filter(condition, names, single)
        if found is not None:
            column, values = found
            out.setdefault(column, values)
    if session_table is not None:
        for column, values in _join_filters(select, table, session_table).items():
            out.setdefault(column, values)
    return out


def _join_filters(select: exp.Select, table: exp.Table,
                  session_table: Callable[[exp.Table], bool]) -> dict[str, list[Value]]:
    """``FROM spine s JOIN features.user f ON f.user_id = s.user_id`` (or ``USING``; an inner
    join, or ``table`` on the right of a LEFT JOIN): ``table`` only needs the keys of the
    spine's column. Each such join reads its other table's distinct values of that column."""
    source = select.args["from_"].this
    joins = select.args.get("joins") or []
    mine = next((j for j in joins if j.this is table), None)
    if mine is not None:
        if mine.side.upper() not in ("", "LEFT") or mine.kind.upper() in ("ANTI", "SEMI"):
            return {}
        candidates = [(mine, source)] + [(mine, j.this) for j in joins if j is not mine]
    elif source is table:
        # FROM table JOIN other: only an inner join drops table's unmatched rows
        candidates = [(j, j.this) for j in joins if not j.side and not j.kind]
    else:
        return {}
    out: dict[str, list[Value]] = {}
    name = table.alias_or_name.lower()
    for join, other in candidates:
        if not isinstance(other, exp.Table) or not session_table(other):
            continue
        other_name = other.alias_or_name.lower()
        pairs: list[tuple[str, str]] = []
        for column in join.args.get("using") or []:
            pairs.append((column.name.lower(), column.name))
        on = join.args.get("on")
        for condition in conjuncts(on) if on is not None else []:
            if not isinstance(condition, exp.EQ):
                continue
            for left, right in ((condition.this, condition.expression),
                                (condition.expression, condition.this)):
                if isinstance(left, exp.Column) and isinstance(right, exp.Column) \
                        and left.table.lower() == name and right.table.lower() == other_name:
                    pairs.append((left.name.lower(), right.name))
        plain = exp.Table(this=other.this.copy(), db=other.args.get("db"))
        for column, other_column in pairs:
            query = exp.select(exp.column(other_column, quoted=True)).distinct().from_(
                plain.copy()).limit(JOIN_VALUES_LIMIT + 1)
            out.setdefault(column, [Value(query=query.sql(dialect="duckdb"))])
    return out


def resolve(filters: Filters, params: Sequence[Any] | None,
            run: Callable[[str], list[Any]] | None = None) -> dict[str, list[Any]] | None:
    """The filters' values, with the parameters bound and the joined tables' values read by
    ``run`` (None when a parameter is not known yet: a Describe, a probe; the provider then
    gives every row, which nobody pulls). A column whose values cannot be had (a joined table
    too big, or unreadable) is left out: it filters nothing."""
    out: dict[str, list[Any]] = {}
    for column, values in filters.items():
        resolved: list[Any] = []
        for value in values:
            if value.query is not None:
                found = run(value.query) if run is not None else None
                if found is None or len(found) > JOIN_VALUES_LIMIT:
                    break
                resolved.extend(found)
                continue
            if value.param is None:
                resolved.append(value.literal)
                continue
            if params is None or value.param >= len(params):
                return None
            bound = params[value.param]
            if value.many:
                resolved.extend(bound or [])
            else:
                resolved.append(bound)
        else:
            out[column] = resolved
    return out


def _owning_select(table: exp.Table) -> exp.Select | None:
    parent = table.parent
    if isinstance(parent, exp.From) and isinstance(parent.parent, exp.Select):
        return parent.parent
    if isinstance(parent, exp.Join) and isinstance(parent.parent, exp.Select):
        return parent.parent
    return None


def conjuncts(node: exp.Expression) -> list[exp.Expression]:
    """The terms of ``a AND b AND ...`` (parentheses looked through)."""
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return conjuncts(node.this) + conjuncts(node.expression)
    return [node]


def _column(node: exp.Expression, names: set[str], single: bool) -> str | None:
    if not isinstance(node, exp.Column) or isinstance(node.this, exp.Star):
        return None
    if node.table:
        return node.name.lower() if node.table.lower() in names else None
    return node.name.lower() if single else None


def _value(node: exp.Expression) -> Value | None:
    while isinstance(node, (exp.Cast, exp.Paren)):
        node = node.this
    if isinstance(node, exp.Parameter):
        inner = node.this
        text = inner.name if isinstance(inner, exp.Expression) else str(inner)
        return Value(param=int(text) - 1) if text.isdigit() else None
    if isinstance(node, exp.Literal):
        if node.is_string:
            return Value(literal=node.this)
        text = node.this
        return Value(literal=int(text) if text.lstrip("-").isdigit() else float(text))
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) \
            and node.this.this.isdigit():
        return Value(literal=-int(node.this.this))
    return None


def _filter(condition: exp.Expression, names: set[str],
            single: bool) -> tuple[str, list[Value]] | None:
    if isinstance(condition, exp.EQ) and isinstance(condition.expression, exp.Any):
        column = _column(condition.this, names, single)
        inner = condition.expression.this
        while isinstance(inner, exp.Paren):
            inner = inner.this
        if column is None:
            return None
        if isinstance(inner, exp.Array):
            values = [_value(v) for v in inner.expressions]
            return (column, [v for v in values if v is not None]) \
                if all(v is not None for v in values) else None
        while isinstance(inner, exp.Cast):
            inner = inner.this
        value = _value(inner)
        if value is None or value.param is None:
            return None
        return column, [Value(param=value.param, many=True)]
    if isinstance(condition, exp.EQ):
        for left, right in ((condition.this, condition.expression),
                            (condition.expression, condition.this)):
            column = _column(left, names, single)
            value = _value(right) if column is not None else None
            if column is not None and value is not None:
                return column, [value]
        return None
    if isinstance(condition, exp.In) and not condition.args.get("query") \
            and not condition.args.get("unnest") and not condition.args.get("field"):
        column = _column(condition.this, names, single)
        values = [_value(v) for v in condition.expressions]
        if column is None or not values or any(v is None for v in values):
            return None
        return column, [v for v in values if v is not None]
    return None
