"""Evaluating data checks on what a materialization run computed, and the run statistics.

The checks themselves (what a check may read, row vs statistics checks) are part of the
language: :mod:`fsql.language.checks`. Expressions are evaluated by DuckDB, the embedded engine,
over the written rows (an Arrow table), so they mean what SQL means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import sqlglot

from fsql.errors import DefinitionError
from fsql.language.checks import STAT_NAMES, Check, CheckResult, expression_names


def _duckdb_sql(expression: str) -> str:
    return sqlglot.transpile(expression, read="postgres", write="duckdb")[0]


def value_statistics(values: Any) -> dict[str, Any]:
    """Statistics of one run's written values (a pyarrow Array/ChunkedArray or a list).

    ``distinct_count`` is DuckDB's HyperLogLog estimate (``approx_count_distinct``); ``min`` and
    ``max`` are numbers for numeric values and text otherwise; ``mean`` is only for numbers.
    """
    import duckdb  # heavy: paid only when checks run (pyproject: TID253)

    if not isinstance(values, pa.Array | pa.ChunkedArray):
        values = pa.array(list(values))
    con = duckdb.connect()
    try:
        con.register("written", pa.table({"value": values}))
        return _statistics(con, "written", "value", values.type)
    finally:
        con.close()


def _statistics(con: Any, relation: str, column: str, value_type: pa.DataType) -> dict[str, Any]:
    numeric = (
        pa.types.is_integer(value_type)
        or pa.types.is_floating(value_type)
        or pa.types.is_decimal(value_type)
    )
    as_text = column if numeric else f"CAST({column} AS VARCHAR)"
    rows, nulls, low, high, mean, distinct = con.execute(
        f"SELECT count(*), count(*) - count({column}), min({as_text}), max({as_text}), "
        f"{f'avg({column})' if numeric else 'NULL'}, approx_count_distinct({column}) "
        f"FROM {relation}"
    ).fetchone()

    def number(x: Any) -> Any:
        return float(x) if numeric and x is not None else x

    return {
        "rows": int(rows),
        "null_fraction": (nulls / rows) if rows else None,
        "min": number(low),
        "max": number(high),
        "mean": float(mean) if mean is not None else None,
        "distinct_count": int(distinct or 0),
    }


def evaluate_checks(
    checks: Sequence[Check], values: Any, statistics: Mapping[str, Any] | None = None
) -> list[CheckResult]:
    """Evaluate ``checks`` on one run's written ``values`` (pyarrow array or list).

    ``statistics`` are the run statistics (computed from ``values`` when not given). Every check
    is evaluated even after one fails, so a run reports all of them.
    """
    import duckdb  # heavy: paid only when checks run (pyproject: TID253)

    stats = dict(statistics) if statistics is not None else value_statistics(values)
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        values = pa.array(list(values))
    results: list[CheckResult] = []
    con = duckdb.connect()
    try:
        con.register("written", pa.table({"value": values}))
        stat_columns = ", ".join(f"? AS {name}" for name in STAT_NAMES)
        con.execute(
            f"CREATE TEMP TABLE stats AS SELECT {stat_columns}",
            [stats.get(name) for name in STAT_NAMES],
        )
        for check in checks:
            try:
                sql = _duckdb_sql(check.expression)
                if check.kind == "row":
                    failing, sample = con.execute(
                        f"SELECT count(*), list(value ORDER BY value)[1:5] FROM written "
                        f"WHERE NOT ({sql})"
                    ).fetchone()  # type: ignore[misc]
                    results.append(CheckResult(
                        check, failing == 0,
                        {"failing_rows": int(failing), "rows": stats.get("rows"),
                         "examples": list(sample or [])},
                    ))  # fmt: skip
                else:
                    (ok,) = con.execute(f"SELECT ({sql}) FROM stats").fetchone()  # type: ignore[misc]
                    read = expression_names(check.expression)
                    results.append(CheckResult(
                        check, ok is True, {k: stats.get(k) for k in STAT_NAMES if k in read}
                    ))  # fmt: skip
            except (duckdb.Error, DefinitionError, ValueError) as exc:
                # An expression DuckDB cannot evaluate is a failed check, recorded with why.
                results.append(CheckResult(check, False, {}, error=str(exc)))
    finally:
        con.close()
    return results
