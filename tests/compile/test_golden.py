"""Golden files for the compiler: one definition → the expected DuckDB SQL and Spark SQL.

``tests/fixtures/compile/<case>.sql`` holds a feature definition (read with the shared
``_preamble.sql``); ``<case>.duckdb.sql`` and ``<case>.spark.sql`` the SQL fsql generates for
ticks in [2024-01-01, 2024-01-03). A change in generated SQL fails here and is reviewed as a
diff; regenerate with ``FSQL_UPDATE_GOLDEN=1 pytest tests/compile``.

Beyond text equality, :func:`validate_all` checks every target's SQL the way sqlglot's
``validate_all`` does: the DuckDB SQL runs on DuckDB, the Spark SQL parses as Spark SQL, and no
engine-specific construct of one target leaks into the other.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

import pytest
import sqlglot

from fsql.compile.pit import PitFeature, point_in_time_join
from fsql.compile.plan import build_plan, source_relation, timeline_relation
from fsql.compile.sql import timeline_sql
from fsql.compile.target import DUCKDB, SPARK, Target
from fsql.language.analysis import analyze
from fsql.language.parser import parse

FIXTURES = Path(__file__).parents[1] / "fixtures" / "compile"
CASES = sorted(
    p.stem for p in FIXTURES.glob("*.sql") if not p.stem.startswith("_") and "." not in p.stem
)
START, END = datetime(2024, 1, 1), datetime(2024, 1, 3)
UPDATE = os.environ.get("FSQL_UPDATE_GOLDEN") == "1"

#: constructs only one target understands
DUCKDB_ONLY = [r"\bEPOCH_US\(", r"\bMAKE_TIMESTAMP\(", r"\bUNNEST\(", r"\bRANGE\(", r"\bSTRUCT_EXTRACT\(",
               r"\bASOF\b", r"//", r"TIMESTAMPTZ", r"\{'v'"]  # fmt: skip
SPARK_ONLY = [r"\bUNIX_MICROS\(", r"\bTIMESTAMP_MICROS\(", r"\bEXPLODE\(", r"\bSEQUENCE\(", r"\bDIV\b",
              r"\bSTRUCT\("]  # fmt: skip


def _analysis(case: str):  # type: ignore[no-untyped-def]
    text = (FIXTURES / "_preamble.sql").read_text() + (FIXTURES / f"{case}.sql").read_text()
    return analyze(parse(text))


def _feature_name(case: str) -> str:
    match = re.search(r"CREATE FEATURE (\w+)", (FIXTURES / f"{case}.sql").read_text())
    assert match
    return match.group(1)


def compile_case(case: str, target: Target) -> str:
    analysis = _analysis(case)
    feature = analysis.features[_feature_name(case)]
    plan = build_plan(feature, analysis.features)
    return timeline_sql(plan, target, START, END, pretty=True) + "\n"


def validate_all(sql: dict[str, str]) -> None:
    """Each target's SQL is valid for it and free of the other target's constructs."""
    for pattern in DUCKDB_ONLY:
        assert not re.search(pattern, sql["spark"]), f"DuckDB construct {pattern} in Spark SQL"
    for pattern in SPARK_ONLY:
        assert not re.search(pattern, sql["duckdb"]), f"Spark construct {pattern} in DuckDB SQL"
    sqlglot.parse_one(sql["spark"], read="spark")
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Empty relations with the right columns: the DuckDB SQL must bind and run.
    con.execute(
        f"CREATE TABLE {source_relation('purchases')} (user_id VARCHAR, item_id BIGINT, amount DOUBLE, ts TIMESTAMP, loaded_at TIMESTAMP)"
    )
    con.execute(
        f"CREATE TABLE {source_relation('profiles')} (user_id VARCHAR, country VARCHAR, updated_at TIMESTAMPTZ)"
    )
    for name in ("spend_30d", "orders_30d"):
        con.execute(
            f"CREATE TABLE {timeline_relation(name)} (user_id VARCHAR, feature_time TIMESTAMPTZ, {name} DOUBLE)"
        )
    con.execute(
        "CREATE TABLE spine (__row BIGINT, user_id VARCHAR, item_id BIGINT, event_time TIMESTAMP, "
        "__tick0 TIMESTAMPTZ, __tick1 TIMESTAMPTZ)"
    )
    con.execute(sql["duckdb"]).fetchall()


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    generated = {t.name: compile_case(case, t) for t in (DUCKDB, SPARK)}
    for target, sql in generated.items():
        path = FIXTURES / f"{case}.{target}.sql"
        if UPDATE or not path.exists():
            path.write_text(sql)
        assert sql == path.read_text(), f"{path.name} differs; review and regenerate"
    validate_all(generated)


def test_point_in_time_join_per_target() -> None:
    features = [
        PitFeature(
            "spend_30d", timeline_relation("spend_30d"), ("user_id",), ("VARCHAR",), "__tick0"
        ),
        PitFeature(
            "orders_30d", timeline_relation("orders_30d"), ("user_id",), ("VARCHAR",), "__tick1"
        ),
    ]
    generated = {
        t.name: point_in_time_join("spine", features, t).sql(dialect=t.dialect, pretty=True) + "\n"
        for t in (DUCKDB, SPARK)
    }
    # the latest row at or before the lookup tick: an ASOF join on DuckDB, a window elsewhere
    assert "ASOF LEFT JOIN" in generated["duckdb"]
    assert "__f0.feature_time <= __s.__tick0" in generated["duckdb"]
    assert "ASOF" not in generated["spark"] and "LAST_VALUE" in generated["spark"]
    for target, sql in generated.items():
        path = FIXTURES / f"_point_in_time.{target}.sql"
        if UPDATE or not path.exists():
            path.write_text(sql)
        assert sql == path.read_text()
    validate_all(generated)


def test_point_in_time_join_keys_must_agree() -> None:
    from fsql.errors import ComputeError

    features = [
        PitFeature("a", "tl_a", ("user_id",), ("VARCHAR",), "__tick0"),
        PitFeature("b", "tl_b", ("user_id",), ("BIGINT",), "__tick0"),
    ]
    with pytest.raises(ComputeError, match="user_id has type VARCHAR in one entity and BIGINT"):
        point_in_time_join("spine", features, DUCKDB)


def test_window_must_be_multiple_of_every() -> None:
    from dataclasses import replace
    from datetime import timedelta

    from fsql.errors import ComputeError

    analysis = _analysis("windowed_sum")
    feature = analysis.features["spend_7d"]
    odd = replace(feature, definition=replace(feature.definition, window=timedelta(hours=30)))
    with pytest.raises(ComputeError, match="WINDOW must be a whole multiple of EVERY"):
        build_plan(odd)
