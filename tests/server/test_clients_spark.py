"""Spark's JDBC data source (pyspark 4.3 with pgjdbc, Debian's libpostgresql-jdbc-java) against
fsql and against a real PostgreSQL 15 holding the same tables and rows: ``dbtable`` reads of
``features.user`` and ``sources.orders``, the ``query`` option, a partitioned read of an
``offline.*`` table (``partitionColumn``/``lowerBound``/``upperBound``/``numPartitions``) and a
JDBC write (Spark creates the table on the driver's connection and inserts from its tasks'
connections: fsql shares a user's plain tables between its connections, as PostgreSQL does),
read back by Spark and by psycopg on other connections.
tests/server/spark_jdbc.py runs in a subprocess with one SparkSession of its own (it must carry
the driver jar) for both servers; the schemas Spark infers and the rows must be equal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.server._differential import Pair, pair  # noqa: F401 - fixture
from tests.services.jdbc import JAR

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.spark, pytest.mark.slow]

SCRIPT = Path(__file__).with_name("spark_jdbc.py")

OPERATIONS = ["dbtable_features", "dbtable_sources", "query_option", "partitioned_offline",
              "write_table"]

KNOWN_FAILING: dict[str, str] = {}

#: what fsql answers differently on purpose (docs/clients.md, "Spark"): nothing now
DELIBERATE: set[str] = set()


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


def test_spark_jdbc_write_is_read_back_from_another_connection(answers: dict,
                                                              pair: Pair) -> None:  # noqa: F811
    """The rows Spark wrote (overwrite from two tasks, then an append with pgjdbc's
    reWriteBatchedInserts: a multi-row VALUES) are the table's on any connection
    of the user: psycopg reads the same values from fsql as from PostgreSQL, and both list
    the table in ``public``."""
    query = ("SELECT user_id, label, weight FROM spark_spine ORDER BY user_id, label NULLS FIRST")
    listing = ("SELECT table_schema, column_name, data_type FROM information_schema.columns "
               "WHERE table_name = 'spark_spine' ORDER BY ordinal_position")
    with psycopg.connect(pair.fsql_url) as ours, psycopg.connect(pair.pg_user_url) as theirs:
        rows = ours.execute(query).fetchall()
        assert rows == theirs.execute(query).fetchall()
        assert rows == [("u001", 1, 0.5), ("u001", 1, 0.5), ("u002", 0, None),
                        ("u003", 1, 2.25), ("u004", None, -1.0), ("u005", 0, 1e-3),
                        ("u006", 1, None)]
        assert ours.execute(listing).fetchall() == theirs.execute(listing).fetchall() == [
            ("public", "user_id", "text"), ("public", "label", "bigint"),
            ("public", "weight", "double precision")]
