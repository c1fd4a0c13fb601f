"""One materialized fsql repo served by ``fsql serve`` and a real PostgreSQL 15 database holding
equivalent tables with the same rows, for the differential client tests (test_clients_*.py,
test_corpus.py).

The repo is the API tests' shop (entity ``user``; sources ``orders`` and ``profiles``; the
features ``user_purchase_30d``, ``user_orders``, ``user_country`` online and
``user_orders_offline`` offline), materialized up to tomorrow. The PostgreSQL database gets
the DDL the catalog tests use (same schemas, tables, columns, types, keys, comments: see
tests/catalog/conftest.py) and then the rows fsql serves: ``sources.*`` and ``offline.*`` read
through the server, ``features.user`` as the server's point lookups of every user that has a value (the
current values, TTL applied). ``fsql.*`` (the registry) stays empty there. Module scope: one server
and one database per test file."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from fsql import SyncFeatureStore
from tests.api._shop import DAY, Shop, make_shop, today, write_shop
from tests.api.test_feature_store import COUNTRY, ORDERS_OFFLINE, ORDERS_SQL, PURCHASE_30D
from tests.catalog.conftest import reference_ddl, relations_of
from tests.server.conftest import FsqlServer, write_config

#: the password-less user both servers know (fsql: auth "trust"; PostgreSQL: a LOGIN role)
USER = "tester"


@dataclass
class Pair:
    """The two servers of a differential test: ``fsql`` and ``pg`` (a libpq URL of the
    reference database, user ``tester`` who owns nothing and reads everything)."""

    fsql: FsqlServer
    pg_url: str
    pg_port: int
    pg_db: str
    shop: Shop

    @property
    def fsql_url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.fsql.port}/fsql"

    @property
    def pg_user_url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.pg_port}/{self.pg_db}"

    def urls(self) -> dict[str, str]:
        return {"fsql": self.fsql_url, "postgres": self.pg_user_url}


def make_shop_repo(root: Path, shop: Shop, config: str = '[server]\nauth = "trust"\n') -> Path:
    """A repo with the shop's sources and four features (online, offline), materialized over
    the last three days, and ``config`` as its fsql.toml."""
    write_shop(shop, root)
    write_config(root, config)
    store = SyncFeatureStore(root)
    try:
        store.register(shop.sql("data/orders", "data/profiles"))
        for definition in (PURCHASE_30D, ORDERS_SQL, COUNTRY, ORDERS_OFFLINE):
            store.register_feature(definition)
        store.materialize(today() - 3 * DAY, today() + DAY)
    finally:
        store.close()
    return root


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def copy_rows(repo: Path, fsql_url: str, pg_url: str, users: list[str]) -> None:
    """Fill the reference tables with the rows fsql serves."""
    with psycopg.connect(fsql_url, autocommit=True) as ours, \
            psycopg.connect(pg_url, autocommit=True) as theirs:
        for rel in relations_of(repo):
            table = f"{_quote(rel.schema)}.{_quote(rel.name)}"
            if rel.schema in ("offline", "sources"):
                rows = ours.execute(f"SELECT * FROM {table}").fetchall()
            elif rel.schema == "features" and len(rel.primary_key) == 1:
                key = _quote(rel.primary_key[0])
                rows = []
                for user in users:
                    # a lookup answers every key; the relation holds the entities with values
                    rows += [row for row in ours.execute(
                        f"SELECT * FROM {table} WHERE {key} = %s", [user]).fetchall()
                        if any(value is not None for value in row[1:])]
            else:
                continue
            if not rows:
                continue
            marks = ", ".join(["%s"] * len(rows[0]))
            with theirs.cursor() as cur:
                cur.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        theirs.execute("GRANT USAGE ON SCHEMA features, offline, sources, fsql TO tester")
        for schema in ("features", "offline", "sources", "fsql"):
            theirs.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO tester")
        # fsql lets every user create tables in its session (Spark's JDBC writer does)
        theirs.execute("GRANT CREATE ON SCHEMA public TO tester")
        theirs.execute("ANALYZE")


@contextmanager
def open_pair(postgres_url: str, folder: Path) -> Iterator[Pair]:
    """Serve a fresh shop repo under ``folder`` and fill a fresh database on the PostgreSQL
    server of ``postgres_url`` (a superuser URL) with the same tables and rows."""
    shop = make_shop()
    repo = make_shop_repo(folder, shop)
    server = FsqlServer(repo).start()
    name = f"clients_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
    base = postgres_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    port = int(base.rsplit(":", 1)[1])
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in reference_ddl(repo):
                if statement.startswith("CREATE ROLE") and statement.split()[2] in roles:
                    continue
                conn.execute(statement)
        result = Pair(server, url, port, name, shop)
        copy_rows(repo, result.fsql_url, url, shop.users)
        yield result
    finally:
        server.stop()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def pair(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    with open_pair(postgres_url, tmp_path_factory.mktemp("shop")) as result:
        yield result
