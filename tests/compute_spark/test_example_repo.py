"""End to end on the example repo ``sql_features/``: every feature materialized on Spark gives
the same timelines and training set as on DuckDB; the repo also runs with its sources and
offline store on S3 (moto's real HTTP endpoint), and through a real standalone Spark cluster.

DuckDB is the baseline here because it is itself checked against the reference
implementation by the property tests (tests/compute and tests/compute_spark).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest

from fsql.compute.materialize import materialize
from fsql.compute.training import training_set
from fsql.registry import open_registry
from fsql.workspace import Workspace
from tests.compute_spark._example import (
    END,
    START,
    ExampleRepo,
    assert_same_rows,
    generate_data,
    make_example_repo,
)
from tests.services._util import wait_until


@pytest.fixture(scope="module")
def example_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_data(tmp_path_factory.mktemp("example") / "data")


@pytest.fixture(scope="module")
def duckdb_repo(example_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The example materialized on DuckDB from local disk: the baseline."""
    repo = make_example_repo(tmp_path_factory.mktemp("duckdb") / "repo", example_data)
    results = materialize(Workspace(repo.config, registry=repo.registry), None, START, END, engine="duckdb", online=False)  # fmt: skip
    assert {r.feature for r in results} == set(repo.features())
    assert all(r.rows > 0 for r in results), [(r.feature, r.rows) for r in results]
    yield repo
    repo.registry.close()


def assert_same_timelines(actual: ExampleRepo, expected: ExampleRepo, features: list[str]) -> None:
    for feature in features:
        assert_same_rows(actual.timeline(feature), expected.timeline(feature), feature)


@pytest.mark.spark
def test_spark_materializes_the_example_like_duckdb(
    engine: Any, example_data: Path, duckdb_repo: ExampleRepo, tmp_path: Path
) -> None:
    repo = make_example_repo(tmp_path / "repo", example_data)
    try:
        results = materialize(Workspace(repo.config, registry=repo.registry), None, START, END, engine=engine, online=False)  # fmt: skip
        assert [r.feature for r in results] == repo.registry.analysis().topological_order()
        assert_same_timelines(repo, duckdb_repo, repo.features())

        spine = repo.spine()
        features = repo.features()
        on_spark = training_set(Workspace(repo.config, registry=repo.registry), spine, features, engine=engine)  # fmt: skip
        on_duckdb = training_set(Workspace(duckdb_repo.config, registry=duckdb_repo.registry), spine, features, engine="duckdb")  # fmt: skip
        assert on_spark.select(spine.column_names).equals(spine)  # spine unchanged, in order
        assert_same_rows(on_spark.to_pylist(), on_duckdb.to_pylist(), "training set")
        # the join found values: labels fall inside the materialized week for some rows
        assert on_duckdb.column("user_purchase_sum_30d").null_count < on_duckdb.num_rows
    finally:
        repo.registry.close()


@pytest.mark.s3
def test_duckdb_example_with_sources_and_offline_store_on_s3(
    s3_endpoint: Any, example_data: Path, duckdb_repo: ExampleRepo, tmp_path: Path
) -> None:
    # upload the sources, then point the repo's definitions at them
    fs = s3_endpoint.filesystem()
    pafs.copy_files(str(example_data), f"{s3_endpoint.bucket}/data",
                    source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs)  # fmt: skip
    assert any(k.startswith("data/users/") for k in s3_endpoint.keys(prefix="data/"))
    repo = make_example_repo(
        tmp_path / "repo", example_data, sources_uri=f"s3://{s3_endpoint.bucket}/data",
        offline={"uri": s3_endpoint.uri, "s3_endpoint_url": s3_endpoint.endpoint_url},
    )  # fmt: skip
    try:
        assert not (repo.root / "data").exists()  # nothing can come from local disk
        results = materialize(Workspace(repo.config, registry=repo.registry), None, START, END, engine="duckdb", online=False)  # fmt: skip
        assert all(r.location.startswith(f"{s3_endpoint.uri}/") for r in results)
        stored = s3_endpoint.keys()
        assert any(k.endswith(".parquet") and "/date=2024-02-07/" in k for k in stored), stored
        assert not any("_staging" in k for k in stored)
        assert_same_timelines(repo, duckdb_repo, repo.features())

        # partition replacement on S3: a forced re-run of one day replaces it, no duplicates
        feature = "user_purchase_sum_30d"
        before = repo.timeline(feature)
        again = materialize(Workspace(repo.config, registry=repo.registry), [feature], START, START.replace(day=2), engine="duckdb", force=True, online=False)  # fmt: skip
        assert [r.feature for r in again] == [feature] and again[0].rows > 0
        assert repo.timeline(feature) == before

        spine = repo.spine()
        features = ["fraud_model_v1", "user_item_views_30d"]
        from_s3 = training_set(Workspace(repo.config, registry=repo.registry), spine, features, engine="duckdb")  # fmt: skip
        local = training_set(Workspace(duckdb_repo.config, registry=duckdb_repo.registry), spine, features, engine="duckdb")  # fmt: skip
        assert_same_rows(from_s3.to_pylist(), local.to_pylist(), "training set from S3")
    finally:
        repo.registry.close()


CLUSTER_FEATURES = ["user_purchase_sum_30d", "user_session_count_7d", "user_country",
                    "user_avg_purchase_30d"]  # fmt: skip


@pytest.mark.spark
@pytest.mark.slow
def test_materialize_through_a_standalone_spark_cluster(
    spark_standalone: Any, example_data: Path, duckdb_repo: ExampleRepo, tmp_path: Path
) -> None:
    """A driver in a subprocess (this process already holds a local SparkContext) runs fsql's
    materialization with ``compute.spark_master = spark://127.0.0.1:PORT``."""
    repo = make_example_repo(
        tmp_path / "repo", example_data,
        compute={"engine": "spark", "spark_master": spark_standalone.master_url,
                 "executor_memory": "1g"},
    )  # fmt: skip
    repo.registry.close()
    script = textwrap.dedent(
        f"""
        import json
        from fsql.config import config_from_mapping
        from fsql.compute.materialize import materialize
        from fsql.engines import open_engine
        from fsql.workspace import Workspace
        from tests.compute_spark._example import START, END

        config = config_from_mapping({{
            "online_store": {{"url": "sqlite:///{repo.root}/.fsql/online.db"}},
            "compute": {{"engine": "spark", "spark_master": {spark_standalone.master_url!r},
                        "executor_memory": "1g"}},
        }}, {str(repo.root)!r}, "test")
        engine = open_engine(config)
        master = engine.session.sparkContext.master
        results = materialize(Workspace(config), {CLUSTER_FEATURES!r}, START, END,
                              engine=engine, online=False)
        engine.close()
        print("RESULT " + json.dumps({{"master": master,
                                       "features": [r.feature for r in results]}}))
        """
    )
    env = {**spark_standalone.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=900, cwd=repo.root)  # fmt: skip
    assert done.returncode == 0, done.stderr[-6000:] + spark_standalone.logs()
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    assert result["master"] == spark_standalone.master_url
    # inputs of the derived feature come along, in topological order
    assert set(result["features"]) >= set(CLUSTER_FEATURES) | {"user_purchase_count_30d"}
    # the cluster ran the jobs: the master lists the finished fsql application
    wait_until(lambda: len(spark_standalone.completed_apps()) == 1, what="application listed")
    assert [app["name"] for app in spark_standalone.completed_apps()] == ["fsql"]

    reopened = open_registry(repo.config)
    try:
        cluster_repo = ExampleRepo(repo.root, repo.config, reopened, repo.data)
        assert_same_timelines(cluster_repo, duckdb_repo, result["features"])
    finally:
        reopened.close()
