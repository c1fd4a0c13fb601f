"""SQL generation: a :class:`~fsql.compile.plan.FeaturePlan` → sqlglot AST → SQL for one target.

Everything is built as sqlglot expressions and rendered with ``.sql(dialect=target.dialect)``.
Where engines differ in *meaning* there is one function per meaning with one branch per
target: :func:`epoch_micros`, :func:`floor_div`, :func:`tick_timestamp`,
:func:`timestamp_literal`, :func:`tick_series` and :func:`struct_value` / :func:`struct_field`.
Nothing is passed through as engine-specific text. The point-in-time join is in
:mod:`fsql.compile.pit`.

**Stored timelines hold changes** (docs/semantics.md, "What the offline store holds"): a
feature's value at tick *T* is its row with the greatest ``feature_time`` ≤ *T*. A row is
written at a tick where the value differs from the previous tick's (``IS DISTINCT FROM``: a
window that empties writes its 0 or NULL), at the first tick an entity is seen, and — the
*baseline* — for every entity seen so far at the first tick of an interval that does not
continue a materialized one, so a lookup never reads across a gap in the ledger. A windowed
aggregate can only change at a tick that sees new events (tile *j*) or at the tick the oldest
of them leaves the window (*j* + WINDOW/EVERY): those are the only ticks computed, so the work
and the rows follow the events, not entities × ticks. ``dense=True`` gives the value of every
seen entity at every tick (the reference layout, used to compute single ticks on demand).

The timeline query of a source feature is the *tiling* method (docs/architecture.md,
"Offline compute"): source rows are reduced to one partial aggregate per (entity, tile) — a
tile is one EVERY long, and tile *i* holds the events that tick *i* sees first — then each tick
combines the partials of its last ``WINDOW / EVERY`` tiles with a window function over the
tile index. Distinct counts are exact: each (entity, value) pair becomes +1/−1 events at the
edges of the tick ranges in which it is inside the window, and a running sum counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlglot import exp

from fsql.compile.expressions import (
    _alias,
    _and,
    _asc,
    _col,
    _desc_nulls_last,
    _dtype,
    _lit,
    _null,
    _select,
    _union_all,
    _window,
    _with,
    epoch_micros,
    floor_div,
    struct_field,
    struct_value,
    tick_series,
    tick_timestamp,
    tile_index,
    timestamp_literal,
)
from fsql.compile.plan import FEATURE_TIME, FeaturePlan
from fsql.compile.target import Target
from fsql.errors import ComputeError

TILE = "__tile"
OUT = "__out"


# ---------------------------------------------------------------------------------------------
# Feature timelines


def tick_bounds(start: datetime, end: datetime, every_us: int) -> tuple[int, int]:
    """Tick indices [S, E) of the ticks T with start ≤ T < end."""
    s_us, e_us = _utc_micros(start), _utc_micros(end)
    return -((-s_us) // every_us), -((-e_us) // every_us)


def _utc_micros(value: datetime) -> int:
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(us: int) -> datetime:

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


@dataclass(frozen=True)
class Layout:
    """Which rows a timeline query returns for the ticks [first, stop).

    ``dense``: every seen entity at every tick. Otherwise the change rows (module docstring),
    with a ``baseline`` row for every seen entity at the first tick when the tick before it is
    not materialized.
    """

    dense: bool = False
    baseline: bool = True


CHANGES = Layout()
DENSE = Layout(dense=True)


def timeline_query(
    plan: FeaturePlan, target: Target, start: datetime, end: datetime, layout: Layout = CHANGES
) -> exp.Select:
    """The query computing ``plan``'s timeline rows for the ticks in [start, end): key
    column(s), ``feature_time`` and the value column named after the feature."""
    first, stop = tick_bounds(start, end, plan.every_us)
    if plan.kind == "derived":
        if layout.dense:
            return derived_query(plan, target, first, stop)
        return derived_changes_query(plan, target, first, stop, layout)
    if plan.kind == "latest":
        return latest_value_query(plan, target, first, stop, layout)
    if plan.kind == "aggregate":
        return window_combination_query(plan, target, first, stop, layout)
    raise ComputeError(f"feature {plan.name}: unknown kind {plan.kind}")


def timeline_sql(
    plan: FeaturePlan,
    target: Target,
    start: datetime,
    end: datetime,
    *,
    pretty: bool = False,
    layout: Layout = CHANGES,
) -> str:
    """:func:`timeline_query` rendered for ``target``."""
    query = timeline_query(plan, target, start, end, layout)
    return query.sql(dialect=target.dialect, pretty=pretty)


def _source_scan(
    plan: FeaturePlan,
    target: Target,
    columns: list[exp.Expr],
    lower_us: int | None,
    upper_us: int,
) -> exp.Select:
    """Rows of the source passing the filter, with non-NULL keys and event time in
    [lower, upper) (no lower bound when ``lower_us`` is None)."""
    assert plan.source_relation and plan.event_time and plan.event_time_type
    et = _col(plan.event_time)
    keys = [_alias(k.copy(), name) for k, name in zip(plan.key_exprs, plan.key_names, strict=True)]
    conditions: list[exp.Expr | None] = [
        plan.filter.copy() if plan.filter is not None else None,
        *[exp.Not(this=exp.Is(this=k.copy(), expression=_null())) for k in plan.key_exprs],
        exp.LT(
            this=et.copy(),
            expression=timestamp_literal(_from_micros(upper_us), plan.event_time_type, target),
        ),
    ]
    if lower_us is not None:
        conditions.append(
            exp.GTE(
                this=et.copy(),
                expression=timestamp_literal(_from_micros(lower_us), plan.event_time_type, target),
            )
        )
    query = exp.select(*keys, *columns).from_(exp.to_table(plan.source_relation), copy=False)
    where = _and(*conditions)
    return query.where(where, copy=False) if where is not None else query


def _seen(
    plan: FeaturePlan, target: Target, first: int, stop: int, layout: Layout
) -> list[tuple[str, exp.Expr]]:
    """CTE ``__seen``: the first tile of each entity ever seen before tick ``stop`` — or, in
    the change layout, whose first tile is at most ``first`` (its grid only asks which
    entities were seen by the interval's first tick: the entities first seen later have a tile
    with events in the interval anyway), so the scan aggregates only the events before the
    interval (none at all when it starts before the data); and when the interval continues a
    materialized one (no baseline), only the earlier events of the entities with events in
    its lookback."""
    assert plan.event_time
    keys = list(plan.key_names)
    lower_us = _lower_us(plan, first, layout)
    if not layout.dense and not layout.baseline and lower_us is not None:
        # An interval continuing a materialized one asks only whether the entities with
        # events in its lookback [lower, stop) were seen before it (the tick before ``first``
        # is compared for them alone): aggregate the earlier events of those entities only,
        # not of every entity ever seen (a daily run over a year of events otherwise grouped
        # all of them, every day)
        recent = _source_scan(plan, target, [], lower_us, stop * plan.every_us).distinct(
            copy=False
        )
        earlier = _source_scan(
            plan, target, [_alias(_col(plan.event_time), "__et")], None, first * plan.every_us
        )
        seen = (
            _select(*keys, _alias(exp.Min(this=_col("__et")), "__first_time"))
            .from_(earlier.subquery("__e", copy=False), copy=False)
            .join(
                recent.subquery("__k", copy=False),
                on=_and(*[exp.EQ(this=_col(k, "__e"), expression=_col(k, "__k")) for k in keys]),
                join_type="SEMI",
                copy=False,
            )
            .group_by(*[_col(k) for k in keys], copy=False)
        )
    else:
        if not layout.dense:
            stop = first
        seen = _source_scan(
            plan,
            target,
            [_alias(exp.Min(this=_col(plan.event_time)), "__first_time")],
            None,
            stop * plan.every_us,
        ).group_by(*[_col(k) for k in keys], copy=False)
    first_tile = _alias(tile_index(_col("__first_time"), plan.every_us, target), "__first")
    seen_tiles = _select(*keys, first_tile).from_(exp.to_table("__seen_times"), copy=False)
    return [("__seen_times", seen), ("__seen", seen_tiles)]


def _dense_grid(plan: FeaturePlan, target: Target, first: int, stop: int) -> exp.Expr:
    """``__grid`` of the dense layout: one row per entity and tick in [first, stop) at which
    it is seen."""
    keys = list(plan.key_names)
    # GREATEST(__first, first), spelled as CASE: __first is never NULL here, and GREATEST's
    # NULL handling differs between engines (sqlglot would add a NULL guard).
    lower = exp.Case(
        ifs=[
            exp.If(this=exp.GT(this=_col("__first"), expression=_lit(first)), true=_col("__first"))
        ],
        default=_lit(first),
    )
    grid = (
        _select(*keys, _alias(tick_series(lower, _lit(stop), target), TILE))
        .from_(exp.to_table("__seen"), copy=False)
        .where(exp.LT(this=lower.copy(), expression=_lit(stop)), copy=False)
    )
    return grid


def _change_grid(
    plan: FeaturePlan, first: int, stop: int, layout: Layout, active: str
) -> list[tuple[str, exp.Expr]]:
    """``__grid`` of the change layout: the ticks in [first, stop) at which a value can change
    (a tile with events, ``active``'s (keys, tile) rows, and with a window the tick its tiles
    leave it), plus the tick before ``first`` for the entities seen by then that have such a
    tick (the value they are compared with), or with a baseline the tick ``first`` for every
    entity seen by then."""
    keys = list(plan.key_names)
    n = plan.window_ticks
    tile = _col(TILE)

    def within(e: exp.Expr) -> exp.Expr:
        return exp.and_(
            exp.GTE(this=e.copy(), expression=_lit(first)),
            exp.LT(this=e.copy(), expression=_lit(stop)),
        )

    candidates: exp.Expr = _select(*keys, TILE).from_(active, copy=False).where(within(tile))
    if n is not None:
        leaves = exp.Add(this=tile.copy(), expression=_lit(n))
        candidates = exp.Union(
            this=candidates,
            expression=_select(*keys, _alias(leaves, TILE)).from_(active).where(within(leaves)),
            distinct=False,  # a (keys, tick) twice is one row of __changes: see _changed
        )
    ctes: list[tuple[str, exp.Expr]] = [("__cand", candidates)]
    if layout.baseline:
        extra = (
            _select(*keys, _alias(_lit(first), TILE))
            .from_(exp.to_table("__seen"), copy=False)
            .where(exp.LTE(this=_col("__first"), expression=_lit(first)), copy=False)
        )
    else:
        changed = _select(*keys).distinct(copy=False).from_(exp.to_table("__cand"), copy=False)
        extra = (
            exp.select(*[_col(k, "__sn") for k in keys], _alias(_lit(first - 1), TILE))
            .from_(exp.to_table("__seen").as_("__sn"), copy=False)
            .join(
                changed.subquery("__ch", copy=False),
                on=_and(*[exp.EQ(this=_col(k, "__sn"), expression=_col(k, "__ch")) for k in keys]),
                copy=False,
            )
            .where(exp.LTE(this=_col("__first", "__sn"), expression=_lit(first - 1)), copy=False)
        )
    grid = exp.Union(
        this=_select(*keys, TILE).from_(exp.to_table("__cand"), copy=False),
        expression=extra,
        distinct=False,
    )
    ctes.append(("__grid", grid))
    return ctes


def _grid(
    plan: FeaturePlan, target: Target, first: int, stop: int, layout: Layout
) -> list[tuple[str, exp.Expr]]:
    """The ``__grid`` CTEs (ticks at which values are computed) after ``__rows``."""
    if layout.dense:
        return [("__grid", _dense_grid(plan, target, first, stop))]
    active = _select(*plan.key_names, TILE).distinct(copy=False).from_("__rows", copy=False)
    return [("__active", active), *_change_grid(plan, first, stop, layout, "__active")]


def _lower_us(plan: FeaturePlan, first: int, layout: Layout) -> int | None:
    """The least event time a query for the ticks from ``first`` reads (the change layout also
    computes the tick before ``first``, to compare)."""
    n = plan.window_ticks
    if n is None:
        return None
    return (first - n - (0 if layout.dense else 1)) * plan.every_us


def window_combination_query(
    plan: FeaturePlan, target: Target, first: int, stop: int, layout: Layout = CHANGES
) -> exp.Select:
    """Aggregate features: partial aggregates per (entity, tile), combined per tick over the
    last WINDOW/EVERY tiles (or all tiles for a lifetime feature)."""
    keys = list(plan.key_names)
    n = plan.window_ticks
    lower_us = _lower_us(plan, first, layout)
    ctes = _seen(plan, target, first, stop, layout)

    # Rows: keys, tile index and each aggregate's argument.
    assert plan.event_time
    row_cols: list[exp.Expr] = [
        _alias(tile_index(_col(plan.event_time), plan.every_us, target), TILE)
    ]
    for i, arg in enumerate(plan.agg_args):
        if arg is not None:
            row_cols.append(_alias(arg.copy(), f"__a{i}"))
    ctes.append(("__rows", _source_scan(plan, target, row_cols, lower_us, stop * plan.every_us)))
    ctes.extend(_grid(plan, target, first, stop, layout))

    # Tile partials (tile aggregation).
    partials: list[exp.Expr] = []
    partial_names: list[str] = []
    distinct: list[int] = []
    for i, agg in enumerate(plan.aggregates):
        arg = _col(f"__a{i}") if plan.agg_args[i] is not None else None
        if agg.func == "count_distinct":
            distinct.append(i)
            continue
        for name, e in _tile_partials(i, agg.func, arg):
            partials.append(_alias(e, name))
            partial_names.append(name)
    frames = [
        _select(
            *keys,
            TILE,
            _alias(exp.true(), OUT),
            *[_alias(_null(), p) for p in partial_names],
            *[_alias(_null(), f"__dd{i}") for i in distinct],
        ).from_(exp.to_table("__grid"), copy=False)
    ]
    if partial_names:
        tiles = (
            _select(*keys, TILE, *partials)
            .from_(exp.to_table("__rows"), copy=False)
            .group_by(*[_col(k) for k in [*keys, TILE]], copy=False)
        )
        ctes.append(("__tiles", tiles))
        frames.append(
            _select(
                *keys,
                TILE,
                _alias(exp.false(), OUT),
                *partial_names,
                *[_alias(_null(), f"__dd{i}") for i in distinct],
            ).from_(exp.to_table("__tiles"), copy=False)
        )
    for i in distinct:
        ctes.extend(_distinct_deltas(plan, i, n, stop))
        frames.append(
            _select(
                *keys,
                TILE,
                _alias(exp.false(), OUT),
                *[_alias(_null(), p) for p in partial_names],
                *[_alias(_col("__dd") if j == i else _null(), f"__dd{j}") for j in distinct],
            ).from_(exp.to_table(f"__deltas{i}"), copy=False)
        )
    ctes.append(("__frames", _union_all(*frames)))

    # Window combination: one value per aggregate at every frame row.
    order = [_asc(_col(TILE))]
    combined: list[exp.Expr] = []
    for i, agg in enumerate(plan.aggregates):
        combined.append(_alias(_combine(i, agg.func, keys, order, n), f"__agg{i}"))
    ctes.append(
        (
            "__combined",
            _select(*keys, TILE, OUT, *combined).from_(exp.to_table("__frames"), copy=False),
        )
    )

    value = exp.cast(plan.value_expr.copy(), _dtype(plan.value_type))
    return _with(ctes, _emitted(plan, target, keys, value, (first, stop), layout, ctes))


def _tile_partials(i: int, func: str, arg: exp.Expr | None) -> list[tuple[str, exp.Expr]]:
    """Partial aggregates of one aggregate within one tile."""
    if func == "count":
        counted = exp.Count(this=arg.copy() if arg is not None else exp.Star())
        return [(f"__p{i}_count", counted)]
    assert arg is not None, f"{func} needs an argument"
    if func == "sum":
        return [(f"__p{i}_sum", exp.Sum(this=arg.copy()))]
    if func == "avg":
        return [
            (f"__p{i}_sum", exp.Sum(this=exp.cast(arg.copy(), "DOUBLE"))),
            (f"__p{i}_count", exp.Count(this=arg.copy())),
        ]
    if func == "min":
        return [(f"__p{i}_min", exp.Min(this=arg.copy()))]
    if func == "max":
        return [(f"__p{i}_max", exp.Max(this=arg.copy()))]
    raise ComputeError(f"unsupported aggregate {func}")


def _combine(
    i: int, func: str, keys: list[str], order: list[exp.Ordered], n: int | None
) -> exp.Expr:
    """The aggregate over the window, from the tile partials (window combination)."""
    preceding = None if n is None else n - 1

    def over(e: exp.Expr, *, cumulative: bool = False) -> exp.Window:
        return _window(
            e, keys, [o.copy() for o in order], preceding=None if cumulative else preceding
        )

    if func == "count":
        return exp.Coalesce(this=over(exp.Sum(this=_col(f"__p{i}_count"))), expressions=[_lit(0)])
    if func == "sum":
        return over(exp.Sum(this=_col(f"__p{i}_sum")))
    if func == "avg":
        total = over(exp.Sum(this=_col(f"__p{i}_sum")))
        count = over(exp.Sum(this=_col(f"__p{i}_count")))
        return exp.Div(this=total, expression=exp.Nullif(this=count, expression=_lit(0)))
    if func == "min":
        return over(exp.Min(this=_col(f"__p{i}_min")))
    if func == "max":
        return over(exp.Max(this=_col(f"__p{i}_max")))
    if func == "count_distinct":
        return exp.Coalesce(
            this=over(exp.Sum(this=_col(f"__dd{i}")), cumulative=True), expressions=[_lit(0)]
        )
    raise ComputeError(f"unsupported aggregate {func}")


def _distinct_deltas(
    plan: FeaturePlan, i: int, n: int | None, stop: int
) -> list[tuple[str, exp.Expr]]:
    """Exact COUNT(DISTINCT) as +1/−1 deltas on the tile axis.

    A value occurring in tile j is inside the window of ticks j .. j+n−1. Occurrences of one
    (entity, value) whose ranges touch form an *island* [first, last + n): +1 at its first tile,
    −1 after it. The running sum of deltas at a tick is the number of distinct values in its
    window. Without a window a value counts from its first tile on (+1 only).
    """
    keys = list(plan.key_names)
    values = (
        _select(*keys, TILE, _alias(_col(f"__a{i}"), "__d"))
        .distinct(copy=False)
        .from_(exp.to_table("__rows"), copy=False)
        .where(exp.Not(this=exp.Is(this=_col(f"__a{i}"), expression=_null())), copy=False)
    )
    ctes: list[tuple[str, exp.Expr]] = [(f"__dv{i}", values)]
    if n is None:
        firsts = (
            _select(*keys, _alias(exp.Min(this=_col(TILE)), TILE))
            .from_(exp.to_table(f"__dv{i}"), copy=False)
            .group_by(*[_col(k) for k in [*keys, "__d"]], copy=False)
        )
        deltas = (
            _select(*keys, TILE, _alias(exp.Count(this=exp.Star()), "__dd"))
            .from_(firsts.subquery("__f", copy=False), copy=False)
            .group_by(*[_col(k) for k in [*keys, TILE]], copy=False)
        )
        ctes.append((f"__deltas{i}", deltas))
        return ctes
    part = [*keys, "__d"]
    prev = _window(exp.Anonymous(this="LAG", expressions=[_col(TILE)]), part, [_asc(_col(TILE))])
    prev.set("spec", None)
    starts = _select(
        *keys,
        "__d",
        TILE,
        _alias(
            exp.Case(
                ifs=[
                    exp.If(
                        this=exp.GTE(
                            this=prev, expression=exp.Sub(this=_col(TILE), expression=_lit(n))
                        ),
                        true=_lit(0),
                    )
                ],
                default=_lit(1),
            ),
            "__new",
        ),
    ).from_(exp.to_table(f"__dv{i}"), copy=False)
    island = _select(
        *keys,
        "__d",
        TILE,
        _alias(
            _window(exp.Sum(this=_col("__new")), part, [_asc(_col(TILE))], kind="ROWS"), "__island"
        ),
    ).from_(starts.subquery("__s", copy=False), copy=False)
    runs = (
        _select(
            *keys,
            _alias(exp.Min(this=_col(TILE)), "__start"),
            _alias(exp.Add(this=exp.Max(this=_col(TILE)), expression=_lit(n)), "__end"),
        )
        .from_(island.subquery("__i", copy=False), copy=False)
        .group_by(*[_col(k) for k in [*keys, "__d", "__island"]], copy=False)
    )
    ctes.append((f"__runs{i}", runs))
    edges = _union_all(
        _select(*keys, _alias(_col("__start"), TILE), _alias(_lit(1), "__dd")).from_(
            exp.to_table(f"__runs{i}"), copy=False
        ),
        _select(*keys, _alias(_col("__end"), TILE), _alias(_lit(-1), "__dd"))
        .from_(exp.to_table(f"__runs{i}"), copy=False)
        .where(exp.LT(this=_col("__end"), expression=_lit(stop)), copy=False),
    )
    deltas = (
        _select(*keys, TILE, _alias(exp.Sum(this=_col("__dd")), "__dd"))
        .from_(
            exp.Subquery(this=edges, alias=exp.TableAlias(this=exp.to_identifier("__e"))),
            copy=False,
        )
        .group_by(*[_col(k) for k in [*keys, TILE]], copy=False)
    )
    ctes.append((f"__deltas{i}", deltas))
    return ctes


def latest_value_query(
    plan: FeaturePlan, target: Target, first: int, stop: int, layout: Layout = CHANGES
) -> exp.Select:
    """Latest-value features: the latest row per (entity, tile), carried forward per tick over
    the last WINDOW/EVERY tiles (or all tiles) with ``LAST_VALUE(... IGNORE NULLS)``."""
    assert plan.event_time
    keys = list(plan.key_names)
    n = plan.window_ticks
    lower_us = _lower_us(plan, first, layout)
    ctes = _seen(plan, target, first, stop, layout)
    created = _col(plan.created_time) if plan.created_time else _null()
    rows = _source_scan(
        plan,
        target,
        [
            _alias(tile_index(_col(plan.event_time), plan.every_us, target), TILE),
            _alias(plan.value_expr.copy(), "__v"),
            _alias(_col(plan.event_time), "__et"),
            _alias(created, "__ct"),
        ],
        lower_us,
        stop * plan.every_us,
    )
    ctes.append(("__rows", rows))
    ctes.extend(_grid(plan, target, first, stop, layout))
    rank = _window(
        exp.RowNumber(),
        [*keys, TILE],
        [
            _desc_nulls_last(_col("__et")),
            _desc_nulls_last(_col("__ct")),
            _desc_nulls_last(_col("__v")),
        ],
    )
    rank.set("spec", None)
    ranked = _select(*keys, TILE, "__v", _alias(rank, "__rn")).from_(
        exp.to_table("__rows"), copy=False
    )
    ctes.append(("__ranked", ranked))
    tiles = (
        _select(*keys, TILE, _alias(struct_value({"v": _col("__v")}), "__lv"))
        .from_(exp.to_table("__ranked"), copy=False)
        .where(exp.EQ(this=_col("__rn"), expression=_lit(1)), copy=False)
    )
    ctes.append(("__tiles", tiles))
    frames = _union_all(
        _select(*keys, TILE, _alias(exp.true(), OUT), _alias(_null(), "__lv")).from_(
            exp.to_table("__grid"), copy=False
        ),
        _select(*keys, TILE, _alias(exp.false(), OUT), "__lv").from_(
            exp.to_table("__tiles"), copy=False
        ),
    )
    ctes.append(("__frames", frames))
    carried = _window(
        exp.IgnoreNulls(this=exp.LastValue(this=_col("__lv"))),
        keys,
        [_asc(_col(TILE))],
        preceding=None if n is None else n - 1,
    )
    ctes.append(
        (
            "__combined",
            _select(*keys, TILE, OUT, _alias(carried, "__lv")).from_(
                exp.to_table("__frames"), copy=False
            ),
        )
    )
    value = exp.cast(struct_field(_col("__lv"), "v", target), _dtype(plan.value_type))
    return _with(ctes, _emitted(plan, target, keys, value, (first, stop), layout, ctes))


def _emitted(
    plan: FeaturePlan,
    target: Target,
    keys: Sequence[str],
    value: exp.Expr,
    ticks: tuple[int, int],
    layout: Layout,
    ctes: list[tuple[str, exp.Expr]],
) -> exp.Select:
    """The timeline's rows from ``__combined`` (its ``OUT`` rows are the grid's ticks): every
    one (dense), or the changes in the ``ticks`` [first, stop) (appending the CTEs that find
    them to ``ctes``)."""
    first, stop = ticks
    values = _select(*keys, TILE, _alias(value, "__v")).from_(
        exp.to_table("__combined"), copy=False
    ).where(_col(OUT), copy=False)
    source: exp.Expr
    condition: exp.Expr | None
    if layout.dense:
        source, condition = values.subquery("__values", copy=False), None
    else:
        ctes.append(("__values", values))
        source, condition = exp.to_table("__changes"), _changed(first, stop, layout)
        ctes.append(("__changes", _with_previous(keys, "__values")))
    query = _select(
        *keys,
        _alias(tick_timestamp(_col(TILE), plan.every_us, target), FEATURE_TIME),
        _alias(_col("__v"), plan.name),
    ).from_(source, copy=False)
    return query.where(condition, copy=False) if condition is not None else query


def _with_previous(keys: Sequence[str], relation: str) -> exp.Select:
    """``relation``'s (keys, tile, __v) rows with the previous grid row's tile and value."""

    def lag(column: str) -> exp.Window:
        window = _window(
            exp.Anonymous(this="LAG", expressions=[_col(column)]), keys, [_asc(_col(TILE))]
        )
        window.set("spec", None)
        return window

    return _select(
        *keys, TILE, "__v", _alias(lag("__v"), "__pv"), _alias(lag(TILE), "__pt")
    ).from_(exp.to_table(relation), copy=False)


def _changed(first: int, stop: int, layout: Layout) -> exp.Expr:
    """Which rows of ``__changes`` are written: in [first, stop), an entity's first row, a
    value that differs from the previous one, and with a baseline every row at ``first`` —
    each (keys, tick) once: the change grid may list a tick twice (its candidate ticks are
    concatenated, not de-duplicated: a hash aggregate of every candidate costs more than the
    few extra rows in the window sort), and the second copy, whose previous row is the
    first, is skipped."""
    written = exp.or_(
        exp.Is(this=_col("__pt"), expression=_null()),
        exp.NullSafeNEQ(this=_col("__v"), expression=_col("__pv")),
        *([exp.EQ(this=_col(TILE), expression=_lit(first))] if layout.baseline else []),
    )
    return exp.and_(
        exp.GTE(this=_col(TILE), expression=_lit(first)),
        exp.LT(this=_col(TILE), expression=_lit(stop)),
        exp.NullSafeNEQ(this=_col("__pt"), expression=_col(TILE)),
        exp.Paren(this=written),
    )


def derived_query(plan: FeaturePlan, target: Target, first: int, stop: int) -> exp.Select:
    """Derived features: the expression over the inputs' materialized values for the same
    entity at the same tick; a row wherever at least one input has one."""
    keys = list(plan.key_names)
    lo = timestamp_literal(_from_micros(first * plan.every_us), "TIMESTAMPTZ", target)
    hi = timestamp_literal(_from_micros(stop * plan.every_us), "TIMESTAMPTZ", target)

    def in_range(input_every: int) -> exp.Expr:
        ft = _col(FEATURE_TIME)
        cond = exp.and_(
            exp.GTE(this=ft, expression=lo.copy()), exp.LT(this=ft.copy(), expression=hi.copy())
        )
        if input_every != plan.every_us:
            on_tick = exp.EQ(
                this=exp.Mod(this=epoch_micros(ft.copy(), target), expression=_lit(plan.every_us)),
                expression=_lit(0),
            )
            cond = exp.and_(cond, on_tick)
        return cond

    key_sets = [
        _select(*keys, FEATURE_TIME).from_(relation, copy=False).where(in_range(every), copy=False)
        for _name, relation, every in plan.inputs
    ]
    union: exp.Expr = key_sets[0].distinct(copy=False) if len(key_sets) == 1 else key_sets[0]
    for q in key_sets[1:]:
        union = exp.Union(this=union, expression=q, distinct=True)
    final = exp.select(
        *[_col(k, "__keys") for k in keys],
        _col(FEATURE_TIME, "__keys"),
        _alias(exp.cast(plan.value_expr.copy(), _dtype(plan.value_type)), plan.name),
    ).from_(
        exp.Subquery(this=union, alias=exp.TableAlias(this=exp.to_identifier("__keys"))), copy=False
    )
    for j, (name, relation, _every) in enumerate(plan.inputs):
        alias = f"__i{j}"
        on = _and(
            *[
                exp.EQ(this=_col(k, "__keys"), expression=_col(k, alias))
                for k in [*keys, FEATURE_TIME]
            ]
        )
        final = final.join(
            exp.Subquery(
                this=_select(*keys, FEATURE_TIME, name).from_(relation),
                alias=exp.TableAlias(this=exp.to_identifier(alias)),
            ),
            on=on,
            join_type="LEFT",
            copy=False,
        )
    return final


def derived_changes_query(
    plan: FeaturePlan, target: Target, first: int, stop: int, layout: Layout = CHANGES
) -> exp.Select:
    """Derived features in the change layout: the inputs' stored rows are their changes, so the
    derived value can change only at a tick where an input row is (mapped onto the derived
    ticks: an input change at *u* is first seen by the derived tick ⌈u / EVERY⌉). At those
    ticks each input's value is carried forward from its latest row (``LAST_VALUE ... IGNORE
    NULLS`` over the inputs' rows and the grid in time order, inputs first at equal times)."""
    keys = list(plan.key_names)
    every = plan.every_us
    hi = timestamp_literal(_from_micros(stop * every), "TIMESTAMPTZ", target)
    ctes: list[tuple[str, exp.Expr]] = []
    for j, (name, relation, _every) in enumerate(plan.inputs):
        t = epoch_micros(_col(FEATURE_TIME), target)
        tile = exp.Neg(this=floor_div(exp.Neg(this=t.copy()), every, target))
        ctes.append((
            f"__in{j}",
            _select(
                *keys, _alias(tile, TILE), _alias(t, "__t"),
                _alias(struct_value({"v": _col(name)}), f"__s{j}"),
            ).from_(relation, copy=False)
            .where(exp.LT(this=_col(FEATURE_TIME), expression=hi.copy()), copy=False),
        ))  # fmt: skip
    tiles = _union_all(*[_select(*keys, TILE).from_(f"__in{j}") for j in range(len(plan.inputs))])
    ctes.append(("__active", exp.select("*").from_(exp.Subquery(
        this=tiles, alias=exp.TableAlias(this=exp.to_identifier("__a"))
    ))))  # fmt: skip
    ctes.append(("__seen", _select(*keys, _alias(exp.Min(this=_col(TILE)), "__first"))
                 .from_("__active", copy=False).group_by(*[_col(k) for k in keys], copy=False)))
    ctes.extend(_change_grid(plan, first, stop, layout, "__active"))
    structs = [f"__s{j}" for j in range(len(plan.inputs))]
    frames = [
        _select(
            *keys, TILE, _alias(exp.Mul(this=_col(TILE), expression=_lit(every)), "__t"),
            _alias(exp.true(), OUT), *[_alias(_null(), s) for s in structs],
        ).from_("__grid", copy=False)
    ]  # fmt: skip
    for j in range(len(plan.inputs)):
        frames.append(
            _select(
                *keys, TILE, "__t", _alias(exp.false(), OUT),
                *[_col(s) if i == j else _alias(_null(), s) for i, s in enumerate(structs)],
            ).from_(f"__in{j}", copy=False)
        )  # fmt: skip
    ctes.append(("__frames", _union_all(*frames)))
    carried = []
    for j in range(len(plan.inputs)):
        last = _window(
            exp.IgnoreNulls(this=exp.LastValue(this=_col(f"__s{j}"))),
            keys,
            [_asc(_col("__t")), _asc(_col(OUT))],
            kind="ROWS",
        )
        carried.append(_alias(last, f"__s{j}"))
    ctes.append(("__carried", _select(*keys, TILE, OUT, *carried).from_("__frames", copy=False)))
    fields = [
        _alias(struct_field(_col(f"__s{j}"), "v", target), name)
        for j, (name, _relation, _every) in enumerate(plan.inputs)
    ]
    ctes.append(("__combined", _select(*keys, TILE, OUT, *fields).from_("__carried", copy=False)))
    value = exp.cast(plan.value_expr.copy(), _dtype(plan.value_type))
    return _with(ctes, _emitted(plan, target, keys, value, (first, stop), layout, ctes))
