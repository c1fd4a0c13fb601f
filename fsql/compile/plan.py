"""The logical plan of one feature: what to compute, independent of any engine.

:func:`build_plan` turns a :class:`~fsql.language.definitions.ResolvedFeature` into a
:class:`FeaturePlan`: the feature's kind, its tick size and window in ticks, the parsed
(sqlglot) key, filter, aggregate and value expressions, and the names of the relations it reads.
:mod:`fsql.compile.sql` renders a plan to SQL for one :class:`~fsql.compile.target.Target`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from sqlglot import exp

from fsql.errors import ComputeError
from fsql.intervals import format_interval
from fsql.language.definitions import Aggregate, ResolvedFeature
from fsql.language.parser import parse_expression

#: name of the tick column in every timeline
FEATURE_TIME = "feature_time"


def micros(value: timedelta) -> int:
    """A duration in whole microseconds."""
    return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds


def source_relation(source_name: str) -> str:
    """The relation name a source is registered under in an engine."""
    return f"src_{source_name.lower()}"


def timeline_relation(feature_name: str) -> str:
    """The relation name a feature's committed timeline is registered under."""
    return f"tl_{feature_name.lower()}"


def parse_fsql(sql: str) -> exp.Expr:
    """Parse an expression written in the fsql dialect (PostgreSQL-like)."""
    return parse_expression(sql)


@dataclass(frozen=True)
class FeaturePlan:
    """Everything the SQL generator needs for one feature."""

    feature: ResolvedFeature
    #: tick size (EVERY) in microseconds
    every_us: int
    #: WINDOW / EVERY, or ``None`` for all history
    window_ticks: int | None
    #: entity key column names and canonical types, in the entity's order
    key_names: tuple[str, ...]
    key_types: tuple[str, ...]
    key_exprs: tuple[exp.Expr, ...] = ()
    filter: exp.Expr | None = None
    aggregates: tuple[Aggregate, ...] = ()
    agg_args: tuple[exp.Expr | None, ...] = ()
    #: aggregate: over ``__agg0..n``; latest: over source columns; derived: over input names
    value_expr: exp.Expr = field(default_factory=lambda: exp.Null())
    #: source plans only
    source_relation: str | None = None
    event_time: str | None = None
    event_time_type: str | None = None
    created_time: str | None = None
    #: derived plans only: input feature name → (relation, every_us)
    inputs: tuple[tuple[str, str, int], ...] = ()

    @property
    def name(self) -> str:
        return self.feature.name

    @property
    def kind(self) -> str:
        return self.feature.kind

    @property
    def value_type(self) -> str:
        return self.feature.value_type

    @property
    def ttl_us(self) -> int | None:
        ttl = self.feature.definition.ttl
        return None if ttl is None else micros(ttl)


def build_plan(
    feature: ResolvedFeature, inputs: Mapping[str, ResolvedFeature] | None = None
) -> FeaturePlan:
    """The logical plan of ``feature``. Derived features need their ``inputs`` (by name)."""
    definition = feature.definition
    every_us = micros(definition.every)
    window_ticks = None
    if definition.window is not None:
        window_us = micros(definition.window)
        if window_us % every_us:
            raise ComputeError(
                f"feature {feature.name}: WINDOW must be a whole multiple of EVERY "
                f"({format_interval(definition.window)!r} is not a multiple of "
                f"{format_interval(definition.every)!r})"
            )
        window_ticks = window_us // every_us
    key_names = feature.entity.key_names
    key_types = tuple(c.type for c in feature.entity.keys)
    value_expr = parse_fsql(feature.value_expr)
    if feature.kind == "derived":
        input_specs = []
        for name in feature.inputs:
            resolved = (inputs or {}).get(name)
            if resolved is None:
                raise ComputeError(f"feature {feature.name}: input feature {name} is not known")
            input_every = micros(resolved.definition.every)
            if every_us % input_every:
                raise ComputeError(
                    f"feature {feature.name}: EVERY must be a multiple of the EVERY of its "
                    f"input {name} ({format_interval(definition.every)!r} is not a multiple of "
                    f"{format_interval(resolved.definition.every)!r}), so that each of its ticks "
                    "is a tick of the input"
                )
            input_specs.append((name, timeline_relation(name), input_every))
        return FeaturePlan(
            feature=feature,
            every_us=every_us,
            window_ticks=window_ticks,
            key_names=key_names,
            key_types=key_types,
            value_expr=value_expr,
            inputs=tuple(input_specs),
        )
    source = feature.source
    if source is None:
        raise ComputeError(f"feature {feature.name}: a {feature.kind} feature needs a source")
    if len(feature.key_exprs) != len(key_names):
        raise ComputeError(
            f"feature {feature.name}: {len(feature.key_exprs)} key expression(s) for the "
            f"{len(key_names)} key column(s) of entity {feature.entity.name}"
        )
    event_col = source.column(source.event_time)
    return FeaturePlan(
        feature=feature,
        every_us=every_us,
        window_ticks=window_ticks,
        key_names=key_names,
        key_types=key_types,
        key_exprs=tuple(parse_fsql(k) for k in feature.key_exprs),
        filter=parse_fsql(feature.filter) if feature.filter else None,
        aggregates=feature.aggregates,
        agg_args=tuple(parse_fsql(a.arg) if a.arg else None for a in feature.aggregates),
        value_expr=value_expr,
        source_relation=source_relation(source.name),
        event_time=source.event_time,
        event_time_type=event_col.type if event_col else "TIMESTAMP",
        created_time=source.created_time,
    )
