"""SQL generation: a :class:`~fsql.compile.plan.FeaturePlan` → sqlglot AST → SQL for one target.

Everything is built as sqlglot expressions and rendered with ``.sql(dialect=target.dialect)``.
Where engines differ in *meaning* there is one function per meaning with one branch per
target: :func:`epoch_micros`, :func:`floor_div`, :func:`tick_timestamp`,
:func:`timestamp_literal`, :func:`tick_series` and :func:`struct_value` / :func:`struct_field`.
Nothing is passed through as engine-specific text. :func:`point_in_time_join` is the same
equi-join on every target: timelines are dense, so the lookup tick is computed beforehand
(:func:`fsql.compute.training.lookup_ticks`) and no ASOF or window construct is needed.

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

from fsql.compile.plan import FEATURE_TIME, FeaturePlan
from fsql.compile.target import Target
from fsql.errors import ComputeError

TILE = "__tile"
OUT = "__out"


# ---------------------------------------------------------------------------------------------
# Small builders


def _col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(exp.to_identifier(name), table=exp.to_identifier(table) if table else None)


def _lit(value: int) -> exp.Expr:
    return exp.Literal.number(value) if value >= 0 else exp.Neg(this=exp.Literal.number(-value))


def _alias(e: exp.Expr, name: str) -> exp.Expr:
    return exp.alias_(e, exp.to_identifier(name))


def _dtype(sql_type: str) -> exp.DataType:
    return exp.DataType.build(sql_type, dialect="postgres")


def _and(*conds: exp.Expr | None) -> exp.Expr | None:
    parts = [c for c in conds if c is not None]
    if not parts:
        return None
    return exp.and_(*parts) if len(parts) > 1 else parts[0]


def _null() -> exp.Null:
    return exp.Null()


def _window(
    func: exp.Expr,
    partition: Sequence[str],
    order: Sequence[exp.Expr],
    *,
    kind: str = "RANGE",
    preceding: int | None = None,
) -> exp.Window:
    """``func OVER (PARTITION BY ... ORDER BY ... <kind> BETWEEN n|UNBOUNDED PRECEDING AND
    CURRENT ROW)``."""
    start: exp.Expr | str = "UNBOUNDED" if preceding is None else _lit(preceding)
    return exp.Window(
        this=func,
        partition_by=[_col(p) for p in partition],
        order=exp.Order(expressions=list(order)),
        spec=exp.WindowSpec(kind=kind, start=start, start_side="PRECEDING", end="CURRENT ROW"),
        over="OVER",
    )


def _asc(e: exp.Expr, nulls_first: bool = True) -> exp.Ordered:
    return exp.Ordered(this=e, desc=False, nulls_first=nulls_first)


def _desc_nulls_last(e: exp.Expr) -> exp.Ordered:
    return exp.Ordered(this=e, desc=True, nulls_first=False)


def _cte(name: str, query: exp.Expr) -> exp.CTE:
    return exp.CTE(this=query, alias=exp.TableAlias(this=exp.to_identifier(name)))


def _with(ctes: list[tuple[str, exp.Expr]], final: exp.Select) -> exp.Select:
    final.set("with_", exp.With(expressions=[_cte(n, q) for n, q in ctes]))
    return final


def _union_all(*queries: exp.Expr) -> exp.Expr:
    result = queries[0]
    for q in queries[1:]:
        result = exp.Union(this=result, expression=q, distinct=False)
    return result


def _select(*columns: exp.Expr | str) -> exp.Select:
    return exp.select(*[_col(c) if isinstance(c, str) else c for c in columns])


# ---------------------------------------------------------------------------------------------
# One function per meaning, one branch per target


def epoch_micros(e: exp.Expr, target: Target) -> exp.Expr:
    """Microseconds since the Unix epoch of a timestamp (naive timestamps are UTC)."""
    if target.name == "duckdb":
        return exp.Anonymous(this="EPOCH_US", expressions=[e])
    if target.name == "spark":
        # UNIX_MICROS takes an instant; a TIMESTAMP_NTZ becomes one in the (UTC) session zone.
        return exp.Anonymous(this="UNIX_MICROS", expressions=[exp.cast(e, "TIMESTAMP")])
    raise ComputeError(f"no epoch_micros for target {target.name}")


def floor_div(x: exp.Expr, n: int, target: Target) -> exp.Expr:
    """⌊x / n⌋ for integers, also for negative x (integer division truncates toward 0)."""
    if target.name in ("duckdb", "spark"):
        # ((x % n) + n) % n is the non-negative remainder on both engines.
        remainder = exp.Mod(
            this=exp.Paren(
                this=exp.Add(this=exp.Mod(this=x, expression=_lit(n)), expression=_lit(n))
            ),
            expression=_lit(n),
        )
        return exp.IntDiv(
            this=exp.Paren(this=exp.Sub(this=x, expression=remainder)), expression=_lit(n)
        )
    raise ComputeError(f"no floor_div for target {target.name}")


def tile_index(event_time: exp.Expr, every_us: int, target: Target) -> exp.Expr:
    """The index of the first tick that sees an event: ⌊t / EVERY⌋ + 1 (an event at exactly a
    tick belongs to the next one)."""
    return exp.Add(
        this=floor_div(epoch_micros(event_time, target), every_us, target), expression=_lit(1)
    )


def tick_timestamp(index: exp.Expr, every_us: int, target: Target) -> exp.Expr:
    """The UTC instant of tick ``index`` (index × EVERY since the epoch)."""
    us = exp.Mul(this=index, expression=_lit(every_us))
    if target.name == "duckdb":
        return exp.cast(exp.Anonymous(this="MAKE_TIMESTAMP", expressions=[us]), "TIMESTAMPTZ")
    if target.name == "spark":
        return exp.Anonymous(this="TIMESTAMP_MICROS", expressions=[us])
    raise ComputeError(f"no tick_timestamp for target {target.name}")


def timestamp_literal(value: datetime, sql_type: str, target: Target) -> exp.Expr:
    """A literal instant comparable with a column of ``sql_type`` without casting the column
    (so engines can push the comparison into the file scan)."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = value.strftime("%Y-%m-%d %H:%M:%S.%f")
    with_zone = sql_type.upper() in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")
    if target.name == "duckdb":
        if with_zone:
            return exp.cast(exp.Literal.string(text + "+00"), "TIMESTAMPTZ")
        return exp.cast(exp.Literal.string(text), "TIMESTAMP")
    if target.name == "spark":
        # The Spark session time zone is UTC, so TIMESTAMP literals are UTC instants.
        return exp.cast(exp.Literal.string(text), "TIMESTAMP")
    raise ComputeError(f"no timestamp_literal for target {target.name}")


def tick_series(first: exp.Expr, end: exp.Expr, target: Target) -> exp.Expr:
    """One row per integer in [first, end) (a set-returning expression in SELECT); callers
    guarantee first < end."""
    if target.name == "duckdb":
        return exp.Unnest(expressions=[exp.Anonymous(this="RANGE", expressions=[first, end])])
    if target.name == "spark":
        return exp.Explode(
            this=exp.GenerateSeries(start=first, end=exp.Sub(this=end, expression=_lit(1)))
        )
    raise ComputeError(f"no tick_series for target {target.name}")


def struct_value(fields: dict[str, exp.Expr]) -> exp.Expr:
    """A never-NULL struct wrapping possibly-NULL values (so ``IGNORE NULLS`` skips only absent
    rows, never a NULL value). Both targets render sqlglot's ``Struct`` natively."""
    return exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(name), expression=e) for name, e in fields.items()
        ]
    )


def struct_field(e: exp.Expr, field: str, target: Target) -> exp.Expr:
    """One field of a struct built by :func:`struct_value`. DuckDB would read ``s.v`` as table
    ``s``, column ``v``, so it gets ``STRUCT_EXTRACT``."""
    if target.name == "duckdb":
        return exp.Anonymous(this="STRUCT_EXTRACT", expressions=[e, exp.Literal.string(field)])
    if target.name == "spark":
        return exp.Dot(this=e, expression=exp.to_identifier(field))
    raise ComputeError(f"no struct_field for target {target.name}")


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


def timeline_query(plan: FeaturePlan, target: Target, start: datetime, end: datetime) -> exp.Select:
    """The query computing ``plan``'s timeline rows for every tick in [start, end): key
    column(s), ``feature_time`` and the value column named after the feature."""
    first, stop = tick_bounds(start, end, plan.every_us)
    if plan.kind == "derived":
        return derived_query(plan, target, first, stop)
    if plan.kind == "latest":
        return latest_value_query(plan, target, first, stop)
    if plan.kind == "aggregate":
        return window_combination_query(plan, target, first, stop)
    raise ComputeError(f"feature {plan.name}: unknown kind {plan.kind}")


def timeline_sql(
    plan: FeaturePlan, target: Target, start: datetime, end: datetime, *, pretty: bool = False
) -> str:
    """:func:`timeline_query` rendered for ``target``."""
    return timeline_query(plan, target, start, end).sql(dialect=target.dialect, pretty=pretty)


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


def _seen_and_grid(
    plan: FeaturePlan, target: Target, first: int, stop: int
) -> list[tuple[str, exp.Expr]]:
    """CTEs ``__seen`` (first tile of each entity ever seen before the last tick) and
    ``__grid`` (one row per entity and tick in [first, stop) at which it is seen)."""
    assert plan.event_time
    keys = list(plan.key_names)
    seen = _source_scan(
        plan,
        target,
        [_alias(exp.Min(this=_col(plan.event_time)), "__first_time")],
        None,
        stop * plan.every_us,
    ).group_by(*[_col(k) for k in keys], copy=False)
    first_tile = _alias(tile_index(_col("__first_time"), plan.every_us, target), "__first")
    seen_tiles = _select(*keys, first_tile).from_(exp.to_table("__seen_times"), copy=False)
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
    return [("__seen_times", seen), ("__seen", seen_tiles), ("__grid", grid)]


def window_combination_query(
    plan: FeaturePlan, target: Target, first: int, stop: int
) -> exp.Select:
    """Aggregate features: partial aggregates per (entity, tile), combined per tick over the
    last WINDOW/EVERY tiles (or all tiles for a lifetime feature)."""
    keys = list(plan.key_names)
    n = plan.window_ticks
    lower_us = None if n is None else (first - n) * plan.every_us
    ctes = _seen_and_grid(plan, target, first, stop)

    # Rows: keys, tile index and each aggregate's argument.
    assert plan.event_time
    row_cols: list[exp.Expr] = [
        _alias(tile_index(_col(plan.event_time), plan.every_us, target), TILE)
    ]
    for i, arg in enumerate(plan.agg_args):
        if arg is not None:
            row_cols.append(_alias(arg.copy(), f"__a{i}"))
    ctes.append(("__rows", _source_scan(plan, target, row_cols, lower_us, stop * plan.every_us)))

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
    return _with(ctes, _emitted_ticks(plan, target, keys, value))


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


def latest_value_query(plan: FeaturePlan, target: Target, first: int, stop: int) -> exp.Select:
    """Latest-value features: the latest row per (entity, tile), carried forward per tick over
    the last WINDOW/EVERY tiles (or all tiles) with ``LAST_VALUE(... IGNORE NULLS)``."""
    assert plan.event_time
    keys = list(plan.key_names)
    n = plan.window_ticks
    lower_us = None if n is None else (first - n) * plan.every_us
    ctes = _seen_and_grid(plan, target, first, stop)
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
    return _with(ctes, _emitted_ticks(plan, target, keys, value))


def _emitted_ticks(
    plan: FeaturePlan, target: Target, keys: Sequence[str], value: exp.Expr
) -> exp.Select:
    """The timeline's rows: each key's value at every tick ``__combined`` marks as emitted."""
    return (
        _select(
            *keys,
            _alias(tick_timestamp(_col(TILE), plan.every_us, target), FEATURE_TIME),
            _alias(value, plan.name),
        )
        .from_(exp.to_table("__combined"), copy=False)
        .where(_col(OUT), copy=False)
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


# ---------------------------------------------------------------------------------------------
# Point-in-time join


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
    """``__row`` and one column per feature: for each spine row, the feature's timeline row for
    the row's keys at exactly the row's lookup tick, NULL when there is none.

    ``spine`` has a ``__row`` column (0..n−1), the key columns and, per feature, a
    ``tick_column`` (a UTC timestamp) holding T*: the latest *materialized* tick ≤ t, NULL when
    there is none or when t − T* exceeds the TTL (computed by the caller,
    :func:`fsql.compute.training.lookup_ticks`). Timelines are dense — an entity seen once has a row at
    every materialized tick after (docs/semantics.md) — so the row at T* *is* the latest row at
    or before t, and the point-in-time join is a plain equi-join (a hash join) on (keys, T*),
    the same on every target. The result has exactly one row per spine row (a timeline has one
    row per key and tick), in no particular order; callers put rows back in order by ``__row``.
    """
    keys = _spine_keys(features)
    ticks = list(dict.fromkeys(f.tick_column for f in features))
    s = _select(
        "__row", *[_alias(exp.cast(_col(k), _dtype(t)), k) for k, t in keys.items()], *ticks
    ).from_(spine, copy=False)
    query = exp.select(_col("__row", "__s")).from_(
        exp.Subquery(this=s, alias=exp.TableAlias(this=exp.to_identifier("__s"))), copy=False
    )
    for j, f in enumerate(features):
        alias = f"__f{j}"
        query = query.select(_alias(_col(f.name, alias), f.name), copy=False)
        timeline = _select(*f.key_names, FEATURE_TIME, f.name).from_(f.relation, copy=False)
        on = _and(
            *[exp.EQ(this=_col(k, "__s"), expression=_col(k, alias)) for k in f.key_names],
            exp.EQ(this=_col(f.tick_column, "__s"), expression=_col(FEATURE_TIME, alias)),
        )
        query = query.join(
            exp.Subquery(this=timeline, alias=exp.TableAlias(this=exp.to_identifier(alias))),
            on=on,
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
