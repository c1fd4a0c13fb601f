"""``FeatureDefinition``: the Python twin of ``CREATE FEATURE``.

A definition renders to the SQL form (:meth:`FeatureDefinition.to_sql`) and is registered by
parsing that text with the same dialect as a ``.sql`` file, so a feature defined in Python goes
through exactly the same validation, type checking and versioning as one written in SQL.
:meth:`FeatureDefinition.from_sql` goes the other way.

>>> fd = FeatureDefinition(name="user_purchase_30d", entity="user", value_type="float",
...     transformation=WindowedAggregation(agg_func="sum", window="30d"),
...     dependencies=["purchases.amount"])
>>> print(fd.to_sql({}))   # doctest: +NORMALIZE_WHITESPACE
CREATE FEATURE user_purchase_30d ENTITY user TYPE DOUBLE WINDOW '30 days' ONLINE TRUE
AS SELECT user_id, SUM(amount) FROM purchases

``dependencies`` name source columns (``amount`` or, to disambiguate, ``purchases.amount``)
or other features; a bare column is looked up among the sources that carry the entity's key
columns, and an unknown or ambiguous name is a :class:`~fsql.errors.DefinitionError` that
lists the candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlglot import exp

from fsql.errors import DefinitionError, Problem
from fsql.intervals import IntervalSyntaxError, format_interval, parse_interval
from fsql.language.definitions import (
    AnyDefinition,
    EntityDef,
    FeatureDef,
    SourceDef,
    quote_ident,
    quote_str,
)
from fsql.language.dialect import render
from fsql.language.parser import parse, parse_expression

__all__ = [
    "Aggregation",
    "Expression",
    "FeatureDefinition",
    "LatestValue",
    "Transform",
    "WindowedAggregation",
    "canonical_value_type",
]

#: friendly Python-ish type names → fsql's canonical SQL types
_VALUE_TYPES = {
    "float": "DOUBLE", "double": "DOUBLE", "float64": "DOUBLE", "real": "REAL", "float32": "REAL",
    "int": "BIGINT", "integer": "INTEGER", "long": "BIGINT", "int64": "BIGINT", "bigint": "BIGINT",
    "int32": "INTEGER", "smallint": "SMALLINT",
    "str": "VARCHAR", "string": "VARCHAR", "text": "VARCHAR", "varchar": "VARCHAR",
    "bool": "BOOLEAN", "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP", "datetime": "TIMESTAMP", "timestamptz": "TIMESTAMPTZ",
    "date": "DATE", "bytes": "BLOB", "blob": "BLOB",
}  # fmt: skip

_AGG_SQL = {
    "sum": "SUM({})",
    "count": "COUNT({})",
    "count_distinct": "COUNT(DISTINCT {})",
    "avg": "AVG({})",
    "mean": "AVG({})",
    "min": "MIN({})",
    "max": "MAX({})",
}


def canonical_value_type(value_type: str | None) -> str | None:
    """``'float'`` → ``DOUBLE``, ``'int'`` → ``BIGINT``, ``'str'`` → ``VARCHAR``; SQL type names
    (``DECIMAL(10,2)``) pass through upper-cased; ``None`` lets fsql infer the type."""
    if value_type is None:
        return None
    text = value_type.strip()
    return _VALUE_TYPES.get(text.lower(), text.upper())


def _duration(value: str | timedelta | None, what: str) -> timedelta | None:
    if value is None or isinstance(value, timedelta):
        return value
    try:
        return parse_interval(value)
    except IntervalSyntaxError as exc:
        raise DefinitionError(Problem(f"{what}: {exc}", None, "bad-interval")) from None


class Transform:
    """How a feature's value is computed from its dependencies (subclasses below)."""

    #: the WINDOW this transform implies (aggregations and windowed latest values)
    window: str | timedelta | None = None
    #: an optional SQL condition on source rows (rendered as WHERE)
    filter: str | None = None

    def value_sql(self, dependencies: Sequence[str]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class WindowedAggregation(Transform):
    """``agg_func`` (sum, count, count_distinct, avg, min, max) over the source rows in the
    last ``window`` (``'30d'``, ``'7 days'``; ``None``: all history) before each tick."""

    agg_func: str
    window: str | timedelta | None = None
    filter: str | None = None

    def value_sql(self, dependencies: Sequence[str]) -> str:
        func = self.agg_func.lower()
        if func not in _AGG_SQL:
            raise DefinitionError(
                f"agg_func {self.agg_func!r} is not supported; use one of {', '.join(_AGG_SQL)}"
            )
        if not dependencies:
            if func != "count":
                raise DefinitionError(
                    f"{self.agg_func} needs one dependency (the column to aggregate); "
                    "only count may have none (COUNT(*))"
                )
            return "COUNT(*)"
        if len(dependencies) != 1:
            raise DefinitionError(
                f"{self.agg_func} aggregates one column, got dependencies {list(dependencies)}; "
                "use Expression(...) to combine several"
            )
        return _AGG_SQL[func].format(dependencies[0])


@dataclass(frozen=True)
class Aggregation(WindowedAggregation):
    """A lifetime aggregation (no window): all history before each tick."""


@dataclass(frozen=True)
class LatestValue(Transform):
    """The dependency's value on the latest source row (by event time, then created time)."""

    window: str | timedelta | None = None
    filter: str | None = None

    def value_sql(self, dependencies: Sequence[str]) -> str:
        if len(dependencies) != 1:
            raise DefinitionError(
                f"LatestValue takes one dependency (a source column), got {list(dependencies)}"
            )
        return dependencies[0]


@dataclass(frozen=True)
class Expression(Transform):
    """A SQL expression over the dependencies: other features of the same entity (a derived
    feature, e.g. ``'spend_30d / NULLIF(orders_30d, 0)'``) or columns of one source (the
    expression on the latest row, e.g. ``"plan <> 'free'"``)."""

    sql: str
    window: str | timedelta | None = None
    filter: str | None = None

    def value_sql(self, dependencies: Sequence[str]) -> str:
        return self.sql


@dataclass(frozen=True)
class FeatureDefinition:
    """A feature, as in the original design's ``FeatureDefinition`` (plus the optional
    ``every``, ``online``, ``description`` and ``source`` of ``CREATE FEATURE``)."""

    name: str
    entity: str
    value_type: str | None
    transformation: Transform
    dependencies: Sequence[str] = ()
    ttl: timedelta | str | None = None
    every: timedelta | str | None = None
    online: bool = True
    description: str | None = None
    #: the source to read (default: resolved from ``dependencies``)
    source: str | None = None
    #: set by :meth:`from_sql`: the exact SELECT, when the transform alone cannot render it
    query: str | None = field(default=None, compare=False)

    # --- to SQL --------------------------------------------------------------------------------

    def to_sql(self, definitions: Mapping[str, AnyDefinition]) -> str:
        """The ``CREATE FEATURE`` statement, resolving dependencies against ``definitions``
        (the registry's current entities, sources and features, by name)."""
        window = _duration(self.transformation.window, f"{self.name}: window")
        every = _duration(self.every, f"{self.name}: every")
        ttl = _duration(self.ttl, f"{self.name}: ttl")
        text = f"CREATE FEATURE {quote_ident(self.name)} ENTITY {quote_ident(self.entity)}"
        value_type = canonical_value_type(self.value_type)
        if value_type:
            text += f" TYPE {value_type}"
        if window is not None:
            text += f" WINDOW {quote_str(format_interval(window))}"
        if every is not None:
            text += f" EVERY {quote_str(format_interval(every))}"
        if ttl is not None:
            text += f" TTL {quote_str(format_interval(ttl))}"
        text += f" ONLINE {'TRUE' if self.online else 'FALSE'}"
        if self.description:
            text += f" DESCRIPTION {quote_str(self.description)}"
        return text + " AS " + (self.query or self._select(definitions))

    def _select(self, definitions: Mapping[str, AnyDefinition]) -> str:
        entity = definitions.get(self.entity)
        keys = entity.key_names if isinstance(entity, EntityDef) else _default_keys(self.entity)
        columns, features, source = self._resolve(definitions, keys)
        key_sql = ", ".join(quote_ident(k) for k in keys)
        if features:
            value = self.transformation.value_sql([quote_ident(f) for f in features])
            return f"SELECT {key_sql}, {value} FROM {quote_ident(self.entity)}"
        value = self.transformation.value_sql([quote_ident(c) for c in columns])
        if source is None:
            raise DefinitionError(
                Problem(
                    f"{self.name}: no dependencies to read from; name the source column(s) in "
                    "dependencies (e.g. ['amount'] or ['purchases.amount']) or set source=",
                    None,
                    "unknown-dependency",
                )
            )
        where = f" WHERE {self.transformation.filter}" if self.transformation.filter else ""
        return f"SELECT {key_sql}, {value} FROM {quote_ident(source)}{where}"

    def _resolve(
        self, definitions: Mapping[str, AnyDefinition], keys: Sequence[str]
    ) -> tuple[list[str], list[str], str | None]:
        """Split dependencies into source columns (with their one source) and features."""
        sources = [
            d
            for d in definitions.values()
            if isinstance(d, SourceDef) and all(d.column(k) for k in keys)
        ]
        columns: list[str] = []
        features: list[str] = []
        chosen: set[str] = {self.source} if self.source else set()
        problems: list[Problem] = []
        standalone = not definitions  # rendering without a registry (e.g. from_sql → to_sql)
        for dep in self.dependencies:
            qualifier, _, column = dep.rpartition(".")
            if isinstance(definitions.get(dep), FeatureDef) or (
                standalone and not qualifier and self.source is None
                and isinstance(self.transformation, Expression)
            ):  # fmt: skip
                features.append(dep)
                continue
            if not qualifier and self.source:
                qualifier, column = self.source, dep
            if qualifier:
                source_def = definitions.get(qualifier)
                if not isinstance(source_def, SourceDef):
                    if standalone:  # nothing to check against: trust the qualifier
                        chosen.add(qualifier)
                        columns.append(column)
                        continue
                    problems.append(_problem(self.name, f"{qualifier} is not a source", dep))
                elif source_def.column(column) is None:
                    known = ", ".join(c.name for c in source_def.columns)
                    problems.append(
                        _problem(self.name, f"source {qualifier} has no column {column} "
                                 f"(its columns: {known})", dep)
                    )  # fmt: skip
                else:
                    chosen.add(qualifier)
                columns.append(column)
                continue
            candidates = [s.name for s in sources if s.column(dep) is not None]
            if self.source:
                candidates = [c for c in candidates if c == self.source] or candidates
            if len(candidates) == 1:
                chosen.add(candidates[0])
            elif not candidates:
                known_columns = sorted({c.name for s in sources for c in s.columns} - set(keys))
                hint = (
                    f"columns of {self.entity}'s sources: {', '.join(known_columns)}"
                    if known_columns
                    else f"no source has {self.entity}'s key column(s) {', '.join(keys)}"
                )
                problems.append(
                    _problem(self.name, f"unknown dependency {dep}: neither a feature nor a "
                             f"source column ({hint})", dep)
                )  # fmt: skip
            else:
                problems.append(
                    _problem(self.name, f"ambiguous dependency {dep}: a column of "
                             f"{' and '.join(sorted(candidates))}; write e.g. "
                             f"'{sorted(candidates)[0]}.{dep}' or set source=", dep)
                )  # fmt: skip
            columns.append(dep)
        if columns and features:
            problems.append(
                _problem(self.name, "dependencies mix features "
                         f"({', '.join(features)}) and source columns ({', '.join(columns)}); "
                         "a feature reads either one source or other features", None)
            )  # fmt: skip
        if len(chosen) > 1:
            problems.append(
                _problem(self.name, f"dependencies come from several sources "
                         f"({', '.join(sorted(chosen))}); a feature reads one source", None)
            )  # fmt: skip
        if problems:
            raise DefinitionError(problems)
        return columns, features, next(iter(chosen), None)

    def to_definition(self, definitions: Mapping[str, AnyDefinition]) -> FeatureDef:
        """The :class:`FeatureDef` the SQL form parses to (via :func:`fsql.language.parser.parse`)."""

        text = self.to_sql(definitions)
        (statement,) = parse(text, f"<FeatureDefinition {self.name}>")
        assert isinstance(statement, FeatureDef)
        return statement

    # --- from SQL ------------------------------------------------------------------------------

    @classmethod
    def from_sql(cls, text: str) -> FeatureDefinition:
        """Parse one ``CREATE FEATURE`` statement into a :class:`FeatureDefinition`."""

        statements = parse(text, "<from_sql>")
        if len(statements) != 1 or not isinstance(statements[0], FeatureDef):
            raise DefinitionError("from_sql expects exactly one CREATE FEATURE statement")
        return cls.from_definition(statements[0])

    @classmethod
    def from_definition(cls, definition: FeatureDef) -> FeatureDefinition:
        """The Python form of a parsed (or registered) feature definition."""


        query = parse_expression(definition.query)
        assert isinstance(query, exp.Select)
        value = query.expressions[-1]
        value = value.this if isinstance(value, exp.Alias) else value
        from_ = query.args.get("from_") or query.args.get("from")
        table = from_.this.name if from_ is not None else None
        where = query.args.get("where")
        filter_sql = render(where.this) if where is not None else None
        derived = table == definition.entity
        window: Any = definition.window
        transform: Transform
        deps: list[str]
        aggs = {exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max", exp.Count: "count"}
        agg = aggs.get(type(value))
        exact = True
        if agg is not None:
            arg = value.this
            if isinstance(arg, exp.Distinct):
                agg, arg = "count_distinct", arg.expressions[0]
            deps = [] if isinstance(arg, exp.Star) else [render(arg)]
            exact = isinstance(arg, exp.Star | exp.Column)
            transform = WindowedAggregation(agg, window, filter_sql)
        elif isinstance(value, exp.Column) and not derived:
            deps = [value.name]
            transform = LatestValue(window, filter_sql)
        else:
            deps = sorted({c.name for c in value.find_all(exp.Column)})
            transform = Expression(render(value), window, filter_sql)
        return cls(
            name=definition.name,
            entity=definition.entity,
            value_type=definition.type,
            transformation=transform,
            dependencies=deps,
            ttl=definition.ttl,
            every=definition.every,
            online=definition.online,
            description=definition.description,
            source=None if derived else table,
            query=None if exact else definition.query,
        )


def _default_keys(entity: str) -> tuple[str, ...]:
    """Without a registry to ask, assume the common ``<entity>_id`` key column."""
    return (f"{entity}_id",)


def _problem(feature: str, message: str, dependency: str | None) -> Problem:
    return Problem(f"feature {feature}: {message}", None, "bad-dependency")
