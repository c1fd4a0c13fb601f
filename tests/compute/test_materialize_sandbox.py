"""The DuckDB engine ``fsql materialize`` opens runs SQL compiled from definitions, which users
with define rights may make over the wire: it is confined like the server's sessions — files
only under the offline store, the source roots and the temporary directory."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from fsql.compute.materialize import materialize, sandbox
from fsql.engines.duckdb import DuckDBEngine
from fsql.workspace import Workspace
from tests.compute._repo import make_repo

DEFS = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE SOURCE pay (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/pay' EVENT TIME ts;
CREATE FEATURE spend ENTITY user WINDOW '2 days'
  AS SELECT user_id, SUM(amount) FROM pay;
"""


def test_materialize_runs_confined_and_the_engine_reads_nothing_else(tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside.csv"
    outside.write_text("secret\n42\n")
    pay = pa.table({
        "user_id": ["a", "b", "a"],
        "amount": [1.0, 2.0, 4.0],
        "ts": pa.array([datetime(2024, 5, 1, 3), datetime(2024, 5, 1, 4),
                        datetime(2024, 5, 2, 5)], pa.timestamp("us")),
    })  # fmt: skip
    config, registry = make_repo(tmp_path / "repo", DEFS, {"pay": pay})
    workspace = Workspace(config, registry=registry)
    try:
        results = materialize(workspace, ["spend"], datetime(2024, 5, 1, tzinfo=UTC),
                              datetime(2024, 5, 4, tzinfo=UTC), engine="duckdb", online=False)  # fmt: skip
        assert results[0].rows > 0

        engine = DuckDBEngine()
        try:
            sandbox(engine, config, workspace.offline_store)
            with pytest.raises(duckdb.PermissionException):
                engine.con.execute(f"SELECT * FROM read_csv('{outside}')").fetchall()
            with pytest.raises(duckdb.Error):
                engine.con.execute("SET enable_external_access = true")
            # the store and the sources stay readable
            stored = engine.con.execute(
                f"SELECT count(*) FROM read_parquet('{tmp_path}/repo/.fsql/offline/**/*.parquet')"
            ).fetchall()
            assert stored[0][0] == results[0].rows
            source = engine.con.execute(
                f"SELECT sum(amount) FROM read_parquet('{tmp_path}/repo/data/pay/*.parquet')"
            ).fetchall()
            assert source[0][0] == 7.0
        finally:
            engine.close()
    finally:
        workspace.close()
