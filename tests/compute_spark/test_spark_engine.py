"""The Spark engine's own contract (independent of the compiler): how it reads sources,
timelines and Arrow tables, normalizes timestamps to UTC instants and writes partitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from fsql.compute.materialize import materialize
from fsql.compute.training import training_batches, training_set
from fsql.config import ComputeConfig, Config
from fsql.engines.spark import SparkEngine, default_shuffle_partitions
from fsql.errors import ComputeError
from fsql.stores.files import SourceFiles, TimelineFiles
from fsql.workspace import Workspace
from tests.compute._repo import make_repo
from tests.compute.test_training import DEFS, D, pay

pytestmark = pytest.mark.spark

UTC = dt.UTC
T0 = dt.datetime(2024, 3, 1, 12, 30, 15, 123456)


def test_naive_timestamps_are_utc_instants(engine) -> None:
    spine = pa.table(
        {
            "user_id": pa.array([1, 2, None], pa.int64()),
            "ts": pa.array([T0, None, dt.datetime(1969, 12, 31, 23, 59, 59)], pa.timestamp("us")),
            "label": ["a", None, "c"],
        }
    )
    engine.register_arrow("spine", spine)
    out = engine.query(
        "SELECT user_id, ts, label, unix_micros(ts) AS micros FROM spine ORDER BY user_id NULLS LAST"
    )
    assert out.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert out.column("ts").to_pylist() == [
        T0.replace(tzinfo=UTC),
        None,
        dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    ]
    epoch = dt.datetime(1970, 1, 1)
    assert out.column("micros").to_pylist()[0] == (T0 - epoch) // dt.timedelta(microseconds=1)
    assert out.column("label").to_pylist() == ["a", None, "c"]


def test_parquet_source_cast_to_declared_schema(engine, tmp_path: Path) -> None:
    # stored: int32 key, nanosecond naive timestamps (what pandas writes), an extra column
    stored = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int32()),
            "event_time": pa.array(
                [T0, dt.datetime(1969, 12, 31, 23, 59, 59, 999999)], pa.timestamp("ns")
            ),
            "amount": [1.5, None],
            "ignored": ["x", "y"],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(stored, path)
    declared = pa.schema(
        [
            ("user_id", pa.int64()),
            ("event_time", pa.timestamp("us", "UTC")),
            ("amount", pa.float64()),
        ]
    )
    files = SourceFiles("events", "parquet", (str(path),), pafs.LocalFileSystem(), declared)
    engine.register_source("src_events", files)
    out = engine.query("SELECT * FROM src_events ORDER BY user_id")
    assert out.schema.names == ["user_id", "event_time", "amount"]
    assert out.schema.field("user_id").type == pa.int64()
    assert out.to_pydict() == {
        "user_id": [1, 2],
        "event_time": [
            T0.replace(tzinfo=UTC),
            dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        ],
        "amount": [1.5, None],
    }


def test_timeline_files_and_empty_timeline(engine, tmp_path: Path) -> None:
    schema = pa.schema(
        [
            ("user_id", pa.int64()),
            ("feature_time", pa.timestamp("us", "UTC")),
            ("spend", pa.float64()),
        ]
    )
    empty = TimelineFiles("spend", 1, (), pafs.LocalFileSystem(), schema)
    engine.register_timeline("tl_0", empty)
    assert engine.query("SELECT * FROM tl_0").schema.names == schema.names
    assert engine.query("SELECT COUNT(*) AS n FROM tl_0").column("n").to_pylist() == [0]

    part = tmp_path / "store" / "date=2024-03-01"
    part.mkdir(parents=True)
    rows = pa.table(
        {
            "user_id": [1, 2],
            "feature_time": pa.array([T0, T0], pa.timestamp("us", "UTC")),
            "spend": [None, 2.0],
        },
        schema=schema,
    )
    pq.write_table(rows, part / "a.parquet")
    files = TimelineFiles("spend", 1, (str(part / "a.parquet"),), pafs.LocalFileSystem(), schema)
    engine.register_timeline("tl_0", files)
    assert engine.query("SELECT * FROM tl_0 ORDER BY user_id").equals(rows)


def test_write_partitioned_leaves_only_parquet_data(engine, tmp_path: Path) -> None:
    out = tmp_path / "staging"
    engine.write_partitioned(
        "SELECT id AS user_id, TIMESTAMP '2024-03-01 00:00:00' + make_dt_interval(id) "
        "AS feature_time, CAST(id AS DOUBLE) AS spend, "
        "CAST(TIMESTAMP '2024-03-01 00:00:00' + make_dt_interval(id) AS DATE) AS date "
        "FROM range(0, 3)",
        str(out),
        "date",
    )
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert [f.split("/")[0] for f in files] == [
        "date=2024-03-01",
        "date=2024-03-02",
        "date=2024-03-03",
    ]
    assert all(f.endswith(".parquet") for f in files)
    table = pq.read_table(out / files[1])
    assert table.schema.names == ["user_id", "feature_time", "spend"]  # no partition column
    assert table.schema.field("feature_time").type == pa.timestamp("us", tz="UTC")
    assert table.to_pydict()["feature_time"] == [dt.datetime(2024, 3, 2, tzinfo=UTC)]


def test_errors_name_the_sql(engine) -> None:
    with pytest.raises(ComputeError, match=r"(?s)Spark failed: .*no_such_table.*SQL:\nSELECT"):
        engine.query("SELECT * FROM no_such_table")


def test_another_master_in_the_same_process_is_refused(spark_session, tmp_path: Path) -> None:
    config = Config(repo=tmp_path, compute=ComputeConfig(spark_master="spark://127.0.0.1:1"))
    with pytest.raises(ComputeError, match="already running in this process"):
        SparkEngine.from_config(config)


def test_default_shuffle_partitions() -> None:
    assert default_shuffle_partitions("local[2]") == 4
    assert default_shuffle_partitions("local") == 2
    assert default_shuffle_partitions("local[3,2]") == 6
    assert default_shuffle_partitions("spark://h:7077") == 8


def test_training_batches_on_spark_equal_training_set(engine, tmp_path: Path) -> None:
    """Spark keeps the engine interface's defaults for streamed training sets (whole Arrow
    tables): the same rows as training_set() on Spark, in spine order."""
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay()})
    with registry:
        workspace = Workspace(config, registry=registry)
        materialize(workspace, None, D, D + dt.timedelta(days=4), engine=engine, online=False)
        times = [D + dt.timedelta(hours=h) for h in (-5, 1, 30, 30, 47, 100)]
        spine = pa.table({
            "user_id": ["a", "b", "a", "a", None, "b"],
            "item_id": pa.array([2, 2, None, 2, 1, 2], pa.int64()),
            "event_time": pa.array(times, pa.timestamp("us")),
        })
        whole = training_set(workspace, spine, ["model", "item_buyers_2d"], engine=engine)
        batches = list(training_batches(workspace, spine, ["model", "item_buyers_2d"],
                                        engine=engine, batch_rows=4))
    assert [b.num_rows for b in batches] == [4, 2]
    assert pa.Table.from_batches(batches).to_pylist() == whole.to_pylist()
    assert whole.column("user_spend").null_count < 6
