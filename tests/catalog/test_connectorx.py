"""connectorx (and polars through it) against fsql and against a real PostgreSQL 15 holding
the same table and row: connectorx reads with ``COPY (query) TO STDOUT WITH BINARY`` (its
default), a cursor, the simple protocol or CSV, and splits partitioned reads with min/max
queries; every way gives the same Arrow table from both servers. (connectorx's binary reader
decodes one row per CopyData message: the server sends one per row, as PostgreSQL does.)"""

from __future__ import annotations

import datetime as dt

import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.postgres]

QUERY = "SELECT * FROM sources.tx"


@pytest.fixture(scope="module")
def reference_with_rows(reference_pg: str) -> str:
    """The reference database with the row fsql's test source holds (conftest.make_repo)."""
    import psycopg

    with psycopg.connect(reference_pg, autocommit=True) as conn:
        conn.execute("INSERT INTO sources.tx VALUES ('u1', 1, 1.5, '2024-01-01 00:00:00')")
    return reference_pg


def fsql_url(server: FsqlServer) -> str:
    return f"postgresql://tester@127.0.0.1:{server.port}/fsql"


@pytest.mark.parametrize("protocol", ["binary", "cursor", "simple", "csv"])
def test_connectorx_read_sql_equals_postgres(catalog_server: FsqlServer,
                                             reference_with_rows: str, protocol: str) -> None:
    import connectorx as cx

    ours = cx.read_sql(fsql_url(catalog_server), QUERY, return_type="arrow", protocol=protocol)
    theirs = cx.read_sql(reference_with_rows, QUERY, return_type="arrow", protocol=protocol)
    assert ours.schema == theirs.schema
    assert ours.to_pylist() == theirs.to_pylist() == [
        {"user_id": "u1", "item_id": 1, "amount": 1.5, "ts": dt.datetime(2024, 1, 1)}]


def test_connectorx_partitioned_and_catalog_reads_equal_postgres(
        catalog_server: FsqlServer, reference_with_rows: str) -> None:
    import connectorx as cx
    import polars as pl

    catalog = ("SELECT table_schema, table_name FROM information_schema.tables "
               "WHERE table_schema IN ('features', 'sources') ORDER BY 1, 2")
    answers = []
    for url in (fsql_url(catalog_server), reference_with_rows):
        parts = cx.read_sql(url, QUERY, return_type="arrow", partition_on="item_id",
                            partition_num=2)
        many = cx.read_sql(url, [f"{QUERY} WHERE item_id = 1", f"{QUERY} WHERE item_id <> 1"],
                           return_type="arrow")
        tables = cx.read_sql(url, catalog, return_type="arrow")  # binary: 3 rows
        series = cx.read_sql(url, "SELECT x FROM generate_series(1, 5) t(x)",
                             return_type="arrow")
        frame = pl.read_database_uri(catalog, url, engine="connectorx")
        answers.append((parts.to_pylist(), many.to_pylist(), tables.to_pylist(),
                        frame.to_dicts(), series.to_pylist()))
    ours, theirs = answers
    assert ours == theirs
    assert len(ours[0]) == 1 and len(ours[2]) == len(ours[3]) == 3 and len(ours[4]) == 5
    assert {"table_schema": "features", "table_name": "user"} in ours[2]
