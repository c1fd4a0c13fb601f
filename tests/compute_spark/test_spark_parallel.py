"""Spark computes the independent features of one run concurrently (one thread per feature,
``[compute] spark_parallel_features``): the committed rows are those of a sequential run and of
DuckDB, the features' Spark jobs really overlap, a failing feature stops only itself and what
reads it, and the job-timeout watcher of one thread cancels only its own job group.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from fsql.compute.materialize import StagedInterval, materialize
from fsql.config import config_from_mapping
from fsql.engines.spark import SparkEngine
from fsql.errors import ComputeError, ConfigError, RejectedData
from fsql.language.analysis import analyze
from fsql.language.project import desired_state, load_statements
from fsql.workspace import Workspace
from tests.compute_spark._example import (
    END,
    START,
    ExampleRepo,
    assert_same_rows,
    generate_data,
    make_example_repo,
)

pytestmark = pytest.mark.spark

#: four independent features (one level: clicks and purchases) and one reading two of them
FEATURES = [
    "user_click_count_7d",
    "user_session_count_7d",
    "user_purchase_sum_30d",
    "user_purchase_count_30d",
    "user_avg_purchase_30d",
]
LEVEL0 = FEATURES[:4]
WEEK = [(START.replace(tzinfo=UTC), END.replace(tzinfo=UTC))]


@pytest.fixture(scope="module")
def example_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_data(tmp_path_factory.mktemp("parallel") / "data")


@pytest.fixture(scope="module")
def duckdb_repo(example_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    repo = make_example_repo(tmp_path_factory.mktemp("duckdb") / "repo", example_data)
    materialize(Workspace(repo.config, registry=repo.registry), FEATURES, START, END, engine="duckdb", online=False)  # fmt: skip
    yield repo
    repo.registry.close()


def spark_jobs(session: Any, since: float) -> list[tuple[str, int, int]]:
    """Every finished Spark job fsql described as a feature's, submitted at or after ``since``
    (epoch seconds): (feature, submitted, completed) in epoch milliseconds, from Spark's own
    status store (fed asynchronously by the listener bus: drained first)."""
    context = session.sparkContext._jsc.sc()
    context.listenerBus().waitUntilEmpty()
    jobs = context.statusStore().jobsList(None)
    spans = []
    for i in range(jobs.length()):
        job = jobs.apply(i)
        description = job.description()
        if not description.isDefined() or not description.get().startswith("fsql: "):
            continue
        if job.completionTime().isDefined() and job.submissionTime().get().getTime() >= since * 1000:
            spans.append(
                (
                    description.get().removeprefix("fsql: "),
                    job.submissionTime().get().getTime(),
                    job.completionTime().get().getTime(),
                )
            )
    return spans


def run(repo: ExampleRepo, engine: SparkEngine, **options: Any) -> Any:
    return materialize(
        Workspace(repo.config, registry=repo.registry), FEATURES, START, END, engine=engine,
        online=False, **options,
    )  # fmt: skip


def test_concurrent_features_commit_what_sequential_runs_and_duckdb_commit(
    spark_session: Any, example_data: Path, duckdb_repo: ExampleRepo, tmp_path: Path
) -> None:
    sequential = make_example_repo(tmp_path / "sequential", example_data)
    concurrent = make_example_repo(tmp_path / "concurrent", example_data)
    try:
        run(sequential, SparkEngine(spark_session, parallel_features=1))
        began = time.time()
        engine = SparkEngine(spark_session, parallel_features=4)
        assert engine.parallel_features == 4  # pinned-thread mode: per-thread job groups
        results = run(concurrent, engine)
        assert [r.feature for r in results] == FEATURES  # results in topological order
        for feature in FEATURES:
            expected = duckdb_repo.timeline(feature)
            assert expected, feature
            assert_same_rows(sequential.timeline(feature), expected, f"{feature} sequential")
            assert_same_rows(concurrent.timeline(feature), expected, f"{feature} concurrent")
            assert concurrent.registry.ledger_intervals(feature, 1) == WEEK

        # the level's features ran as overlapping Spark jobs: each one's jobs started before
        # another one's had all finished
        spans: dict[str, tuple[int, int]] = {}
        for feature, submitted, completed in spark_jobs(spark_session, began):
            first, last = spans.get(feature, (submitted, completed))
            spans[feature] = (min(first, submitted), max(last, completed))
        assert set(spans) == set(FEATURES), spans
        overlapping = [
            (a, b) for a in LEVEL0 for b in LEVEL0
            if a < b and spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]
        ]  # fmt: skip
        assert overlapping, spans
        # the derived feature's jobs ran after its inputs' (the next level)
        derived = spans["user_avg_purchase_30d"][0]
        assert all(
            spans[f][1] <= derived for f in ("user_purchase_sum_30d", "user_purchase_count_30d")
        ), spans
    finally:
        sequential.registry.close()
        concurrent.registry.close()


def test_a_refused_feature_stops_only_itself_and_its_readers(
    spark_session: Any, example_data: Path, tmp_path: Path
) -> None:
    repo = make_example_repo(tmp_path / "repo", example_data)
    seen: list[str] = []

    def gate(staged: StagedInterval) -> None:
        seen.append(staged.feature)
        if staged.feature == "user_purchase_sum_30d":
            raise RejectedData("user_purchase_sum_30d: check failed")

    try:
        with pytest.raises(RejectedData, match="user_purchase_sum_30d: check failed") as caught:
            run(repo, SparkEngine(spark_session, parallel_features=4), gate=gate)
        assert caught.value.quarantine  # the refused rows are kept
        assert sorted(seen) == sorted(LEVEL0)  # the reader of the refused one never ran
        reg = repo.registry
        for feature in ("user_click_count_7d", "user_session_count_7d", "user_purchase_count_30d"):
            assert reg.ledger_intervals(feature, 1) == WEEK, feature
            assert repo.timeline(feature), feature
        for feature in ("user_purchase_sum_30d", "user_avg_purchase_30d"):
            assert reg.ledger_intervals(feature, 1) == [], feature
    finally:
        repo.registry.close()


def test_an_engine_error_stops_only_its_feature_and_its_readers(
    spark_session: Any, example_data: Path, tmp_path: Path
) -> None:
    repo = make_example_repo(tmp_path / "repo", example_data)
    # valid fsql, but Spark (ANSI mode) fails at run time: 'US' is no integer
    (repo.root / "features" / "broken.sql").write_text(
        "CREATE FEATURE user_country_number ENTITY user TYPE INTEGER\n"
        "AS SELECT user_id, CAST(country AS INTEGER) FROM users;\n"
        "CREATE FEATURE user_country_number_twice ENTITY user\n"
        "AS SELECT user_id, user_country_number * 2 FROM user;\n"
    )
    definitions, drops = desired_state(load_statements(repo.root))
    desired = analyze(definitions, drops=drops)
    repo.registry.apply(repo.registry.plan(desired, drops=drops), desired)
    names = ["user_click_count_7d", "user_country_number", "user_country_number_twice"]
    try:
        with pytest.raises(ComputeError, match="Spark failed") as caught:
            materialize(
                Workspace(repo.config, registry=repo.registry), names, START, END,
                engine=SparkEngine(spark_session, parallel_features=4), online=False,
            )  # fmt: skip
        assert "CAST" in str(caught.value).upper()
        reg = repo.registry
        assert reg.ledger_intervals("user_click_count_7d", 1) == WEEK
        assert reg.ledger_intervals("user_country_number", 1) == []
        assert reg.ledger_intervals("user_country_number_twice", 1) == []
    finally:
        repo.registry.close()


def test_the_job_timeout_cancels_only_its_own_threads_job_group(spark_session: Any) -> None:
    # two engines on one session, each job in its own thread, one task each (local[2] runs
    # both at once): the first has a 3 s job timeout, the second none and sleeps 8 s
    hasty = SparkEngine(spark_session, job_timeout=3)
    patient = SparkEngine(spark_session)

    def sleep_sql(ms: int) -> str:
        return (
            f"SELECT count(*) AS n FROM range(0, 1, 1, 1) "
            f"WHERE coalesce(reflect('java.lang.Thread', 'sleep', CAST({ms} AS BIGINT)), '') >= ''"
        )

    outcome: dict[str, Any] = {}

    def go(name: str, engine: SparkEngine, ms: int) -> None:
        try:
            with engine.feature_scope(name):
                outcome[name] = engine.query(sleep_sql(ms)).column("n").to_pylist()
        except ComputeError as exc:
            outcome[name] = exc
        outcome[f"{name} ended"] = time.monotonic()

    threads = [
        threading.Thread(target=go, args=("hasty", hasty, 60_000)),
        threading.Thread(target=go, args=("patient", patient, 8_000)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert isinstance(outcome["hasty"], ComputeError), outcome
    assert "ran longer than 3s" in str(outcome["hasty"])
    assert outcome["patient"] == [1]  # not cancelled with the other group
    assert outcome["hasty ended"] < outcome["patient ended"]  # cancelled while it still ran


def test_spark_parallel_features_comes_from_the_config(spark_session: Any, tmp_path: Path) -> None:
    config = config_from_mapping(
        {"compute": {"engine": "spark", "spark_master": "local[2]", "spark_parallel_features": 2}},
        tmp_path, "test",
    )  # fmt: skip
    engine = SparkEngine.from_config(config)
    assert engine.session is spark_session
    assert (engine.SUPPORTS_PARALLEL_FEATURES, engine.parallel_features) == (True, 2)
    with pytest.raises(ConfigError, match=r"\[compute\] spark_parallel_features must be at least 1"):
        config_from_mapping({"compute": {"spark_parallel_features": 0}}, tmp_path, "test")
