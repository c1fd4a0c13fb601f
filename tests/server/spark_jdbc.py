"""Spark's JDBC data source (pyspark, with pgjdbc from Debian's libpostgresql-jdbc-java) doing
what training jobs do, against one server; run as a subprocess by
tests/server/test_clients_spark.py (once against fsql, once against PostgreSQL 15) so that its
own SparkSession can carry the driver jar.

Usage: python spark_jdbc.py SCRATCH_DIR NAME=JDBC_URL...
Prints one JSON object: {NAME: {operation: {"schema": [[name, spark type]], "rows": [...]} or
{"error": first line of the exception}}} (one Spark session for every server: a JVM start
costs ~10 s here).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pyspark.sql import SparkSession

JAR = "/usr/share/java/postgresql.jar"


def main(scratch: str, targets: list[str]) -> None:
    spark = (
        SparkSession.builder.master("local[2]").appName("fsql-jdbc-client")
        .config("spark.jars", JAR)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.local.dir", scratch)
        .config("spark.sql.warehouse.dir", f"{scratch}/warehouse")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    answers = {}
    for target in targets:
        name, url = target.split("=", 1)
        answers[name] = run(spark, url)
    spark.stop()
    print(json.dumps(answers))


def run(spark: Any, url: str) -> dict[str, Any]:
    base = {"url": url, "user": "tester", "password": "", "driver": "org.postgresql.Driver"}
    out: dict[str, Any] = {}

    def record(name: str, frame_of: Any) -> None:
        try:
            frame = frame_of()
            rows = sorted((tuple(str(v) for v in row) for row in frame.collect()), key=str)
            out[name] = {"schema": [[f.name, f.dataType.simpleString()] for f in frame.schema],
                         "rows": [list(r) for r in rows]}
        except Exception as exc:  # noqa: BLE001 - the answer is compared, not raised
            out[name] = {"error": str(exc).strip().splitlines()[0][:300],
                         "cause": root_cause(exc)}

    def read(**options: str) -> Any:
        return spark.read.format("jdbc").options(**base, **options).load()

    record("dbtable_features", lambda: read(dbtable="features.user"))
    record("dbtable_sources", lambda: read(dbtable="sources.orders"))
    record("query_option", lambda: read(
        query="SELECT user_id, user_orders_offline FROM offline.user_orders_offline"))
    record("partitioned_offline", lambda: read(
        dbtable="offline.user_orders_offline", partitionColumn="user_orders_offline",
        lowerBound="0", upperBound="10", numPartitions="3"))

    def write_table() -> Any:
        # two partitions: Spark's writer checks for and creates the table on the driver's
        # connection, then each task inserts its rows (pgjdbc executeBatch, one transaction
        # per task) on a connection of its own; read back by Spark on new connections
        frame = spark.createDataFrame(
            [("u001", 1, 0.5), ("u002", 0, None), ("u003", 1, 2.25), ("u004", None, -1.0)],
            "user_id string, label long, weight double").repartition(2)
        frame.write.format("jdbc").options(**base, dbtable="spark_spine").mode(
            "overwrite").save()
        # appended with pgjdbc's reWriteBatchedInserts: one INSERT ... VALUES ($1, $2, $3),
        # ($4, $5, $6), ... for the batch
        again = spark.createDataFrame([("u001", 1, 0.5), ("u005", 0, 1e-3), ("u006", 1, None)],
                                      "user_id string, label long, weight double").coalesce(1)
        again.write.jdbc(base["url"] + "?reWriteBatchedInserts=true", "spark_spine",
                         mode="append",
                                  properties={"user": "tester", "password": "",
                                              "driver": base["driver"]})
        return read(dbtable="spark_spine")

    record("write_table", write_table)
    return out


def root_cause(exc: Exception) -> str | None:
    """The innermost Java exception's message (the server's error, as pgjdbc words it: the
    message, then its Hint and Position), or None for a Python-side error."""
    java = getattr(exc, "java_exception", None)
    message = None
    while java is not None:
        message = str(java.getMessage())
        java = java.getCause()
    return message


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
