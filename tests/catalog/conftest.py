"""Fixtures for catalog emulation: one fsql test repo served by ``fsql serve`` and a real
PostgreSQL 15 database holding ordinary tables with the same names, columns, types, keys and
comments (module scope: one server and one database per test module)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import FsqlServer

REPO_SQL = """
CREATE ENTITY "user" KEY (user_id VARCHAR) DESCRIPTION 'A customer';
CREATE ENTITY user_item KEY (user_id VARCHAR, item_id BIGINT);
CREATE SOURCE tx (user_id VARCHAR, item_id BIGINT, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/tx.parquet' FORMAT PARQUET EVENT TIME ts DESCRIPTION 'Payments';
CREATE FEATURE spend_7d ENTITY "user" WINDOW '7 days' DESCRIPTION 'Total spend over 7 days'
  AS SELECT user_id, SUM(amount) FROM tx;
CREATE FEATURE tx_count_7d ENTITY "user" WINDOW '7 days' AS SELECT user_id, COUNT(*) FROM tx;
CREATE FEATURE item_views ENTITY user_item WINDOW '1 day'
  AS SELECT user_id, item_id, COUNT(*) FROM tx;
"""


def make_repo(folder: Path, sql: str = REPO_SQL) -> Path:
    """An fsql repo with entities, a source and features (nothing materialized)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fsql import SyncFeatureStore

    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "user_id": ["u1"], "item_id": pa.array([1], pa.int64()), "amount": [1.5],
        "ts": pa.array([dt.datetime(2024, 1, 1)], pa.timestamp("us")),
    }), folder / "data" / "tx.parquet")
    store = SyncFeatureStore(folder)
    try:
        store.register(sql)
    finally:
        store.close()
    return folder


@pytest.fixture(scope="module")
def catalog_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("catalog_repo"))


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[FsqlServer]:
    """A server over its own copy of the test repo, for tests that change the registry (DDL
    over the wire: allowed explicitly under trust)."""
    repo = make_repo(tmp_path / "repo")
    (repo / "fsql.toml").write_text("[server]\ntrust_can_define = true\n")
    server = FsqlServer(repo).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def catalog_server(catalog_repo: Path) -> Iterator[FsqlServer]:
    server = FsqlServer(catalog_repo).start()
    yield server
    server.stop()


def relations_of(repo: Path) -> list:
    """The relations fsql's catalog describes for ``repo`` (the model both servers hold)."""
    from fsql_server.features.catalog import build_relations
    from fsql_server.features.services import Services

    from fsql.config import load_config

    return build_relations(Services(load_config(repo)))


def reference_ddl(repo: Path) -> list[str]:
    """DDL for ordinary PostgreSQL tables equal to fsql's relations: same schemas, owners,
    columns, types, NOT NULL, primary keys and comments."""
    from fsql_server.features.catalog import SCHEMAS
    from fsql_server.pg.catalog.model import OWNER
    from fsql_server.pg.catalog.tables import quote_ident
    from fsql_server.pg.introspection import regtype_name

    def literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    # fsql's owner role cannot log in (as CREATE ROLE makes it); the tests connect to fsql as
    # the login role "tester", which fsql lists as an ordinary role
    ddl = [f"CREATE ROLE {OWNER}", "CREATE ROLE tester LOGIN"]
    for schema, (_oid, comment) in SCHEMAS.items():
        ddl.append(f"CREATE SCHEMA {schema} AUTHORIZATION {OWNER}")
        ddl.append(f"COMMENT ON SCHEMA {schema} IS {literal(comment)}")
    for rel in relations_of(repo):
        table = f"{quote_ident(rel.schema)}.{quote_ident(rel.name)}"
        columns = [f"{quote_ident(c.name)} {regtype_name(c.type.oid)}"
                   + (" NOT NULL" if c.not_null else "") for c in rel.columns]
        if rel.primary_key:
            columns.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in rel.primary_key)})")
        ddl.append(f"CREATE TABLE {table} ({', '.join(columns)})")
        ddl.append(f"ALTER TABLE {table} OWNER TO {OWNER}")
        if rel.comment:
            ddl.append(f"COMMENT ON TABLE {table} IS {literal(rel.comment)}")
        for col in rel.columns:
            if col.comment:
                ddl.append(f"COMMENT ON COLUMN {table}.{quote_ident(col.name)} IS "
                           f"{literal(col.comment)}")
    return ddl


@pytest.fixture(scope="module")
def reference_pg(postgres_url: str, catalog_repo: Path) -> Iterator[str]:
    """A fresh database on the session's PostgreSQL 15 holding the reference tables."""
    import psycopg

    name = f"catalog_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'fsql'").fetchone()
    url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in reference_ddl(catalog_repo):
            if exists and statement.startswith("CREATE ROLE"):
                continue
            conn.execute(statement)
    yield url
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
