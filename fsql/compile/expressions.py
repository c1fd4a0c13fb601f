"""Expression builders shared by the SQL generators (:mod:`fsql.compile.sql`,
:mod:`fsql.compile.pit`): small sqlglot constructors, and one function per *meaning* where
engines differ, with one branch per target (:func:`epoch_micros`, :func:`floor_div`,
:func:`tick_timestamp`, :func:`timestamp_literal`, :func:`tick_series`, :func:`struct_value` /
:func:`struct_field`). Nothing is passed through as engine-specific text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlglot import exp

from fsql.compile.target import Target
from fsql.errors import ComputeError

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
        # MAKE_TIMESTAMPTZ(µs) is arithmetic; CAST(MAKE_TIMESTAMP(µs) AS TIMESTAMPTZ) goes
        # through the ICU calendar of the session's time zone for every row (~45× slower)
        return exp.Anonymous(this="MAKE_TIMESTAMPTZ", expressions=[us])
    if target.name == "spark":
        return exp.Anonymous(this="TIMESTAMP_MICROS", expressions=[us])
    raise ComputeError(f"no tick_timestamp for target {target.name}")


def utc_date(instant: exp.Expr, target: Target) -> exp.Expr:
    """The UTC date of a UTC instant (the offline store's ``date`` partition)."""
    if target.name == "duckdb":
        # through epoch microseconds: a TIMESTAMPTZ → DATE cast asks the ICU calendar per row
        naive = exp.Anonymous(this="MAKE_TIMESTAMP", expressions=[epoch_micros(instant, target)])
        return exp.cast(naive, "DATE")
    if target.name == "spark":
        return exp.cast(instant, "DATE")  # the session time zone is UTC
    raise ComputeError(f"no utc_date for target {target.name}")


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
