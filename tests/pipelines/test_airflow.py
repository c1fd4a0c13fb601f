"""The generated DAGs in a real Airflow: DagBag imports them, ``airflow dags test`` runs them.

Airflow runs in subprocesses with a throwaway AIRFLOW_HOME (tests/services/airflow.py); the
feature repo, registry, offline and online stores live in the test's temp dir.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fsql.compute.materialize import timeline_schema
from fsql.compute.runs import RunLog
from fsql.config import SchedulerConfig
from fsql.language.checks import Check
from fsql.pipelines.artifact import RetryPolicy
from fsql.pipelines.manager import FeaturePipelineManager
from fsql.registry import open_registry
from fsql.stores.offline import OfflineStore
from fsql.stores.online import open_online_store
from fsql.stores.online.base import FeatureRef, serve
from fsql.workspace import Workspace
from tests.pipelines._repo import DEFINITIONS, D, make_repo, reference

pytestmark = pytest.mark.airflow

FEATURES = ("orders_2d", "spend_2d", "avg_order_2d")

_DAGBAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print("DAGBAG" + json.dumps({
    "errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": {
        dag_id: {
            "timetable": type(dag.timetable).__name__,
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tags": sorted(dag.tags),
            "start_date": dag.start_date.isoformat(),
            "tasks": {
                t.task_id: {
                    "upstream": sorted(t.upstream_task_ids),
                    "retries": t.retries,
                    "retry_delay": t.retry_delay.total_seconds(),
                    "execution_timeout": t.execution_timeout.total_seconds(),
                    "backoff": t.retry_exponential_backoff,
                    "doc_md": t.doc_md,
                    "max_active_tis_per_dag": t.max_active_tis_per_dag,
                }
                for t in dag.tasks
            },
        }
        for dag_id, dag in bag.dags.items()
    },
}))
"""


def _dagbag(airflow_env, dags: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _DAGBAG, str(dags)], env=airflow_env.env(dags),
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("DAGBAG"))
    return json.loads(line[len("DAGBAG") :])


def test_generated_dags_import_into_airflow_dagbag(airflow_env, tmp_path: Path) -> None:
    config = make_repo(tmp_path / "repo")
    dags = tmp_path / "dags"
    manager = FeaturePipelineManager(Workspace(config))
    manager.create_pipeline(feature_set="model_v1", dags_folder=str(dags), start=D)
    manager.create_pipeline(["spend_2d"], dags_folder=str(dags), schedule="0 6 * * *",
                            retry=RetryPolicy(retries=4, delay_seconds=30, timeout_seconds=900),
                            start=D)  # fmt: skip
    every_2_days = make_repo(tmp_path / "repo2", DEFINITIONS.replace(
        "WINDOW '2 days' EVERY '1 day'", "WINDOW '2 days' EVERY '2 days'").replace(
        # the derived feature's ticks must be ticks of its inputs (checked at plan time)
        "CREATE FEATURE avg_order_2d ENTITY user", "CREATE FEATURE avg_order_2d ENTITY user "
        "EVERY '2 days'"))  # fmt: skip
    FeaturePipelineManager(Workspace(every_2_days)).create_pipeline(
        ["spend_2d"], dags_folder=str(dags), name="every_2_days", start=D)  # fmt: skip
    bag = _dagbag(airflow_env, dags)
    assert bag["errors"] == {}
    assert sorted(bag["dags"]) == ["fsql_every_2_days", "fsql_model_v1", "fsql_spend_2d"]
    assert bag["dags"]["fsql_every_2_days"]["timetable"] == "DeltaDataIntervalTimetable"

    model = bag["dags"]["fsql_model_v1"]
    assert model["timetable"] == "CronDataIntervalTimetable"
    assert (model["catchup"], model["max_active_runs"]) == (True, 1)
    assert model["tags"] == ["engine:duckdb", "fsql", "set:model_v1"]
    assert datetime.fromisoformat(model["start_date"]) == D
    tasks = model["tasks"]
    assert {k: v["upstream"] for k, v in tasks.items()} == {
        "orders_2d": [], "spend_2d": [], "avg_order_2d": ["orders_2d", "spend_2d"],
    }  # fmt: skip
    assert "Average order value over 2 days" in tasks["avg_order_2d"]["doc_md"]
    assert (tasks["spend_2d"]["retries"], tasks["spend_2d"]["backoff"]) == (2, 2.0)
    assert {t["max_active_tis_per_dag"] for t in tasks.values()} == {1}
    # every task has an execution timeout: a hung try fails and is retried
    assert {t["execution_timeout"] for t in tasks.values()} == {7200.0}

    single = bag["dags"]["fsql_spend_2d"]
    assert list(single["tasks"]) == ["spend_2d"]
    assert (single["tasks"]["spend_2d"]["retries"], single["tasks"]["spend_2d"]["retry_delay"],
            single["tasks"]["spend_2d"]["execution_timeout"]) == (4, 30.0, 900.0)  # fmt: skip


def _partitions(config, feature: str) -> list[str]:
    return sorted(OfflineStore.from_config(config).read_manifest(feature, 1))


def _online(config, feature: str, users: list[str], now: datetime) -> dict[str, object]:
    store = open_online_store(config)
    try:
        rows = store.read("user", [FeatureRef(feature)], users)
    finally:
        store.close()
    return {u: serve(row[0], None, now) for u, row in zip(users, rows, strict=True)}


@pytest.mark.slow
def test_dags_test_materializes_exactly_the_run_interval_offline_and_online(
    airflow_env, airflow_api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = make_repo(tmp_path / "repo")
    dags = tmp_path / "dags"
    pipeline_id = FeaturePipelineManager(Workspace(config)).create_pipeline(
        feature_set="model_v1", dags_folder=str(dags), start=D
    )
    # logical date 01-05: the data interval [01-04, 01-05), so exactly tick 01-04
    result = airflow_env.run("dags", "test", pipeline_id, "2024-01-05", dags_folder=dags)
    assert result.returncode == 0, result.output[-5000:]
    tick = D + timedelta(days=3)
    registry = open_registry(config)
    try:
        for feature in FEATURES:
            assert _partitions(config, feature) == ["2024-01-04"]
            assert registry.ledger_intervals(feature, 1) == [(tick, tick + timedelta(days=1))]
            resolved = registry.analysis().features[feature]
            table = OfflineStore.from_config(config).read_timeline(
                feature, 1, timeline_schema(resolved))  # fmt: skip
            got = {r["user_id"]: r[feature] for r in table.to_pylist()}
            want = {u: reference(feature, u, tick) for u in ("u1", "u2")}
            assert got == pytest.approx(want), feature
        runs = RunLog(registry).runs(pipeline=pipeline_id)
    finally:
        registry.close()
    assert sorted((r.feature, r.status, r.trigger) for r in runs) == sorted(
        (f, "success", "airflow") for f in FEATURES)  # fmt: skip
    assert {r.external_id for r in runs} == {runs[0].external_id}
    assert runs[0].external_id.startswith("manual__")
    assert all((r.start, r.end) == (tick, tick + timedelta(days=1)) for r in runs)

    # the online store serves the values at the last materialized tick
    now = tick + timedelta(hours=1)
    for feature in FEATURES:
        got = _online(config, feature, ["u1", "u2", "u3"], now)
        want = {u: reference(feature, u, tick) for u in ("u1", "u2")} | {"u3": None}
        assert got == pytest.approx(want), feature

    # the next interval adds tick 01-05 and moves the online values on
    result = airflow_env.run("dags", "test", pipeline_id, "2024-01-06", dags_folder=dags)
    assert result.returncode == 0, result.output[-5000:]
    nxt = tick + timedelta(days=1)
    assert _partitions(config, "avg_order_2d") == ["2024-01-04", "2024-01-05"]
    got = _online(config, "spend_2d", ["u1", "u2", "u3"], nxt + timedelta(hours=1))
    assert got == pytest.approx({u: reference("spend_2d", u, nxt) for u in ("u1", "u2", "u3")})

    # with [scheduler] airflow_url, the pipeline status comes from Airflow's REST API
    monkeypatch.setenv("FSQL_TEST_AIRFLOW_PASSWORD", airflow_api.password)
    with_api = config.replace(scheduler=SchedulerConfig(
        airflow_url=airflow_api.url, airflow_username=airflow_api.username,
        airflow_password_env="FSQL_TEST_AIRFLOW_PASSWORD"))  # fmt: skip
    status = FeaturePipelineManager(Workspace(with_api)).get_pipeline_status(pipeline_id)
    assert (status.source, status.status) == ("airflow", "success")
    assert [(r["data_interval_start"], r["state"]) for r in status.runs] == [
        ("2024-01-05T00:00:00Z", "success"), ("2024-01-04T00:00:00Z", "success")]  # fmt: skip
    assert {t: v["state"] for t, v in status.runs[0]["tasks"].items()} == {
        f: "success" for f in FEATURES}  # fmt: skip
    assert status.metrics["features"]["spend_2d"]["last_tick"] == nxt.isoformat()


@pytest.mark.slow
def test_a_failing_task_fails_the_run_after_retries_and_writes_nothing(
    airflow_env, tmp_path: Path
) -> None:
    config = make_repo(tmp_path / "repo")
    dags = tmp_path / "dags"
    pipeline_id = FeaturePipelineManager(Workspace(config)).create_pipeline(
        ["avg_order_2d"], dags_folder=str(dags), start=D, name="failing",
        retry=RetryPolicy(retries=1, delay_seconds=0, exponential_backoff=False),
    )  # fmt: skip
    source = config.repo / "data" / "purchases"
    source.rename(source.with_name("gone"))
    result = airflow_env.run("dags", "test", pipeline_id, "2024-01-05", dags_folder=dags)
    assert result.returncode != 0
    assert "state=failed" in result.output

    registry = open_registry(config)
    try:
        runs = RunLog(registry).runs(pipeline=pipeline_id)
        for feature in FEATURES:
            assert registry.ledger_intervals(feature, 1) == []
    finally:
        registry.close()
    # each source-reading task failed twice (first try + one retry); the derived one never ran
    tries = sorted((r.feature, r.try_number, r.status) for r in runs)
    assert tries == [("orders_2d", 1, "failed"), ("orders_2d", 2, "failed"),
                     ("spend_2d", 1, "failed"), ("spend_2d", 2, "failed")]  # fmt: skip
    assert all("purchases" in (r.error or "") for r in runs)
    offline = config.repo / ".fsql" / "offline"
    assert not list(offline.rglob("*.parquet")) if offline.exists() else True
    assert _online(config, "spend_2d", ["u1"], D + timedelta(days=4)) == {"u1": None}

    # a failed error check fails its task at once (retrying cannot fix values) and is recorded
    source.with_name("gone").rename(source)
    FeaturePipelineManager(Workspace(config)).create_pipeline(
        ["avg_order_2d"], dags_folder=str(dags), start=D, name="failing",
        retry=RetryPolicy(retries=1, delay_seconds=0, exponential_backoff=False),
        checks=[Check(name="small", feature="spend_2d", expression="value < 12")],
    )  # fmt: skip
    result = airflow_env.run("dags", "test", pipeline_id, "2024-01-05", dags_folder=dags)
    assert result.returncode != 0 and "check small on spend_2d" in result.output
    registry = open_registry(config)
    try:
        log = RunLog(registry)
        latest = [r for r in log.runs(pipeline=pipeline_id) if r.external_id not in
                  {x.external_id for x in runs}]  # fmt: skip
        checks = log.check_results([r.id for r in latest])
    finally:
        registry.close()
    assert sorted((r.feature, r.try_number, r.status) for r in latest) == [
        ("orders_2d", 1, "success"), ("spend_2d", 1, "failed")]  # fmt: skip
    assert [(c.name, c.passed, c.observed["failing_rows"]) for c in checks] == [("small", False, 1)]
    # the checked values stay out of the online store; the passing feature's are served
    assert _online(config, "spend_2d", ["u1"], D + timedelta(days=4)) == {"u1": None}
    assert _online(config, "orders_2d", ["u1"], D + timedelta(days=4)) == {
        "u1": reference("orders_2d", "u1", D + timedelta(days=3))}  # fmt: skip
