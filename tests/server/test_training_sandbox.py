"""The DuckDB connection of ``training_set(...)`` over the wire is sandboxed like the
sessions' (issue 15, finding 7): it reads files only in the offline store (the timelines),
refuses ``read_csv`` of any other file, and its configuration is locked — whatever SQL it
is given. (The SQL it is given quotes every feature and key name as an identifier:
tests/compile/test_pit_names.py.) Checked on the engine the server opens for a training
set, then through the wire: the training set still computes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest
from fsql_server.features.services import Services
from fsql_server.features.training import open_training_engine

from fsql.config import load_config
from tests.api._shop import DAY, make_shop, today, write_shop
from tests.server.conftest import FsqlServer, write_config

pytestmark = [pytest.mark.server, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fsql import SyncFeatureStore
    from tests.api.test_feature_store import ORDERS_SQL, PURCHASE_30D

    root = tmp_path_factory.mktemp("training_sandbox")
    shop = make_shop(seed=9)
    write_shop(shop, root)
    write_config(root, "")
    (root / "outside.csv").write_text("secret\nplanted-training-secret\n")
    store = SyncFeatureStore(root)
    try:
        store.register(shop.sql("data/orders", "data/profiles"))
        for definition in (PURCHASE_30D, ORDERS_SQL):
            store.register_feature(definition)
        store.materialize(today() - 2 * DAY, today() + DAY)
    finally:
        store.close()
    return root


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[FsqlServer]:
    started = FsqlServer(repo).start()
    yield started
    started.stop()


def test_the_training_engine_reads_only_the_offline_store(repo: Path) -> None:
    services = Services(load_config(repo))
    engine = open_training_engine(services)
    try:
        con = engine.con
        for probe in (f"SELECT * FROM read_csv('{repo / 'outside.csv'}')",
                      "SELECT * FROM read_csv('/etc/passwd')",
                      f"SELECT * FROM read_text('{repo / 'fsql.toml'}')",
                      f"SELECT * FROM read_parquet('{repo / '.fsql' / 'offline'}/../x.parquet')"):
            with pytest.raises(duckdb.PermissionException):
                con.execute(probe)
        with pytest.raises(duckdb.Error, match="locked"):
            con.execute("SET enable_external_access = true")
        timelines = sorted((repo / ".fsql" / "offline").rglob("*.parquet"))
        assert timelines
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{timelines[0]}')").fetchone()
        assert rows is not None and rows[0] > 0
    finally:
        engine.close()
        services.workspace.close()


def test_training_sets_over_the_wire_still_compute(server: FsqlServer) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        users = [r[0] for r in conn.execute(
            "SELECT user_id FROM features.user WHERE user_orders IS NOT NULL "
            "ORDER BY user_id LIMIT 3").fetchall()]
        assert users
        conn.execute("CREATE TEMP TABLE spine (user_id VARCHAR, event_time TIMESTAMP)")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO spine VALUES (%s, now()::TIMESTAMP)",
                            [(u,) for u in users])
        got = conn.execute("SELECT user_id, user_orders FROM "
                           "training_set('spine', 'user_orders') ORDER BY user_id").fetchall()
        online = conn.execute("SELECT user_id, user_orders FROM features.user "
                              "WHERE user_id = ANY(%s) ORDER BY user_id", [users]).fetchall()
    assert [u for u, _ in got] == users
    assert all(v is not None for _, v in got)
    assert got == online
