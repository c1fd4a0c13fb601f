"""Run records on both registry backends: the embedded SQLite file and a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fsql.compute.runs import RunLog, deployed_pipelines, record_deployment
from fsql.language.checks import Check, CheckResult
from fsql.registry import open_registry_url
from tests.pipelines._repo import DEFINITIONS

D = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Path):
    from fsql.language.analysis import analyze
    from fsql.language.parser import parse

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    else:
        url = request.getfixturevalue("postgres_db_url")
    reg = open_registry_url(url)
    analysis = analyze(parse(DEFINITIONS))
    reg.apply(reg.plan(analysis), analysis)
    yield reg
    reg.close()


def test_runs_checks_and_deployments_round_trip(registry) -> None:
    log = RunLog(registry)
    ok = log.start(feature="spend_2d", version=1, start=D, end=D + timedelta(days=2),
                   engine="duckdb", pipeline="fsql_p", trigger="airflow", external_id="run1",
                   try_number=1)  # fmt: skip
    check = Check(name="c", feature="spend_2d", expression="value >= 0")
    log.finish(ok, status="success", rows=5, stats={"rows": 5, "null_fraction": 0.2},
               checks=[CheckResult(check, True, {"failing_rows": 0})])  # fmt: skip
    with pytest.raises(RuntimeError, match="boom"):
        with log.track(feature="orders_2d", version=1, start=D, end=D + timedelta(days=1),
                       engine="spark", trigger="cli") as handle:  # fmt: skip
            handle.rows = 3
            raise RuntimeError("boom")

    failed, success = RunLog(registry).runs()
    assert (failed.feature, failed.status, failed.error, failed.rows, failed.trigger) == (
        "orders_2d", "failed", "RuntimeError: boom", 3, "cli")  # fmt: skip
    assert (success.pipeline, success.external_id, success.try_number, success.rows) == (
        "fsql_p", "run1", 1, 5)  # fmt: skip
    assert (success.start, success.end) == (D, D + timedelta(days=2))
    assert success.stats == {"rows": 5, "null_fraction": 0.2}
    assert success.finished_at is not None and success.finished_at >= success.started_at
    assert [r.feature for r in log.runs(pipeline="fsql_p")] == ["spend_2d"]
    assert {k: v.id for k, v in log.latest().items()} == {"spend_2d": ok, "orders_2d": failed.id}
    assert set(log.latest(pipeline="fsql_p")) == {"spend_2d"}
    assert log.status_counts() == {"success": 1, "failed": 1}
    (stored,) = log.check_results([ok])
    assert (stored.name, stored.passed, dict(stored.observed)) == ("c", True, {"failing_rows": 0})

    record_deployment(registry, "fsql_p", "/dags", "abc", {"name": "p"})
    record_deployment(registry, "fsql_p", "/dags", "def", {"name": "p", "v": 2})
    (deployed,) = deployed_pipelines(registry)
    assert (deployed.plan_fingerprint, dict(deployed.plan)) == ("def", {"name": "p", "v": 2})
