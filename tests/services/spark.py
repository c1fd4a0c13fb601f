"""Real Spark for tests: one local session per test session, and a standalone cluster on demand.

``spark_session`` starts ``local[2]`` once (Spark takes 6-15 s to start, so it is shared) with the
settings fsql's Spark engine uses: UTC session time zone, no UI, two shuffle partitions.

``spark_standalone`` starts a real standalone cluster on loopback from pyspark's own launcher: a
master (``spark-class org.apache.spark.deploy.master.Master``) and one worker registered with it,
each a separate JVM on free ports. It yields the master URL ``spark://127.0.0.1:PORT``. One
process can hold only one SparkContext, and the session fixture already owns this process's, so
drive the cluster from a subprocess (e.g. ``fsql materialize`` with ``FSQL_SPARK_MASTER``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services._util import free_port, wait_until


def spark_home() -> Path:
    """The pyspark package directory, which carries Spark's jars and ``bin/spark-class``."""
    import pyspark

    return Path(pyspark.__file__).parent


def spark_env(log_dir: Path) -> dict[str, str]:
    """Environment for Spark JVMs started by the tests: pyspark's SPARK_HOME, this venv's Python
    for the Python workers, logs and scratch space in the test's temp dir."""
    env = dict(os.environ)
    env.update(
        SPARK_HOME=str(spark_home()),
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_LOG_DIR=str(log_dir),
        SPARK_WORKER_DIR=str(log_dir / "work"),
        SPARK_LOCAL_DIRS=str(log_dir / "local"),
        SPARK_LOCAL_IP="127.0.0.1",
        SPARK_NO_DAEMONIZE="1",
        # the master's REST submission server would take the fixed port 6066
        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
    )
    return env


@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A ``local[2]`` SparkSession shared by every Spark test in the session."""
    from pyspark.sql import SparkSession

    scratch = tmp_path_factory.mktemp("spark-local")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("fsql-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.local.dir", str(scratch))
        .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
        .getOrCreate()
    )
    try:
        yield session
    finally:
        session.stop()


@dataclass
class SparkCluster:
    """A running standalone cluster: ``master_url`` is what ``compute.spark_master`` takes."""

    master_url: str
    webui_url: str
    log_dir: Path
    env: dict[str, str]

    def status(self) -> dict[str, Any]:
        """The master's JSON status page (workers, applications)."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=2) as response:
            return dict(json.load(response))

    def alive_workers(self) -> int:
        return sum(1 for w in self.status().get("workers", []) if w.get("state") == "ALIVE")

    def completed_apps(self) -> list[dict[str, Any]]:
        return list(self.status().get("completedapps", []))

    def logs(self) -> str:
        """The master's and worker's output, for assertion messages."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )


def _start_jvm(cls: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    launcher = spark_home() / "bin" / "spark-class"
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(launcher), cls, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


@contextmanager
def _cluster(tmp_path: Path, workers: int) -> Iterator[SparkCluster]:
    """A standalone master and ``workers`` workers (2 cores, 2 GB each) on loopback."""
    log_dir = tmp_path / "spark-cluster"
    (log_dir / "work").mkdir(parents=True)
    (log_dir / "local").mkdir()
    env = spark_env(log_dir)
    port, webui = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    cluster = SparkCluster(master_url, f"http://127.0.0.1:{webui}", log_dir, env)
    master = _start_jvm(
        "org.apache.spark.deploy.master.Master",
        ["--host", "127.0.0.1", "--port", str(port), "--webui-port", str(webui)],
        env,
        log_dir / "master.log",
    )
    started: list[subprocess.Popen] = []
    try:
        wait_until(lambda: cluster.status() is not None, timeout=90, what="Spark master")
        for _ in range(workers):
            started.append(_start_jvm(
                "org.apache.spark.deploy.worker.Worker",
                ["--host", "127.0.0.1", "--port", str(free_port()), "--webui-port",
                 str(free_port()), "--cores", "2", "--memory", "2g", "--work-dir",
                 str(log_dir / "work"), master_url],
                env,
                log_dir / f"worker{len(started)}.log",
            ))  # fmt: skip

        def workers_registered() -> bool:
            assert master.poll() is None, f"Spark master exited:\n{cluster.logs()}"
            for worker in started:
                assert worker.poll() is None, f"Spark worker exited:\n{cluster.logs()}"
            return cluster.alive_workers() >= workers

        wait_until(workers_registered, timeout=90, what="Spark worker registration")
        yield cluster
    finally:
        for worker in started:
            _stop(worker)
        _stop(master)


@pytest.fixture()
def spark_standalone(tmp_path: Path) -> Iterator[SparkCluster]:
    """A standalone master and one worker (2 cores, 2 GB) on loopback, stopped afterwards."""
    with _cluster(tmp_path, workers=1) as cluster:
        yield cluster


@pytest.fixture()
def spark_without_workers(tmp_path: Path) -> Iterator[SparkCluster]:
    """A standalone master with no worker: a cluster that gives an application no executor
    (what a job sees when every worker died)."""
    with _cluster(tmp_path, workers=0) as cluster:
        yield cluster
