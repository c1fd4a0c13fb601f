"""fsql.examples: the example data is deterministic, shaped like the example sources, and has
the awkward cases the semantics must handle (NULL amounts, duplicate event times)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from fsql.examples import END, SCHEMAS, START, generate_example_data
from fsql.language.project import load_project

ROOT = Path(__file__).resolve().parents[1]

DUCK_TYPES = {"string": "VARCHAR", "int64": "BIGINT", "float64": "DOUBLE",
              "timestamp": "TIMESTAMP"}


def query(data: Path, sql: str) -> list[tuple]:
    """Run ``sql`` with the three sources of ``data`` as views users, purchases, clicks."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW users AS SELECT * FROM read_csv('{data}/users/*.csv', header=true)")
    for source in ("purchases", "clicks"):
        con.execute(f"CREATE VIEW {source} AS SELECT * FROM read_parquet('{data}/{source}/*.parquet')")
    return con.execute(sql).fetchall()


def columns(data: Path, source: str) -> list[tuple[str, str]]:
    return [(name, typ) for name, typ, *_ in query(data, f"DESCRIBE SELECT * FROM {source}")]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("example") / "data"
    generate_example_data(path, rows=2000)
    return path


def test_same_seed_same_rows_other_seed_other_rows(tmp_path: Path, data: Path) -> None:
    again = tmp_path / "again"
    generate_example_data(again, rows=2000)
    for source in SCHEMAS:
        sql = f"SELECT * FROM {source}"
        assert query(data, sql) == query(again, sql), source
    other = tmp_path / "other"
    generate_example_data(other, rows=2000, seed=7)
    sql = "SELECT * FROM purchases"
    assert query(data, sql) != query(other, sql)


def test_row_counts_scale_with_rows(data: Path) -> None:
    counts = {s: query(data, f"SELECT count(*) FROM {s}")[0][0] for s in SCHEMAS}
    assert counts["purchases"] == 2000
    assert counts["clicks"] == 4000
    assert counts["users"] >= 2000 // 15


def test_columns_match_the_example_source_definitions(data: Path) -> None:
    """The generated files have exactly the columns and types sql_features/ declares."""
    sources = {
        name: d for name, d in load_project(ROOT / "sql_features").definitions.items()
        if d.kind == "source"
    }
    assert set(sources) == set(SCHEMAS)
    for name, source in sources.items():
        declared = [(c.name, c.type) for c in source.columns]
        generated = [(n, DUCK_TYPES[t]) for n, t in SCHEMAS[name]]
        assert declared == generated, name
        assert columns(data, name) == generated, name
        assert source.path == f"data/{name}"
        assert source.format == ("csv" if name == "users" else "parquet")


def test_timestamps_span_the_quarter_and_awkward_cases_exist(data: Path) -> None:
    [(lo, hi, nulls, dupes)] = query(data, """
        SELECT min(ts), max(ts), count(*) FILTER (WHERE amount IS NULL),
               (SELECT count(*) FROM (SELECT user_id, ts FROM purchases GROUP BY ALL
                                      HAVING count(*) > 1))
        FROM purchases""")
    assert START <= lo < datetime(2024, 1, 8) and datetime(2024, 3, 24) < hi < END
    assert nulls > 0 and dupes > 0
    # duplicates of an event time are told apart by loaded_at
    [(ties,)] = query(data, """
        SELECT count(*) FROM (SELECT user_id, ts, loaded_at FROM purchases GROUP BY ALL
                              HAVING count(*) > 1)""")
    assert ties < dupes
    [(late,)] = query(
        data, "SELECT count(*) FROM purchases "
        "WHERE loaded_at < ts OR loaded_at >= TIMESTAMP '2024-03-31'"
    )
    assert late == 0
    # users change profile over time: some have several rows
    [(changed,)] = query(
        data, "SELECT count(*) FROM (SELECT user_id FROM users GROUP BY 1 HAVING count(*) > 1)"
    )
    assert changed > 0


def test_bad_row_count_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rows must be at least 1"):
        generate_example_data(tmp_path, rows=0)


def test_generate_script_writes_beside_itself_or_to_out(tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, str(ROOT / "sql_features" / "generate.py"), "--rows", "300",
         "--out", str(out)],
        capture_output=True, text=True, check=True, timeout=120,
    )
    assert "purchases 300" in result.stdout
    assert query(out, "SELECT count(*) FROM purchases") == [(300,)]
