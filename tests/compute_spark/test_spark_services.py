"""The local Spark session fixture: real Spark, UTC, computing."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.spark


def test_local_session_is_utc_and_computes(spark_session) -> None:
    assert spark_session.conf.get("spark.sql.session.timeZone") == "UTC"
    row = spark_session.sql(
        "SELECT CAST(TIMESTAMP '2024-01-01 00:00:00' AS BIGINT) AS epoch, SUM(id) AS total "
        "FROM range(0, 1000)"
    ).collect()[0]
    assert row["epoch"] == 1704067200
    assert row["total"] == sum(range(1000))


# The standalone cluster fixture is exercised by
# tests/compute_spark/test_example_repo.py::test_materialize_through_a_standalone_spark_cluster,
# which checks the master URL the driver used and the application the master lists.
