"""Late-data detection: the rule (which ticks a changed source file makes stale), derived
features downstream, a failed recompute, and the monitoring figures, on both registry
backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsql.compute.late_data import (
    UNKNOWN,
    detect_late_data,
    earliest_change,
    stale_ticks,
)
from fsql.compute.materialize import StagedInterval, materialize, timeline_schema
from fsql.compute.monitor import freshness, freshness_table, prometheus_metrics
from fsql.errors import RejectedData
from fsql.registry import InputFile
from fsql.stores.offline import OfflineStore
from fsql.workspace import Workspace
from tests.compute._repo import make_repo

DAY = timedelta(days=1)
D = datetime(2024, 3, 1, tzinfo=UTC)
DEFS = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE SOURCE pay (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP) FROM 'data/pay' EVENT TIME ts;
CREATE FEATURE spend_2d ENTITY user WINDOW '2 days' AS SELECT user_id, SUM(amount) FROM pay;
CREATE FEATURE spend_total ENTITY user AS SELECT user_id, SUM(amount) FROM pay;
CREATE FEATURE spend_share ENTITY user AS SELECT user_id, spend_2d / spend_total FROM user;
"""
FEATURES = ("spend_2d", "spend_total", "spend_share")


def pay(rows: list[tuple[str, float, datetime]]) -> pa.Table:
    return pa.table({
        "user_id": [r[0] for r in rows],
        "amount": [r[1] for r in rows],
        "ts": pa.array([r[2].replace(tzinfo=None) for r in rows], pa.timestamp("us")),
    })  # fmt: skip


def f(path: str, size: int = 1, modified: int | None = 1, min_time: datetime | None = D) -> Any:
    return InputFile(path, size, modified, min_time)


# -- the rule ----------------------------------------------------------------------------------


def test_earliest_change() -> None:
    a, b = f("a", min_time=D + DAY), f("b", min_time=D + 3 * DAY)
    assert earliest_change([a, b], [a, b]) is None  # nothing changed
    assert earliest_change([a], [a, b]) == D + 3 * DAY  # a new file: from its least event
    assert earliest_change([a, b], [b]) == D + DAY  # a file removed: its events are gone
    changed = f("b", size=2, min_time=D + 2 * DAY)
    assert earliest_change([a, b], [a, changed]) == D + 2 * DAY  # least of old and new
    assert earliest_change([a], [a, f("c.csv", min_time=None)]) == UNKNOWN  # cannot tell
    touched = f("a", modified=2, min_time=D + DAY)
    assert earliest_change([a], [touched]) == D + DAY  # same size, new mtime: changed


def test_stale_ticks_start_after_the_change() -> None:
    # an event at 05:00 changes the ticks after it: from the next midnight
    assert stale_ticks(D, D + 5 * DAY, D + timedelta(hours=5), DAY) == (D + DAY, D + 5 * DAY)
    # an event exactly on a tick belongs to the next one
    assert stale_ticks(D, D + 5 * DAY, D + 2 * DAY, DAY) == (D + 3 * DAY, D + 5 * DAY)
    # before the interval: all of it; unknown: all of it
    assert stale_ticks(D, D + 5 * DAY, D - 9 * DAY, DAY) == (D, D + 5 * DAY)
    assert stale_ticks(D, D + 5 * DAY, UNKNOWN, DAY) == (D, D + 5 * DAY)
    start, end = stale_ticks(D, D + 2 * DAY, D + 7 * DAY, DAY)  # after it: nothing
    assert start >= end


# -- through materialize, on both registry backends ---------------------------------------------

ROWS = [("a", 1.0, D + timedelta(hours=1)), ("b", 5.0, D + timedelta(days=1, hours=2))]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    overrides = {}
    if request.param == "postgres":
        overrides = {"registry": {"url": request.getfixturevalue("postgres_db_url")}}
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay(ROWS)}, overrides=overrides)
    workspace = Workspace(config, registry=registry)
    materialize(workspace, None, D, D + 5 * DAY, online=False)
    yield tmp_path, workspace
    registry.close()


def stale_of(workspace: Workspace) -> dict[str, list[tuple[datetime, datetime, str]]]:
    return {n: [(m.start, m.end, m.reason) for m in marks]
            for n, marks in detect_late_data(workspace).items()}  # fmt: skip


def test_a_late_file_marks_its_ticks_and_the_derived_ones(repo: Any) -> None:
    root, workspace = repo
    assert stale_of(workspace) == {n: [] for n in FEATURES}
    pq.write_table(pay([("c", 2.0, D + timedelta(days=2, hours=1))]), root / "data/pay/late.parquet")
    from_mar_4 = [(D + 3 * DAY, D + 5 * DAY, "source changed")]
    assert stale_of(workspace) == {n: from_mar_4 for n in FEATURES}
    rows = {r.feature: r for r in freshness(workspace.registry, now=D + 5 * DAY)}
    assert rows["spend_share"].status == "stale"
    assert rows["spend_share"].stale_reason == "source changed"
    assert rows["spend_2d"].stale_from == D + 3 * DAY
    table = freshness_table(workspace.registry, now=D + 5 * DAY).to_pylist()
    assert {r["feature"]: r["stale_reason"] for r in table} == dict.fromkeys(
        FEATURES, "source changed"
    )
    assert 'fsql_feature_stale{feature="spend_2d",version="1"} 1.0' in prometheus_metrics(
        workspace.registry, now=D + 5 * DAY
    )
    results = materialize(workspace, None, D, D + 5 * DAY, online=False)
    assert {r.feature: r.intervals for r in results} == dict.fromkeys(
        FEATURES, ((D + 3 * DAY, D + 5 * DAY),)
    )
    assert stale_of(workspace) == {n: [] for n in FEATURES}
    rows = {r.feature: r for r in freshness(workspace.registry, now=D + 5 * DAY)}
    assert all(r.status == "fresh" and r.stale_reason is None for r in rows.values())
    assert 'fsql_feature_stale{feature="spend_2d",version="1"} 0.0' in prometheus_metrics(
        workspace.registry, now=D + 5 * DAY
    )


def test_a_removed_file_marks_the_ticks_after_its_events(repo: Any) -> None:
    root, workspace = repo
    extra = root / "data/pay/extra.parquet"
    pq.write_table(pay([("c", 2.0, D + timedelta(days=3, hours=1))]), extra)
    materialize(workspace, None, D, D + 5 * DAY, online=False)  # recomputes from Mar 5
    assert stale_of(workspace) == {n: [] for n in FEATURES}
    extra.unlink()
    assert stale_of(workspace)["spend_total"] == [(D + 4 * DAY, D + 5 * DAY, "source changed")]


def test_an_input_recomputed_alone_makes_the_derived_feature_stale(repo: Any) -> None:
    _, workspace = repo
    materialize(workspace, ["spend_2d"], D + DAY, D + 3 * DAY, force=True, online=False)
    assert stale_of(workspace) == {
        "spend_2d": [], "spend_total": [],
        "spend_share": [(D + DAY, D + 3 * DAY, "input recomputed")],
    }  # fmt: skip
    results = materialize(workspace, None, D, D + 5 * DAY, online=False)
    assert {r.feature: r.intervals for r in results} == {
        "spend_2d": (), "spend_total": (), "spend_share": ((D + DAY, D + 3 * DAY),),
    }  # fmt: skip
    assert stale_of(workspace)["spend_share"] == []


def test_a_failed_recompute_leaves_the_ledger_as_it_was(repo: Any) -> None:
    root, workspace = repo
    registry = workspace.registry
    before = {n: registry.ledger_entries(n) for n in FEATURES}
    pq.write_table(pay([("c", 2.0, D + timedelta(days=2, hours=1))]), root / "data/pay/late.parquet")

    def refuse(staged: StagedInterval) -> None:
        raise RejectedData(f"refused {staged.feature}")

    with pytest.raises(RejectedData):
        materialize(workspace, None, D, D + 5 * DAY, online=False, gate=refuse)
    assert {n: registry.ledger_entries(n) for n in FEATURES} == before
    # still stale: the next run recomputes
    assert {r.feature: r.status for r in freshness(registry, now=D + 5 * DAY)} == dict.fromkeys(
        FEATURES, "stale"
    )
    results = materialize(workspace, None, D, D + 5 * DAY, online=False)
    assert all(r.intervals == ((D + 3 * DAY, D + 5 * DAY),) for r in results)


@pytest.mark.s3
def test_a_late_file_on_s3_is_detected(tmp_path: Path, s3_endpoint: Any) -> None:
    """On S3 the listing's size and LastModified are the fingerprint (no object is read but
    the new file's footer)."""
    fs = s3_endpoint.filesystem()
    base = f"{s3_endpoint.bucket}/{s3_endpoint.prefix}/pay"

    def upload(name: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        with fs.open_output_stream(f"{base}/{name}") as out:
            out.write(sink.getvalue().to_pybytes())

    upload("part-0.parquet", pay(ROWS))
    config, registry = make_repo(
        tmp_path, DEFS.replace("'data/pay'", f"'s3://{base}'"), {},
        offline_uri=f"{s3_endpoint.uri}/offline",
        overrides={"offline_store": {"s3_endpoint_url": s3_endpoint.endpoint_url,
                                     "region": s3_endpoint.region}},
    )  # fmt: skip
    with registry:
        workspace = Workspace(config, registry=registry)
        materialize(workspace, None, D, D + 5 * DAY, online=False)
        [entry] = registry.ledger_entries("spend_2d")
        [(_, [recorded])] = (entry.inputs or {}).items()
        assert recorded.modified is not None and recorded.min_time == D + timedelta(hours=1)
        assert stale_of(workspace) == {n: [] for n in FEATURES}
        upload("late.parquet", pay([("c", 2.0, D + timedelta(days=2, hours=1))]))
        assert stale_of(workspace)["spend_2d"] == [(D + 3 * DAY, D + 5 * DAY, "source changed")]
        results = materialize(workspace, None, D, D + 5 * DAY, online=False)
        assert all(r.intervals == ((D + 3 * DAY, D + 5 * DAY),) for r in results)


def test_entries_recorded_before_inputs_existed_are_never_stale(repo: Any) -> None:
    root, workspace = repo
    registry = workspace.registry
    registry.ledger_commit("spend_2d", 1, D, D + 5 * DAY, engine="duckdb", rows=1,
                           location="x")  # as an older fsql wrote it: no inputs  # fmt: skip
    pq.write_table(pay([("c", 2.0, D + timedelta(hours=1))]), root / "data/pay/late.parquet")
    assert stale_of(workspace)["spend_2d"] == []


# -- never misses a change: incremental + late data == everything recomputed ---------------------

ROW = st.tuples(st.sampled_from("abc"), st.integers(1, 9), st.integers(0, 7 * 24 - 1))


def _table(rows: list[tuple[str, int, int]]) -> pa.Table:
    return pay([(u, float(x), D + timedelta(hours=h)) for u, x, h in rows])


def _timelines(workspace: Workspace) -> dict[str, list[dict[str, Any]]]:
    store = OfflineStore.from_config(workspace.config)
    features = workspace.registry.analysis().features
    return {
        n: sorted(store.read_timeline(n, 1, timeline_schema(features[n])).to_pylist(),
                  key=lambda r: (r["user_id"], r["feature_time"]))
        for n in FEATURES
    }  # fmt: skip


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(first=st.lists(ROW, min_size=1, max_size=6), late=st.lists(ROW, min_size=1, max_size=4),
       rewrite=st.booleans())  # fmt: skip
def test_recomputing_the_stale_ticks_equals_recomputing_everything(
    tmp_path_factory: pytest.TempPathFactory,
    first: list[tuple[str, int, int]],
    late: list[tuple[str, int, int]],
    rewrite: bool,
) -> None:
    root = tmp_path_factory.mktemp("late")
    config, registry = make_repo(root, DEFS, {"pay": _table(first)})
    with registry:
        workspace = Workspace(config, registry=registry)
        materialize(workspace, None, D, D + 7 * DAY, online=False)
        if rewrite:  # the late rows appended to the same file: a changed file
            pq.write_table(_table(first + late), root / "data/pay/part-0.parquet")
        else:  # the late rows in a new file
            pq.write_table(_table(late), root / "data/pay/late.parquet")
        materialize(workspace, None, D, D + 7 * DAY, online=False)
        incremental = _timelines(workspace)
        materialize(workspace, None, D, D + 7 * DAY, online=False, force=True)
        assert incremental == _timelines(workspace)


def test_an_interval_records_only_the_files_that_can_change_it(repo: Any) -> None:
    root, workspace = repo
    pq.write_table(pay([("c", 2.0, D + 9 * DAY)]), root / "data/pay/next-week.parquet")
    pq.write_table(pay([("c", 2.0, D + timedelta(days=2, hours=1))]), root / "data/pay/late.parquet")
    materialize(workspace, None, D, D + 5 * DAY, online=False)
    recorded = {e.start: sorted(Path(f.path).name for f in (e.inputs or {})["pay"])
                for e in workspace.registry.ledger_entries("spend_2d")}  # fmt: skip
    assert recorded == {D: ["part-0.parquet"], D + 3 * DAY: ["late.parquet", "part-0.parquet"]}
    assert stale_of(workspace)["spend_2d"] == []
