"""Point lookups with the Redis online store (the benchmark's configuration): the read uses
Redis's asyncio client, with several worker processes, and matches the Python API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.api._shop import DAY, make_shop, today, write_shop
from tests.server.conftest import FsqlServer, write_config

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
