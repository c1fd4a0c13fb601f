"""What a feature's query may look like, and what it computes: shape, keys, aggregates, type.

The checks of one feature's SELECT once its names resolve (:mod:`.references`): the supported
shape (one SELECT over one table, no joins, subqueries, window functions or volatile calls),
the entity keys and the one value it selects, GROUP BY, WHERE, WINDOW only on aggregates, the
supported aggregates (placeholders ``__aggN`` in the value expression) and the value's type
(inferred with sqlglot's ``annotate_types``, checked against ``TYPE``). Each check reports
through :class:`~fsql.language.analysis.state.AnalysisState` and returns what it resolved.
"""

from __future__ import annotations

import math
import typing as t
from collections.abc import Collection, Mapping
from datetime import timedelta

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.schema import MappingSchema

from fsql.intervals import format_interval
from fsql.language.analysis.query import FeatureQuery
from fsql.language.analysis.state import AnalysisState
from fsql.language.definitions import (
    AggFunc,
    Aggregate,
    EntityDef,
    LineageEdge,
    ResolvedFeature,
    SourceDef,
)
from fsql.language.dialect import FSQL, render
from fsql.language.grammar import canonical_type

__all__ = [
    "TIME_TYPES",
    "check_cadence",
    "check_shape",
    "derived_feature",
    "source_feature",
    "split_select",
    "type_widens",
]

_INTEGERS = ("SMALLINT", "INTEGER", "BIGINT")
_FLOATS = ("REAL", "DOUBLE")
TIME_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMPTZ")
_AGG_FUNCS: dict[type, AggFunc] = {
    exp.Sum: "sum",
    exp.Count: "count",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
}
_SUPPORTED_AGGS = "SUM, COUNT, COUNT(DISTINCT ...), AVG, MIN or MAX"


def type_widens(inferred: str, declared: str) -> bool:
    """Whether a value of type ``inferred`` may be stored as ``declared`` without loss of
    meaning: equal types, numeric widening (INTEGER → BIGINT → DECIMAL/DOUBLE, REAL → DOUBLE)
    and DATE → TIMESTAMP."""
    if inferred == declared:
        return True
    numeric = (*_INTEGERS, *_FLOATS)
    if inferred in _INTEGERS:
        return declared in numeric[_INTEGERS.index(inferred) :] or declared.startswith("DECIMAL")
    if inferred.startswith("DECIMAL"):
        return declared in _FLOATS or declared.startswith("DECIMAL")
    if inferred == "REAL":
        return declared == "DOUBLE"
    if inferred in TIME_TYPES:
        return declared in TIME_TYPES[TIME_TYPES.index(inferred) :]
    return False


def check_cadence(state: AnalysisState, query: FeatureQuery) -> bool:
    """WINDOW is a whole multiple of EVERY (the parser reports this for text; definitions
    built in Python are checked here)."""
    feature = query.feature
    if feature.window is not None and feature.window % feature.every:
        state.problem(
            f"WINDOW {format_interval(feature.window)!r} of feature {feature.name} is not a "
            f"whole multiple of EVERY {format_interval(feature.every)!r}; make it one",
            query.location(option="WINDOW"),
            "window-not-multiple",
        )
        return False
    return True


def check_shape(state: AnalysisState, query: FeatureQuery) -> bool:
    """Reject SQL outside the supported feature shape, saying what to do instead."""
    select = query.query
    name = query.feature.name
    if not isinstance(select, exp.Select):
        state.problem(
            f"feature {name} must be a single SELECT (no UNION/INTERSECT/EXCEPT); "
            "define one feature per SELECT and combine them with a derived feature",
            query.location(select),
            "not-supported",
        )
        return False
    unsupported: list[tuple[exp.Expr | None, str | None]] = [
        (
            select.args.get("with_"),
            "WITH (common table expressions) is not supported in a "
            "feature; define a source over prepared data instead",
        ),
        (
            next(iter(select.args.get("joins") or []), None),
            "JOIN is not supported in a "
            "feature, which reads one source; prepare a joined source, or combine features of "
            "one entity with a derived feature",
        ),
        (
            select.args.get("having"),
            "HAVING is not supported in a feature; filter rows with "
            "WHERE, or the aggregate with FILTER (WHERE ...)",
        ),
        (
            select.args.get("order"),
            "ORDER BY is not supported in a feature; the latest-value "
            "form already takes the latest row by event time",
        ),
        (
            select.args.get("limit"),
            "LIMIT is not supported in a feature; it returns one value per entity key",
        ),
        (select.args.get("offset"), "OFFSET is not supported in a feature"),
        (
            select.args.get("distinct"),
            "SELECT DISTINCT is not supported in a feature; use "
            "COUNT(DISTINCT ...) for a distinct count",
        ),
        (select.args.get("qualify"), "QUALIFY is not supported in a feature"),
        (
            next(iter(select.args.get("windows") or []), None),
            "named WINDOW clauses are not "
            "supported in a feature; a sliding window is the WINDOW '30 days' option before AS",
        ),
        (
            select.find(exp.Window),
            "window functions (OVER ...) are not supported in a "
            "feature; use the WINDOW '30 days' option before AS for a sliding aggregate",
        ),
        (
            next((s for s in select.find_all(exp.Subquery, exp.Exists)), None),
            "subqueries are not supported in a feature; read other features with a derived "
            "feature (FROM <entity>)",
        ),
        (
            _first_volatile(select),
            "functions of the current time or random values are not supported in a "
            "feature: a value must depend only on the events up to its tick (compare "
            "event times with each other, or use the WINDOW option)",
        ),
        (select.find(exp.Star), None),
    ]
    ok = True
    for node, message in unsupported:
        if node is None:
            continue
        if isinstance(node, exp.Star):
            if isinstance(node.parent, exp.Count):
                continue
            message = (
                "SELECT * is not supported in a feature; select the entity key column(s) "
                "and exactly one value"
            )
        state.problem(f"{message} (feature {name})", query.location(node), "not-supported")
        ok = False
    source = select.args.get("from_")
    if not ok:
        return False
    if source is None or not isinstance(source.this, exp.Table):
        state.problem(
            f"feature {name} needs FROM <source> (or FROM <entity> for a derived feature)",
            query.location(select),
            "not-supported",
        )
        return False
    if source.this.args.get("db") or source.this.args.get("catalog"):
        state.problem(
            f"FROM {source.this.sql(dialect=FSQL)} names a schema; fsql sources and "
            "entities are plain names, e.g. FROM purchases",
            query.location(source.this),
            "not-supported",
        )
        return False
    return ok


def split_select(
    state: AnalysisState, query: FeatureQuery, entity: EntityDef
) -> tuple[list[exp.Expr], exp.Expr] | None:
    """The key expressions (entity key order) and the value expression of a SELECT."""
    select = t.cast(exp.Select, query.query)
    name = query.feature.name
    keys: dict[str, exp.Expr] = {}
    values: list[exp.Expr] = []
    for item in select.expressions:
        output = item.alias_or_name if isinstance(item, (exp.Alias, exp.Column)) else ""
        inner = item.this if isinstance(item, exp.Alias) else item
        if output in entity.key_names:
            if output in keys:
                state.problem(
                    f"entity key {output} is selected twice in feature {name}; select it once",
                    query.location(item),
                    "invalid-select",
                )
                return None
            keys[output] = inner
        else:
            values.append(inner)
    missing = [k for k in entity.key_names if k not in keys]
    if missing:
        example = ", ".join(entity.key_names)
        state.problem(
            f"the SELECT of feature {name} does not return entity key "
            f"{', '.join(missing)} of entity {entity.name}; select it first, e.g. "
            f"SELECT {example}, <value> (or <column> AS {missing[0]})",
            query.location(select.expressions[0] if select.expressions else select),
            "missing-key",
        )
        return None
    if len(values) != 1:
        where = values[1] if len(values) > 1 else select
        state.problem(
            f"feature {name} returns {len(values)} values besides the entity key(s); a "
            "feature returns exactly one value: define one feature per value",
            query.location(where),
            "invalid-select",
        )
        return None
    group = select.args.get("group")
    if group is not None:
        allowed = {render(e) for e in keys.values()} | set(keys)
        written = [render(e) for e in group.expressions]
        if set(written) != {render(e) for e in keys.values()} and not set(written) <= allowed:
            state.problem(
                f"feature {name} may only GROUP BY its entity key(s) "
                f"({', '.join(entity.key_names)}), and grouping by them is implied; "
                "remove the GROUP BY or make another feature per grouping",
                query.location(group),
                "not-supported",
            )
            return None
        if not set(keys) <= set(written) | {k for k, e in keys.items() if render(e) in written}:
            state.problem(
                f"GROUP BY of feature {name} must list every entity key "
                f"({', '.join(entity.key_names)}) or be left out",
                query.location(group),
                "not-supported",
            )
            return None
    return [keys[k] for k in entity.key_names], values[0]


def source_feature(
    state: AnalysisState,
    query: FeatureQuery,
    entity: EntityDef,
    source: SourceDef,
    parts: tuple[list[exp.Expr], exp.Expr],
    columns: tuple[str, ...],
) -> ResolvedFeature | None:
    """A feature over a source, once its names resolve (``parts`` from :func:`split_select`,
    ``columns`` the source columns it reads): its keys are plain typed expressions, WHERE has no
    aggregate, and it is either a latest value (no WINDOW) or an expression over aggregates."""
    feature = query.feature
    select = t.cast(exp.Select, query.query)
    schema = {c.name: c.type for c in source.columns}
    where = select.args.get("where")
    key_nodes, value = parts
    key_nodes = [_unqualify(k) for k in key_nodes]
    value = _unqualify(value)
    for key, node in zip(entity.keys, key_nodes, strict=True):
        if _aggregates_in(node):
            state.problem(
                f"entity key {key.name} of feature {feature.name} cannot be an aggregate; "
                "select the source column that holds the key",
                query.location(node),
                "invalid-select",
            )
            return None
        key_type = _infer(node, schema)
        if key_type is not None and not _same_family(key_type, key.type):
            state.problem(
                f"entity key {key.name} is {key.type} in entity {entity.name} but "
                f"{render(node)} is {key_type} here; CAST({render(node)} AS {key.type})",
                query.location(node),
                "type-mismatch",
            )
            return None
    filter_sql: str | None = None
    if where is not None:
        condition = _unqualify(where.this)
        if _aggregates_in(condition):
            state.problem(
                f"WHERE of feature {feature.name} cannot use an aggregate; it filters source "
                "rows (use FILTER (WHERE ...) on an aggregate instead)",
                query.location(where),
                "invalid-select",
            )
            return None
        filter_sql = render(condition)
    common: dict[str, t.Any] = dict(
        definition=feature,
        entity=entity,
        source=source,
        key_exprs=tuple(render(k) for k in key_nodes),
        filter=filter_sql,
        columns=columns,
    )
    if not _aggregates_in(value):
        if feature.window is not None:
            state.problem(
                f"feature {feature.name} has WINDOW {format_interval(feature.window)!r} but "
                "no aggregate; WINDOW applies to SUM/COUNT/AVG/MIN/MAX features (for a "
                "latest value, use TTL to bound how old it may be)",
                query.location(option="WINDOW"),
                "invalid-option",
            )
            return None
        value_type = check_type(state, query, value, _infer(value, schema))
        if value_type is None:
            return None
        return ResolvedFeature(
            kind="latest", value_type=value_type, value_expr=render(value), **common
        )
    extracted = extract_aggregates(state, query, value, schema)
    if extracted is None:
        return None
    value_expr, aggregates, agg_types = extracted
    placeholder_schema = {f"__agg{i}": typ for i, typ in enumerate(agg_types)}
    value_type = check_type(state, query, value, _infer(value_expr, placeholder_schema))
    if value_type is None:
        return None
    return ResolvedFeature(
        kind="aggregate",
        value_type=value_type,
        value_expr=render(value_expr),
        aggregates=tuple(aggregates),
        **common,
    )


def extract_aggregates(
    state: AnalysisState, query: FeatureQuery, value: exp.Expr, schema: Mapping[str, str]
) -> tuple[exp.Expr, list[Aggregate], list[str]] | None:
    """Replace each aggregate call by a placeholder column ``__aggN``; FILTER (WHERE c)
    becomes ``CASE WHEN c THEN arg END`` inside the aggregate (aggregates skip NULLs)."""
    name = query.feature.name
    aggregates: list[Aggregate] = []
    types: list[str] = []
    value = value.copy()  # copies keep each node's position (meta)
    calls = [
        node
        for node in value.find_all(exp.AggFunc, exp.Filter)
        if not isinstance(node.parent, exp.Filter)
    ]
    for call in calls:
        where = call
        agg, condition = (
            (call.this, call.expression.this) if isinstance(call, exp.Filter) else (call, None)
        )
        func = _AGG_FUNCS.get(type(agg))
        if func is None or not isinstance(agg, exp.AggFunc):
            state.problem(
                f"{agg.sql(dialect=FSQL)} is not a supported aggregate in feature {name}; "
                f"use {_SUPPORTED_AGGS}",
                query.location(where),
                "not-supported",
            )
            return None
        if any(_aggregates_in(a) for a in agg.iter_expressions()):
            state.problem(
                f"nested aggregates are not supported in feature {name}; aggregate source "
                "columns directly, or aggregate in one feature and combine in a derived one",
                query.location(where),
                "not-supported",
            )
            return None
        arg: exp.Expr | None = agg.this
        if isinstance(arg, exp.Distinct):
            if func != "count" or len(arg.expressions) != 1:
                state.problem(
                    f"{agg.sql(dialect=FSQL)}: DISTINCT is supported only as "
                    "COUNT(DISTINCT <one expression>)",
                    query.location(where),
                    "not-supported",
                )
                return None
            func, arg = "count_distinct", arg.expressions[0]
        if isinstance(arg, exp.Star):
            arg = None
        if agg.expressions:
            state.problem(
                f"{agg.sql(dialect=FSQL)} takes one argument in a feature",
                query.location(where),
                "not-supported",
            )
            return None
        if condition is not None:
            then = arg if arg is not None else exp.Literal.number(1)
            arg = exp.Case(ifs=[exp.If(this=condition.copy(), true=then.copy())])
        agg_type = aggregate_type(state, query, func, arg, schema, where)
        if agg_type is None:
            return None
        aggregate = Aggregate(func, render(arg) if arg is not None else None)
        if aggregate in aggregates:
            index = aggregates.index(aggregate)
        else:
            index = len(aggregates)
            aggregates.append(aggregate)
            types.append(agg_type)
        placeholder = exp.column(f"__agg{index}")
        if call is value:
            value = placeholder
        else:
            call.replace(placeholder)
    stray = next((c for c in value.find_all(exp.Column) if not c.name.startswith("__agg")), None)
    if stray is not None:
        state.problem(
            f"column {stray.name} is used outside an aggregate in feature {name}; wrap it "
            f"in one (e.g. MAX({stray.name})) or make it a separate latest-value feature",
            query.location(stray),
            "invalid-select",
        )
        return None
    return value, aggregates, types


def aggregate_type(
    state: AnalysisState,
    query: FeatureQuery,
    func: AggFunc,
    arg: exp.Expr | None,
    schema: Mapping[str, str],
    where: exp.Expr | None,
) -> str | None:
    """SUM(integer) → BIGINT, SUM(float) → DOUBLE, SUM(DECIMAL(p,s)) → DECIMAL(38,s),
    COUNT → BIGINT, AVG → DOUBLE, MIN/MAX → the argument's type."""
    if func in ("count", "count_distinct"):
        return "BIGINT"
    arg_type = _infer(arg, schema) if arg is not None else None
    if arg_type is None:
        state.problem(
            f"cannot infer the type of the argument of {func.upper()} in feature "
            f"{query.feature.name}; CAST it to a type",
            query.location(where),
            "unknown-type",
        )
        return None
    if func in ("min", "max"):
        return arg_type
    numeric = arg_type in _INTEGERS or arg_type in _FLOATS or arg_type.startswith("DECIMAL")
    if not numeric:
        state.problem(
            f"{func.upper()} needs a numeric argument, but it is {arg_type} in feature "
            f"{query.feature.name}; use COUNT/MIN/MAX, or CAST the argument to a number",
            query.location(where),
            "type-mismatch",
        )
        return None
    if func == "avg" or arg_type in _FLOATS:
        return "DOUBLE"
    if arg_type.startswith("DECIMAL"):
        return f"DECIMAL(38,{arg_type.split(',')[1]}"
    return "BIGINT"


def check_type(
    state: AnalysisState, query: FeatureQuery, value: exp.Expr, inferred: str | None
) -> str | None:
    """The feature's value type: ``TYPE`` when declared (checked against the inferred type),
    else the inferred one."""
    feature = query.feature
    declared = feature.type
    if declared is None:
        if inferred is None:
            state.problem(
                f"cannot infer the type of {render(value)} in feature {feature.name}; add "
                "TYPE <type> before AS (e.g. TYPE DOUBLE)",
                query.location(value),
                "unknown-type",
            )
        return inferred
    if inferred is not None and not type_widens(inferred, declared):
        state.problem(
            f"feature {feature.name} declares TYPE {declared} but its value is {inferred}; "
            f"declare TYPE {inferred} or CAST the value AS {declared}",
            query.location(option="TYPE"),
            "type-mismatch",
        )
        return None
    return declared


def derived_feature(
    state: AnalysisState,
    query: FeatureQuery,
    entity: EntityDef,
    parts: tuple[list[exp.Expr], exp.Expr],
    own: Collection[str],
) -> ResolvedFeature | None:
    """A derived feature (FROM its entity), once its names resolve (``own``: the entity's other
    features): it selects the keys as is, has no WHERE, GROUP BY, aggregate or WINDOW, reads at
    least one feature, and its type follows from theirs."""
    feature = query.feature
    select = t.cast(exp.Select, query.query)
    key_nodes, value = parts
    for key, node in zip(entity.keys, key_nodes, strict=True):
        if not (isinstance(node, exp.Column) and node.name == key.name):
            state.problem(
                f"a derived feature selects the entity key {key.name} as is; found {render(node)}",
                query.location(node),
                "invalid-select",
            )
            return None
    rejected: tuple[tuple[exp.Expr | None, str], ...] = (
        (
            select.args.get("where"),
            "WHERE is not supported in a derived feature; use CASE WHEN ... in the value",
        ),
        (
            select.args.get("group"),
            "GROUP BY is not needed in a derived feature: it has "
            "one row per entity key and tick already",
        ),
        (
            _first_aggregate(value),
            "aggregates are not supported in a derived feature; it "
            "combines other features of the same entity at each tick",
        ),
    )
    for rejected_node, message in rejected:
        if rejected_node is not None:
            state.problem(
                f"{message} (feature {feature.name})",
                query.location(rejected_node),
                "not-supported",
            )
            return None
    if feature.window is not None:
        state.problem(
            f"WINDOW does not apply to derived feature {feature.name}; put the window on "
            "the features it reads",
            query.location(option="WINDOW"),
            "invalid-option",
        )
        return None
    value = _unqualify(value)
    inputs = tuple(sorted({c.name for c in value.find_all(exp.Column) if c.name in own}))
    if not inputs:
        state.problem(
            f"derived feature {feature.name} reads no feature of entity {entity.name}; "
            "use at least one of its features as a column",
            query.location(value),
            "invalid-select",
        )
        return None
    if any(i in state.failed or i not in state.resolved for i in inputs):
        # the input's own problem is reported already; don't pile a second one on top
        state.failed.add(feature.name)
        return None
    for name in inputs:
        input_every = state.resolved[name].definition.every
        if feature.every % input_every:
            # each tick of a derived feature must be a tick of every input
            right = _multiple_of_all(
                feature.every, [state.resolved[n].definition.every for n in inputs]
            )
            state.problem(
                f"EVERY {format_interval(feature.every)!r} of derived feature {feature.name} "
                f"must be a multiple of {format_interval(input_every)!r} (the EVERY of input "
                f"{name}), so that each of its ticks is a tick of {name}; "
                f"write EVERY {format_interval(right)!r}",
                query.location(option="EVERY"),
                "every-not-multiple",
            )
            return None
    for name in inputs:
        state.edges.append(LineageEdge("feature", feature.name, "feature", name))
    schema = {k.name: k.type for k in entity.keys} | {
        n: state.resolved[n].value_type for n in inputs
    }
    value_type = check_type(state, query, value, _infer(value, schema))
    if value_type is None:
        return None
    return ResolvedFeature(
        definition=feature,
        entity=entity,
        kind="derived",
        value_type=value_type,
        value_expr=render(value),
        key_exprs=entity.key_names,
        inputs=inputs,
    )


# ---------------------------------------------------------------------------------------------
# helpers over sqlglot trees


_VOLATILE = (
    exp.CurrentTimestamp, exp.CurrentDate, exp.CurrentTime, exp.Localtimestamp, exp.Rand,
    exp.Uuid,
)  # fmt: skip
_VOLATILE_NAMES = {
    "CLOCK_TIMESTAMP", "STATEMENT_TIMESTAMP", "TRANSACTION_TIMESTAMP", "TIMEOFDAY", "LOCALTIME",
    "SETSEED",
}  # fmt: skip


def _first_volatile(node: exp.Expr) -> exp.Expr | None:
    """A call whose value depends on when or how often the query runs (now(), random())."""
    for found in node.find_all(exp.Func):
        if isinstance(found, _VOLATILE) or (
            isinstance(found, exp.Anonymous) and found.name.upper() in _VOLATILE_NAMES
        ):
            return found
    return None


def _aggregates_in(node: exp.Expr) -> bool:
    return _first_aggregate(node) is not None


def _first_aggregate(node: exp.Expr) -> exp.Expr | None:
    return next(iter(node.find_all(exp.AggFunc)), None)


def _unqualify(node: exp.Expr) -> exp.Expr:
    """A copy of ``node`` with table qualifiers dropped (a feature reads one table)."""
    node = node.copy()
    for column in node.find_all(exp.Column):
        column.set("table", None)
    return node


def _infer(node: exp.Expr, schema: Mapping[str, str]) -> str | None:
    """The canonical type of ``node`` over columns typed by ``schema`` (None if unknown)."""
    expression = _unqualify(node)
    for column in expression.find_all(exp.Column):
        column.set("table", exp.to_identifier("__input"))
    if isinstance(expression, exp.Column):
        name = expression.name
        return schema.get(name) if schema.get(name) != "?" else None
    select = exp.select(expression).from_("__input")
    mapping = MappingSchema(
        {"__input": {k: v for k, v in schema.items() if v != "?"}}, dialect=FSQL, normalize=False
    )
    annotate_types(select, schema=mapping, dialect=FSQL)
    data_type = select.expressions[0].type
    if data_type is None or data_type.this in (exp.DType.UNKNOWN, exp.DType.NULL):
        return None
    return canonical_type(data_type)


def _multiple_of_all(every: timedelta, inputs: Collection[timedelta]) -> timedelta:
    """The smallest EVERY at least ``every`` that is a whole multiple of each input's EVERY."""
    seconds = math.lcm(*(int(i.total_seconds()) for i in inputs))
    wanted = int(every.total_seconds())
    return timedelta(seconds=max(1, -(-wanted // seconds)) * seconds)


def _same_family(a: str, b: str) -> bool:
    """Whether two types are both integers, both non-integer numbers, or the same type."""

    def family(typ: str) -> str:
        if typ in _INTEGERS:
            return "integer"
        if typ in _FLOATS or typ.startswith("DECIMAL"):
            return "number"
        return typ

    return family(a) == family(b)
