"""The ADBC PostgreSQL driver's catalog calls (``get_objects``, ``get_table_schema``) and
polars' ``read_database_uri`` against fsql and against a real PostgreSQL 15 with the same
tables: equal answers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.postgres]


def objects(uri: str) -> dict[str, Any]:
    import adbc_driver_postgresql.dbapi as dbapi

    out: dict[str, Any] = {}
    with dbapi.connect(uri) as conn:
        for schema in ("features", "offline", "sources"):
            found = conn.adbc_get_objects(depth="all", db_schema_filter=schema).read_all()
            catalogs = [c for c in found.to_pylist() if c["catalog_db_schemas"]]
            schemas = catalogs[0]["catalog_db_schemas"]
            tables = sorted(schemas[0]["db_schema_tables"], key=lambda t: t["table_name"])
            for table in tables:
                # the driver's column query has no ORDER BY: compare by ordinal position
                table["table_columns"] = sorted(table["table_columns"] or [],
                                                key=lambda c: c["ordinal_position"])
                table["table_constraints"] = sorted(
                    table["table_constraints"] or [], key=lambda c: c["constraint_name"] or "")
            out[schema] = tables
        out["schema"] = str(conn.adbc_get_table_schema("user", db_schema_filter="features"))
    return out


def test_adbc_get_objects_equals_postgres(catalog_server: FsqlServer, reference_pg: str) -> None:
    ours = objects(f"postgresql://tester@127.0.0.1:{catalog_server.port}/fsql")
    assert ours == objects(reference_pg)
    names = [c["column_name"] for c in ours["features"][0]["table_columns"]]
    assert ours["features"][0]["table_name"] == "user" and names[0] == "user_id"


def test_polars_read_database_uri(catalog_server: FsqlServer) -> None:
    import polars as pl

    frame = pl.read_database_uri(
        "SELECT user_id, amount FROM sources.tx",
        f"postgresql://tester@127.0.0.1:{catalog_server.port}/fsql", engine="adbc")
    assert frame.to_dict(as_series=False) == {"user_id": ["u1"], "amount": [1.5]}
