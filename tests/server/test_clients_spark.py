"""Spark's JDBC data source (pyspark 4.3 with pgjdbc, Debian's libpostgresql-jdbc-java) against
fsql and against a real PostgreSQL 15 holding the same tables and rows: ``dbtable`` reads of
``features.user`` and ``sources.orders``, the ``query`` option, a partitioned read of an
``offline.*`` table (``partitionColumn``/``lowerBound``/``upperBound``/``numPartitions``) and a
JDBC write into a temporary table (``sessionInitStatement`` creating it), which fsql refuses
on purpose (tables live in one session; Spark writes on several connections).
tests/server/spark_jdbc.py runs in a subprocess with one SparkSession of its own (it must carry
the driver jar) for both servers; the schemas Spark infers and the rows must be equal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server._differential import Pair, pair  # noqa: F401 - fixture
from tests.services.jdbc import JAR

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.spark, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("spark_jdbc.py")

OPERATIONS = ["dbtable_features", "dbtable_sources", "query_option", "partitioned_offline",
              "write_temp_table"]

KNOWN_FAILING: dict[str, str] = {}

#: what fsql answers differently on purpose (docs/clients.md, "Spark"): Spark's JDBC writer
#: checks for and creates the table on the driver's connection (sessionInitStatement runs on
#: reads only) and inserts on each task's own connection, so on PostgreSQL the "temporary"
#: spine becomes an ordinary table; fsql keeps tables per session, and says so
DELIBERATE = {"write_temp_table"}


@pytest.fixture(scope="module")
def answers(pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811
    assert JAR.exists(), "libpostgresql-jdbc-java is not installed (apt-get install it)"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    run = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path_factory.mktemp("spark_jdbc")),
         f"fsql=jdbc:postgresql://127.0.0.1:{pair.fsql.port}/fsql",
         f"postgres=jdbc:postgresql://127.0.0.1:{pair.pg_port}/{pair.pg_db}"],
        capture_output=True, text=True, timeout=400, env=env,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("operation", [
    pytest.param(op, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILING[op])]
                 if op in KNOWN_FAILING else [])
    for op in OPERATIONS if op not in DELIBERATE
])
def test_spark_jdbc_equals_postgres(answers: dict, operation: str) -> None:
    theirs = answers["postgres"][operation]
    assert "error" not in theirs, theirs  # the reference must work
    assert answers["fsql"][operation] == theirs
    assert theirs["rows"], "compare values, not two empty answers"


def test_spark_jdbc_write_needs_a_table_shared_between_connections(answers: dict) -> None:
    """PostgreSQL takes the write (as an ordinary table the driver created); fsql refuses the
    tasks' INSERTs with 42P01 and a hint that says why (no tables shared between
    connections), not with a bare "does not exist"."""
    assert answers["postgres"]["write_temp_table"]["rows"] == [["written"]]
    cause = answers["fsql"]["write_temp_table"].get("cause") or ""
    assert 'relation "spark_spine" does not exist' in cause, answers["fsql"]
    assert "fsql keeps no tables shared between connections" in cause, cause
