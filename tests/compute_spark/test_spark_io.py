"""The Spark engine keeps the driver out of the data path: S3 and CSV files are read by tasks
through pyarrow (``mapInArrow`` over a DataFrame of paths), with the DuckDB engine's parsing and
without credentials in the plan; ``spark_s3 = "s3a"`` switches Parquet on S3 to Spark's own
reader; on a cluster master the result is written by the driver in the same layout."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from fsql.config import ComputeConfig, Config, load_config
from fsql.engines.spark import SparkEngine
from fsql.engines.spark_io import FileScan, s3a_conf, s3a_path
from fsql.errors import ComputeError
from fsql.stores.files import SourceFiles, TimelineFiles

pytestmark = pytest.mark.spark

SECRET = "sekrit-8c1f0e"
SCHEMA = pa.schema(
    [("user_id", pa.int64()), ("event_time", pa.timestamp("us", "UTC")), ("amount", pa.float64())]
)


def _plan(frame: Any) -> str:
    return frame._jdf.queryExecution().toString()


@pytest.fixture()
def s3(s3_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # moto accepts any secret
    return s3_endpoint


def _fs(s3: Any) -> pafs.S3FileSystem:
    """The endpoint's filesystem as fsql builds it: credentials from the default chain."""
    return pafs.S3FileSystem(
        endpoint_override=s3.endpoint_override, scheme="http", region=s3.region
    )


def _put_events(fs: pafs.FileSystem, base: str) -> list[str]:
    """Two Parquet files, one with naive nanosecond timestamps (what pandas writes)."""
    first = pa.table(
        {
            "user_id": [1, 2],
            "event_time": pa.array(
                [datetime(2024, 3, 1, 12, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)],
                pa.timestamp("us", "UTC"),
            ),
            "amount": [1.5, None],
        }
    )
    second = pa.table(
        {
            "user_id": [3],
            "event_time": pa.array([1709424000123456000], pa.timestamp("ns")),
            "amount": [2.0],
            "ignored": ["x"],
        }
    )
    paths = [f"{base}/a.parquet", f"{base}/b.parquet"]
    for table, path in zip((first, second), paths, strict=True):
        with fs.open_output_stream(path) as out:
            pq.write_table(table, out)
    return paths


def test_s3_parquet_and_csv_sources_are_read_by_tasks(engine: SparkEngine, s3: Any) -> None:
    fs = _fs(s3)
    base = f"{s3.bucket}/{s3.prefix}"
    paths = _put_events(fs, base)
    files = SourceFiles("events", "parquet", tuple(paths), fs, SCHEMA, uri=s3.uri)
    engine.register_source("src_events", files)
    frame = engine.session.table("src_events")
    plan = _plan(frame)
    assert "MapInArrow" in plan  # tasks read the files...
    assert "LocalTableScan" not in plan  # ...no rows were shipped from the driver
    assert SECRET not in plan
    out = engine.query("SELECT * FROM src_events ORDER BY user_id")
    assert out.to_pydict() == files.dataset().to_table().sort_by("user_id").cast(
        out.schema
    ).to_pydict()
    assert out.column("event_time")[2].as_py() == datetime(2024, 3, 3, 0, 0, 0, 123456, tzinfo=UTC)
    # an empty source file list still has its columns
    engine.register_source("src_none", SourceFiles("none", "parquet", (), fs, SCHEMA))
    assert engine.query("SELECT COUNT(*) AS n FROM src_none").column("n").to_pylist() == [0]

    csv_path = f"{base}/events.csv"
    text = "user_id,event_time,amount\n1,2024-03-01 12:30:15Z,1.5\n2,2024-03-01T00:00:00Z,\n"
    with fs.open_output_stream(csv_path) as out_stream:
        out_stream.write(text.encode())
    csv = SourceFiles("events_csv", "csv", (csv_path,), fs, SCHEMA, uri=s3.uri)
    engine.register_source("src_csv", csv)
    assert "MapInArrow" in _plan(engine.session.table("src_csv"))
    got = engine.query("SELECT * FROM src_csv ORDER BY user_id")
    with fs.open_input_stream(csv_path) as raw:
        expected = pacsv.read_csv(raw, convert_options=pacsv.ConvertOptions(column_types=SCHEMA))
    assert got.to_pydict() == expected.to_pydict()
    for relation in ("src_events", "src_none", "src_csv"):
        engine.unregister(relation)
    assert engine._cached == {}  # cached reads are released with their view


def test_a_task_error_names_the_file_and_no_secret(engine: SparkEngine, s3: Any) -> None:
    fs = _fs(s3)
    missing = f"{s3.bucket}/{s3.prefix}/gone.parquet"
    engine.register_source(
        "src_gone", SourceFiles("gone", "parquet", (missing,), fs, SCHEMA, uri=s3.uri)
    )
    with pytest.raises(ComputeError) as info:
        engine.query("SELECT COUNT(*) FROM src_gone")
    assert f"fsql could not read {missing} (source gone)" in str(info.value)
    assert SECRET not in str(info.value)
    engine.unregister("src_gone")


def test_file_scan_carries_the_endpoint_and_driver_credentials(s3: Any) -> None:
    scan = FileScan.of("parquet", SCHEMA, _fs(s3), "source x")
    kind, options = scan.filesystem
    assert kind == "s3"
    assert options["endpoint_override"] == s3.endpoint_override
    assert options["secret_key"] == SECRET
    assert SECRET not in repr(scan)
    assert FileScan.of("csv", SCHEMA, pafs.LocalFileSystem(), "y").filesystem == ("local", {})


def test_s3a_switch_gives_s3a_paths_and_confs(engine: SparkEngine, s3: Any, tmp_path: Path) -> None:
    assert s3a_path(f"{s3.bucket}/k/a.parquet") == f"s3a://{s3.bucket}/k/a.parquet"
    assert s3a_path("s3://b/k") == "s3a://b/k"
    conf = s3a_conf(_fs(s3))
    assert conf["spark.hadoop.fs.s3a.endpoint"] == s3.endpoint_url
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == SECRET
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == s3.region
    assert s3a_conf(pafs.LocalFileSystem()) == {}

    (tmp_path / "fsql.toml").write_text('[compute]\nengine = "spark"\nspark_s3 = "s3a"\n')
    assert load_config(tmp_path).compute.spark_s3 == "s3a"
    fs = _fs(s3)
    paths = _put_events(fs, f"{s3.bucket}/{s3.prefix}")
    s3a_engine = SparkEngine(engine.session, s3="s3a")
    try:
        # This environment has no hadoop-aws jar: Spark's reader is used (s3a:// paths) and
        # fails with a message that says what the switch needs.
        with pytest.raises(ComputeError) as info:
            s3a_engine.register_source(
                "src_s3a", SourceFiles("events", "parquet", tuple(paths), fs, SCHEMA)
            )
        message = str(info.value)
        assert f"s3a://{paths[0]}" in message
        assert "hadoop-aws" in message and 'spark_s3 = "pyarrow"' in message
        assert SECRET not in message
        hadoop = engine.session.sparkContext._jsc.hadoopConfiguration()
        assert hadoop.get("fs.s3a.endpoint") == s3.endpoint_url
        # an empty timeline needs no reader
        timeline = TimelineFiles("f", 1, (), fs, SCHEMA)
        s3a_engine.register_timeline("tl_empty", timeline)
    finally:
        s3a_engine.close()


def test_driver_write_matches_spark_writer(engine: SparkEngine, tmp_path: Path) -> None:
    sql = (
        "SELECT id AS user_id, CAST(id * 1.5 AS DOUBLE) AS v, "
        "TIMESTAMP '2024-01-01 00:00:00' + make_interval(0, 0, 0, CAST(id % 3 AS INT)) "
        "AS feature_time, DATE '2024-01-01' + CAST(id % 3 AS INT) AS date FROM range(0, 10)"
    )
    engine.write_partitioned(sql, str(tmp_path / "spark"), "date")
    cluster = SparkEngine(engine.session)
    cluster.shared_staging = False  # what a spark:// master gets
    cluster.write_partitioned(sql, str(tmp_path / "driver"), "date")

    def read(directory: Path) -> list[dict[str, Any]]:
        dirs = sorted(p.name for p in directory.iterdir())
        assert dirs == ["date=2024-01-01", "date=2024-01-02", "date=2024-01-03"]
        table = ds.dataset(str(directory), format="parquet", partitioning="hive").to_table()
        assert table.schema.field("feature_time").type == pa.timestamp("us", "UTC")
        return sorted(table.to_pylist(), key=lambda r: r["user_id"])

    from_spark, from_driver = read(tmp_path / "spark"), read(tmp_path / "driver")
    assert from_driver == from_spark
    assert from_driver[4] == {
        "user_id": 4, "v": 6.0, "feature_time": datetime(2024, 1, 2, tzinfo=UTC),
        "date": "2024-01-02",
    }  # fmt: skip
    # an empty result is an empty staging directory
    cluster.write_partitioned(sql + " WHERE id < 0", str(tmp_path / "none"), "date")
    assert list((tmp_path / "none").iterdir()) == []


def test_a_local_master_lets_spark_write(spark_session: Any, tmp_path: Path) -> None:
    config = Config(repo=tmp_path, compute=ComputeConfig(engine="spark"))
    engine = SparkEngine.from_config(config)
    assert engine.shared_staging  # local[2]: executors share the driver's disk
    assert engine.s3 == "pyarrow"
