"""Training and serving never disagree: on random data, with random TTLs and materialization
ending at random distances from now, the online answer for (key, now) equals the offline
point-in-time lookup (fsql.compute.training) for (key, now) — for both online-store backends."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from fsql.config import load_config
from tests.api._shop import DAY, make_shop, today, write_shop

FEATURES = ["spend_7d", "order_count", "country", "avg_order"]
DEFINITIONS = """
CREATE FEATURE spend_7d ENTITY user WINDOW '7 days' {ttl} AS SELECT user_id, SUM(purchase_amount) FROM orders;
CREATE FEATURE order_count ENTITY user {ttl} AS SELECT user_id, COUNT(purchase_amount) FROM orders;
CREATE FEATURE country ENTITY user {ttl} AS SELECT user_id, country FROM profiles;
CREATE FEATURE avg_order ENTITY user TYPE DOUBLE {ttl} AS SELECT user_id, spend_7d / NULLIF(order_count, 0) FROM user;
"""


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
@pytest.mark.parametrize("seed", [1, 3, 5, 8])
def test_online_equals_offline_at_now(
    backend: str, seed: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from fsql.api import SyncFeatureStore

    rng = random.Random(seed)
    shop = make_shop(seed=seed, n_users=rng.randint(5, 25), days=rng.randint(10, 40))
    write_shop(shop, tmp_path)
    overrides: dict[str, Any] = {}
    if backend == "redis":
        server = request.getfixturevalue("redis_server")
        server.flush()
        overrides["online_store"] = {"url": server.url}
    store = SyncFeatureStore(load_config(tmp_path, overrides=overrides, env={}))
    ttl_days = rng.choice([None, 1, 2, 4])
    ttl = f"TTL '{ttl_days} days'" if ttl_days else ""
    store.register(shop.sql("data/orders", "data/profiles") + DEFINITIONS.format(ttl=ttl))
    lag = rng.randint(0, 3)  # materialization stopped `lag` days ago: TTLs bite
    end = today() - lag * DAY + DAY
    store.materialize(end - rng.randint(1, 4) * DAY, end)
    keys = [*shop.users, "nobody"]
    online = store.get_online_features_batch(FEATURES, keys)
    offline = store.get_batch_features(FEATURES, keys).to_dict("records")
    assert len(online) == len(offline) == len(keys)
    for served, row in zip(online, offline, strict=True):
        looked_up = {f: None if row[f] != row[f] or row[f] is None else row[f] for f in FEATURES}
        assert {f: _r(v) for f, v in served.items()} == {f: _r(v) for f, v in looked_up.items()}, (
            row["user_id"], ttl_days, lag,
        )  # fmt: skip
    # not vacuous: with no TTL, or a TTL longer than the lag, some values are served
    if ttl_days is None or ttl_days > lag:
        assert any(v is not None for r in online for v in r.values())
    store.close()


def _r(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    return round(value, 6) if isinstance(value, float) else value
