"""The point-in-time join: each spine row's feature values at its lookup tick.

The caller computes, per spine row and feature, the lookup tick T*: the latest *materialized*
tick ≤ t, NULL when there is none or when t − T* exceeds the TTL
(:func:`fsql.compute.training.lookup_ticks`). Stored timelines hold changes (a value's row is
written where it changes; :mod:`fsql.compile.sql`), so the value at T* is the timeline row with
the greatest ``feature_time`` ≤ T* for the row's keys:

- DuckDB: a hash join on (keys, ``feature_time`` = T*) for the rows whose entity changed at
  T*, then ``ASOF LEFT JOIN`` on (keys, ``feature_time`` ≤ T*) for the others, against their
  keys' rows only (:func:`_exact_then_asof`; several features in one query: one ASOF join
  each);
- Spark (no ASOF join): the spine and the timeline in one window pass per feature, sorted by
  time within each key, the spine rows taking the last timeline value before them
  (``LAST_VALUE ... IGNORE NULLS``).

Both give exactly one row per spine row, in no particular order; callers put rows back in order
by ``__row``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp

from fsql.compile.expressions import (
    _alias,
    _and,
    _asc,
    _col,
    _dtype,
    _null,
    _select,
    _union_all,
    _window,
    epoch_micros,
    struct_field,
    struct_value,
)
from fsql.compile.plan import FEATURE_TIME
from fsql.compile.target import Target
from fsql.errors import ComputeError


def _name(name: str) -> exp.Identifier:
    """A feature's, key's or relation's name as a quoted identifier: never parsed as SQL (the
    definition-time check allows plain identifiers only; this holds whatever a name is)."""
    return exp.to_identifier(name, quoted=True)


def _named(name: str, table: str | None = None) -> exp.Column:
    """A column named by a definition (a feature or key), of an internal alias."""
    return exp.column(_name(name), table=exp.to_identifier(table) if table else None)


def _relation(name: str) -> exp.Table:
    """A registered relation by name, as a tree (``from_`` would parse a string as SQL)."""
    return exp.Table(this=_name(name))


@dataclass(frozen=True)
class PitFeature:
    """One feature to look up: its timeline relation, its keys (names and canonical types) and
    the spine column holding each spine row's lookup tick (see :func:`point_in_time_join`)."""

    name: str
    relation: str
    key_names: tuple[str, ...]
    key_types: tuple[str, ...]
    tick_column: str


def point_in_time_join(spine: str, features: Sequence[PitFeature], target: Target) -> exp.Select:
    """``__row`` and one column per feature: for each spine row, the feature's latest timeline
    row for the row's keys at or before the row's lookup tick, NULL when there is none.

    ``spine`` has a ``__row`` column (0..n−1), the key columns and, per feature, a
    ``tick_column`` (a UTC timestamp, NULL for no lookup)."""
    keys = _spine_keys(features)
    ticks = list(dict.fromkeys(f.tick_column for f in features))
    s = _select(
        "__row", *[exp.alias_(exp.cast(_named(k), _dtype(t)), _name(k)) for k, t in keys.items()],
        *ticks,
    ).from_(_relation(spine), copy=False)
    if not target.asof_join:
        return _window_join(s, features, target)
    if len(features) == 1:
        return _exact_then_asof(s, features[0])
    query = exp.select(_col("__row", "__s")).from_(s.subquery("__s", copy=False), copy=False)
    for j, f in enumerate(features):
        alias = f"__f{j}"
        query = query.select(exp.alias_(_named(f.name, alias), _name(f.name)), copy=False)
        timeline = _select(*map(_named, f.key_names), FEATURE_TIME, _named(f.name)).from_(
            _relation(f.relation), copy=False)
        on = _and(
            *[exp.EQ(this=_named(k, "__s"), expression=_named(k, alias)) for k in f.key_names],
            exp.LTE(this=_col(FEATURE_TIME, alias), expression=_col(f.tick_column, "__s")),
        )
        query = query.join(
            timeline.subquery(alias, copy=False), on=on, join_type="ASOF LEFT", copy=False
        )
    return query


def _exact_then_asof(spine: exp.Select, f: PitFeature) -> exp.Select:
    """One feature's point-in-time join in two steps: a hash join on (keys, ``feature_time``
    = T*) answers every spine row whose entity changed exactly at its lookup tick, then an
    ASOF join answers the rest against the timeline rows of their keys only (a semi join on
    their distinct keys).

    Where values change at most ticks (the common case for active entities) nearly every row
    is answered by the hash join, which costs a fraction of an ASOF join's sort of the whole
    timeline; where they rarely change the timeline is small and both steps are cheap. Equal
    to the ASOF join alone: a timeline has at most one row per (keys, tick)."""
    keys = list(f.key_names)
    tick = f.tick_column
    timeline = _select(*map(_named, keys), FEATURE_TIME, _named(f.name)).from_(
        _relation(f.relation), copy=False)
    hit = exp.or_(
        exp.Not(this=exp.Is(this=_col(FEATURE_TIME, "__t"), expression=_null())),
        exp.Is(this=_col(tick, "__s"), expression=_null()),
    )
    exact = (
        exp.select(
            _col("__row", "__s"),
            *[_named(k, "__s") for k in keys],
            _col(tick, "__s"),
            exp.alias_(_named(f.name, "__t"), _name(f.name)),
            _alias(hit, "__hit"),
        )  # fmt: skip
        .from_(spine.subquery("__s", copy=False), copy=False)
        .join(
            timeline.subquery("__t", copy=False),
            on=_and(
                *_keys_equal(keys, "__s", "__t"),
                exp.EQ(this=_col(FEATURE_TIME, "__t"), expression=_col(tick, "__s")),
            ),
            join_type="LEFT",
            copy=False,
        )
    )
    missed = exp.Not(this=_col("__hit"))
    misses = _select("__row", *map(_named, keys), tick).from_("__e", copy=False).where(missed, copy=False)
    their_keys = _select(*map(_named, keys)).distinct().from_("__m", copy=False)
    their_rows = (
        exp.select(*[_named(k, "__r") for k in keys], _col(FEATURE_TIME, "__r"),
                   _named(f.name, "__r"))
        .from_(_table(f.relation, "__r"), copy=False)
        .join(
            their_keys.subquery("__k", copy=False),
            on=_and(*_keys_equal(keys, "__k", "__r")),
            join_type="SEMI",
            copy=False,
        )
    )
    asof = (
        exp.select(_col("__row", "__m"), exp.alias_(_named(f.name, "__a"), _name(f.name)))
        .from_(_table("__m", "__m"), copy=False)
        .join(
            their_rows.subquery("__a", copy=False),
            on=_and(
                *_keys_equal(keys, "__m", "__a"),
                exp.LTE(this=_col(FEATURE_TIME, "__a"), expression=_col(tick, "__m")),
            ),
            join_type="ASOF LEFT",
            copy=False,
        )
    )
    hits = _select("__row", _named(f.name)).from_("__e", copy=False).where(_col("__hit"), copy=False)
    union = exp.Subquery(
        this=_union_all(hits, asof), alias=exp.TableAlias(this=exp.to_identifier("__u"))
    )
    return (
        exp.select("*")
        .from_(union, copy=False)
        .with_("__e", as_=exact, materialized=True, copy=False)
        .with_("__m", as_=misses, materialized=True, copy=False)
    )


def _keys_equal(keys: Sequence[str], left: str, right: str) -> list[exp.Expr]:
    """``left.k = right.k`` for every key column (names quoted as identifiers)."""
    return [exp.EQ(this=_named(k, left), expression=_named(k, right)) for k in keys]


def _table(name: str, alias: str) -> exp.Table:
    """``"name" AS alias``, the name an identifier, never parsed as SQL."""
    return exp.Table(this=_name(name), alias=exp.TableAlias(this=exp.to_identifier(alias)))


def _window_join(spine: exp.Select, features: Sequence[PitFeature], target: Target) -> exp.Select:
    """The point-in-time join as one window pass per feature (targets without ASOF join)."""
    query = exp.select(_col("__row", "__s")).from_(spine.subquery("__s", copy=False), copy=False)
    for j, f in enumerate(features):
        keys = list(f.key_names)
        t = epoch_micros(_col(f.tick_column), target)
        rows = _select(
            "__row", *map(_named, keys), _alias(t, "__t"), _alias(exp.Literal.number(1), "__o"),
            _alias(_null(), "__lv"),
        ).from_(spine.subquery("__p", copy=True), copy=False).where(
            exp.Not(this=exp.Is(this=_col(f.tick_column), expression=_null())), copy=False
        )  # fmt: skip
        timeline = _select(
            _alias(exp.cast(_null(), "BIGINT"), "__row"), *map(_named, keys),
            _alias(epoch_micros(_col(FEATURE_TIME), target), "__t"),
            _alias(exp.Literal.number(0), "__o"),
            _alias(struct_value({"v": _named(f.name)}), "__lv"),
        ).from_(_relation(f.relation), copy=False)  # fmt: skip
        carried = _window(
            exp.IgnoreNulls(this=exp.LastValue(this=_col("__lv"))),
            keys,
            [_asc(_col("__t")), _asc(_col("__o"))],
            kind="ROWS",
        )
        union = exp.Subquery(
            this=_union_all(rows, timeline), alias=exp.TableAlias(this=exp.to_identifier("__u"))
        )
        both = _select("__row", "__o", _alias(carried, "__lv")).from_(union, copy=False)
        alias = f"__f{j}"
        found = (
            _select("__row", exp.alias_(struct_field(_col("__lv"), "v", target), _name(f.name)))
            .from_(both.subquery("__b", copy=False), copy=False)
            .where(exp.EQ(this=_col("__o"), expression=exp.Literal.number(1)), copy=False)
        )
        query = query.select(exp.alias_(_named(f.name, alias), _name(f.name)), copy=False).join(
            found.subquery(alias, copy=False),
            on=exp.EQ(this=_col("__row", "__s"), expression=_col("__row", alias)),
            join_type="LEFT",
            copy=False,
        )
    return query


def _spine_keys(features: Sequence[PitFeature]) -> dict[str, str]:
    keys: dict[str, str] = {}
    for f in features:
        for name, sql_type in zip(f.key_names, f.key_types, strict=True):
            if keys.setdefault(name, sql_type) != sql_type:
                raise ComputeError(
                    f"key column {name} has type {keys[name]} in one entity and {sql_type} in "
                    "another; join these features in separate calls"
                )
    return keys
