"""Point lookups with the Redis online store (the benchmark's configuration): the read uses
Redis's asyncio client, with several worker processes, and matches the Python API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.api._shop import DAY, make_shop, today, write_shop
from tests.server.conftest import FsqlServer, write_config
from tests.services._util import wait_until

pytestmark = [pytest.mark.server, pytest.mark.redis]

FEATURES = ["user_country", "user_orders", "user_purchase_30d"]


def test_lookups_from_redis_with_two_workers(redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import asyncpg
    import psycopg

    from fsql import SyncFeatureStore
    from tests.api.test_feature_store import COUNTRY, ORDERS_SQL, PURCHASE_30D

    shop = make_shop(seed=11)
    write_shop(shop, tmp_path)
    url = redis_server.url.rsplit("/", 1)[0] + "/9"  # a database of its own
    write_config(tmp_path, f'[online_store]\nurl = "{url}"\n\n[server]\nworkers = 2\n')
    api = SyncFeatureStore(tmp_path)
    server = None
    try:
        api.register(shop.sql("data/orders", "data/profiles"))
        for definition in (PURCHASE_30D, ORDERS_SQL, COUNTRY):
            api.register_feature(definition)
        api.materialize(today() - 2 * DAY, today() + DAY)
        server = FsqlServer(tmp_path).start()
        expected = {u: (u, *[api.get_online_features(FEATURES, u)[f] for f in FEATURES])
                    for u in [*shop.users, "nobody"]}
        with psycopg.connect(server.dsn()) as conn:
            for user, row in expected.items():
                assert conn.execute("SELECT * FROM features.user WHERE user_id = %s",
                                    [user], prepare=True).fetchone() == row

        async def via_asyncpg() -> dict[str, tuple]:
            conns = [await asyncpg.connect(host="127.0.0.1", port=server.port, user="x",
                                           database="fsql") for _ in range(4)]
            try:
                users = list(expected)

                async def read(index: int) -> dict[str, tuple]:
                    statement = await conns[index].prepare(
                        "SELECT * FROM features.user WHERE user_id = $1")
                    return {u: tuple(await statement.fetchrow(u)) for u in users[index::4]}

                found: dict[str, tuple] = {}
                for part in await asyncio.gather(*(read(i) for i in range(4))):
                    found.update(part)
                return found
            finally:
                for c in conns:
                    await c.close()

        assert asyncio.run(via_asyncpg()) == expected
    finally:
        if server is not None:
            server.stop()
        api.close()


def test_unreachable_online_store_is_58000_and_the_session_goes_on(tmp_path: Path) -> None:
    import psycopg

    from fsql import SyncFeatureStore
    from tests.api.test_feature_store import ORDERS_SQL
    from tests.services.redis import RedisServer

    redis = RedisServer(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    redis.start()
    shop = make_shop(seed=5)
    repo = tmp_path / "repo"
    write_shop(shop, repo)
    write_config(repo, f'[online_store]\nurl = "{redis.url}"\ntimeout = 0.5\n')
    api = SyncFeatureStore(repo)
    server = None
    try:
        api.register(shop.sql("data/orders", "data/profiles"))
        api.register_feature(ORDERS_SQL)
        api.materialize(today() - DAY, today() + DAY)
        server = FsqlServer(repo).start()
        user = shop.users[0]
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            lookup = "SELECT user_orders FROM features.user WHERE user_id = %s"
            assert conn.execute(lookup, [user]).fetchone() == (
                api.get_online_features(["user_orders"], user)["user_orders"],)
            redis.stop()
            with pytest.raises(psycopg.Error) as info:
                conn.execute(lookup, [user])
            assert info.value.sqlstate == "58000"
            assert "Redis at redis://" in str(info.value)
            assert conn.execute("SELECT 'still here'").fetchone() == ("still here",)
            # Redis comes back (empty, no persistence): lookups recover by themselves and
            # again match the Python API, prepared and simple
            redis.start()
            assert conn.execute(lookup, [user], prepare=True).fetchone() == (
                api.get_online_features(["user_orders"], user)["user_orders"],)
            assert conn.execute(f"SELECT user_orders FROM features.user WHERE user_id = "
                                f"'{user}'").fetchone() == (None,)
    finally:
        if server is not None:
            server.stop()
        api.close()
        redis.stop()


def test_version_switch_while_serving(redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A new version of a feature is served once a materialize pushes and activates it, by
    sessions that keep looking up meanwhile; before that, the old version."""
    import psycopg

    from fsql import FeatureDefinition, SyncFeatureStore, WindowedAggregation
    from tests.api.test_feature_store import PURCHASE_30D

    shop = make_shop(seed=17)
    write_shop(shop, tmp_path)
    url = redis_server.url.rsplit("/", 1)[0] + "/10"
    write_config(tmp_path, f'[online_store]\nurl = "{url}"\n')
    api = SyncFeatureStore(tmp_path)
    server = None
    users = shop.users[:8]
    lookup = "SELECT user_purchase_30d FROM features.user WHERE user_id = %s"
    try:
        api.register(shop.sql("data/orders", "data/profiles"))
        api.register_feature(PURCHASE_30D)
        api.materialize(today() - DAY, today() + DAY)
        server = FsqlServer(tmp_path).start()
        with psycopg.connect(server.dsn(), autocommit=True) as conn:

            def served() -> list[float | None]:
                return [conn.execute(lookup, [u], prepare=True).fetchone()[0] for u in users]

            def expected() -> list[float | None]:
                api.catalog.invalidate()
                return [api.get_online_features(["user_purchase_30d"], u)["user_purchase_30d"]
                        for u in users]

            old = expected()
            assert served() == old
            api.register_feature(FeatureDefinition(
                name="user_purchase_30d", entity="user", value_type="float",
                transformation=WindowedAggregation(agg_func="sum", window="7d"),
                dependencies=["purchase_amount"]))
            # registered, not pushed: version 1 stays active and served
            assert served() == old == expected()
            api.materialize(today() - DAY, today() + DAY, ["user_purchase_30d"])
            new = expected()
            assert new != old
            # the server resolves active versions at most a second late
            wait_until(lambda: served() == new, timeout=30, what="the new version served")
    finally:
        if server is not None:
            server.stop()
        api.close()
