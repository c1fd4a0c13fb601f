"""SQLAlchemy 2's inspector (psycopg driver) and pandas over fsql and over a real PostgreSQL 15
holding ordinary tables with the same names, columns, types, keys and comments: every
reflection result is equal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.postgres]

SCHEMAS = ("features", "offline", "sources", "fsql")


def reflect(url: str) -> dict[str, Any]:
    """Everything the inspector says about fsql's schemas, in comparable form (an
    ``postgresql+asyncpg`` URL reflects through SQLAlchemy's async engine)."""
    import sqlalchemy as sa

    if "+asyncpg" in url:
        return asyncio.run(_reflect_async(url))
    engine = sa.create_engine(url)
    try:
        return _reflect(sa.inspect(engine))
    finally:
        engine.dispose()


async def _reflect_async(url: str) -> dict[str, Any]:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda sync: _reflect(sa.inspect(sync)))
    finally:
        await engine.dispose()


def _reflect(inspector: Any) -> dict[str, Any]:
    """Everything ``inspector`` says about fsql's schemas, in comparable form."""
    out: dict[str, Any] = {"schemas": [s for s in inspector.get_schema_names()
                                       if s in SCHEMAS or s == "public"]}
    for schema in SCHEMAS:
        tables = sorted(inspector.get_table_names(schema=schema))  # unordered in PG
        out[schema] = tables
        for table in tables:
            columns = [(c["name"], repr(c["type"]), c["nullable"], c.get("default"),
                        c.get("comment"), c.get("autoincrement"))
                       for c in inspector.get_columns(table, schema=schema)]
            out[f"{schema}.{table}"] = {
                "columns": columns,
                "pk": inspector.get_pk_constraint(table, schema=schema),
                "fk": inspector.get_foreign_keys(table, schema=schema),
                "indexes": inspector.get_indexes(table, schema=schema),
                "unique": inspector.get_unique_constraints(table, schema=schema),
                "has": inspector.has_table(table, schema=schema),
                "comment": inspector.get_table_comment(table, schema=schema),
            }
    out["has_missing"] = inspector.has_table("no_such_table", schema="features")
    out["views"] = inspector.get_view_names(schema="features")
    return out


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2", "asyncpg"])
def test_inspector_equals_postgres(catalog_server: FsqlServer, reference_pg: str,
                                   driver: str) -> None:
    ours = reflect(f"postgresql+{driver}://tester@127.0.0.1:{catalog_server.port}/fsql")
    theirs = reflect(reference_pg.replace("postgresql://", f"postgresql+{driver}://"))
    assert ours == theirs
    assert ours["features.user"]["pk"]["constrained_columns"] == ["user_id"]
    assert ours["features.user"]["comment"] == {"text": "A customer"}


def test_pandas_read_sql_table_reflects_and_reads(catalog_server: FsqlServer) -> None:
    import pandas as pd
    import sqlalchemy as sa

    engine = sa.create_engine(
        f"postgresql+psycopg://tester@127.0.0.1:{catalog_server.port}/fsql")
    try:
        frame = pd.read_sql_table("tx", engine, schema="sources")
        assert list(frame.columns) == ["user_id", "item_id", "amount", "ts"]
        assert frame["user_id"].tolist() == ["u1"] and frame["amount"].tolist() == [1.5]
    finally:
        engine.dispose()
