"""``fsql materialize`` records every feature interval it computes as a run (trigger ``cli``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fsql.compute.runs import RunLog
from fsql.registry import open_registry
from tests.cli.conftest import Run
from tests.pipelines._repo import PURCHASES, D, make_repo

DAY = timedelta(days=1)


def test_materialize_records_its_runs(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    config = make_repo(repo)
    before = datetime.now(UTC)
    result = run("materialize", "spend_2d", "--start", "2024-01-03", "--end", "2024-01-05",
                 "--json", repo=repo)  # fmt: skip
    printed = json.loads(result.stdout)
    # nothing new to compute: an up-to-date materialize records no run
    again = run("materialize", "spend_2d", "--start", "2024-01-03", "--end", "2024-01-05",
                repo=repo)  # fmt: skip
    assert again.stdout == "spend_2d v1: up to date\n"
    with open_registry(config) as registry:
        runs = RunLog(registry).runs()
    assert [r["feature"] for r in printed] == ["spend_2d"]
    assert printed[0]["intervals"] == [[(D + 2 * DAY).isoformat(), (D + 4 * DAY).isoformat()]]
    assert len(runs) == 1
    record = runs[0]
    assert (record.feature, record.version, record.start, record.end) == (
        "spend_2d", 1, D + 2 * DAY, D + 4 * DAY)  # fmt: skip
    assert (record.trigger, record.status, record.pipeline, record.error) == (
        "cli", "success", None, None)  # fmt: skip
    assert record.rows == printed[0]["rows"]
    assert record.finished_at is not None and before <= record.started_at <= record.finished_at
    # the statistics are those of the written values: ticks 01-03 and 01-04 (2-day windows),
    # one row per user seen before the tick; spend is NULL where a user's window is empty
    expected: list[float | None] = []
    for tick in (D + 2 * DAY, D + 3 * DAY):
        for user in sorted({u for u, _, ts in PURCHASES if ts < tick}):
            window = [a for u, a, ts in PURCHASES
                      if u == user and tick - 2 * DAY <= ts < tick and a is not None]
            expected.append(sum(window) if window else None)
    values = [v for v in expected if v is not None]
    assert record.rows == len(expected)
    assert record.stats["null_fraction"] == (len(expected) - len(values)) / len(expected)
    assert (float(record.stats["min"]), float(record.stats["max"])) == (min(values), max(values))


def test_api_materialize_records_its_runs(tmp_path: Path) -> None:
    from fsql.api import FeatureStore

    repo = tmp_path / "repo"
    config = make_repo(repo)
    with FeatureStore(config).sync() as store:
        results = store.materialize(D + 2 * DAY, D + 4 * DAY, ["spend_2d"])
    with open_registry(config) as registry:
        runs = RunLog(registry).runs()
    assert [(r.feature, r.trigger, r.status, r.start, r.end) for r in runs] == [
        ("spend_2d", "api", "success", D + 2 * DAY, D + 4 * DAY)]  # fmt: skip
    assert runs[0].rows == results[0].rows


def test_materialize_takes_a_feature_set_with_set(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    result = run("materialize", "--set", "model_v1", "--start", "2024-01-03", "--end",
                 "2024-01-04", "--json", repo=repo)  # fmt: skip
    # the set's member and everything it reads, inputs first
    assert [r["feature"] for r in json.loads(result.stdout)] == [
        "orders_2d", "spend_2d", "avg_order_2d"]  # fmt: skip
