"""Materialization into the offline store: incremental ledger, --force, partition replacement,
versions, schema errors, atomicity under kill -9, S3, and the example repo end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from fsql.compute.materialize import materialize, timeline_schema
from fsql.compute.timelines import dense_timeline
from fsql.compute.training import training_set
from fsql.errors import SourceSchemaError
from fsql.stores.offline import OfflineStore
from fsql.workspace import Workspace
from tests.compute._repo import apply, make_repo, write_source

DEFS = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE SOURCE pay (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP) FROM 'data/pay' EVENT TIME ts;
CREATE FEATURE spend_2d ENTITY user WINDOW '2 days' AS SELECT user_id, SUM(amount) FROM pay;
CREATE FEATURE spend_6h ENTITY user WINDOW '6 hours' EVERY '3 hours' AS SELECT user_id, SUM(amount) FROM pay;
"""


def pay(rows: list[tuple[str, float, datetime]]) -> pa.Table:
    return pa.table(
        {
            "user_id": [r[0] for r in rows],
            "amount": [r[1] for r in rows],
            "ts": pa.array([r[2] for r in rows], pa.timestamp("us")),
        }
    )


D = datetime(2024, 3, 1)
ROWS = [
    ("a", 1.0, D + timedelta(hours=1)),
    ("a", 2.0, D + timedelta(days=1, hours=2)),
    ("b", 5.0, D),
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def timeline(config, registry, name: str) -> dict:  # type: ignore[no-untyped-def]
    """The values at every materialized tick (the stored changes, expanded)."""
    table = dense_timeline(Workspace(config, registry=registry), name)
    return {(r["user_id"], r["feature_time"]): r[name] for r in table.to_pylist()}


def changes(config, registry, name: str) -> dict:  # type: ignore[no-untyped-def]
    """The rows the offline store holds."""
    analysis = registry.analysis()
    version = registry.current()[name].version
    table = OfflineStore.from_config(config).read_timeline(
        name, version, timeline_schema(analysis.features[name])
    )
    return {(r["user_id"], r["feature_time"]): r[name] for r in table.to_pylist()}


def test_incremental_force_and_partition_replacement(tmp_path: Path) -> None:
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay(ROWS)})
    with registry:
        first = materialize(Workspace(config, registry=registry), ["spend_2d"], D, D + timedelta(days=3), online=False)
        assert [r.rows for r in first] == [3]
        # stored: each user's first tick and the ticks where its value changes
        assert changes(config, registry, "spend_2d") == {
            ("a", utc(2024, 3, 2)): 1.0, ("a", utc(2024, 3, 3)): 3.0, ("b", utc(2024, 3, 2)): 5.0,
        }  # fmt: skip
        tl = timeline(config, registry, "spend_2d")
        # exact expectations: ticks Mar 1..3; a seen from Mar 2, b from Mar 2
        assert tl == {
            ("a", utc(2024, 3, 2)): 1.0, ("a", utc(2024, 3, 3)): 3.0,
            ("b", utc(2024, 3, 2)): 5.0, ("b", utc(2024, 3, 3)): 5.0,
        }  # fmt: skip
        # incremental: a second run over an overlapping range computes only the missing part
        second = materialize(Workspace(config, registry=registry), ["spend_2d"], D, D + timedelta(days=5), online=False)
        assert second[0].intervals == ((utc(2024, 3, 4), utc(2024, 3, 6)),)
        tl = timeline(config, registry, "spend_2d")
        assert tl[("a", utc(2024, 3, 4))] == 2.0 and tl[("b", utc(2024, 3, 4))] is None
        assert tl[("a", utc(2024, 3, 5))] is None  # the window emptied: the timeline says so
        # changed data + --force over one day replaces exactly that day's partition
        write_source(tmp_path, "pay", pay([*ROWS, ("a", 10.0, D + timedelta(hours=5))]))
        materialize(Workspace(config, registry=registry), ["spend_2d"], D + timedelta(days=1), D + timedelta(days=2), force=True, online=False)
        tl = timeline(config, registry, "spend_2d")
        assert tl[("a", utc(2024, 3, 2))] == 11.0  # recomputed
        assert tl[("a", utc(2024, 3, 3))] == 3.0  # outside the forced interval: untouched
        assert len(tl) == 8  # no duplicates
        # ... and the ticks after it are stale (late data): the next run recomputes them
        again = materialize(Workspace(config, registry=registry), ["spend_2d"], D, D + timedelta(days=5), online=False)
        assert again[0].intervals == ((utc(2024, 3, 3), utc(2024, 3, 6)),)
        assert timeline(config, registry, "spend_2d")[("a", utc(2024, 3, 3))] == 13.0
        store = OfflineStore.from_config(config)
        assert store.vacuum("spend_2d", 1) == []  # every file on disk is listed in the manifest


def test_partial_day_rewrite_keeps_other_ticks(tmp_path: Path) -> None:
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay(ROWS)})
    with registry:
        materialize(Workspace(config, registry=registry), ["spend_6h"], D, D + timedelta(days=1), online=False)
        before = timeline(config, registry, "spend_6h")
        write_source(tmp_path, "pay", pay([*ROWS, ("a", 10.0, D + timedelta(hours=7))]))
        materialize(Workspace(config, registry=registry), ["spend_6h"], D + timedelta(hours=6), D + timedelta(hours=12), force=True, online=False)  # fmt: skip
        after = timeline(config, registry, "spend_6h")
        assert set(after) == set(before)
        assert after[("a", utc(2024, 3, 1, 9))] == 10.0
        assert after[("a", utc(2024, 3, 1, 12))] is None  # not recomputed: old value kept
        assert after[("a", utc(2024, 3, 1, 3))] == before[("a", utc(2024, 3, 1, 3))] == 1.0


def test_new_version_keeps_old_timeline_readable(tmp_path: Path) -> None:
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay(ROWS)})
    with registry:
        materialize(Workspace(config, registry=registry), ["spend_2d"], D, D + timedelta(days=3), online=False)
        apply(
            registry,
            DEFS.replace(
                "SUM(amount) FROM pay;\nCREATE FEATURE spend_6h",
                "MAX(amount) FROM pay;\nCREATE FEATURE spend_6h",
            ),
        )
        assert registry.current()["spend_2d"].version == 2
        result = materialize(Workspace(config, registry=registry), ["spend_2d"], D, D + timedelta(days=3), online=False)
        assert result[0].version == 2 and result[0].intervals  # a new version starts empty
        store = OfflineStore.from_config(config)
        schema = timeline_schema(registry.analysis().features["spend_2d"])
        old = {
            (r["user_id"], r["feature_time"]): r["spend_2d"]
            for r in store.read_timeline("spend_2d", 1, schema).to_pylist()
        }
        new = {
            (r["user_id"], r["feature_time"]): r["spend_2d"]
            for r in store.read_timeline("spend_2d", 2, schema).to_pylist()
        }
        assert old[("a", utc(2024, 3, 3))] == 3.0 and new[("a", utc(2024, 3, 3))] == 2.0
        assert store.versions("spend_2d") == [1, 2]


def test_source_schema_mismatch_names_file_and_column_and_writes_nothing(tmp_path: Path) -> None:
    bad = pa.table(
        {"user_id": ["a"], "amount": ["not a number"], "ts": pa.array([D], pa.timestamp("us"))}
    )
    config, registry = make_repo(tmp_path, DEFS, {"pay": bad})
    with registry:
        with pytest.raises(SourceSchemaError) as err:
            materialize(Workspace(config, registry=registry), None, D, D + timedelta(days=2), online=False)
        assert registry.ledger_entries() == []
    message = str(err.value)
    assert "part-0.parquet" in message and "column amount" in message and "DOUBLE" in message
    assert not (tmp_path / ".fsql" / "offline" / "feature=spend_2d").exists()


def test_missing_column_and_csv_source_errors(tmp_path: Path) -> None:
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay(ROWS).drop(["amount"])})
    with registry, pytest.raises(SourceSchemaError, match="has no column amount"):
        materialize(Workspace(config, registry=registry), None, D, D + timedelta(days=2), online=False)
    csv_defs = DEFS.replace("FROM 'data/pay' EVENT", "FROM 'data/pay.csv' FORMAT CSV EVENT")
    root = tmp_path / "csv"
    root.mkdir()
    (root / "data").mkdir()
    (root / "data" / "pay.csv").write_text(
        "user_id,amount,ts\na,1.5,2024-03-01 01:00:00\na,oops,2024-03-01 02:00:00\n"
    )
    config, registry = make_repo(root, csv_defs, {})
    with registry:
        with pytest.raises(SourceSchemaError) as err:
            materialize(Workspace(config, registry=registry), None, D, D + timedelta(days=2), online=False)
        assert "pay.csv" in str(err.value) and "amount" in str(err.value)
        (root / "data" / "pay.csv").write_text("user_id,amount,ts\na,1.5,2024-03-01 01:00:00\n")
        materialize(Workspace(config, registry=registry), ["spend_2d"], D, D + timedelta(days=2), online=False)
        assert timeline(config, registry, "spend_2d") == {("a", utc(2024, 3, 2)): 1.5}


KILL_SCRIPT = """
import sys, time
from datetime import datetime
from fsql.config import config_from_mapping
from fsql.compute.materialize import materialize
from fsql.registry import open_registry
from fsql.workspace import Workspace
from fsql.registry.base import Registry
from fsql.stores.offline import OfflineStore

PAUSE = {pause!r}


def pause_at(point):
    # Announce a point of the run to the parent (which may kill -9 us now), then linger.
    print(point, flush=True)
    if point == PAUSE:
        time.sleep(60)


def wrap(cls, name, before=None, after=None):
    original = getattr(cls, name)
    count = [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if before and count[0] == 3 or before == "commit":
            pause_at(before)
        result = original(*args, **kwargs)
        if after:
            pause_at(after)
        return result

    setattr(cls, name, wrapper)


wrap(OfflineStore, "commit", before="commit")            # staged, nothing committed
wrap(OfflineStore, "_put_file", before="moving")         # some files moved, manifest old
wrap(OfflineStore, "_write_manifest", after="manifest")  # manifest switched, ledger not yet
wrap(Registry, "ledger_commit", after="ledger")          # everything committed
config = config_from_mapping({{"online_store": {{"url": "sqlite:///{root}/.fsql/online.db"}}}}, {root!r}, "t")
print("started", flush=True)
with open_registry(config) as registry:
    materialize(Workspace(config, registry=registry), ["spend_6h"], datetime(2024, 1, 1),
                datetime(2024, 3, 1), force=True, online=False)
print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "expect"),
    [("commit", "old"), ("moving", "old"), ("manifest", "new"), ("ledger", "new"),
     (0.3, "either"), (1.0, "either")],
)  # fmt: skip
def test_kill_9_leaves_old_or_new_data(tmp_path: Path, point: str | float, expect: str) -> None:
    """kill -9 a forced re-materialization at chosen points of the commit protocol (and after
    arbitrary delays): the timeline reads back as entirely old or entirely new data, never a
    mix, and the ledger is only updated after the data."""
    import random

    from fsql.registry import open_registry

    rng = random.Random(7)
    start = datetime(2024, 1, 1)
    rows = [
        (f"u{rng.randrange(40)}", 1.0, start + timedelta(minutes=rng.randrange(60 * 24 * 60)))
        for _ in range(4000)
    ]
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay(rows)})
    with registry:
        materialize(Workspace(config, registry=registry), ["spend_6h"], start, datetime(2024, 3, 1), online=False)
        old = timeline(config, registry, "spend_6h")
        entries_before = len(registry.ledger_entries("spend_6h"))
    write_source(tmp_path, "pay", pay([(u, 2.0, t) for u, _, t in rows]))  # every value doubles
    pause = point if isinstance(point, str) else None
    script = KILL_SCRIPT.format(root=str(tmp_path), pause=pause)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=os.getcwd())
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"started"
    if pause is not None:
        for line in proc.stdout:
            if line.strip() == pause.encode():
                break
        else:
            raise AssertionError(f"the run never reached {pause}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    else:
        try:
            proc.wait(timeout=point)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    with open_registry(config) as registry2:
        now = timeline(config, registry2, "spend_6h")
        entries_after = len(registry2.ledger_entries("spend_6h"))
    assert set(now) == set(old)  # same rows, no duplicates, no half partitions
    doubled = {k: (None if v is None else 2 * v) for k, v in old.items()}
    assert now in (old, doubled)
    if expect == "old":
        assert now == old and entries_after == entries_before
    if point == "moving":  # two files were moved before the kill: unlisted, never read
        assert len(OfflineStore.from_config(config).vacuum("spend_6h", 1)) == 2
    elif expect == "new":
        assert now == doubled
    # a re-run completes whatever the kill interrupted
    with open_registry(config) as registry3:
        materialize(Workspace(config, registry=registry3), ["spend_6h"], start, datetime(2024, 3, 1), force=True, online=False)  # fmt: skip
        assert timeline(config, registry3, "spend_6h") == doubled


@pytest.mark.s3
def test_s3_offline_store_roundtrip(tmp_path: Path, s3_endpoint) -> None:  # type: ignore[no-untyped-def]
    config, registry = make_repo(
        tmp_path, DEFS, {"pay": pay(ROWS)}, offline_uri=s3_endpoint.uri,
        overrides={"offline_store": {"s3_endpoint_url": s3_endpoint.endpoint_url, "region": s3_endpoint.region}},
    )  # fmt: skip
    with registry:
        materialize(Workspace(config, registry=registry), ["spend_2d"], D, D + timedelta(days=3), online=False)
        tl = timeline(config, registry, "spend_2d")
        assert tl[("a", utc(2024, 3, 3))] == 3.0 and len(tl) == 4
        keys = [
            o["Key"]
            for o in s3_endpoint.client().list_objects_v2(Bucket=s3_endpoint.bucket)["Contents"]
        ]
        assert any(k.endswith("feature=spend_2d/version=1/_manifest.json") for k in keys)
        assert any("/date=2024-03-02/" in k for k in keys)
        # replace a partition on S3
        write_source(tmp_path, "pay", pay([*ROWS, ("a", 10.0, D + timedelta(hours=5))]))
        materialize(Workspace(config, registry=registry), ["spend_2d"], D + timedelta(days=1), D + timedelta(days=2), force=True, online=False)
        tl = timeline(config, registry, "spend_2d")
        assert tl[("a", utc(2024, 3, 2))] == 11.0 and len(tl) == 4
        keys_after = [
            o["Key"]
            for o in s3_endpoint.client().list_objects_v2(Bucket=s3_endpoint.bucket)["Contents"]
        ]
        assert (
            len([k for k in keys_after if "/date=2024-03-02/" in k and k.endswith(".parquet")]) == 1
        )
        spine = pa.table(
            {
                "user_id": ["a", "b"],
                "event_time": pa.array([D + timedelta(days=2, hours=1), D], pa.timestamp("us")),
            }
        )
        result = training_set(Workspace(config, registry=registry), spine, ["spend_2d"])
        assert result.column("spend_2d").to_pylist() == [3.0, None]


@pytest.mark.s3
def test_s3_source(tmp_path: Path, s3_endpoint) -> None:  # type: ignore[no-untyped-def]
    fs = s3_endpoint.filesystem()
    with fs.open_output_stream(f"{s3_endpoint.bucket}/src/pay/part-0.parquet") as out:
        pq.write_table(pay(ROWS), out)
    defs = DEFS.replace("'data/pay'", f"'s3://{s3_endpoint.bucket}/src/pay'")
    config, registry = make_repo(
        tmp_path,
        defs,
        {},
        overrides={"offline_store": {"s3_endpoint_url": s3_endpoint.endpoint_url}},
    )
    with registry:
        materialize(Workspace(config, registry=registry), ["spend_2d"], D, D + timedelta(days=3), online=False)
        assert timeline(config, registry, "spend_2d")[("a", utc(2024, 3, 3))] == 3.0


def _example_repo(tmp_path: Path) -> Path:
    """A copy of sql_features/ (definitions only) with freshly generated data."""
    import shutil

    from fsql.examples import generate_example_data

    repo = tmp_path / "sql_features"
    shutil.copytree(
        Path(__file__).parents[2] / "sql_features", repo,
        ignore=shutil.ignore_patterns(".fsql", "data"),
    )  # fmt: skip
    generate_example_data(repo / "data")
    return repo


def _run_example(repo: Path, config) -> None:  # type: ignore[no-untyped-def]
    from fsql.language.project import load_project
    from fsql.registry import open_registry

    analysis = load_project(config.repo, config)  # sources checked against config's roots
    with open_registry(config) as registry:
        registry.apply(registry.plan(analysis), analysis)
        results = materialize(Workspace(config, registry=registry), None, datetime(2024, 1, 1), datetime(2024, 2, 1))
        assert {r.feature for r in results} == set(analysis.features)
        assert all(r.rows > 0 for r in results)
        users = sorted(
            set(
                pacsv.read_csv(repo / "data" / "users" / "part-00000.csv")
                .column("user_id")
                .to_pylist()
            )
        )[:50]
        spine = pa.table(
            {"user_id": users,
             "event_time": pa.array([datetime(2024, 1, 31, 12)] * len(users), pa.timestamp("us"))}
        )  # fmt: skip
        sets = [n for n, d in analysis.definitions.items() if d.kind == "feature_set"]
        result = training_set(Workspace(config, registry=registry), spine, sets)
        assert result.num_rows == len(users)
        assert result.select(["user_id", "event_time"]).equals(spine)
        for name in result.column_names[2:]:
            assert any(v is not None for v in result.column(name).to_pylist()), name


def test_example_repo_end_to_end(tmp_path: Path) -> None:
    """sql_features/ applies, materializes every feature on DuckDB, and builds a training set."""
    from fsql.config import load_config

    repo = _example_repo(tmp_path)
    _run_example(repo, load_config(repo, env={}))


@pytest.mark.s3
def test_example_repo_end_to_end_on_s3(tmp_path: Path, s3_endpoint) -> None:  # type: ignore[no-untyped-def]
    """The same with the sources uploaded to S3 and the offline store on S3."""
    from fsql.config import load_config

    repo = _example_repo(tmp_path)
    fs = s3_endpoint.filesystem()
    base = f"{s3_endpoint.bucket}/{s3_endpoint.prefix}/sources"
    for source in ("clicks", "purchases", "users"):
        for local in (repo / "data" / source).iterdir():
            with fs.open_output_stream(f"{base}/{source}/{local.name}") as out:
                out.write(local.read_bytes())
        sql = repo / "sources" / f"{source}.sql"
        sql.write_text(sql.read_text().replace(f"'data/{source}'", f"'s3://{base}/{source}'"))
    config = load_config(
        repo,
        env={},
        overrides={
            "offline_store": {
                "uri": f"{s3_endpoint.uri}/offline",
                "s3_endpoint_url": s3_endpoint.endpoint_url,
                "region": s3_endpoint.region,
            },
            # sources may read only inside the repo and these (load_project checks them)
            "sources": {"roots": [f"s3://{base}"]},
        },
    )
    _run_example(repo, config)
    listed = s3_endpoint.client().list_objects_v2(
        Bucket=s3_endpoint.bucket, Prefix=f"{s3_endpoint.prefix}/offline/"
    )
    assert any(o["Key"].endswith("_manifest.json") for o in listed["Contents"])


def test_topological_levels_group_independent_features() -> None:
    from fsql.compute.materialize import topological_levels
    from fsql.language.analysis import analyze
    from fsql.language.parser import parse

    text = (
        DEFS
        + """
    CREATE FEATURE ratio ENTITY user AS SELECT user_id, spend_2d / NULLIF(spend_6h, 0) FROM user;
    CREATE FEATURE ratio2 ENTITY user AS SELECT user_id, ratio * 2 FROM user;
    """
    )
    analysis = analyze(parse(text))
    order = analysis.topological_order(["ratio2"])
    assert topological_levels(order, analysis.features) == [
        ["spend_2d", "spend_6h"],
        ["ratio"],
        ["ratio2"],
    ]


def test_files_with_narrower_types_are_widened_to_the_declared_schema(tmp_path: Path) -> None:
    """int32/float32/ns/zoned timestamps in the files read as the declared BIGINT/DOUBLE/
    TIMESTAMP; the zoned instant becomes its UTC wall time."""
    defs = """
    CREATE ENTITY user KEY (user_id VARCHAR);
    CREATE SOURCE pay (user_id VARCHAR, qty BIGINT, amount DOUBLE, ts TIMESTAMP) FROM 'data/pay' EVENT TIME ts;
    CREATE FEATURE qty_1d ENTITY user WINDOW '1 day' AS SELECT user_id, SUM(qty) FROM pay;
    CREATE FEATURE amount_1d ENTITY user WINDOW '1 day' AS SELECT user_id, SUM(amount) FROM pay;
    """
    table = pa.table(
        {
            "user_id": pa.array(["a", "a"]).dictionary_encode(),
            "qty": pa.array([2, 3], pa.int32()),
            "amount": pa.array([1.5, 2.25], pa.float32()),
            # 23:30 in New York on Feb 29 is 04:30 UTC on Mar 1; 2024-03-01 01:00 UTC
            "ts": pa.array([datetime(2024, 3, 1, 4, 30, tzinfo=UTC), datetime(2024, 3, 1, 1, tzinfo=UTC)],
                           pa.timestamp("ns", tz="America/New_York")),
        }
    )  # fmt: skip
    config, registry = make_repo(tmp_path, defs, {"pay": table})
    with registry:
        materialize(Workspace(config, registry=registry), None, D, D + timedelta(days=2), online=False)
        assert timeline(config, registry, "qty_1d") == {("a", utc(2024, 3, 2)): 5}
        assert timeline(config, registry, "amount_1d")[("a", utc(2024, 3, 2))] == 3.75
        # a narrowing type is an error, naming the column
        bad = table.set_column(1, "qty", pa.array([2.5, 3.0], pa.float64()))
        write_source(tmp_path, "pay", bad)
        with pytest.raises(
            SourceSchemaError, match="column qty is double but the source declares qty BIGINT"
        ):
            materialize(Workspace(config, registry=registry), None, D, D + timedelta(days=3), online=False)


FIRST_RUN_KILL_SCRIPT = """
import time
from datetime import datetime
from fsql.config import config_from_mapping
from fsql.compute.materialize import materialize
from fsql.registry import open_registry
from fsql.workspace import Workspace
from fsql.stores.offline import OfflineStore

original = OfflineStore._write_manifest


def write_manifest_then_linger(*args, **kwargs):
    result = original(*args, **kwargs)
    print("manifest", flush=True)  # the parent kills -9 us here: data committed, ledger not
    time.sleep(60)
    return result


OfflineStore._write_manifest = write_manifest_then_linger
config = config_from_mapping({{"online_store": {{"url": "sqlite:///{root}/.fsql/online.db"}}}}, {root!r}, "t")
with open_registry(config) as registry:
    materialize(Workspace(config, registry=registry), ["spend_2d"], datetime(2024, 3, 3),
                datetime(2024, 3, 5), online=False)
"""


@pytest.mark.slow
def test_kill_9_after_manifest_before_ledger_then_rerun_repairs(tmp_path: Path) -> None:
    """A first (not forced) run of an interval killed after its data commit and before its
    ledger write: training sets do not see the unrecorded ticks (they only look up ledger
    intervals), and a plain re-run computes the interval again and replaces it exactly."""
    from fsql.registry import open_registry

    rows = [
        *ROWS,
        ("a", 4.0, D + timedelta(days=2, hours=5)),
        ("c", 8.0, D + timedelta(days=2, hours=1)),
    ]
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay(rows)})
    times = [D + timedelta(days=1), D + timedelta(days=3), D + timedelta(days=4, hours=1)]
    spine = pa.table({"user_id": ["a", "a", "c"], "event_time": times})
    with registry:
        materialize(Workspace(config, registry=registry), ["spend_2d"], D, D + timedelta(days=2), online=False)
    script = FIRST_RUN_KILL_SCRIPT.format(root=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=os.getcwd())
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"manifest"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open_registry(config) as registry2:
        committed = changes(config, registry2, "spend_2d")
        # the killed run's rows are in the manifest (ticks 3-03 and 3-04) ...
        assert committed[("a", utc(2024, 3, 4))] == 6.0 and committed[("c", utc(2024, 3, 4))] == 8.0
        assert registry2.ledger_missing(
            "spend_2d", 1, D + timedelta(days=2), D + timedelta(days=4)
        ) == [(utc(2024, 3, 3), utc(2024, 3, 5))]
        # ... but not in the ledger, so spine rows after 3-02 get the last recorded tick, 3-02
        got = training_set(Workspace(config, registry=registry2), spine, ["spend_2d"])
        assert got.column("spend_2d").to_pylist() == [1.0, 1.0, None]
        materialize(Workspace(config, registry=registry2), ["spend_2d"], D, D + timedelta(days=4), online=False)
        assert registry2.ledger_missing("spend_2d", 1, D, D + timedelta(days=4)) == []
        repaired = changes(config, registry2, "spend_2d")
        assert repaired == committed  # same rows once each: the interval was replaced exactly
        got = training_set(Workspace(config, registry=registry2), spine, ["spend_2d"])
        assert got.column("spend_2d").to_pylist() == [1.0, 6.0, 8.0]
