"""A Spark job the cluster never runs ends in a clear error within the configured time.

A standalone master without workers gives the application no executor, as a cluster whose
workers died does: the job's tasks wait forever. fsql's watchdog cancels the job group once no
task has run for ``[compute] spark_idle_timeout`` seconds and raises a ComputeError naming the
cause. Run in a fresh process: one process holds one SparkContext (the local session of the
other Spark tests lives in this one).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def test_a_cluster_without_executors_fails_the_job_within_the_idle_timeout(
    spark_without_workers: Any, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import json, time
        from fsql.config import config_from_mapping
        from fsql.engines import open_engine
        from fsql.errors import ComputeError

        config = config_from_mapping({{"compute": {{
            "engine": "spark", "spark_master": {spark_without_workers.master_url!r},
            "spark_idle_timeout": 8}}}}, {str(tmp_path)!r}, "test")
        engine = open_engine(config)
        started = time.monotonic()
        try:
            engine.query("SELECT count(*) AS n FROM range(1000)")
            outcome = {{"error": None}}
        except ComputeError as exc:
            outcome = {{"error": str(exc)}}
        outcome["seconds"] = time.monotonic() - started
        # a session fsql starts shares its executors fairly between concurrent features
        outcome["scheduler"] = engine.session.sparkContext.getConf().get("spark.scheduler.mode")
        engine.close()
        print("RESULT " + json.dumps(outcome), flush=True)
        """
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], env={**spark_without_workers.env, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:] + spark_without_workers.logs()
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    outcome = json.loads(line.removeprefix("RESULT "))
    assert outcome["error"] is not None, "the job should not have run"
    assert "no task ran for 8s" in outcome["error"]
    assert spark_without_workers.master_url in outcome["error"]
    assert "spark_idle_timeout" in outcome["error"]
    assert outcome["scheduler"] == "FAIR"
    # cancelled after the idle timeout, not hanging (bounded well below the test's own timeout)
    assert 8 <= outcome["seconds"] < 60, outcome
    assert time.monotonic() - began < 200
