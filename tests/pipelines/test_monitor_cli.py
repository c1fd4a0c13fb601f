"""Monitoring (freshness, tables, Prometheus metrics, pipeline status) and the CLI commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from fsql.cli import cli
from fsql.compute.monitor import (
    checks_table,
    expected_tick,
    freshness,
    freshness_table,
    last_tick_in,
    prometheus_metrics,
    runs_table,
)
from fsql.errors import CheckFailed
from fsql.language.checks import Check
from fsql.pipelines.artifact import load_artifact
from fsql.pipelines.manager import FeaturePipelineManager
from fsql.pipelines.tasks import run_feature_interval
from fsql.registry import open_registry
from fsql.workspace import Workspace
from tests.pipelines._repo import D, make_repo

DAY = timedelta(days=1)


def test_last_and_expected_ticks() -> None:
    assert last_tick_in([(D, D + 3 * DAY)], DAY) == D + 2 * DAY
    assert last_tick_in([(D, D + 3 * DAY + timedelta(hours=1))], DAY) == D + 3 * DAY
    assert last_tick_in([(D + timedelta(hours=1), D + timedelta(hours=2))], DAY) is None
    # at 01-07 15:30 the interval [01-06, 01-07) has closed: its tick 01-06 is expected
    assert expected_tick(D + 6 * DAY + timedelta(hours=15), DAY) == D + 5 * DAY


@pytest.fixture()
def ran(tmp_path: Path):
    """A repo whose pipeline ran [01-03, 01-05) for two features and failed a check once."""
    config = make_repo(tmp_path / "repo")
    manager = FeaturePipelineManager(Workspace(config))
    manager.create_pipeline(
        ["spend_2d", "orders_2d"], dags_folder=str(tmp_path / "dags"), start=D, name="m",
        checks=[Check(name="at_most_one", feature="orders_2d", expression="max <= 1")],
    )  # fmt: skip
    plan = load_artifact(next((tmp_path / "dags").glob("*.json")))
    run_feature_interval(plan, "spend_2d", D + 2 * DAY, D + 4 * DAY, external_id="run1")
    with pytest.raises(CheckFailed):
        run_feature_interval(plan, "orders_2d", D + 2 * DAY, D + 4 * DAY, external_id="run1")
    return config


def test_freshness_says_how_far_behind_each_feature_is(ran) -> None:
    registry = open_registry(ran)
    try:
        now = D + 6 * DAY + timedelta(hours=15)  # expected tick 01-06; last tick 01-04
        rows = {f.feature: f for f in freshness(registry, now)}
        table = freshness_table(registry, now).to_pylist()
    finally:
        registry.close()
    spend = rows["spend_2d"]
    assert (spend.last_tick, spend.expected_tick) == (D + 3 * DAY, D + 5 * DAY)
    assert (spend.status, spend.behind, spend.lag, spend.online) == ("late", 2, 2 * DAY, True)
    # the check refused orders_2d's rows before they were committed: never materialized
    assert (rows["orders_2d"].last_tick, rows["orders_2d"].status) == (None, "never")
    assert (rows["avg_order_2d"].status, rows["avg_order_2d"].behind) == ("never", None)
    fresh_now = D + 4 * DAY + timedelta(minutes=1)
    registry = open_registry(ran)
    try:
        assert {f.feature: f.status for f in freshness(registry, fresh_now)}["spend_2d"] == "fresh"
    finally:
        registry.close()
    assert {r["feature"]: r["behind_ticks"] for r in table} == {
        "avg_order_2d": None, "orders_2d": None, "spend_2d": 2}  # fmt: skip


def test_tables_and_prometheus_metrics(ran) -> None:
    registry = open_registry(ran)
    try:
        runs = runs_table(registry).to_pylist()
        checks = checks_table(registry).to_pylist()
        metrics = prometheus_metrics(registry, D + 6 * DAY)
    finally:
        registry.close()
    assert [(r["feature"], r["status"]) for r in runs] == [("orders_2d", "failed"),
                                                         ("spend_2d", "success")]  # fmt: skip
    spend = runs[1]
    assert (spend["interval_start"], spend["interval_end"]) == (D + 2 * DAY, D + 4 * DAY)
    assert spend["rows_written"] == 3 and spend["null_fraction"] == 0.0
    assert json.loads(spend["stats"])["ticks"] == 2
    assert [(c["check_name"], c["passed"]) for c in checks] == [("at_most_one", False)]
    assert json.loads(checks[0]["observed"]) == {"max": 2.0}

    samples = {}
    for line in metrics.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    labels = 'feature="spend_2d",version="1"'
    assert samples[f"fsql_feature_behind_ticks{{{labels}}}"] == 2.0  # expected 01-06, last 01-04
    assert samples[f"fsql_feature_fresh{{{labels}}}"] == 0.0
    assert samples[f"fsql_feature_last_run_success{{{labels}}}"] == 1.0
    assert samples['fsql_feature_last_run_success{feature="orders_2d",version="1"}'] == 0.0
    assert samples[f"fsql_feature_last_tick_timestamp_seconds{{{labels}}}"] == (
        (D + 3 * DAY).timestamp())  # fmt: skip
    assert (
        samples['fsql_check_failed{feature="orders_2d",check="at_most_one",severity="error"}'] == 1
    )
    assert samples['fsql_runs_total{status="failed"}'] == 1
    assert samples['fsql_runs_total{status="success"}'] == 1


def test_pipeline_status_from_fsql_run_records(ran) -> None:
    status = FeaturePipelineManager(Workspace(ran)).get_pipeline_status("m")
    assert (status.pipeline_id, status.source, status.status) == ("fsql_m", "fsql", "failed")
    (run,) = status.runs
    assert run["run_id"] == "run1"
    assert {k: v["state"] for k, v in run["tasks"].items()} == {
        "orders_2d": "failed", "spend_2d": "success"}  # fmt: skip
    assert status.metrics["failed_checks"] == ["orders_2d.at_most_one"]
    assert sorted(status.metrics["features"]) == ["orders_2d", "spend_2d"]
    with pytest.raises(Exception, match="no pipeline nope has been deployed"):
        FeaturePipelineManager(Workspace(ran)).get_pipeline_status("nope")


def _fsql(repo: Path, *args: str, ok: bool = True):
    result = CliRunner().invoke(cli, ["--repo", str(repo), *args], catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def test_cli_pipeline_create_status_and_fsql_status(ran, tmp_path: Path) -> None:
    repo = ran.repo
    dags = tmp_path / "cli-dags"
    created = json.loads(_fsql(repo, "pipeline", "create", "--set", "model_v1", "--dags-folder",
                               str(dags), "--start", "2024-01-01", "--json").output)  # fmt: skip
    assert created["pipeline_id"] == "fsql_model_v1" and created["changed"]
    assert [t["feature"] for t in created["plan"]["tasks"]] == [
        "orders_2d", "spend_2d", "avg_order_2d"]  # fmt: skip
    again = _fsql(repo, "pipeline", "create", "--set", "model_v1", "--dags-folder", str(dags))
    assert "is up to date: nothing written" in again.output
    bad = _fsql(repo, "pipeline", "create", "spend_2d", "--dags-folder", str(dags),
                "--schedule", "sometimes", ok=False)  # fmt: skip
    assert "Error: --schedule 'sometimes' is not a cron expression" in bad.output

    status = json.loads(_fsql(repo, "status", "--json").output)
    by_name = {f["feature"]: f for f in status["features"]}
    assert by_name["spend_2d"]["last_tick"] == (D + 3 * DAY).isoformat()
    assert by_name["spend_2d"]["last_run"]["status"] == "success"
    assert by_name["orders_2d"]["checks"][0]["passed"] is False
    text = _fsql(repo, "status").output
    assert "spend_2d" in text and "1 failed" in text

    listed = json.loads(_fsql(repo, "pipeline", "ls", "--json").output)
    assert [(p["pipeline_id"], len(p["features"])) for p in listed] == [
        ("fsql_m", 2), ("fsql_model_v1", 3)]  # fmt: skip
    assert listed[1]["features"][0] == "orders_2d@1" and listed[1]["schedule"] == "0 0 * * *"
    assert "fsql_model_v1" in _fsql(repo, "pipeline", "ls").output

    pipeline = json.loads(_fsql(repo, "pipeline", "status", "fsql_m", "--json").output)
    assert pipeline["status"] == "failed" and pipeline["source"] == "fsql"
    assert datetime.fromisoformat(created["plan"]["start_date"]) == datetime(2024, 1, 1, tzinfo=UTC)
