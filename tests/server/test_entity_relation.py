"""``features.<entity>`` as a relation (fsql_server.features.scan): a scan equals the point
lookups of every key.

The differential test runs on both online stores (SQLite and a real Redis): the shop's
features are materialized, then generated records are written straight into the store for
generated keys — fresh values, values older than the feature's TTL, values past their
``expires_at``, keys holding only some features, keys with ``|``, ``\\`` and quotes, a
two-column key of BIGINT and text — and one online feature is never materialized. Every row
of ``SELECT * FROM features.<entity>`` must equal the point lookup of its key, and the scan
must hold exactly the keys written. Other tests run the statements clients send over the
relation (GROUP BY, joins with sources and temp tables, ORDER BY an input column, schema
probes) and compare them with the same computation over the lookups.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsql_server.features.scan import EntityScan, entity_scan

from fsql.config import load_config
from fsql.stores.online.codec import encode_entity_key, encode_records
from fsql.workspace import Workspace
from tests.api._shop import DAY, make_shop, today, write_shop
from tests.server.conftest import FsqlServer, write_config

pytestmark = [pytest.mark.server]

SHOP = make_shop(seed=31)
NOW = datetime.now(UTC)
STORES_SQL = """
CREATE ENTITY store KEY (store_id BIGINT, region VARCHAR);
CREATE SOURCE visits (store_id BIGINT, region VARCHAR, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/visits' FORMAT PARQUET EVENT TIME ts;
CREATE FEATURE store_visits ENTITY store TTL '2 days' AS
  SELECT store_id, region, COUNT(*) FROM visits;
"""
#: features and their value types and TTLs, for the generated records
USER_FEATURES = {
    "user_purchase_30d": ("DOUBLE", None),
    "user_orders": ("BIGINT", timedelta(days=3)),
    "user_country": ("VARCHAR", timedelta(days=30)),
}
ODD_KEYS = ["a|b", "back\\slash", "o'brien", "", "ü-ñ", "trail\\"]


def _feature_time(rng: random.Random, ttl: timedelta | None) -> tuple[datetime, datetime | None]:
    """A feature time well inside or well outside ``ttl`` (never within an hour of the edge,
    so the scan's and the lookup's clocks agree), and maybe an expiry in the past or future."""
    if ttl is not None and rng.random() < 0.4:
        moment = NOW - ttl - timedelta(hours=rng.randint(1, 48))  # expired by TTL
    else:
        limit = (ttl or timedelta(days=60)) - timedelta(hours=1)
        moment = NOW - timedelta(seconds=rng.randint(60, int(limit.total_seconds())))
    expires = None
    if rng.random() < 0.2:
        expires = NOW + timedelta(hours=rng.choice([-2, 2]))
    return moment, expires


def _write_generated(repo: Path) -> tuple[set[str], set[tuple[int, str]]]:
    """Generated records for generated keys; returns the keys written (user, store)."""
    rng = random.Random(5)
    with Workspace(load_config(repo)) as workspace:
        store = workspace.online_store
        active = store.active_versions()
        users = [f"g{i:03d}" for i in range(150)] + ODD_KEYS
        written_users: set[str] = set()
        for feature, (kind, ttl) in USER_FEATURES.items():
            chosen = [u for u in users if rng.random() < 0.7]
            written_users.update(chosen)
            for key in chosen:
                moment, expires = _feature_time(rng, ttl)
                value = {"DOUBLE": round(rng.uniform(0, 500), 2), "BIGINT": rng.randint(0, 40),
                         "VARCHAR": rng.choice(["DE", "FR", "US", "JP"])}[kind]
                records = encode_records(kind, [value], [moment], expires)
                store.write("user", feature, active[feature], [encode_entity_key(key)], records)
        stores = {(rng.randint(-5, 10_000), rng.choice(["north", "south|east", "we\\st"]))
                  for _ in range(120)}
        version = "1"
        for key in stores:
            moment, expires = _feature_time(rng, timedelta(days=2))
            store.write("store", "store_visits", version, [encode_entity_key(key)],
                        encode_records("BIGINT", [rng.randint(1, 99)], [moment], expires))
        store.activate("store_visits", version)
    return written_users, stores


@pytest.fixture(scope="module", params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[FsqlServer, set[str], set[tuple[int, str]]]]:
    """(server, generated user keys, store keys) over one repo (the shop's users are in the
    store too, those the materialization wrote)."""
    from fsql import SyncFeatureStore
    from tests.api.test_feature_store import COUNTRY, ORDERS_SQL, PURCHASE_30D

    repo = tmp_path_factory.mktemp(f"relation_{request.param}")
    write_shop(SHOP, repo)
    (repo / "data/visits").mkdir(parents=True)
    pq.write_table(pa.table({
        "store_id": pa.array([1, 2], pa.int64()), "region": ["north", "north"],
        "amount": [1.0, 2.0], "ts": pa.array([datetime(2026, 1, 1)] * 2, pa.timestamp("us")),
    }), repo / "data/visits/part-0.parquet")
    if request.param == "redis":
        redis_server = request.getfixturevalue("redis_server")
        url = redis_server.url.rsplit("/", 1)[0] + "/13"
        # a test defines over the wire (trust, no users: allowed explicitly)
        write_config(repo, f'[server]\ntrust_can_define = true\n\n[online_store]\nurl = "{url}"\n')
    else:
        write_config(repo, "[server]\ntrust_can_define = true\n")
    api = SyncFeatureStore(repo)
    try:
        api.register(SHOP.sql("data/orders", "data/profiles"))
        for definition in (PURCHASE_30D, ORDERS_SQL, COUNTRY):
            api.register_feature(definition)
        api.materialize(today() - 2 * DAY, today() + DAY)
        api.register(STORES_SQL)
        # an online feature never materialized: NULL in lookups and in the scan
        api.register("CREATE FEATURE user_max_order ENTITY user AS "
                     "SELECT user_id, MAX(purchase_amount) FROM orders")
    finally:
        api.close()
    generated_users, stores = _write_generated(repo)
    server = FsqlServer(repo).start()
    try:
        yield server, generated_users, stores
    finally:
        server.stop()
        if request.param == "redis":
            request.getfixturevalue("redis_server").flush()


@pytest.fixture(scope="module")
def conn(world: tuple[FsqlServer, Any, Any]) -> Iterator[psycopg.Connection]:
    with psycopg.connect(world[0].dsn(), autocommit=True) as connection:
        yield connection


def test_a_scan_equals_the_lookups_of_every_key(world: Any, conn: psycopg.Connection) -> None:
    _, users, _ = world
    cur = conn.execute("SELECT * FROM features.user")
    names = [d.name for d in cur.description]
    assert names == ["user_id", "user_country", "user_max_order", "user_orders",
                     "user_purchase_30d"]
    rows = cur.fetchall()
    keys = [r[0] for r in rows]
    assert len(keys) == len(set(keys))  # each key once
    assert users <= set(keys) and set(keys) - users <= set(SHOP.users)
    lookup = conn.cursor()
    for row in rows:
        assert lookup.execute("SELECT * FROM features.user WHERE user_id = %s",
                              [row[0]]).fetchone() == row
        assert row[2] is None  # never materialized
    # the generated data covers what it should: expired values, fresh ones, empty rows
    assert any(r[3] is None for r in rows if r[0].startswith("g"))
    assert any(r[3] is not None for r in rows if r[0].startswith("g"))
    assert any(r[1] is None and r[3] is None and r[4] is None for r in rows)
    # the same with every key in one batch lookup (the fast path), by the Python list
    everyone = sorted(users | set(SHOP.users))
    batch = conn.execute("SELECT * FROM features.user WHERE user_id = ANY(%s) ORDER BY user_id",
                         [everyone]).fetchall()
    scanned = set(keys)
    # a key the scan lacks has nothing stored: its lookup is all NULL
    assert [r for r in batch if r[0] in scanned] == sorted(rows)
    assert all(r[1:] == (None,) * 4 for r in batch if r[0] not in scanned)


def test_a_two_column_key_scans_typed(world: Any, conn: psycopg.Connection) -> None:
    _, _, stores = world
    cur = conn.execute("SELECT * FROM features.store")
    assert [d.name for d in cur.description] == ["store_id", "region", "store_visits"]
    lookup = conn.execute("SELECT * FROM features.store WHERE store_id = 1 AND region = 'x'")
    assert [d.type_code for d in cur.description] == [d.type_code for d in lookup.description]
    assert [d.type_code for d in cur.description][0] == 20  # bigint
    rows = cur.fetchall()
    assert {(r[0], r[1]) for r in rows} == stores
    assert any(r[2] is None for r in rows) and any(r[2] is not None for r in rows)
    for row in rows:
        assert conn.execute("SELECT * FROM features.store WHERE store_id = %s AND region = %s",
                            [row[0], row[1]]).fetchone() == row


def _lookups(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    """The lookups of every key of the scan (checked equal to it by the test above)."""
    keys = [r[0] for r in conn.execute("SELECT user_id FROM features.user").fetchall()]
    return conn.execute("SELECT * FROM features.user WHERE user_id = ANY(%s)", [keys]).fetchall()


def test_aggregates_filters_and_order_by(world: Any, conn: psycopg.Connection) -> None:
    every = _lookups(conn)
    users = {r[0] for r in every}
    counts: dict[Any, int] = {}
    for row in every:
        counts[row[1]] = counts.get(row[1], 0) + 1
    got = conn.execute("SELECT user_country, count(*) FROM features.user "
                       "GROUP BY user_country ORDER BY user_country NULLS FIRST").fetchall()
    assert got == sorted(counts.items(), key=lambda kv: (kv[0] is not None, kv[0] or ""))
    big = conn.execute("SELECT user_id FROM features.user WHERE user_orders > 10 "
                       "ORDER BY user_id").fetchall()
    assert [r[0] for r in big] == sorted(r[0] for r in every if r[3] is not None and r[3] > 10)
    # ORDER BY an input column under an alias (PostgreSQL allows it)
    renamed = conn.execute("SELECT user_id AS k FROM features.user ORDER BY user_id LIMIT 5")
    assert [d.name for d in renamed.description] == ["k"]
    assert [r[0] for r in renamed.fetchall()] == sorted(users)[:5]
    # the key plus a filter on a feature: not a point lookup, the same answer
    first = sorted(SHOP.users)[0]
    row = next(r for r in every if r[0] == first)
    got_one = conn.execute("SELECT user_id FROM features.user WHERE user_id = %s "
                           "AND user_orders IS NOT DISTINCT FROM %s", [first, row[3]]).fetchall()
    assert got_one == [(first,)]


def test_joins_with_sources_and_temp_tables(world: Any, conn: psycopg.Connection) -> None:
    every = {r[0]: r for r in _lookups(conn)}
    users = set(every)
    got = conn.execute(
        "SELECT f.user_id, count(*) AS n, max(f.user_orders) AS orders "
        "FROM features.user f JOIN sources.orders o ON o.user_id = f.user_id "
        "GROUP BY f.user_id ORDER BY f.user_id").fetchall()
    n_orders: dict[str, int] = {}
    for order in SHOP.orders:
        n_orders[order[0]] = n_orders.get(order[0], 0) + 1
    assert got == [(u, n_orders[u], every[u][3]) for u in sorted(n_orders) if u in every]
    conn.execute("CREATE TEMP TABLE wanted (user_id VARCHAR, label INT)")
    conn.execute("INSERT INTO wanted VALUES ('g001', 1), ('a|b', 2), ('nobody', 3)")
    joined = conn.execute("SELECT w.label, f.* FROM wanted w LEFT JOIN features.user f "
                          "USING (user_id) ORDER BY w.label").fetchall()
    assert joined[0][1:] == every["g001"] and joined[1][1:] == every["a|b"]
    assert joined[2][1:] == (None,) * 5
    # a self-join scans the relation twice in one statement
    assert conn.execute("SELECT count(*) FROM features.user a JOIN features.user b "
                        "USING (user_id)").fetchone() == (len(users),)


@pytest.mark.parametrize("probe", [
    "SELECT * FROM features.user WHERE 1=0",
    "SELECT * FROM features.user LIMIT 0",
    "SELECT * FROM features.user WHERE false",
    "SELECT * FROM (SELECT * FROM features.user) AS spark_dbtable WHERE 1=0",
])
def test_schema_probes_answer_columns_and_no_rows(conn: psycopg.Connection, probe: str) -> None:
    cur = conn.execute(probe)
    assert cur.fetchall() == []
    want = conn.execute("SELECT * FROM features.user WHERE user_id = 'u001'").description
    assert [(d.name, d.type_code) for d in cur.description] == \
        [(d.name, d.type_code) for d in want]


#: psqlODBC's SQLPrimaryKeys query (info.c), for one table
ODBC_PRIMARY_KEYS = (
    "select ta.attname, ia.attnum, ic.relname, n.nspname, tc.relname "
    "from pg_catalog.pg_attribute ta, pg_catalog.pg_attribute ia, pg_catalog.pg_class tc, "
    "pg_catalog.pg_index i, pg_catalog.pg_namespace n, pg_catalog.pg_class ic "
    "where tc.relname = %s AND n.nspname = 'features' AND tc.oid = i.indrelid "
    "AND n.oid = tc.relnamespace AND i.indisprimary = 't' AND ia.attrelid = i.indexrelid "
    "AND ta.attrelid = i.indrelid AND ta.attnum = i.indkey[ia.attnum-1] "
    "AND (NOT ta.attisdropped) AND (NOT ia.attisdropped) AND ic.oid = i.indexrelid "
    "order by ia.attnum")


def test_primary_key_indexes_have_their_columns(conn: psycopg.Connection) -> None:
    """SQLPrimaryKeys and psql's ``\\d features.store_pkey`` read the index's pg_attribute
    rows."""
    assert conn.execute(ODBC_PRIMARY_KEYS, ["store"]).fetchall() == [
        ("store_id", 1, "store_pkey", "features", "store"),
        ("region", 2, "store_pkey", "features", "store")]
    assert conn.execute(ODBC_PRIMARY_KEYS, ["user"]).fetchall() == [
        ("user_id", 1, "user_pkey", "features", "user")]
    index = conn.execute("SELECT 'features.store_pkey'::regclass::oid").fetchone()[0]
    psql_index_columns = conn.execute(
        "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
        "CASE WHEN a.attnum <= (SELECT i.indnkeyatts FROM pg_catalog.pg_index i "
        "WHERE i.indexrelid = %s) THEN 'yes' ELSE 'no' END AS is_key, "
        "pg_catalog.pg_get_indexdef(a.attrelid, a.attnum, TRUE) AS indexdef "
        "FROM pg_catalog.pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 "
        "AND NOT a.attisdropped ORDER BY a.attnum", [index, index]).fetchall()
    assert psql_index_columns == [("store_id", "bigint", "yes", "store_id"),
                                  ("region", "text", "yes", "region")]
    # psqlODBC's SQLStatistics reads indkey as a vector only when it is sent as int2vector
    cur = conn.execute(
        "select c.relname, i.indkey, i.indisunique, i.indisclustered, a.amname, "
        "c.relhasrules, n.nspname, c.oid, 0, i.indoption from pg_catalog.pg_index i, "
        "pg_catalog.pg_class c, pg_catalog.pg_class d, pg_catalog.pg_am a, "
        "pg_catalog.pg_namespace n where d.relname = 'store' and n.nspname = 'features' "
        "and n.oid = d.relnamespace and d.oid = i.indrelid and i.indexrelid = c.oid "
        "and c.relam = a.oid order by i.indisprimary desc, i.indisunique, n.nspname, c.relname")
    assert [d.type_code for d in cur.description][1::8] == [22, 22]  # indkey, indoption
    assert [(r[0], r[1], r[2], r[4]) for r in cur.fetchall()] == [
        ("store_pkey", "1 2", True, "btree")]


@pytest.mark.redis
def test_schema_probes_never_read_the_store(tmp_path: Path) -> None:
    """``LIMIT 0`` / ``WHERE false`` / Describe answer with the online store down: they never
    pull a row, so the store is never read; a scan then fails with the store's own error and
    SQLSTATE (not DuckDB's wrapping of it), and the session goes on."""
    from fsql import SyncFeatureStore
    from tests.api.test_feature_store import COUNTRY, ORDERS_SQL, PURCHASE_30D
    from tests.services.redis import RedisServer

    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    repo = tmp_path / "repo"
    write_shop(SHOP, repo)
    write_config(repo, f'[online_store]\nurl = "{redis.url}"\n')
    api = SyncFeatureStore(repo)
    try:
        api.register(SHOP.sql("data/orders", "data/profiles"))
        for definition in (PURCHASE_30D, ORDERS_SQL, COUNTRY):
            api.register_feature(definition)
        api.materialize(today() - DAY, today() + DAY)
    finally:
        api.close()
    server = FsqlServer(repo).start()
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            assert len(conn.execute("SELECT * FROM features.user").fetchall()) > 0
            redis.stop()
            for probe in ("SELECT * FROM features.user WHERE 1=0",
                          "SELECT * FROM features.user LIMIT 0",
                          "SELECT user_id, user_orders FROM features.user WHERE false"):
                cur = conn.execute(probe)
                assert cur.fetchall() == [] and cur.description is not None
            # the store's own error and SQLSTATE, as a lookup gets it (58000, what to check)
            with pytest.raises(psycopg.Error) as lookup:
                conn.execute("SELECT * FROM features.user WHERE user_id = 'u001'")
            with pytest.raises(psycopg.Error) as scan:
                conn.execute("SELECT count(*) FROM features.user")
            assert scan.value.sqlstate == lookup.value.sqlstate == "58000"
            assert "could not list the keys of user" in str(scan.value)
            assert "redis-server is running" in str(scan.value)
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()
        if redis.running:
            redis.stop()


def test_a_new_feature_shows_in_a_statement_planned_before(world: Any,
                                                           conn: psycopg.Connection) -> None:
    """A statement cached by the session is planned again when the entity gains a column."""
    query = "SELECT * FROM features.user WHERE user_orders IS NOT NULL LIMIT 1"
    before = [d.name for d in conn.execute(query).description]
    with psycopg.connect(world[0].dsn(), autocommit=True) as other:
        other.execute("CREATE FEATURE user_min_order ENTITY user AS "
                      "SELECT user_id, MIN(purchase_amount) FROM orders")
        try:
            deadline = time.monotonic() + 10  # the server's catalog refreshes every second
            while time.monotonic() < deadline:
                after = [d.name for d in conn.execute(query).description]
                if after != before:
                    break
                time.sleep(0.2)
            assert after == [before[0], *sorted([*before[1:], "user_min_order"])]
            assert len(conn.execute(query).fetchone()) == len(after)
        finally:
            other.execute("DROP FEATURE user_min_order")


def _scan_calls(world: Any) -> int | None:
    """How many SCAN commands the Redis online store has run (None on SQLite)."""
    url = load_config(world[0].repo).online_store.url
    if not url.startswith("redis"):
        return None
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))
    finally:
        client.close()


def test_key_filters_read_only_those_keys(world: Any, conn: psycopg.Connection) -> None:
    """A statement that holds the key to values (``=``, ``IN``, ``= ANY``, literal or bound)
    but is no point lookup (an expression in its columns, a filter on a feature, a join)
    reads those keys through the lookup path: its rows equal the full scan's rows of those
    keys and their lookups, a key the store does not hold is no row, and on Redis the
    store's keys are never listed (no SCAN)."""
    scanned = {r[0]: r for r in conn.execute("SELECT * FROM features.user").fetchall()}
    stores = conn.execute("SELECT * FROM features.store").fetchall()
    rng = random.Random(11)
    before = _scan_calls(world)
    for size in (1, 3, 40, 2500):  # 2500: more than one batch of keys
        wanted = rng.sample(sorted(scanned), min(size, len(scanned)))
        wanted += ["nobody", "a|b"] + [f"unknown{i}" for i in range(size // 10)]
        expected = sorted(scanned[k] for k in set(wanted) if k in scanned)
        listed = ", ".join("'" + k.replace("'", "''") + "'" for k in wanted)
        by_literals = conn.execute(
            "SELECT user_id, user_country, user_max_order, user_orders, user_purchase_30d, "
            f"1 AS one FROM features.user WHERE user_id IN ({listed}) ORDER BY 1").fetchall()
        assert [r[:-1] for r in by_literals] == expected
        by_array = conn.execute("SELECT * FROM features.user WHERE user_id = ANY(%s) "
                                "AND user_orders IS DISTINCT FROM -1 ORDER BY 1",
                                [wanted]).fetchall()
        assert by_array == expected
        lookups = conn.execute("SELECT * FROM features.user WHERE user_id = ANY(%s) "
                               "ORDER BY 1", [sorted(set(wanted))]).fetchall()
        assert [r for r in lookups if r[0] in scanned] == expected
    one = sorted(scanned)[0]
    assert conn.execute("SELECT count(*) FROM features.user WHERE user_id = %s "
                        "AND user_orders IS DISTINCT FROM -1", [one]).fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM features.user WHERE user_id = 'nobody' "
                        "AND true").fetchone() == (0,)
    # a join: the filter on the relation's own alias
    joined = conn.execute(
        "SELECT f.user_id, count(*) FROM features.user f JOIN sources.orders o "
        "ON o.user_id = f.user_id WHERE f.user_id IN ('u001', 'u002', 'nobody') "
        "GROUP BY f.user_id ORDER BY 1").fetchall()
    orders = {u: sum(1 for o in SHOP.orders if o[0] == u) for u in ("u001", "u002")}
    assert joined == [(u, n) for u, n in sorted(orders.items()) if n and u in scanned]
    # a two-column key: both columns held
    first = stores[0]
    held = conn.execute("SELECT *, 1 FROM features.store WHERE store_id = %s AND region = %s",
                        [first[0], first[1]]).fetchall()
    assert held == [(*first, 1)]
    # a join with a session table (a spine) on the key: only the spine's keys are read
    spine = sorted(scanned)[:5] + ["nobody"]
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS pushed_spine (user_id VARCHAR, label INT)")
    conn.execute("DELETE FROM pushed_spine")
    with conn.cursor().copy("COPY pushed_spine FROM STDIN") as copy:
        for i, key in enumerate(spine):
            copy.write_row((key, i))
    inner = conn.execute("SELECT s.label, f.* FROM pushed_spine s JOIN features.user f "
                         "ON f.user_id = s.user_id ORDER BY s.label").fetchall()
    assert inner == [(i, *scanned[k]) for i, k in enumerate(spine) if k in scanned]
    left = conn.execute("SELECT s.label, f.user_orders FROM pushed_spine s LEFT JOIN "
                        "features.user f USING (user_id) ORDER BY s.label").fetchall()
    assert left == [(i, scanned[k][3] if k in scanned else None) for i, k in enumerate(spine)]
    reversed_join = conn.execute("SELECT count(*) FROM features.user f JOIN pushed_spine s "
                                 "ON s.user_id = f.user_id").fetchone()
    assert reversed_join == (sum(1 for k in spine if k in scanned),)
    assert _scan_calls(world) == before  # None on SQLite; on Redis: no listing at all
    # the relation on the left of a LEFT JOIN keeps its unmatched rows: every key is read
    kept = conn.execute("SELECT count(*) FROM features.user f LEFT JOIN pushed_spine s "
                        "USING (user_id)").fetchone()
    assert kept == (len(scanned),)
    if before is not None:
        assert _scan_calls(world) > before
        before = _scan_calls(world)
    # a filter the pushdown cannot use still answers (and lists the keys)
    some = conn.execute("SELECT count(*) FROM features.user WHERE user_id = 'u001' "
                        "OR user_orders > 3").fetchone()
    assert some == (sum(1 for r in scanned.values()
                        if r[0] == "u001" or (r[3] is not None and r[3] > 3)),)
    if before is not None:
        assert _scan_calls(world) > before


def test_a_listing_that_repeats_keys_is_read_once(tmp_path: Path) -> None:
    """Redis's SCAN may give a key twice (while its table rehashes); the scan gives each
    key's row once. The store here is the SQLite store listing every batch twice, as SCAN
    may, and saying so (``keys_may_repeat``)."""
    from fsql import SyncFeatureStore
    from fsql.stores.online.sqlite import SqliteOnlineStore
    from tests.api.test_feature_store import ORDERS_SQL

    class RepeatingStore(SqliteOnlineStore):
        keys_may_repeat = True

        def entity_keys(self, entity: str, batch: int = 1000) -> Iterator[list[str]]:
            for keys in super().entity_keys(entity, batch):
                yield keys
                yield keys[::-1]

    repo = tmp_path / "repo"
    write_shop(SHOP, repo)
    write_config(repo, "")
    api = SyncFeatureStore(repo)
    try:
        api.register(SHOP.sql("data/orders", "data/profiles"))
        api.register_feature(ORDERS_SQL)
        api.materialize(today() - 2 * DAY, today() + DAY)
    finally:
        api.close()
    with Workspace(load_config(repo)) as workspace:
        store = workspace.online_store
        repeating = RepeatingStore(store.path)  # type: ignore[attr-defined]
        catalog = workspace.catalog
        plain = entity_scan(catalog, lambda: store, "user")
        scan = entity_scan(catalog, lambda: repeating, "user")
        assert isinstance(scan, EntityScan) and isinstance(plain, EntityScan)
        scan.batch = plain.batch = 7  # several listings
        rows = pa.Table.from_batches(list(scan.batches()), scan.schema).to_pylist()
        expected = pa.Table.from_batches(list(plain.batches()), plain.schema).to_pylist()
        keys = [r["user_id"] for r in rows]
        assert len(keys) == len(set(keys)) and len(keys) > 7
        assert sorted(rows, key=lambda r: r["user_id"]) == expected


def test_scans_open_no_store_connection_per_batch(world: Any,
                                                  conn: psycopg.Connection) -> None:
    """DuckDB's worker threads pull the scan; the SQLite store keeps one connection per OS
    thread for them, not one per batch (Python forgets a foreign thread's thread-locals each
    time it returns to C: that leaked a connection, and its page cache, per batch)."""
    server, _, _ = world
    url = load_config(server.repo).online_store.url
    if not url.startswith("sqlite"):
        pytest.skip("the SQLite store's connections (Redis keeps a pool of its own)")
    database = (server.repo / url.removeprefix("sqlite:///")).resolve()

    def open_files() -> int:
        """Descriptors of the store's file in the server and its worker processes."""
        pids, found = [server.process.pid], 0
        while pids:
            pid = pids.pop()
            children = Path(f"/proc/{pid}/task/{pid}/children")
            pids += [int(c) for c in children.read_text().split()] if children.exists() else []
            found += sum(1 for fd in Path(f"/proc/{pid}/fd").iterdir() if _points_to(fd, database))
        return found

    for _ in range(3):
        conn.execute("SELECT count(*) FROM features.user").fetchone()
    settled = open_files()
    for _ in range(8):
        conn.execute("SELECT count(*), max(user_orders) FROM features.user").fetchone()
    assert settled > 0 and open_files() == settled


def _points_to(fd: Path, target: Path) -> bool:
    try:
        return Path(fd.readlink()) == target
    except OSError:
        return False
