"""The fsql SQL surface over a materialized repo, through every client: ``features.<entity>``
lookups, ``training_set(...)``, ``offline.*``, ``sources.*``, ``fsql.*`` and CREATE/DROP.
Expected values come from the Python API on the same repo (``SyncFeatureStore``), never typed
in by hand."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsql.workspace import Workspace
from tests.api._shop import DAY, Shop, make_shop, today
from tests.server._differential import make_shop_repo
from tests.server.conftest import FsqlServer
from tests.server.test_clients import jdbc_probe, psql, run_jdbc  # noqa: F401 - fixture

pytestmark = pytest.mark.server

FEATURES = ["user_country", "user_orders", "user_purchase_30d"]
SPINE_TIMES = [today() - 2 * DAY + dt.timedelta(hours=5), today() - DAY,
               today() + dt.timedelta(hours=1)]

CONFIG = """
[server]
auth = "trust"

[[server.users]]
name = "alice"
can_define = true

[[server.users]]
name = "bob"
can_define = false
"""


@pytest.fixture(scope="module")
def shop() -> Shop:
    return make_shop()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, shop: Shop) -> Path:
    return make_shop_repo(tmp_path_factory.mktemp("shop"), shop, CONFIG)


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[FsqlServer]:
    srv = FsqlServer(repo).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def api(repo: Path) -> Iterator[object]:
    from fsql import SyncFeatureStore

    store = SyncFeatureStore(repo)
    yield store
    store.close()


def python_api_row(api: object, user: str) -> tuple:
    values = api.get_online_features(FEATURES, user)  # type: ignore[attr-defined]
    return (user, *[values[f] for f in FEATURES])


def spine_rows(shop: Shop) -> list[tuple[str, dt.datetime, int]]:
    return [(u, t.replace(tzinfo=None), i) for i, (u, t) in
            enumerate((u, t) for u in shop.users[:5] for t in SPINE_TIMES)]


def python_training_set(api: object, shop: Shop) -> list[tuple]:
    import pyarrow as pa

    rows = spine_rows(shop)
    spine = pa.table({
        "user_id": [r[0] for r in rows],
        "event_time": pa.array([r[1] for r in rows], pa.timestamp("us")),
        "label": pa.array([r[2] for r in rows], pa.int64()),
    })
    from fsql.compute.training import training_set

    table = training_set(Workspace(api.config), spine, ["user_purchase_30d", "user_country"])  # type: ignore[attr-defined]
    return [tuple(r.values()) for r in table.to_pylist()]


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=0, abs_tol=0) or a == b
    return a == b


# ------------------------------------------------------------------------------ feature reads


def test_psql_reads_features_and_registry(server: FsqlServer, api: object, shop: Shop) -> None:
    user = shop.users[1]
    out = psql(server, "-A", "-F", "|", "-t", "-U", "alice",
               "-c", f"SELECT * FROM features.user WHERE user_id = '{user}'")
    assert out.returncode == 0, out.stderr
    expected = python_api_row(api, user)
    got = out.stdout.strip().split("|")
    assert got[0] == user and got[1] == (expected[1] or "")
    assert int(got[2]) == expected[2] and float(got[3]) == expected[3]
    out = psql(server, "-A", "-t", "-U", "alice", "-c", "SELECT name FROM fsql.features ORDER BY name")
    assert out.stdout.split() == sorted([*FEATURES, "user_orders_offline"])


def test_psycopg_lookups_match_the_python_api(server: FsqlServer, api: object,
                                              shop: Shop) -> None:
    import psycopg

    with psycopg.connect(server.dsn("alice"), autocommit=True) as conn:
        for user in [*shop.users, "nobody"]:
            row = conn.execute("SELECT * FROM features.user WHERE user_id = %s",
                               [user]).fetchone()
            assert row == python_api_row(api, user), user
        # IN, projection, alias, ORDER BY, LIMIT, binary results
        cur = conn.cursor(binary=True)
        rows = cur.execute(
            "SELECT user_id AS id, user_orders FROM features.user "
            "WHERE user_id IN (%s, %s, %s) ORDER BY id DESC LIMIT 2",
            shop.users[:3]).fetchall()
        want = sorted((python_api_row(api, u)[::2] for u in shop.users[:3]), reverse=True)[:2]
        assert rows == [(u, api.get_online_features(["user_orders"], u)["user_orders"])
                        for u, _ in want]
        assert [d.name for d in cur.description] == ["id", "user_orders"]
        # prepared (server-side) after repeated execution, and the simple protocol with
        # literals: both served by one cached plan
        for user in shop.users[:6]:
            assert conn.execute("SELECT user_orders FROM features.user WHERE user_id = %s",
                                [user], prepare=True).fetchone()[0] == \
                api.get_online_features(["user_orders"], user)["user_orders"]
        for user in shop.users[:6]:
            result = conn.pgconn.exec_(
                f"SELECT user_orders FROM features.user WHERE user_id = '{user}'".encode())
            value = result.get_value(0, 0)
            want_orders = api.get_online_features(["user_orders"], user)["user_orders"]
            assert (int(value) if value is not None else None) == want_orders


def test_lookup_errors_have_sqlstates(server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(server.dsn("alice"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable) as info:
            conn.execute("SELECT * FROM features.nosuch WHERE id = 1")
        assert "features.nosuch" in str(info.value)
        with pytest.raises(psycopg.errors.UndefinedColumn) as info:
            conn.execute("SELECT nope FROM features.user WHERE user_id = 'u001'")
        assert info.value.diag.statement_position == "8"
        # without the key, a scan of the relation (tests/server/test_entity_relation.py)
        assert len(conn.execute("SELECT * FROM features.user").fetchall()) > 0
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM offline.no_such_feature")


def test_asyncpg_pg8000_psycopg2_read_the_same_values(server: FsqlServer, api: object,
                                                      shop: Shop) -> None:
    import asyncpg
    import pg8000.native
    import psycopg2

    users = shop.users[:4]
    expected = [python_api_row(api, u) for u in users]

    async def via_asyncpg() -> list[tuple]:
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="alice",
                                     database="fsql")
        try:
            statement = await conn.prepare("SELECT * FROM features.user WHERE user_id = $1")
            return [tuple(await statement.fetchrow(u)) for u in users]
        finally:
            await conn.close()

    assert asyncio.run(via_asyncpg()) == expected
    p8 = pg8000.native.Connection("alice", host="127.0.0.1", port=server.port, database="fsql")
    try:
        assert [tuple(p8.run("SELECT * FROM features.user WHERE user_id = :u", u=u)[0])
                for u in users] == expected
    finally:
        p8.close()
    p2 = psycopg2.connect(host="127.0.0.1", port=server.port, user="alice", dbname="fsql")
    try:
        cur = p2.cursor()
        got = []
        for u in users:
            cur.execute("SELECT * FROM features.user WHERE user_id = %s", (u,))
            got.append(cur.fetchone())
        assert got == expected
    finally:
        p2.close()


# ------------------------------------------------------------------------------ training sets


def test_training_set_over_copy_spine_matches_python_api(server: FsqlServer, api: object,
                                                         shop: Shop) -> None:
    import psycopg

    expected = python_training_set(api, shop)
    with psycopg.connect(server.dsn("alice"), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE spine (user_id VARCHAR, event_time TIMESTAMP, "
                     "label BIGINT)")
        with conn.cursor().copy("COPY spine FROM STDIN") as copy:
            for row in spine_rows(shop):
                copy.write_row(row)
        rows = conn.execute(
            "SELECT * FROM training_set('spine', 'user_purchase_30d', 'user_country') "
            "ORDER BY label").fetchall()
    assert len(rows) == len(expected)
    for got, want in zip(rows, expected, strict=True):
        assert all(same(a, b) for a, b in zip(got, want, strict=True)), (got, want)


def test_training_set_with_asyncpg_and_an_error(server: FsqlServer, api: object,
                                                shop: Shop) -> None:
    import asyncpg

    expected = python_training_set(api, shop)

    async def main() -> tuple[list[tuple], str]:
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="alice",
                                     database="fsql")
        try:
            await conn.execute("CREATE TEMP TABLE s (user_id VARCHAR, event_time TIMESTAMP, "
                               "label BIGINT)")
            await conn.executemany("INSERT INTO s VALUES ($1, $2, $3)", spine_rows(shop))
            rows = await conn.fetch("SELECT * FROM training_set('s', 'user_purchase_30d', "
                                    "'user_country') ORDER BY label")
            try:
                await conn.fetch("SELECT * FROM training_set('s', 'no_such_feature')")
            except asyncpg.PostgresError as exc:
                return [tuple(r) for r in rows], exc.sqlstate
            return [tuple(r) for r in rows], "no error"
        finally:
            await conn.close()

    rows, state = asyncio.run(main())
    assert rows == expected
    assert state == "42704"


def test_offline_and_sources_through_duckdb(server: FsqlServer, api: object,
                                            shop: Shop) -> None:
    import psycopg

    with psycopg.connect(server.dsn("alice"), autocommit=True) as conn:
        n_orders = conn.execute("SELECT count(*) FROM sources.orders").fetchone()[0]
        assert n_orders == len(shop.orders)
        latest = conn.execute(
            "SELECT user_id, user_orders FROM offline.user_orders "
            "WHERE feature_time = (SELECT max(feature_time) FROM offline.user_orders "
            "WHERE feature_time <= now()) ORDER BY user_id").fetchall()
    for user, orders in latest:
        assert orders == api.get_online_features(["user_orders"], user)["user_orders"]


# -------------------------------------------------------------------------------- definitions


def test_create_and_drop_over_the_wire(server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(server.dsn("bob"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE FEATURE user_max_order ENTITY user "
                         "AS SELECT user_id, MAX(purchase_amount) FROM orders")
    with psycopg.connect(server.dsn("alice"), autocommit=True) as conn:
        lookup = "SELECT * FROM features.user WHERE user_id = 'u001'"
        before = [d.name for d in conn.execute(lookup).description]
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("CREATE FEATURE user_max_order ENTITY user "
                     "AS SELECT user_id, MAX(purchase_amount) FROM orders")
        assert notices == ["feature user_max_order: version 1"]
        assert conn.execute("SELECT version, type FROM fsql.features "
                            "WHERE name = 'user_max_order'").fetchone() == (1, "DOUBLE")
        # the session's cached lookup plan notices the new online feature
        after = [d.name for d in conn.execute(lookup).description]
        assert after == ["user_id", *sorted([*before[1:], "user_max_order"])]
        with pytest.raises(psycopg.Error) as info:
            conn.execute("CREATE FEATURE broken ENTITY user "
                         "AS SELECT user_id, SUM(no_such_column) FROM orders")
        assert info.value.sqlstate in ("42703", "42P17")
        assert info.value.diag.statement_position is not None
        # a data check is a definition like the others: versioned, and it guards its feature
        conn.execute("CREATE CHECK max_order_positive ON user_max_order EXPECT (value > 0) WARN")
        assert notices[-1] == "check max_order_positive: version 1"
        with pytest.raises(psycopg.Error) as info:
            conn.execute("DROP FEATURE user_max_order")
        assert "max_order_positive" in info.value.diag.message_primary
        conn.execute("DROP CHECK max_order_positive")
        conn.execute("DROP FEATURE user_max_order")
        assert conn.execute("SELECT count(*) FROM fsql.features "
                            "WHERE name = 'user_max_order'").fetchone() == (0,)


# ------------------------------------------------------------------------------------- pgjdbc


def test_pgjdbc_features_training_set_and_error(server: FsqlServer, api: object, shop: Shop,
                                                jdbc_probe: Path) -> None:  # noqa: F811
    user = shop.users[2]
    rows = run_jdbc(
        jdbc_probe, server,
        f"prepared|7|string|{user}|SELECT user_id, user_orders FROM features.user "
        "WHERE user_id = ?",
        "query|SELECT count(*) FROM fsql.features",
        "error|SELECT nope FROM features.user WHERE user_id = 'x'",
        user="alice",
    )
    orders = api.get_online_features(["user_orders"], user)["user_orders"]
    assert rows[0] == [[user, str(orders)], ["END"]]
    from fsql.language.definitions import FeatureDef

    n_features = sum(isinstance(r.definition, FeatureDef)
                     for r in api.registry.current().values())  # type: ignore[attr-defined]
    assert rows[1] == [[str(n_features)], ["END"]]
    assert rows[2] == [["SQLSTATE", "42703"]]


def test_sqlalchemy_and_pandas(server: FsqlServer, api: object, shop: Shop) -> None:
    """SQLAlchemy's connect probes (version(), type lookups, SHOW ...) and pandas.read_sql."""
    import pandas as pd
    import sqlalchemy as sa

    users = shop.users[:3]
    for driver in ("psycopg", "psycopg2", "pg8000"):
        engine = sa.create_engine(f"postgresql+{driver}://alice@127.0.0.1:{server.port}/fsql")
        try:
            with engine.connect() as conn:
                frame = pd.read_sql(
                    sa.text("SELECT user_id, user_orders FROM features.user "
                            "WHERE user_id IN :users ORDER BY user_id").bindparams(
                        sa.bindparam("users", expanding=True)),
                    conn, params={"users": users})
        finally:
            engine.dispose()
        want = [api.get_online_features(["user_orders"], u)["user_orders"] for u in users]
        assert list(frame["user_id"]) == users, driver
        assert [None if pd.isna(v) else int(v) for v in frame["user_orders"]] == want, driver


def test_batch_lookup_with_an_array_parameter(server: FsqlServer, api: object,
                                              shop: Shop) -> None:
    import asyncpg
    import psycopg

    users = [*shop.users[:5], "nobody", shop.users[0]]
    expected = [python_api_row(api, u) for u in dict.fromkeys(users)]
    with psycopg.connect(server.dsn("alice"), autocommit=True) as conn:
        rows = conn.execute("SELECT * FROM features.user WHERE user_id = ANY(%s)",
                            [users]).fetchall()
        assert rows == expected
        rows = conn.execute("SELECT * FROM features.user "
                            "WHERE user_id = ANY(ARRAY['u001', 'u002'])").fetchall()
        assert rows == [python_api_row(api, "u001"), python_api_row(api, "u002")]

    async def via_asyncpg() -> list[tuple]:
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="alice",
                                     database="fsql")
        try:
            return [tuple(r) for r in await conn.fetch(
                "SELECT * FROM features.user WHERE user_id = ANY($1::text[])", users)]
        finally:
            await conn.close()

    assert asyncio.run(via_asyncpg()) == expected


def test_training_set_through_psql_pg8000_psycopg2_and_jdbc(server: FsqlServer, api: object,
                                                            shop: Shop,
                                                            jdbc_probe: Path) -> None:  # noqa: F811
    import pg8000.native
    import psycopg2

    expected = python_training_set(api, shop)
    rows = spine_rows(shop)
    values = ", ".join(f"('{u}', TIMESTAMP '{t.isoformat(sep=' ')}', {label})"
                       for u, t, label in rows)
    create = "CREATE TEMP TABLE spine (user_id VARCHAR, event_time TIMESTAMP, label BIGINT)"
    insert = f"INSERT INTO spine VALUES {values}"
    query = ("SELECT * FROM training_set('spine', 'user_purchase_30d', 'user_country') "
             "ORDER BY label")

    def text(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=" ")
        return str(value)

    # psql (text output, one connection for all three statements)
    out = psql(server, "-A", "-t", "-F", "|", "-U", "alice",
               "-c", f"{create}; {insert}; {query}")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()[2:]  # after CREATE TABLE, INSERT 0 n
    assert lines == ["|".join(text(v) for v in row) for row in expected]
    # pg8000
    p8 = pg8000.native.Connection("alice", host="127.0.0.1", port=server.port, database="fsql")
    try:
        p8.run(create)
        p8.run(insert)
        assert [tuple(r) for r in p8.run(query)] == expected
    finally:
        p8.close()
    # psycopg2
    p2 = psycopg2.connect(host="127.0.0.1", port=server.port, user="alice", dbname="fsql")
    try:
        cur = p2.cursor()
        cur.execute(create)
        cur.execute(insert)
        cur.execute(query)
        assert cur.fetchall() == expected
    finally:
        p2.close()
    # pgjdbc
    result = run_jdbc(jdbc_probe, server, f"exec|{create}", f"exec|{insert}", f"query|{query}",
                      user="alice")
    assert result[1] == [["COUNT", str(len(rows))]]
    assert result[2][:-1] == [[text(v) if v is not None else "\\N" for v in row]
                              for row in expected]


def test_explain_says_which_part_answers(server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(server.dsn("alice"), autocommit=True) as conn:
        lookup = [r[0] for r in conn.execute(
            "EXPLAIN SELECT user_orders FROM features.user WHERE user_id = 'u001'")]
        assert lookup[0].startswith("Online store lookup on entity user")
        offline = [r[0] for r in conn.execute("EXPLAIN SELECT count(*) FROM offline.user_orders")]
        assert offline[0] == "DuckDB (session database):" and len(offline) > 1
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("EXPLAIN ANALYZE SELECT 1")


def test_training_set_over_a_source_spine(server: FsqlServer, api: object) -> None:
    """A source can be the spine (its only timestamp column is the time); the result equals
    the Python API's training set over the same rows."""
    import psycopg

    from fsql.compute.training import training_set

    orders = api.registry.current()["orders"].definition  # type: ignore[attr-defined]
    from fsql.stores.sources import source_files

    spine = source_files(orders, api.config).dataset().to_table()  # type: ignore[attr-defined]
    expected = training_set(Workspace(api.config), spine, ["user_orders"], time_column="ts").to_pylist()
    with psycopg.connect(server.dsn("alice"), autocommit=True) as conn:
        cur = conn.execute("SELECT * FROM training_set('sources.orders', 'user_orders')")
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    assert names == ["user_id", "purchase_amount", "ts", "user_orders"]
    assert rows == expected


def test_sqlalchemy_asyncio_with_asyncpg(server: FsqlServer, api: object, shop: Shop) -> None:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    user = shop.users[3]

    async def main() -> list[tuple]:
        engine = create_async_engine(f"postgresql+asyncpg://alice@127.0.0.1:{server.port}/fsql")
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    sa.text("SELECT * FROM features.user WHERE user_id = :u"), {"u": user})
                return [tuple(r) for r in result.fetchall()]
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == [python_api_row(api, user)]
