"""Run statistics over the values a feature holds at each tick of an interval.

A run's statistics (``rows``, ``null_fraction``, ``min``, ``max``, ``mean``, ``distinct_count``:
what statistics checks read, what ``fsql runs`` and ``/metrics`` show) describe the feature's
value of every entity at every tick of the run's interval — one row per (entity, tick) from
the entity's first tick on, as docs/language.md defines them. The offline store holds changes
(:mod:`fsql.compile.sql`), so that dense view is never built: each change row holds its value
from its tick until the entity's next row (or the interval's end), and counts for that many
ticks. Rows before the interval (the committed history) count from the interval's first tick,
as the value an entity carries into it.

So ``rows`` = Σ ticks covered (``rows_written``: the change rows inside the interval, what
the run wrote), ``null_fraction`` = the NULL rows' share of them, ``mean`` the
mean weighted by ticks covered, ``min``/``max``/``distinct_count`` over the values that cover
at least one tick — equal to the same aggregates over the dense view (tests/compute/
test_statistics.py checks it against :func:`fsql.compute.timelines.dense_timeline`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from fsql.engines.duckdb import connect
from fsql.errors import ComputeError
from fsql.stores.files import TimelineFiles
from fsql.stores.sources import without_file_content

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def tick_statistics(
    keys: Sequence[str],
    value: str,
    value_type: pa.DataType,
    first_us: int,
    stop_us: int,
    every_us: int,
    *,
    staged: Sequence[str] = (),
    history: TimelineFiles | None = None,
    history_until_us: int | None = None,
    memory_limit: str | None = None,
) -> dict[str, Any]:
    """The statistics of the values at the ticks ``first_us ≤ T < stop_us`` (microseconds
    since the epoch, multiples of ``every_us``).

    The rows are ``staged`` (local Parquet files, rows at ticks ≥ ``first_us``: a computed
    interval not yet committed) and ``history`` (committed files): its rows before
    ``first_us`` give each entity's value entering the interval, its rows in
    ``[first_us, history_until_us)`` count as they are (``history_until_us`` defaults to
    ``first_us``: a staged interval replaces whatever was committed inside it)."""

    until = first_us if history_until_us is None else history_until_us
    key_list = ", ".join(_ident(k) for k in keys)
    v = _ident(value)
    import duckdb  # a heavy import, paid only when statistics run (pyproject: TID253)

    parts: list[str] = []
    con = connect(memory_limit=memory_limit)
    try:
        if staged:
            files = ", ".join(_literal(p) for p in staged)
            parts.append(
                f"SELECT {key_list}, epoch_us(feature_time) AS __t, {v} AS __v "
                f"FROM read_parquet([{files}]) WHERE epoch_us(feature_time) < {stop_us}"
            )
        if history is not None:
            # date partitions after the last needed tick hold no row that counts
            history = _before(history, min(until, stop_us) if until > first_us else first_us + 1)
        if history is not None and history.paths:
            local = history.local_paths()
            if local:
                files = ", ".join(_literal(p) for p in local)
                source = f"read_parquet([{files}])"
            else:
                con.register("__history", history.dataset())
                source = "__history"
            con.execute(
                f"CREATE TEMP VIEW __h AS SELECT {key_list}, epoch_us(feature_time) AS __t, "
                f"{v} AS __v FROM {source}"
            )
            parts.append(
                f"SELECT {key_list}, max(__t) AS __t, arg_max_null(__v, __t) AS __v FROM __h "
                f"WHERE __t < {first_us} GROUP BY ALL"
            )
            if until > first_us:
                parts.append(
                    f"SELECT {key_list}, __t, __v FROM __h "
                    f"WHERE __t >= {first_us} AND __t < {min(until, stop_us)}"
                )
        if not parts:
            return _empty()
        rows = " UNION ALL ".join(parts)
        # ticks each row's value holds inside [first, stop): from its tick (or first) to the
        # entity's next row (or stop)
        covered = (
            f"(least(coalesce(lead(__t) OVER (PARTITION BY {key_list} ORDER BY __t), "
            f"{stop_us}), {stop_us}) - greatest(__t, {first_us})) // {every_us}"
        )
        numeric = _numeric(value_type)
        text = "__v" if numeric else "CAST(__v AS VARCHAR)"
        mean = (
            "sum(CAST(__v AS DOUBLE) * __n) / sum(__n) FILTER (WHERE __v IS NOT NULL)"
            if numeric
            else "NULL"
        )
        try:
            row = con.execute(
                f"SELECT sum(__n), sum(__n) FILTER (WHERE __v IS NULL), min({text}), "
                f"max({text}), {mean}, approx_count_distinct(__v), "
                f"count(*) FILTER (WHERE __t >= {first_us}) "
                f"FROM (SELECT __t, __v, {covered} AS __n FROM ({rows})) WHERE __n > 0"
            ).fetchone()
        except duckdb.OutOfMemoryException as exc:
            raise ComputeError(
                f"the run statistics of {value} need more memory than DuckDB may use "
                f"(memory_limit {memory_limit or 'default'}): raise [compute] memory_limit in "
                "fsql.toml; nothing was committed"
            ) from exc
        except duckdb.Error as exc:
            raise ComputeError(
                f"computing the run statistics of {value} failed (nothing was committed): "
                f"{without_file_content(str(exc).splitlines()[0])}"
            ) from exc
    finally:
        con.close()
    total, nulls, low, high, avg, distinct, written = row if row else (None,) * 7
    if not total:
        return _empty()

    def number(x: Any) -> Any:
        return float(x) if numeric and x is not None else x

    return {
        "rows": int(total),
        "null_fraction": int(nulls or 0) / int(total),
        "min": number(low),
        "max": number(high),
        "mean": float(avg) if avg is not None else None,
        "distinct_count": int(distinct or 0),
        "rows_written": int(written or 0),
    }


def _before(files: TimelineFiles, stop_us: int) -> TimelineFiles:
    """``files`` without the date partitions (``…/date=YYYY-MM-DD/…``) whose rows are all at or
    after ``stop_us``."""
    last = (EPOCH + timedelta(microseconds=stop_us - 1)).date()
    kept = []
    for path in files.paths:
        day = next((part[5:] for part in path.split("/") if part.startswith("date=")), None)
        if day is None or date.fromisoformat(day[:10]) <= last:
            kept.append(path)
    return replace(files, paths=tuple(kept))


def _empty() -> dict[str, Any]:
    return {"rows": 0, "null_fraction": None, "min": None, "max": None, "mean": None,
            "distinct_count": 0, "rows_written": 0}  # fmt: skip


def _numeric(value_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(value_type)
        or pa.types.is_floating(value_type)
        or pa.types.is_decimal(value_type)
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
