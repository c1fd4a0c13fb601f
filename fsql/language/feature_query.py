"""A feature's SELECT checked and split: keys, aggregates, value, filter and type.

The query-shape half of semantic analysis (:mod:`fsql.language.analysis` is the driver): each check
reports problems through the analyzer and returns what it resolved. :class:`FeatureQuery`
locates any node of a feature's query in its file, so every problem points at the text.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable, Mapping

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.schema import MappingSchema

from fsql.errors import Location
from fsql.intervals import format_interval
from fsql.language.definitions import (
    AggFunc,
    Aggregate,
    AnyDefinition,
    DropDef,
    EntityDef,
    FeatureDef,
    LineageEdge,
    ResolvedFeature,
    SourceDef,
)
from fsql.language.dialect import FSQL, render
from fsql.language.grammar import canonical_type, closest_name
from fsql.language.parser import parse_expression, statement_tree

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


class FeatureQuery:
    """A feature's SELECT, with a way to locate any of its nodes in the definition's file."""

    def __init__(self, feature: FeatureDef):
        self.feature = feature
        self.text = ""
        self.spans: dict[str, tuple[int, int]] = {}
        tree = statement_tree(feature.source_text) if feature.source_text else None
        query = tree.meta.get("query") if tree is not None else None
        if tree is not None and isinstance(query, exp.Expr) and render(query) == feature.query:
            self.text = t.cast(str, feature.source_text)
            self.spans = tree.meta.get("spans", {})
        else:  # no (matching) source text: parse the canonical query, locate the statement only
            query = parse_expression(feature.query)

        self.query: exp.Expr = normalize_identifiers(query, dialect=FSQL)

    def location(self, node: exp.Expr | None = None, option: str | None = None) -> Location | None:
        """Where ``node`` (or the value of ``option``) is in the file, with its text."""
        base = self.feature.location
        span: tuple[int, int] | None = None
        if option is not None:
            span = self.spans.get(option)
        elif node is not None and self.text:
            starts = [n.meta["start"] for n in node.walk() if n._meta and "start" in n.meta]
            ends = [n.meta["end"] for n in node.walk() if n._meta and "end" in n.meta]
            if starts:
                span = (min(starts), max(ends))
                # a call's meta covers only its name and arguments: close its parentheses
                span = (span[0], _balance_parentheses(self.text, *span))
                # keywords carry no position: start a JOIN / subquery at its keyword / "("
                leads: dict[type, str] = {exp.Join: "JOIN", exp.Subquery: "(", exp.Exists: "EXISTS"}
                lead = leads.get(type(node))
                if lead is not None:
                    found = self.text.upper().rfind(lead, 0, span[0])
                    span = (found, span[1]) if found != -1 else span
        if base is None or span is None:
            if base is None:
                return None
            highlight = node.sql(dialect=FSQL) if node is not None else base.highlight
            return Location(base.file, base.line, base.col, highlight)
        start, end = span
        line_offset = self.text.count("\n", 0, start)
        col = base.col + start if line_offset == 0 else start - self.text.rfind("\n", 0, start)
        highlight = self.text[start : end + 1].split("\n")[0]
        return Location(base.file, base.line + line_offset, col, highlight)


class FeatureQueryChecks:
    """The query-shape checks of :class:`fsql.language.analysis._Analyzer` (a mixin: it reports through
    the analyzer's ``problem`` and reads the definitions it indexed)."""

    by_name: dict[str, AnyDefinition]
    resolved: dict[str, ResolvedFeature]
    edges: list[LineageEdge]
    failed: set[str]
    drops: dict[str, DropDef]

    def problem(self, message: str, location: Location | None, code: str) -> None:
        """Record a problem (the analyzer collects them and raises them together)."""
        raise NotImplementedError

    def unknown(
        self,
        name: str,
        wanted: str,
        candidates: Iterable[str],
        location: Location | None,
        user: AnyDefinition,
    ) -> None:
        """Report a reference to a name that is not defined (or is another kind)."""
        raise NotImplementedError

    def check_shape(self, query: FeatureQuery) -> bool:
        """Reject SQL outside the supported feature shape, saying what to do instead."""
        select = query.query
        name = query.feature.name
        if not isinstance(select, exp.Select):
            self.problem(
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
            self.problem(f"{message} (feature {name})", query.location(node), "not-supported")
            ok = False
        source = select.args.get("from_")
        if not ok:
            return False
        if source is None or not isinstance(source.this, exp.Table):
            self.problem(
                f"feature {name} needs FROM <source> (or FROM <entity> for a derived feature)",
                query.location(select),
                "not-supported",
            )
            return False
        if source.this.args.get("db") or source.this.args.get("catalog"):
            self.problem(
                f"FROM {source.this.sql(dialect=FSQL)} names a schema; fsql sources and "
                "entities are plain names, e.g. FROM purchases",
                query.location(source.this),
                "not-supported",
            )
            return False
        return ok

    def split_select(
        self, query: FeatureQuery, entity: EntityDef
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
                    self.problem(
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
            self.problem(
                f"the SELECT of feature {name} does not return entity key "
                f"{', '.join(missing)} of entity {entity.name}; select it first, e.g. "
                f"SELECT {example}, <value> (or <column> AS {missing[0]})",
                query.location(select.expressions[0] if select.expressions else select),
                "missing-key",
            )
            return None
        if len(values) != 1:
            where = values[1] if len(values) > 1 else select
            self.problem(
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
                self.problem(
                    f"feature {name} may only GROUP BY its entity key(s) "
                    f"({', '.join(entity.key_names)}), and grouping by them is implied; "
                    "remove the GROUP BY or make another feature per grouping",
                    query.location(group),
                    "not-supported",
                )
                return None
            if not set(keys) <= set(written) | {k for k, e in keys.items() if render(e) in written}:
                self.problem(
                    f"GROUP BY of feature {name} must list every entity key "
                    f"({', '.join(entity.key_names)}) or be left out",
                    query.location(group),
                    "not-supported",
                )
                return None
        return [keys[k] for k in entity.key_names], values[0]

    def check_columns(
        self,
        query: FeatureQuery,
        nodes: Iterable[exp.Expr],
        columns: Mapping[str, str],
        table: exp.Table,
        describe: str,
        extra_hint: t.Callable[[str], str | None] = lambda _: None,
    ) -> bool:
        """Every column must exist in ``columns``; qualifiers must name the FROM table."""
        allowed_qualifiers = {table.name, table.alias_or_name}
        ok = True
        for node in nodes:
            for column in node.find_all(exp.Column):
                if column.table and column.table not in allowed_qualifiers:
                    self.problem(
                        f"{column.sql(dialect=FSQL)} is qualified by {column.table}, which is not "
                        f"in FROM; write {column.name} or {table.alias_or_name}.{column.name}",
                        query.location(column),
                        "unknown-column",
                    )
                    ok = False
                elif column.name not in columns and column.name in self.drops:
                    # reading a feature dropped in the same change: reported at the DROP
                    self.unknown(column.name, "feature", (), None, query.feature)
                    ok = False
                elif column.name not in columns:
                    hint = (
                        extra_hint(column.name)
                        or closest_name(column.name, columns)
                        or (f"it has {', '.join(columns)}")
                    )
                    self.problem(
                        f"unknown column {column.name} in {describe}; {hint}",
                        query.location(column),
                        "unknown-column",
                    )
                    ok = False
        return ok

    def resolve_source_feature(
        self, query: FeatureQuery, entity: EntityDef, source: SourceDef, table: exp.Table
    ) -> ResolvedFeature | None:
        feature = query.feature
        select = t.cast(exp.Select, query.query)
        schema = {c.name: c.type for c in source.columns}
        where = select.args.get("where")
        parts = self.split_select(query, entity)
        checked = [select] if parts is None else [*parts[0], parts[1]]
        if where is not None:
            checked.append(where)
        if not self.check_columns(query, checked, schema, table, f"source {source.name}"):
            return None
        if parts is None:
            return None
        key_nodes, value = parts
        self.edges.append(LineageEdge("feature", feature.name, "source", source.name))
        for column in sorted({c.name for n in checked for c in n.find_all(exp.Column)}):
            self.edges.append(LineageEdge("feature", feature.name, "source", source.name, column))
        key_nodes = [_unqualify(k) for k in key_nodes]
        value = _unqualify(value)
        for key, node in zip(entity.keys, key_nodes, strict=True):
            if _aggregates_in(node):
                self.problem(
                    f"entity key {key.name} of feature {feature.name} cannot be an aggregate; "
                    "select the source column that holds the key",
                    query.location(node),
                    "invalid-select",
                )
                return None
            key_type = _infer(node, schema)
            if key_type is not None and not _same_family(key_type, key.type):
                self.problem(
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
                self.problem(
                    f"WHERE of feature {feature.name} cannot use an aggregate; it filters source "
                    "rows (use FILTER (WHERE ...) on an aggregate instead)",
                    query.location(where),
                    "invalid-select",
                )
                return None
            filter_sql = render(condition)
        columns = tuple(sorted({c.name for n in checked for c in n.find_all(exp.Column)}))
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
                self.problem(
                    f"feature {feature.name} has WINDOW {format_interval(feature.window)!r} but "
                    "no aggregate; WINDOW applies to SUM/COUNT/AVG/MIN/MAX features (for a "
                    "latest value, use TTL to bound how old it may be)",
                    query.location(option="WINDOW"),
                    "invalid-option",
                )
                return None
            value_type = self.check_type(query, value, _infer(value, schema))
            if value_type is None:
                return None
            return ResolvedFeature(
                kind="latest", value_type=value_type, value_expr=render(value), **common
            )
        extracted = self.extract_aggregates(query, value, schema)
        if extracted is None:
            return None
        value_expr, aggregates, agg_types = extracted
        placeholder_schema = {f"__agg{i}": typ for i, typ in enumerate(agg_types)}
        value_type = self.check_type(query, value, _infer(value_expr, placeholder_schema))
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
        self, query: FeatureQuery, value: exp.Expr, schema: Mapping[str, str]
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
                self.problem(
                    f"{agg.sql(dialect=FSQL)} is not a supported aggregate in feature {name}; "
                    f"use {_SUPPORTED_AGGS}",
                    query.location(where),
                    "not-supported",
                )
                return None
            if any(_aggregates_in(a) for a in agg.iter_expressions()):
                self.problem(
                    f"nested aggregates are not supported in feature {name}; aggregate source "
                    "columns directly, or aggregate in one feature and combine in a derived one",
                    query.location(where),
                    "not-supported",
                )
                return None
            arg: exp.Expr | None = agg.this
            if isinstance(arg, exp.Distinct):
                if func != "count" or len(arg.expressions) != 1:
                    self.problem(
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
                self.problem(
                    f"{agg.sql(dialect=FSQL)} takes one argument in a feature",
                    query.location(where),
                    "not-supported",
                )
                return None
            if condition is not None:
                then = arg if arg is not None else exp.Literal.number(1)
                arg = exp.Case(ifs=[exp.If(this=condition.copy(), true=then.copy())])
            agg_type = self.aggregate_type(query, func, arg, schema, where)
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
        stray = next(
            (c for c in value.find_all(exp.Column) if not c.name.startswith("__agg")), None
        )
        if stray is not None:
            self.problem(
                f"column {stray.name} is used outside an aggregate in feature {name}; wrap it "
                f"in one (e.g. MAX({stray.name})) or make it a separate latest-value feature",
                query.location(stray),
                "invalid-select",
            )
            return None
        return value, aggregates, types

    def aggregate_type(
        self,
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
            self.problem(
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
            self.problem(
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

    def check_type(self, query: FeatureQuery, value: exp.Expr, inferred: str | None) -> str | None:
        """The feature's value type: ``TYPE`` when declared (checked against the inferred type),
        else the inferred one."""
        feature = query.feature
        declared = feature.type
        if declared is None:
            if inferred is None:
                self.problem(
                    f"cannot infer the type of {render(value)} in feature {feature.name}; add "
                    "TYPE <type> before AS (e.g. TYPE DOUBLE)",
                    query.location(value),
                    "unknown-type",
                )
            return inferred
        if inferred is not None and not type_widens(inferred, declared):
            self.problem(
                f"feature {feature.name} declares TYPE {declared} but its value is {inferred}; "
                f"declare TYPE {inferred} or CAST the value AS {declared}",
                query.location(option="TYPE"),
                "type-mismatch",
            )
            return None
        return declared

    def resolve_derived(
        self, query: FeatureQuery, entity: EntityDef, table: exp.Table
    ) -> ResolvedFeature | None:
        feature = query.feature
        select = t.cast(exp.Select, query.query)
        own = {
            n: d
            for n, d in self.by_name.items()
            if isinstance(d, FeatureDef) and d.entity == entity.name and n != feature.name
        }
        columns = {k.name: k.type for k in entity.keys} | {n: "?" for n in own}

        def other_entity(name: str) -> str | None:
            other = self.by_name.get(name)
            if isinstance(other, FeatureDef) and other.entity != entity.name:
                return (
                    f"{name} is a feature of entity {other.entity}; a derived feature reads "
                    f"only features of its own entity {entity.name}"
                )
            return None

        parts = self.split_select(query, entity)
        checked = [select] if parts is None else [*parts[0], parts[1]]
        if not self.check_columns(
            query, checked, columns, table, f"entity {entity.name}'s features", other_entity
        ):
            return None
        if parts is None:
            return None
        key_nodes, value = parts
        for key, node in zip(entity.keys, key_nodes, strict=True):
            if not (isinstance(node, exp.Column) and node.name == key.name):
                self.problem(
                    f"a derived feature selects the entity key {key.name} as is; found "
                    f"{render(node)}",
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
                self.problem(
                    f"{message} (feature {feature.name})",
                    query.location(rejected_node),
                    "not-supported",
                )
                return None
        if feature.window is not None:
            self.problem(
                f"WINDOW does not apply to derived feature {feature.name}; put the window on "
                "the features it reads",
                query.location(option="WINDOW"),
                "invalid-option",
            )
            return None
        value = _unqualify(value)
        inputs = tuple(sorted({c.name for c in value.find_all(exp.Column) if c.name in own}))
        if not inputs:
            self.problem(
                f"derived feature {feature.name} reads no feature of entity {entity.name}; "
                "use at least one of its features as a column",
                query.location(value),
                "invalid-select",
            )
            return None
        if any(i in self.failed or i not in self.resolved for i in inputs):
            # the input's own problem is reported already; don't pile a second one on top
            self.failed.add(feature.name)
            return None
        for name in inputs:
            self.edges.append(LineageEdge("feature", feature.name, "feature", name))
        schema = {k.name: k.type for k in entity.keys} | {
            n: self.resolved[n].value_type for n in inputs
        }
        value_type = self.check_type(query, value, _infer(value, schema))
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


def _same_family(a: str, b: str) -> bool:
    def family(typ: str) -> str:
        if typ in _INTEGERS:
            return "integer"
        if typ in _FLOATS or typ.startswith("DECIMAL"):
            return "number"
        return typ

    return family(a) == family(b)


def _balance_parentheses(text: str, start: int, end: int) -> int:
    """The smallest end >= ``end`` such that ``text[start:end+1]`` closes every parenthesis
    it opens (string literals skipped), so a highlighted call includes its ``)``."""
    depth, position, quote = 0, start, ""
    while position < len(text):
        char = text[position]
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if position >= end and depth <= 0 and not quote:
            return position
        position += 1
    return end
