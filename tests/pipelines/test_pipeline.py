"""Pipelines without an Airflow process: compiling, deploying, running a task's interval."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fsql.compute.materialize import timeline_schema
from fsql.compute.runs import RunLog
from fsql.errors import CheckFailed, ConfigError, FsqlError
from fsql.language.checks import Check
from fsql.pipelines.artifact import load_artifact
from fsql.pipelines.dag import cron_for_period, deployed_plan
from fsql.pipelines.manager import FeaturePipelineManager
from fsql.pipelines.tasks import interval_ending_at, run_feature_interval
from fsql.registry import open_registry
from fsql.stores.offline import OfflineStore
from fsql.workspace import Workspace
from tests.pipelines._repo import DEFINITIONS, D, apply, make_repo, reference

NOW = datetime(2024, 1, 7, 15, 30, tzinfo=UTC)


@pytest.fixture()
def repo(tmp_path: Path):
    return make_repo(tmp_path / "repo")


def test_cron_for_cadence_fires_on_epoch_multiples() -> None:
    assert cron_for_period(60) == "* * * * *"
    assert cron_for_period(3600) == "0 * * * *"
    assert cron_for_period(8 * 3600) == "0 */8 * * *"
    assert cron_for_period(7 * 86400) == "0 0 * * 4"  # 1970-01-01 was a Thursday
    assert cron_for_period(7 * 3600) is None  # 7 hours does not divide a day
    assert cron_for_period(90) is None


def test_create_writes_a_thin_dag_and_a_plan_with_inputs_edges_and_descriptions(
    repo, tmp_path: Path
) -> None:
    dags = tmp_path / "dags"
    manager = FeaturePipelineManager(Workspace(repo))
    deployment = manager.deploy_pipeline(feature_set="model_v1", dags_folder=str(dags),
                                         start=D)  # fmt: skip
    assert deployment.changed and deployment.pipeline_id == "fsql_model_v1"
    dag_text = deployment.dag_file.read_text()
    # thin: no feature logic, only the plan's name
    assert "build_dag" in dag_text and deployment.plan_file.name in dag_text
    assert "SELECT" not in dag_text and "spend_2d" not in dag_text
    plan = load_artifact(deployment.plan_file)
    assert [t.feature for t in plan.tasks] == ["orders_2d", "spend_2d", "avg_order_2d"]
    assert plan.task("avg_order_2d").upstream == ("orders_2d", "spend_2d")
    assert plan.task("spend_2d").description == "Money spent in the last 2 days"
    assert (plan.schedule, plan.interval_seconds) == ("0 0 * * *", None)
    assert plan.start_date == D and plan.catchup and plan.max_active_runs == 1
    # portable: no absolute path of this machine in the plan file, readable by other users
    assert plan.config["registry"]["url"] == "sqlite:///.fsql/registry.db"
    assert plan.repo == str(repo.repo.resolve())  # resolved against the plan file's folder
    raw = json.loads(deployment.plan_file.read_text())
    assert raw["repo"] == "../repo" and str(tmp_path) not in deployment.plan_file.read_text()
    for path in (deployment.plan_file, deployment.dag_file):
        assert path.stat().st_mode & 0o044 == 0o044, oct(path.stat().st_mode)
    assert "set:model_v1" in plan.tags


def test_redeploy_unchanged_is_a_noop_and_a_new_version_updates_the_dag(repo, tmp_path) -> None:
    dags = tmp_path / "dags"
    manager = FeaturePipelineManager(Workspace(repo))
    first = manager.deploy_pipeline(["avg_order_2d"], dags_folder=str(dags), name="p")
    first_start = load_artifact(first.plan_file).start_date
    mtimes = {p.name: p.stat().st_mtime_ns for p in dags.iterdir()}
    again = manager.deploy_pipeline(["avg_order_2d"], dags_folder=str(dags), name="p")
    assert not again.changed
    assert {p.name: p.stat().st_mtime_ns for p in dags.iterdir()} == mtimes

    apply(repo, DEFINITIONS.replace("WINDOW '2 days' EVERY '1 day'", "WINDOW '2 days'"
                                    " EVERY '1 day' TTL '3 days'"))  # fmt: skip
    updated = manager.deploy_pipeline(["avg_order_2d"], dags_folder=str(dags), name="p")
    assert updated.changed and updated.previous is not None
    plan = load_artifact(updated.plan_file)
    assert plan.task("spend_2d").version == 2
    # the start date of the first deploy is kept, and only one plan file remains
    assert plan.start_date == first_start
    assert sorted(p.name for p in dags.iterdir()) == sorted(["fsql_p.py", updated.plan_file.name])
    assert deployed_plan(dags, "fsql_p") == updated.plan_file


def test_create_errors_say_what_would_be_right(repo, tmp_path) -> None:
    manager = FeaturePipelineManager(Workspace(repo))
    with pytest.raises(ConfigError, match="--dags-folder"):
        manager.create_pipeline(["spend_2d"])
    with pytest.raises(ConfigError, match="not a cron expression"):
        manager.create_pipeline(["spend_2d"], dags_folder=str(tmp_path), schedule="daily")
    with pytest.raises(FsqlError, match="no feature set named nope"):
        manager.create_pipeline(dags_folder=str(tmp_path), feature_set="nope")


def _plan(repo, tmp_path, **options):
    manager = FeaturePipelineManager(Workspace(repo))
    deployment = manager.deploy_pipeline(dags_folder=str(tmp_path / "dags"), start=D,
                                         name="all", **options)  # fmt: skip
    return load_artifact(deployment.plan_file)


def _ticks(repo, feature: str) -> list[datetime]:
    return sorted({r["feature_time"] for r in _rows(repo, feature)})


def _rows(repo, feature: str) -> list[dict]:
    registry = open_registry(repo)
    try:
        resolved = registry.analysis().features[feature]
        table = OfflineStore.from_config(repo).read_timeline(feature, 1, timeline_schema(resolved))
    finally:
        registry.close()
    return sorted(table.to_pylist(), key=lambda r: (r["feature_time"], r["user_id"]))


def _served(repo, feature: str) -> dict[str, tuple]:
    from fsql.stores.online import open_online_store
    from fsql.stores.online.base import FeatureRef

    users = ["u1", "u2", "u3"]
    store = open_online_store(repo)
    try:
        rows = store.read("user", [FeatureRef(feature)], users)
    finally:
        store.close()
    return {
        u: (r[0].value, r[0].feature_time) if r[0] else None
        for u, r in zip(users, rows, strict=True)
    }


def test_a_run_materializes_exactly_the_ticks_of_its_interval(repo, tmp_path) -> None:
    plan = _plan(repo, tmp_path)
    # the interval [01-04, 01-05) owns tick 01-04 only: not 01-05, its end
    outcome = run_feature_interval(plan, "spend_2d", D + timedelta(days=3), D + timedelta(days=4))
    assert outcome.status == "success" and outcome.computed
    assert _ticks(repo, "spend_2d") == [D + timedelta(days=3)]
    # an interval not starting on a tick owns the ticks inside it: 01-05 for [01-04 06:00, 01-05 06:00)
    run_feature_interval(plan, "spend_2d", D + timedelta(days=3, hours=6),
                         D + timedelta(days=4, hours=6))  # fmt: skip
    assert _ticks(repo, "spend_2d") == [D + timedelta(days=3), D + timedelta(days=4)]
    # an interval holding no tick is recorded as skipped and writes nothing
    skipped = run_feature_interval(plan, "spend_2d", D + timedelta(days=5, hours=1),
                                   D + timedelta(days=5, hours=2))  # fmt: skip
    assert skipped.status == "skipped"
    assert _ticks(repo, "spend_2d") == [D + timedelta(days=3), D + timedelta(days=4)]


def test_zero_width_intervals_become_the_schedule_interval_ending_there(repo, tmp_path) -> None:
    plan = _plan(repo, tmp_path)
    assert interval_ending_at(plan, D + timedelta(days=3)) == (D + timedelta(days=2),
                                                               D + timedelta(days=3))  # fmt: skip
    assert interval_ending_at(plan, D + timedelta(days=3, hours=5)) == (
        D + timedelta(days=2), D + timedelta(days=3))  # fmt: skip
    hourly = _plan(repo, tmp_path, schedule="15 * * * *")
    assert interval_ending_at(hourly, D + timedelta(hours=3)) == (
        D + timedelta(hours=1, minutes=15), D + timedelta(hours=2, minutes=15))  # fmt: skip


def test_runs_are_recorded_with_statistics_and_reruns_are_idempotent(repo, tmp_path) -> None:
    plan = _plan(repo, tmp_path)
    start, end = D + timedelta(days=2), D + timedelta(days=4)
    first = run_feature_interval(plan, "spend_2d", start, end, external_id="r1", try_number=1)
    before = (_rows(repo, "spend_2d"), _served(repo, "spend_2d"))
    again = run_feature_interval(plan, "spend_2d", start, end, external_id="r2")
    forced = run_feature_interval(plan, "spend_2d", start, end, force=True, external_id="r3")
    assert (first.computed, again.computed, forced.computed) == (True, False, True)
    # a re-run, forced or not, leaves the same offline rows and the same online values
    assert first.rows == again.rows == forced.rows
    assert (_rows(repo, "spend_2d"), _served(repo, "spend_2d")) == before
    assert before[1]["u1"] == (reference("spend_2d", "u1", end - timedelta(days=1)),
                               end - timedelta(days=1))  # fmt: skip

    ticks = [D + timedelta(days=2), D + timedelta(days=3)]
    values = [reference("spend_2d", u, t) for t in ticks for u in ("u1", "u2", "u3")
              if reference("orders_2d", u, t) is not None]  # fmt: skip
    present = [v for v in values if v is not None]
    assert first.stats["rows"] == len(values) == first.rows
    assert first.stats["null_fraction"] == pytest.approx(values.count(None) / len(values))
    assert first.stats["min"] == min(present) and first.stats["max"] == max(present)
    assert first.stats["mean"] == pytest.approx(sum(present) / len(present))
    assert first.stats["ticks"] == 2

    registry = open_registry(repo)
    try:
        runs = RunLog(registry).runs(feature="spend_2d")
    finally:
        registry.close()
    assert [r.external_id for r in runs] == ["r3", "r2", "r1"]
    r1 = runs[-1]
    assert (r1.pipeline, r1.trigger, r1.version, r1.engine, r1.status) == (
        "fsql_all", "airflow", 1, "duckdb", "success")  # fmt: skip
    assert (r1.start, r1.end, r1.try_number, r1.rows) == (start, end, 1, first.rows)
    assert r1.finished_at is not None and r1.finished_at >= r1.started_at


def test_a_failed_check_fails_the_run_and_is_recorded_a_warning_does_not(repo, tmp_path) -> None:
    checks = [
        Check(name="small", feature="spend_2d", expression="value < 12"),
        Check(
            name="no_nulls", feature="spend_2d", expression="null_fraction = 0", severity="warn"
        ),  # fmt: skip
    ]
    plan = _plan(repo, tmp_path, checks=checks)
    # [01-04, 01-05) owns tick 01-04: u1 spent 10 + 5 = 15 in [01-02, 01-04) (the 7.0 at
    # exactly 01-04 00:00 belongs to the next tick)
    with pytest.raises(CheckFailed, match="check small on spend_2d") as raised:
        run_feature_interval(plan, "spend_2d", D + timedelta(days=3), D + timedelta(days=4))
    # the failing values were committed nowhere: not offline, not in the ledger, not online
    from fsql.stores.online import open_online_store
    from fsql.stores.online.base import FeatureRef

    store = open_online_store(repo)
    try:
        assert store.read("user", [FeatureRef("spend_2d")], ["u1", "u2"]) == [[None], [None]]
    finally:
        store.close()
    assert _ticks(repo, "spend_2d") == []
    registry = open_registry(repo)
    try:
        assert registry.ledger_intervals("spend_2d", 1) == []
    finally:
        registry.close()
    # ... but kept in quarantine, where the error says, for inspection
    quarantine = Path(raised.value.quarantine)
    assert str(quarantine) in str(raised.value)
    assert quarantine.parent == (
        repo.repo / ".fsql" / "offline" / "_quarantine" / "feature=spend_2d" / "version=1"
    )
    import pyarrow.dataset as ds

    kept = ds.dataset(str(quarantine), format="parquet", partitioning="hive").to_table()
    u1 = [r for r in kept.to_pylist() if r["user_id"] == "u1"]
    assert [r["spend_2d"] for r in u1] == [reference("spend_2d", "u1", D + timedelta(days=3))]
    ok = run_feature_interval(plan, "spend_2d", D + timedelta(days=2), D + timedelta(days=3))
    assert ok.status == "success"
    assert [(c["name"], c["passed"]) for c in ok.checks] == [("small", True), ("no_nulls", True)]

    registry = open_registry(repo)
    try:
        log = RunLog(registry)
        failed, passed = log.runs(feature="spend_2d")[::-1]
        results = {c.name: c for c in log.check_results([failed.id])}
    finally:
        registry.close()
    assert failed.status == "failed" and "CheckFailed" in (failed.error or "")
    assert results["small"].passed is False and results["small"].observed["failing_rows"] == 1
    assert results["small"].observed["examples"] == [reference("spend_2d", "u1",
                                                               D + timedelta(days=3))]  # fmt: skip
    assert results["no_nulls"].passed is True
    assert passed.status == "success"


def test_a_missing_source_fails_the_run_and_writes_nothing(repo, tmp_path) -> None:
    plan = _plan(repo, tmp_path)
    source = repo.repo / "data" / "purchases"
    source.rename(repo.repo / "data" / "moved")
    with pytest.raises(FsqlError, match="purchases"):
        run_feature_interval(plan, "spend_2d", D + timedelta(days=3), D + timedelta(days=4))
    registry = open_registry(repo)
    try:
        (run,) = RunLog(registry).runs(feature="spend_2d")
        assert registry.ledger_intervals("spend_2d", 1) == []
    finally:
        registry.close()
    assert run.status == "failed" and "purchases" in (run.error or "")
    assert not (repo.repo / ".fsql" / "offline" / "feature=spend_2d").exists() or not any(
        (repo.repo / ".fsql" / "offline" / "feature=spend_2d").rglob("*.parquet"))  # fmt: skip
    # once the file is back, the same interval succeeds (what Airflow's retry does)
    (repo.repo / "data" / "moved").rename(source)
    retried = run_feature_interval(plan, "spend_2d", D + timedelta(days=3), D + timedelta(days=4))
    assert retried.status == "success" and _ticks(repo, "spend_2d") == [D + timedelta(days=3)]


def test_a_stale_version_is_refused_with_the_fix(repo, tmp_path) -> None:
    plan = _plan(repo, tmp_path)
    apply(repo, DEFINITIONS.replace("'Money spent in the last 2 days'", "'Spend, 2 days'")
          .replace("WINDOW '2 days' EVERY", "WINDOW '3 days' EVERY"))  # fmt: skip
    with pytest.raises(FsqlError, match="redeploy it with `fsql pipeline create`"):
        run_feature_interval(plan, "spend_2d", D + timedelta(days=3), D + timedelta(days=4))
    assert json.loads(json.dumps(plan.to_json()))["tasks"][1]["version"] == 1


def test_cli_and_api_materializations_are_recorded_too(repo) -> None:
    from fsql.compute.jobs import materialize_and_record

    checks = [Check(name="few_orders", feature="orders_2d", expression="max <= 2")]
    results = materialize_and_record(Workspace(repo), ["avg_order_2d"], D + 3 * timedelta(days=1), D + 5 * timedelta(days=1), trigger="api", checks=checks)  # fmt: skip
    assert sorted(r.feature for r in results) == sorted(["orders_2d", "spend_2d", "avg_order_2d"])
    registry = open_registry(repo)
    try:
        log = RunLog(registry)
        runs = {r.feature: r for r in log.runs()}
        (check,) = log.check_results([runs["orders_2d"].id])
    finally:
        registry.close()
    assert {r.trigger for r in runs.values()} == {"api"}
    spend = runs["spend_2d"]
    assert (spend.start, spend.end, spend.status, spend.stats["ticks"]) == (
        D + timedelta(days=3), D + timedelta(days=5), "success", 2)  # fmt: skip
    # rows written are changes: u1 and u2 at Jan 4 (the interval's first tick: a baseline),
    # then u1's new value at Jan 5 (u2's stays 3.0)
    assert spend.rows == 3 and spend.stats["max"] == reference(
        "spend_2d", "u1", D + timedelta(days=3)
    )
    assert (check.name, check.passed, dict(check.observed)) == ("few_orders", True, {"max": 2.0})

    (repo.repo / "data" / "purchases").rename(repo.repo / "data" / "moved")
    with pytest.raises(FsqlError, match="purchases"):
        materialize_and_record(Workspace(repo), ["spend_2d"], D, D + timedelta(days=1), force=True)
    registry = open_registry(repo)
    try:
        (failed,) = [r for r in RunLog(registry).runs() if r.status == "failed"]
    finally:
        registry.close()
    assert (failed.feature, failed.trigger, failed.rows) == ("spend_2d", "cli", None)
    assert "purchases" in (failed.error or "")


@pytest.mark.spark
def test_a_spark_pipeline_runs_its_tasks_on_the_configured_master(
    repo, tmp_path, spark_session
) -> None:
    plan = _plan(repo, tmp_path, engine="spark")
    assert plan.engine == "spark" and "engine:spark" in plan.tags
    assert plan.config["compute"]["spark_master"] == repo.compute.spark_master
    outcome = run_feature_interval(
        plan, "avg_order_2d", D + timedelta(days=3), D + timedelta(days=4)
    )
    assert outcome.status == "success"
    registry = open_registry(repo)
    try:
        engines = {r.feature: r.engine for r in RunLog(registry).runs()}
        resolved = registry.analysis().features["avg_order_2d"]
        table = OfflineStore.from_config(repo).read_timeline("avg_order_2d", 1,
                                                             timeline_schema(resolved))  # fmt: skip
        ledger = {e.feature: e.engine for e in registry.ledger_entries()}
    finally:
        registry.close()
    assert engines == {"avg_order_2d": "spark"}
    assert ledger == {"orders_2d": "spark", "spend_2d": "spark", "avg_order_2d": "spark"}
    tick = D + timedelta(days=3)
    got = {r["user_id"]: r["avg_order_2d"] for r in table.to_pylist()}
    assert got == pytest.approx({u: reference("avg_order_2d", u, tick) for u in ("u1", "u2")})


def test_a_cadence_without_a_cron_form_runs_on_a_delta_schedule_anchored_on_a_tick(
    tmp_path,
) -> None:
    config = make_repo(tmp_path / "repo", DEFINITIONS.replace(
        "WINDOW '2 days' EVERY '1 day'", "WINDOW '2 days' EVERY '2 days'").replace(
        # the derived feature's ticks must be ticks of its inputs (checked at plan time)
        "CREATE FEATURE avg_order_2d ENTITY user", "CREATE FEATURE avg_order_2d ENTITY user "
        "EVERY '2 days'"))  # fmt: skip
    manager = FeaturePipelineManager(Workspace(config))
    deployment = manager.deploy_pipeline(["spend_2d"], dags_folder=str(tmp_path / "dags"),
                                         start=D)  # fmt: skip
    plan = load_artifact(deployment.plan_file)
    assert (plan.schedule, plan.interval_seconds) == (None, 2 * 86400)
    # 2-day ticks are counted from 1970-01-01: 2023-12-31, 2024-01-02, 2024-01-04, ...
    assert plan.start_date == datetime(2023, 12, 31, tzinfo=UTC)
    assert interval_ending_at(plan, D + timedelta(days=3, hours=5)) == (
        D + timedelta(days=1), D + timedelta(days=3))  # fmt: skip
    outcome = run_feature_interval(plan, "spend_2d", D + timedelta(days=3), D + timedelta(days=5))
    assert outcome.stats["ticks"] == 1 and _ticks(config, "spend_2d") == [D + timedelta(days=3)]


def test_an_unchanged_redeploy_still_records_the_pipeline_in_a_registry_missing_it(
    repo, tmp_path
) -> None:
    from fsql.compute.runs import deployed_pipelines, ensure_tables

    manager = FeaturePipelineManager(Workspace(repo))
    first = manager.deploy_pipeline(["spend_2d"], dags_folder=str(tmp_path / "dags"))
    registry = open_registry(repo)
    try:
        db = ensure_tables(registry)
        with db.transaction(write=True):
            db.execute("DELETE FROM fsql_pipelines")
    finally:
        registry.close()
    again = manager.deploy_pipeline(["spend_2d"], dags_folder=str(tmp_path / "dags"))
    assert not again.changed and again.plan_file == first.plan_file
    registry = open_registry(repo)
    try:
        assert [p.pipeline_id for p in deployed_pipelines(registry)] == ["fsql_spend_2d"]
    finally:
        registry.close()
    assert manager.get_pipeline_status("spend_2d").status == "none"


def test_a_cron_schedule_without_croniter_names_the_extra(tmp_path: Path) -> None:
    """The Python API, like the CLI: croniter comes with fsql[airflow]."""
    make_repo(tmp_path / "repo")
    script = textwrap.dedent(f"""
        import sys
        sys.modules["croniter"] = None  # not installed
        from fsql.errors import MissingExtraError
        from fsql.pipelines.manager import FeaturePipelineManager
        from fsql.workspace import Workspace
        manager = FeaturePipelineManager(Workspace.open({str(tmp_path / "repo")!r}))
        try:
            manager.create_pipeline(["spend_2d"], dags_folder={str(tmp_path / "dags")!r},
                                    schedule="0 6 * * *")
        except MissingExtraError as exc:
            print("REFUSED", exc)
        """)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, cwd=root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "REFUSED croniter is not installed: pip install 'fsql[airflow]'" in done.stdout
    assert not (tmp_path / "dags").exists() or not any((tmp_path / "dags").iterdir())


def test_a_plan_moved_with_its_repo_runs_where_it_lands(repo, tmp_path) -> None:
    """The repo and its DAGs folder copied elsewhere (another machine, another checkout): the
    plan resolves the repo and the embedded stores there, not where it was written."""
    import shutil

    _plan(repo, tmp_path)
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "repo", moved / "repo")
    shutil.copytree(tmp_path / "dags", moved / "dags")
    shutil.rmtree(tmp_path / "repo")
    (plan_file,) = (moved / "dags").glob("fsql_all.plan-*.json")
    plan = load_artifact(plan_file)
    assert plan.repo == str((moved / "repo").resolve())
    outcome = run_feature_interval(plan, "spend_2d", D + timedelta(days=3), D + timedelta(days=4))
    assert outcome.status == "success" and outcome.computed
    assert (moved / "repo" / ".fsql" / "offline").is_dir()


def test_an_interval_before_the_start_is_refused_and_not_recorded(repo, tmp_path) -> None:
    plan = _plan(repo, tmp_path)
    with pytest.raises(FsqlError, match=(
        r"the interval \[2023-12-30T00:00:00\+00:00, 2023-12-31T00:00:00\+00:00\) of spend_2d "
        r"starts before pipeline fsql_all's start 2024-01-01T00:00:00\+00:00.*fsql materialize "
        r"spend_2d --start 2023-12-30 --end 2024-01-01"
    )):  # fmt: skip
        run_feature_interval(plan, "spend_2d", D - timedelta(days=2), D - timedelta(days=1))
    registry = open_registry(repo)
    try:
        assert RunLog(registry).runs(feature="spend_2d") == []
    finally:
        registry.close()
    doc = (tmp_path / "dags").glob("fsql_all.py")
    assert list(doc)
    from fsql.pipelines.dag import _dag_doc

    assert "**Starts 2024-01-01T00:00:00+00:00.** Airflow runs no task for a logical date" in (
        _dag_doc(plan)
    )


def test_an_end_date_bounds_the_pipeline(repo, tmp_path) -> None:
    from click.testing import CliRunner

    from fsql.cli import cli

    result = CliRunner().invoke(cli, [
        "--repo", str(repo.repo), "pipeline", "create", "spend_2d", "--dags-folder",
        str(tmp_path / "dags"), "--start", "2024-01-01", "--end", "2024-01-05", "--name", "b",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert ("schedule: 0 0 * * * (UTC), from 2024-01-01T00:00:00+00:00 to "
            "2024-01-05T00:00:00+00:00, catchup on") in result.output  # fmt: skip
    (plan_file,) = (tmp_path / "dags").glob("fsql_b.plan-*.json")
    plan = load_artifact(plan_file)
    assert plan.end_date == D + timedelta(days=4)
    assert json.loads(plan_file.read_text())["end_date"] == "2024-01-05T00:00:00+00:00"
    # inside: runs; at or after the end: refused, naming the command for later ticks
    assert run_feature_interval(plan, "spend_2d", D + timedelta(days=3),
                                D + timedelta(days=4)).status == "success"  # fmt: skip
    with pytest.raises(FsqlError, match=(
        r"starts at or after pipeline fsql_b's end 2024-01-05T00:00:00\+00:00.*"
        r"fsql materialize spend_2d --start 2024-01-05"
    )):  # fmt: skip
        run_feature_interval(plan, "spend_2d", D + timedelta(days=4), D + timedelta(days=5))
    bad = CliRunner().invoke(cli, [
        "--repo", str(repo.repo), "pipeline", "create", "spend_2d", "--dags-folder",
        str(tmp_path / "dags"), "--start", "2024-01-05", "--end", "2024-01-05", "--name", "c",
    ])  # fmt: skip
    assert bad.exit_code == 1
    assert "--end 2024-01-05T00:00:00+00:00 is not after --start" in bad.output
