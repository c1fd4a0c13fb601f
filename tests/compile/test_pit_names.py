"""Names in the point-in-time join are quoted identifiers built as trees, never SQL text
(issue 15, finding 7): a feature whose name holds SQL (``x, "read_csv"('/etc/passwd') p``,
which the definition-time check refuses anyway) stays one column of one relation, on the
real DuckDB the training set runs on and in the Spark SQL."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa
from sqlglot import exp, parse_one

from fsql.compile.pit import PitFeature, point_in_time_join
from fsql.compile.plan import timeline_relation
from fsql.compile.target import DUCKDB, SPARK

HOSTILE = "x, \"read_csv\"('/etc/passwd') p"
KEY = 'user_id" FROM spine; --'


def feature() -> PitFeature:
    return PitFeature(HOSTILE, timeline_relation(HOSTILE), (KEY,), ("VARCHAR",), "__tick0")


def test_the_generated_sql_calls_no_function_named_in_a_name() -> None:
    for target in (DUCKDB, SPARK):
        sql = point_in_time_join("spine", [feature()], target).sql(dialect=target.dialect)
        tree = parse_one(sql, read=target.dialect)
        calls = {type(f).__name__ for f in tree.find_all(exp.Func)} | {
            f.name.lower() for f in tree.find_all(exp.Anonymous)}
        assert not any("csv" in c.lower() for c in calls), (target.name, sql)
        ctes = {cte.alias for cte in tree.find_all(exp.CTE)}
        tables = {t.name for t in tree.find_all(exp.Table)} - ctes
        assert tables == {"spine", timeline_relation(HOSTILE)}, (target.name, tables)


def test_duckdb_runs_the_join_with_the_names_as_they_are() -> None:
    tick = datetime(2026, 1, 2)
    con = duckdb.connect()
    con.register("spine", pa.table({
        "__row": pa.array([0, 1], pa.int64()), KEY: ["a", "b"],
        "__tick0": pa.array([tick, tick], pa.timestamp("us")),
    }))
    con.register(timeline_relation(HOSTILE), pa.table({
        KEY: ["a"], "feature_time": pa.array([datetime(2026, 1, 1)], pa.timestamp("us")),
        HOSTILE: [4.5],
    }))
    sql = point_in_time_join("spine", [feature()], DUCKDB).sql(dialect="duckdb")
    result = con.sql(sql + " ORDER BY 1").to_arrow_table()
    assert result.column_names == ["__row", HOSTILE]
    assert result.column(HOSTILE).to_pylist() == [4.5, None]
