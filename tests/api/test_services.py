"""The Python API against real services: PostgreSQL (registry), redis-server (online store),
moto's S3 server (offline store and sources) and Spark in local mode (compute)."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from fsql.config import load_config
from fsql.errors import NotSupportedError, OnlineStoreUnavailable
from tests.api._shop import DAY, make_shop, today, write_shop

#: whether fsql.pipelines (issue "Pipelines") provides create_pipeline in this tree
PIPELINES = importlib.util.find_spec("fsql.pipelines.manager") is not None


def rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    return round(value, 6) if isinstance(value, float) else value


@pytest.mark.redis
def test_redis_down_during_materialize_then_a_rerun_completes_the_push(
    redis_server: Any, tmp_path: Path
) -> None:
    from fsql.api import SyncFeatureStore

    redis_server.flush()
    shop = make_shop()
    write_shop(shop, tmp_path)
    config = load_config(
        tmp_path, overrides={"online_store": {"url": redis_server.url, "timeout": 0.5}}, env={}
    )
    store = SyncFeatureStore(config)
    store.register(shop.sql("data/orders", "data/profiles"))
    store.register_feature(
        "CREATE FEATURE user_orders ENTITY user AS SELECT user_id, COUNT(*) FROM orders"
    )
    start, end = today() - 2 * DAY, today() + DAY
    redis_server.stop()
    try:
        with pytest.raises(OnlineStoreUnavailable, match="did not answer within 0.5s"):
            store.materialize(start, end)
        # the offline data is committed, but the ledger says the online push did not happen
        assert store.registry.ledger_intervals("user_orders", 1) == [(start, end)]
        assert store.registry.ledger_online_intervals("user_orders", 1) == []
        with pytest.raises(OnlineStoreUnavailable):
            store.get_online_features(["user_orders"], shop.users[0])
    finally:
        redis_server.start()
    # reads recover by themselves (nothing pushed yet: no active version, so the compute
    # cache computes the current value — not an error, not a silent NULL)...
    assert store.get_online_features(["user_orders"], shop.users[0]) == {
        "user_orders": shop.order_count(shop.users[0], today())
    }
    # ...and a re-run computes nothing offline but completes the push
    (result,) = store.materialize(start, end)
    assert result.intervals == () and result.online is not None
    assert result.online.rows == sum(1 for u in shop.users if shop.order_count(u, today()))
    assert store.registry.ledger_online_intervals("user_orders", 1) == [(start, end)]
    for user in shop.users:
        assert store.get_online_features(["user_orders"], user) == {
            "user_orders": shop.order_count(user, today())
        }
    store.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.s3
@pytest.mark.spark
def test_the_original_design_example_works_as_written(
    postgres_db_url: str, redis_server: Any, s3_endpoint: Any, spark_session: Any,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from urllib.parse import urlparse

    from fsql import FeatureDefinition, FeatureStore, WindowedAggregation

    monkeypatch.chdir(tmp_path)
    redis_server.flush()
    shop = make_shop(seed=11)
    orders, profiles = write_shop(shop, s3_endpoint.bucket + "/sources", s3_endpoint.filesystem())
    pg = urlparse(postgres_db_url)
    assert pg.hostname and pg.port

    async def example() -> dict[str, Any]:
        # --- the design document's usage example; only the services' addresses and the
        # S3 endpoint_url differ (they are started by the test session) -------------------
        config = {
            "metadata_config": {"database_url": postgres_db_url},
            "online_store_config": {"host": "127.0.0.1", "port": redis_server.port},
            "offline_store_config": {
                "bucket": s3_endpoint.bucket,
                "region": "us-east-1",
                "endpoint_url": s3_endpoint.endpoint_url,
            },
            "compute_config": {"spark_master": "local[2]", "executor_memory": "1g"},
        }
        feature_store = FeatureStore(config)
        # (the registry needs the entity and a source with a purchase_amount column first)
        await feature_store.register(shop.sql(f"s3://{orders}", f"s3://{profiles}"))

        feature_def = FeatureDefinition(
            name="user_purchase_30d",
            entity="user",
            value_type="float",
            transformation=WindowedAggregation(agg_func="sum", window="30d"),
            dependencies=["purchase_amount"],
        )
        feature_id = await feature_store.register_feature(feature_def)
        if PIPELINES:
            pipeline_id = await feature_store.create_pipeline([feature_id])
        else:  # before the "Pipelines" issue lands: a clear NotSupportedError
            with pytest.raises(NotSupportedError, match='issue "Pipelines"'):
                await feature_store.create_pipeline([feature_id])
            pipeline_id = None
        features = await feature_store.get_online_features([feature_id], "user_123")
        batch_features = await feature_store.get_batch_features(
            [feature_id], ["user_123", "user_456"]
        )
        # --- end of the example ----------------------------------------------------------
        out: dict[str, Any] = {
            "store": feature_store, "feature_id": feature_id, "pipeline_id": pipeline_id,
            "features": features, "batch": batch_features,
        }  # fmt: skip
        # Materialize (what the pipeline does on schedule), then read real users.
        await feature_store.materialize(today() - DAY, today() + DAY)
        out["online"] = await feature_store.get_online_features_batch([feature_id], shop.users)
        out["info"] = await feature_store.get_feature_info(feature_id)
        # the compute cache on Spark: two hits, and a key never materialized computed now
        out["computed"] = await feature_store.compute_features(
            [feature_id], [shop.users[0], shop.users[1], "user_123"]
        )
        await feature_store.close()
        return out

    out = asyncio.run(example())
    assert out["feature_id"] == "user_purchase_30d"
    if PIPELINES:
        assert isinstance(out["pipeline_id"], str) and out["pipeline_id"]
    # nothing materialized yet, and these users never bought anything: NULLs, not errors
    assert out["features"] == {"user_purchase_30d": None}
    assert list(out["batch"].columns) == ["user_id", "user_purchase_30d"]
    assert out["batch"]["user_id"].tolist() == ["user_123", "user_456"]
    assert out["batch"]["user_purchase_30d"].isna().all()
    # the services really were used
    store = out["store"].sync()
    assert store.config.registry.url == postgres_db_url
    assert store.config.online_store.url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert store.config.compute.engine == "spark"
    assert any(k.startswith("feature=user_purchase_30d/version=1/") for k in s3_endpoint.keys(""))
    assert out["info"].online_version == "1"
    want = [shop.purchase_sum(u, today(), 30 * DAY) for u in shop.users]
    assert [rounded(r["user_purchase_30d"]) for r in out["online"]] == [rounded(w) for w in want]
    computed = [None if v != v else v for v in out["computed"]["user_purchase_30d"].tolist()]
    assert [rounded(v) for v in computed] == [rounded(w) for w in [*want[:2], None]]
