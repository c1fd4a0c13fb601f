"""Training sets: spine preservation, pandas in/out, several entities, feature sets, errors,
and the ``compile`` / ``materialize`` / ``training-set`` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from fsql.cli import cli as cli_main
from fsql.compute.materialize import materialize
from fsql.compute.training import read_spine, training_set
from fsql.config import load_config
from fsql.errors import ComputeError
from fsql.workspace import Workspace
from tests.compute._repo import make_repo

DEFS = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE ENTITY item KEY (item_id BIGINT);
CREATE SOURCE pay (user_id VARCHAR, item_id BIGINT, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/pay' EVENT TIME ts;
CREATE FEATURE user_spend ENTITY user TTL '1 day' AS SELECT user_id, SUM(amount) FROM pay;
CREATE FEATURE item_buyers_2d ENTITY item WINDOW '2 days'
  AS SELECT item_id, COUNT(DISTINCT user_id) FROM pay;
CREATE FEATURE last_item ENTITY user AS SELECT user_id, item_id FROM pay;
CREATE FEATURE SET model (user_spend, last_item);
"""
D = datetime(2024, 5, 1)


def pay() -> pa.Table:
    return pa.table(
        {
            "user_id": ["a", "a", "b"],
            "item_id": pa.array([1, 2, 2], pa.int64()),
            "amount": [1.0, 2.0, 4.0],
            "ts": pa.array(
                [D, D + timedelta(hours=30), D + timedelta(hours=1)], pa.timestamp("us")
            ),
        }
    )


@pytest.fixture()
def repo(tmp_path: Path):  # type: ignore[no-untyped-def]
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay()})
    with registry:
        materialize(Workspace(config, registry=registry), None, D, D + timedelta(days=4), online=False)
        yield config, registry


def test_spine_kept_in_order_with_types_and_several_entities(repo) -> None:  # type: ignore[no-untyped-def]
    config, registry = repo
    spine = pa.table(
        {
            "label": pa.array([1, 0, 1, 0, 1], pa.int8()),
            "item_id": pa.array([2, 2, 1, None, 2], pa.int64()),
            "user_id": ["a", "b", "a", "a", "zz"],
            # tz-aware, in another zone: compared as UTC instants, returned unchanged
            "event_time": pa.array(
                [
                    datetime(2024, 5, 3, 2, tzinfo=UTC),
                    D + timedelta(days=1),
                    D + timedelta(days=9),
                    D + timedelta(days=2),
                    D + timedelta(days=2),
                ],
                pa.timestamp("ms", tz="Europe/Paris"),
            ),  # fmt: skip
            "note": ["x", None, "z", "w", "v"],
        }
    )
    result = training_set(Workspace(config, registry=registry), spine, ["model", "item_buyers_2d"])
    assert result.select(spine.column_names).equals(spine)
    assert result.column_names == [*spine.column_names, "user_spend", "last_item", "item_buyers_2d"]
    # row 2: t − T = 6 days > TTL
    assert result.column("user_spend").to_pylist() == [3.0, 4.0, None, 3.0, None]
    assert result.column("last_item").to_pylist() == [2, 2, 2, 2, None]
    assert result.column("item_buyers_2d").to_pylist() == [2, 1, 0, None, 2]


def test_pandas_in_pandas_out(repo) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    config, registry = repo
    spine = pd.DataFrame(
        {
            "user_id": ["b", "a"],
            "event_time": [D + timedelta(days=2), D + timedelta(days=2)],
            "y": [0.5, 1.5],
        },
        index=[10, 20],
    )
    result = training_set(Workspace(config, registry=registry), spine, ["user_spend"])
    assert isinstance(result, pd.DataFrame)
    assert list(result.index) == [10, 20]
    assert result["y"].tolist() == [0.5, 1.5]
    assert result["user_spend"].tolist() == [4.0, 3.0]


def test_spine_errors_are_clear(repo) -> None:  # type: ignore[no-untyped-def]
    config, registry = repo
    spine = pa.table({"user_id": ["a"], "ts": pa.array([D], pa.timestamp("us"))})
    with pytest.raises(ComputeError, match="no time column 'event_time'.*--time-column"):
        training_set(Workspace(config, registry=registry), spine, ["user_spend"])
    with pytest.raises(ComputeError, match="item_id of entity item"):
        training_set(Workspace(config, registry=registry), spine, ["item_buyers_2d"], time_column="ts")
    from fsql.errors import DefinitionError

    with pytest.raises(DefinitionError, match="nope"):
        training_set(Workspace(config, registry=registry), spine, ["nope"], time_column="ts")


def test_cli_compile_materialize_training_set(tmp_path: Path) -> None:
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay()})
    registry.close()
    runner = CliRunner()
    base = ["--repo", str(tmp_path)]
    out = runner.invoke(
        cli_main,
        [*base, "compile", "item_buyers_2d", "--start", "2024-05-01", "--end", "2024-05-03"],
    )
    assert out.exit_code == 0, out.output
    assert "FROM src_pay" in out.output and "IS DISTINCT FROM" in out.output
    out = runner.invoke(
        cli_main, [*base, "compile", "item_buyers_2d", "--engine", "spark", "--start", "2024-05-01"]
    )
    assert out.exit_code == 0 and "UNIX_MICROS(" in out.output and "EPOCH_US" not in out.output

    args = [
        *base,
        "materialize",
        "--start",
        "2024-05-01",
        "--end",
        "2024-05-04",
        "--no-online",
        "--json",
        "model",
    ]
    out = runner.invoke(cli_main, args)
    assert out.exit_code == 0, out.output
    runs = json.loads(out.stdout)
    assert sorted(r["feature"] for r in runs) == ["last_item", "user_spend"]
    assert all(r["rows"] > 0 for r in runs)
    again = json.loads(runner.invoke(cli_main, args).stdout)
    assert all(r["intervals"] == [] for r in again)  # incremental: nothing missing
    forced = json.loads(runner.invoke(cli_main, [*args, "--force"]).stdout)
    assert all(r["intervals"] for r in forced)

    spine = tmp_path / "spine.csv"
    spine.write_text("user_id,event_time,label\na,2024-05-03T01:00:00,1\nb,2024-05-01,0\n")
    target = tmp_path / "out.parquet"
    out = runner.invoke(
        cli_main,
        [*base, "training-set", "--spine", str(spine), "--set", "model", "--out", str(target)],
    )
    assert out.exit_code == 0, out.output
    table = pq.read_table(target)
    assert table.column("label").to_pylist() == [1, 0]
    assert table.column("user_spend").to_pylist() == [3.0, None]
    # written batch by batch as the join streams: the file today's whole-table write gave
    workspace = Workspace(load_config(tmp_path))
    try:
        expected = training_set(workspace, read_spine(str(spine)), ["model"])
    finally:
        workspace.close()
    pq.write_table(expected, tmp_path / "whole.parquet")  # how it was written before
    assert table.equals(pq.read_table(tmp_path / "whole.parquet"))
    csv_out = tmp_path / "out.csv"
    out = runner.invoke(
        cli_main,
        [*base, "training-set", "--spine", str(spine), "--set", "model", "--out", str(csv_out)],
    )
    assert out.exit_code == 0, out.output
    whole = tmp_path / "whole.csv"
    pacsv.write_csv(expected, whole)
    assert csv_out.read_bytes() == whole.read_bytes()
    empty = tmp_path / "empty.parquet"
    pq.write_table(read_spine(str(spine)).slice(0, 0), empty)
    out = runner.invoke(
        cli_main,
        [*base, "training-set", "--spine", str(empty), "--set", "model", "--out", str(target)],
    )
    assert out.exit_code == 0, out.output
    assert "0 rows" in out.output
    assert pq.read_table(target).schema.names == expected.schema.names
    assert not list(tmp_path.glob("*.partial"))
    # a spine of more rows than [compute] stream_training_rows is joined and written batch by
    # batch as the join streams: the same files
    (tmp_path / "fsql.toml").write_text("[compute]\nstream_training_rows = 0\n")
    streamed = tmp_path / "streamed.parquet"
    for source, expect in ((spine, tmp_path / "whole.parquet"), (empty, None)):
        out = runner.invoke(
            cli_main,
            [*base, "training-set", "--spine", str(source), "--set", "model", "--out",
             str(streamed)],
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        if expect is not None:
            assert pq.read_table(streamed).equals(pq.read_table(expect))
        else:
            assert "0 rows" in out.output
            assert pq.read_table(streamed).schema.names == expected.schema.names
    assert not list(tmp_path.glob("*.partial"))
    (tmp_path / "fsql.toml").unlink()

    bad = runner.invoke(
        cli_main, [*base, "materialize", "--start", "2024-05-04", "--end", "2024-05-01"]
    )
    # a usage error (exit 2), refused before any run is recorded
    assert bad.exit_code == 2 and "is not after --start" in bad.output


def test_empty_spine_text_times_and_narrower_key_type(repo) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    config, registry = repo
    empty = pa.table(
        {"user_id": pa.array([], pa.string()), "event_time": pa.array([], pa.timestamp("us"))}
    )
    result = training_set(Workspace(config, registry=registry), empty, ["model"])
    assert result.num_rows == 0
    assert result.column_names == ["user_id", "event_time", "user_spend", "last_item"]
    # ISO 8601 text times (UTC without an offset) and an INT32 key for a BIGINT entity
    spine = pd.DataFrame(
        {
            "item_id": pd.array([2, 1, 2], dtype="int32"),
            "event_time": ["2024-05-03 00:00:00", "2024-05-04T00:00:00", "2024-05-02 23:59:59"],
        }
    )
    result = training_set(Workspace(config, registry=registry), spine, ["item_buyers_2d"])
    assert result["item_id"].dtype == "int32"
    assert result["item_buyers_2d"].tolist() == [2, 0, 1]


def test_training_batches_equal_training_set(tmp_path: Path) -> None:
    """The streamed core gives training_set()'s rows, batch by batch in spine order: several
    entities, an unmaterialized feature (all NULL), a pandas spine, an empty spine, and the
    iterator closed early (the engine's relations are dropped)."""
    from fsql.compute.training import training_batches
    from fsql.engines.duckdb import DuckDBEngine

    config, registry = make_repo(tmp_path, DEFS, {"pay": pay()})
    with registry:
        workspace = Workspace(config, registry=registry)
        materialize(workspace, ["user_spend", "last_item"], D, D + timedelta(days=4),
                    online=False)  # item_buyers_2d stays unmaterialized
        times = [D + timedelta(hours=h) for h in (-5, 0, 1, 30, 30, 47, 100, 200)]
        spine = pa.table({
            "user_id": ["a", "b", None, "a", "a", "b", "zz", "a"],
            "item_id": pa.array([2, 2, 1, None, 2, 1, 2, 1], pa.int64()),
            "event_time": pa.array(times, pa.timestamp("us")),
            "label": pa.array(range(8), pa.int8()),
        })
        features = ["model", "item_buyers_2d"]
        whole = training_set(workspace, spine, features)
        assert whole.column("item_buyers_2d").null_count == 8
        assert whole.column("user_spend").null_count < 8
        for size in (1, 3, 8, 100):
            batches = list(training_batches(workspace, spine, features, batch_rows=size))
            assert [b.num_rows for b in batches][:1] == [min(size, 8)]
            assert pa.Table.from_batches(batches).equals(whole)
        frame = spine.to_pandas()
        streamed = pa.Table.from_batches(list(training_batches(workspace, frame, features)))
        expected = pa.Table.from_pandas(training_set(workspace, frame, features),
                                        preserve_index=False)
        assert streamed.to_pylist() == expected.to_pylist()
        empty = list(training_batches(workspace, spine.slice(0, 0), features))
        assert [b.num_rows for b in empty] == [0]
        assert empty[0].schema == whole.schema
        engine = DuckDBEngine()
        try:
            batches = training_batches(workspace, spine, features, engine=engine, batch_rows=2)
            assert next(batches).num_rows == 2
            batches.close()
            left = engine.con.execute("SELECT count(*) FROM duckdb_tables() "
                                      "WHERE NOT internal").fetchone()
            assert left == (0,)
        finally:
            engine.close()
