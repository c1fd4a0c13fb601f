"""The Spark fixtures start real Spark: a local session and a standalone master + worker."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.services._util import wait_until

pytestmark = pytest.mark.spark


def test_local_session_is_utc_and_computes(spark_session) -> None:
    assert spark_session.conf.get("spark.sql.session.timeZone") == "UTC"
    row = spark_session.sql(
        "SELECT CAST(TIMESTAMP '2024-01-01 00:00:00' AS BIGINT) AS epoch, SUM(id) AS total "
        "FROM range(0, 1000)"
    ).collect()[0]
    assert row["epoch"] == 1704067200
    assert row["total"] == sum(range(1000))


@pytest.mark.slow
def test_standalone_cluster_runs_a_job(spark_standalone) -> None:
    script = textwrap.dedent(
        f"""
        from pyspark.sql import SparkSession
        spark = (SparkSession.builder.master({spark_standalone.master_url!r})
                 .config("spark.ui.enabled", "false")
                 .config("spark.driver.host", "127.0.0.1")
                 .config("spark.driver.bindAddress", "127.0.0.1")
                 .config("spark.executor.memory", "1g")
                 .getOrCreate())
        print("RESULT", spark.sparkContext.master, spark.range(0, 100000, numPartitions=4)
              .selectExpr("sum(id)").collect()[0][0])
        spark.stop()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=spark_standalone.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:] + spark_standalone.logs()
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT"))
    assert line.split() == ["RESULT", spark_standalone.master_url, str(sum(range(100000)))]
    # the job really ran on the cluster: the master lists the finished application
    wait_until(lambda: len(spark_standalone.completed_apps()) == 1, what="application listed")
