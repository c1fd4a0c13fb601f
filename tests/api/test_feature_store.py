"""The Python API on the embedded defaults (SQLite registry, local offline store, SQLite online
store, DuckDB), checked against a plain-Python reference of the shop's feature values."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fsql import FeatureDefinition, FeatureStore, SyncFeatureStore, WindowedAggregation
from fsql.api import Aggregation, LatestValue
from fsql.errors import DefinitionError, NotSupportedError
from fsql.serving.checks import EntityKeyError
from tests.api._shop import DAY, Shop, make_shop, today, write_shop

PURCHASE_30D = FeatureDefinition(
    name="user_purchase_30d",
    entity="user",
    value_type="float",
    transformation=WindowedAggregation(agg_func="sum", window="30d"),
    dependencies=["purchase_amount"],
)
ORDERS_SQL = (
    "CREATE FEATURE user_orders ENTITY user TTL '3 days' AS SELECT user_id, COUNT(*) FROM orders"
)
COUNTRY = FeatureDefinition(
    name="user_country", entity="user", value_type="str", transformation=LatestValue(),
    dependencies=["country"], ttl=timedelta(days=30),
)  # fmt: skip
ORDERS_OFFLINE = FeatureDefinition(
    name="user_orders_offline", entity="user", value_type="int",
    transformation=Aggregation("count"), online=False, source="orders",
)  # fmt: skip
FEATURES = ["user_purchase_30d", "user_orders", "user_country"]


def expected(shop: Shop, user: str, tick=None) -> dict[str, object]:  # type: ignore[no-untyped-def]
    tick = tick or today()
    return {
        "user_purchase_30d": shop.purchase_sum(user, tick, 30 * DAY),
        "user_orders": shop.order_count(user, tick),
        "user_country": shop.country(user, tick),
    }


def rounded(value: object) -> object:
    """Float sums differ in the last bits between engines and Python: compare to 1e-6."""
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return round(value, 6) if isinstance(value, float) else value


@pytest.fixture
def shop() -> Shop:
    return make_shop()


@pytest.fixture
def store(tmp_path: Path, shop: Shop) -> Iterator[SyncFeatureStore]:
    write_shop(shop, tmp_path)
    fs = SyncFeatureStore(tmp_path)
    fs.register(shop.sql("data/orders", "data/profiles"))
    assert fs.register_feature(PURCHASE_30D) == "user_purchase_30d"
    assert fs.register_feature(ORDERS_SQL) == "user_orders"
    fs.register_feature(COUNTRY)
    fs.register_feature(ORDERS_OFFLINE)
    fs.materialize(today() - 3 * DAY, today() + DAY)
    yield fs
    fs.close()


def test_defaults_live_under_the_repo(store: SyncFeatureStore, tmp_path: Path) -> None:
    assert (tmp_path / ".fsql" / "online.db").exists()
    assert (tmp_path / ".fsql" / "registry.db").exists()
    assert store.online_store.url.startswith("sqlite:///")


def test_feature_info(store: SyncFeatureStore) -> None:
    info = store.get_feature_info("user_purchase_30d")
    assert (info.name, info.version, info.entity, info.value_type) == (
        "user_purchase_30d", 1, "user", "DOUBLE",
    )  # fmt: skip
    assert info.online_version == "1"
    assert info.materialized == ((today() - 3 * DAY, today() + DAY),)
    assert info.sql.endswith("AS SELECT user_id, SUM(purchase_amount) FROM orders")
    # the definition comes back as the Python twin, rendering to the same SQL
    assert info.definition.transformation == WindowedAggregation("sum", timedelta(days=30))
    assert info.definition.dependencies == ["purchase_amount"]
    assert store.get_feature_info("user_orders_offline").online_version is None


def test_online_reads_match_the_reference(store: SyncFeatureStore, shop: Shop) -> None:
    for user in [*shop.users, "nobody"]:
        assert rounded(store.get_online_features(FEATURES, user)) == rounded(
            expected(shop, user)
        ), user
    # the tombstone: an entity whose only order left the window reads NULL, not its old sum
    assert store.get_online_features(["user_purchase_30d"], shop.users[-2]) == {
        "user_purchase_30d": None
    }


def test_async_api_and_sync_twin_agree(store: SyncFeatureStore, shop: Shop) -> None:
    async def main() -> list[dict[str, object]]:
        afs = FeatureStore(store.config)
        try:
            assert afs.sync().config is afs.config
            return list(await afs.get_online_features_batch(FEATURES, shop.users))
        finally:
            await afs.close()

    rows = asyncio.run(main())
    assert rounded(rows) == rounded([expected(shop, u) for u in shop.users])
    assert rows == store.get_online_features_batch(FEATURES, shop.users)


def test_online_agrees_with_the_offline_lookup(store: SyncFeatureStore, shop: Shop) -> None:
    """Serving and training never disagree: the online answer for (key, now) is what the
    offline point-in-time lookup returns for (key, now)."""
    import pandas as pd

    keys = [*shop.users, "nobody"]
    offline = store.get_batch_features(FEATURES, keys)
    assert list(offline.columns) == ["user_id", *FEATURES]
    online = store.get_online_features_batch(FEATURES, keys)
    for row, served in zip(offline.to_dict("records"), online, strict=True):
        got = {f: (None if pd.isna(row[f]) else row[f]) for f in FEATURES}
        assert rounded(got) == rounded(served), row["user_id"]


def test_batch_features_with_a_spine_is_a_training_set(store: SyncFeatureStore, shop: Shop) -> None:
    import pandas as pd

    times = [today() - 2 * DAY + timedelta(hours=5), today() - DAY, today() + timedelta(hours=1)]
    spine = pd.DataFrame(
        {
            "user_id": [u for u in shop.users for _ in times],
            "event_time": [t for _ in shop.users for t in times],
            "label": range(len(shop.users) * len(times)),
        }
    )
    result = store.get_batch_features(["user_purchase_30d"], spine)
    assert list(result["label"]) == list(spine["label"])
    for row in result.to_dict("records"):
        t = row["event_time"].to_pydatetime()
        tick = t.replace(hour=0, minute=0, second=0, microsecond=0)
        want = shop.purchase_sum(row["user_id"], tick, 30 * DAY)
        got = None if pd.isna(row["user_purchase_30d"]) else row["user_purchase_30d"]
        assert got == pytest.approx(want), (row["user_id"], t)


def test_compute_cache_fills_misses_and_writes_them_back(
    store: SyncFeatureStore, shop: Shop, tmp_path: Path
) -> None:
    computer = store.computer
    users = shop.users[:4]
    # ONLINE FALSE: never in the online store until the compute cache writes it
    _m, values, stats = computer.compute_features(["user_orders_offline"], users)
    assert stats["computed"] == 4 and stats["hits"] == 0 and stats["offline_routed"] == 1
    assert [v[0] for v in values] == [shop.order_count(u, today()) for u in users]
    _m, again, stats = computer.compute_features(["user_orders_offline"], users)
    assert stats["computed"] == 0 and stats["hits"] == 4 and again == values
    # an entity never materialized: a new customer's first order, after the materialize run
    new_order = pa.table(
        {
            "user_id": ["u999"],
            "purchase_amount": [42.5],
            "ts": pa.array([(today() - DAY).replace(tzinfo=None)], pa.timestamp("us")),
        }
    )
    pq.write_table(new_order, tmp_path / "data" / "orders" / "part-1.parquet")
    assert store.get_online_features(["user_purchase_30d"], "u999") == {"user_purchase_30d": None}
    frame = store.compute_features(["user_purchase_30d", "user_orders_offline"], ["u999", users[0]])
    assert list(frame.columns) == ["user_id", "user_purchase_30d", "user_orders_offline"]
    assert frame.to_dict("records")[0] == {
        "user_id": "u999", "user_purchase_30d": 42.5, "user_orders_offline": 1,
    }  # fmt: skip
    _m, _v, stats = computer.compute_features(["user_purchase_30d"], ["u999", users[0]])
    assert stats == {"hits": 2, "computed": 0, "online_routed": 1, "offline_routed": 0}
    # written back with an expiry (no TTL: the next tick), not activated as a version
    (record,) = store.online_store.read(
        "user", [__import__("fsql.stores.online", fromlist=["FeatureRef"]).FeatureRef(
            "user_purchase_30d", "1")], ["u999"]
    )[0]  # fmt: skip
    assert record is not None and record.expires_at == today() + DAY


def test_get_online_features_routes_online_false_through_the_cache(
    store: SyncFeatureStore, shop: Shop
) -> None:
    user = shop.users[0]
    got = store.get_online_features(["user_orders", "user_orders_offline"], user)
    assert got == {"user_orders": shop.order_count(user, today()),
                   "user_orders_offline": shop.order_count(user, today())}  # fmt: skip


def test_new_version_is_served_only_once_pushed(store: SyncFeatureStore, shop: Shop) -> None:
    changed = FeatureDefinition(
        name="user_purchase_30d", entity="user", value_type="float",
        transformation=WindowedAggregation(agg_func="sum", window="7d"),
        dependencies=["purchase_amount"],
    )  # fmt: skip
    store.register_feature(changed)
    info = store.get_feature_info("user_purchase_30d")
    assert (info.version, info.online_version) == (2, "1")
    users = shop.users
    old = [{"user_purchase_30d": shop.purchase_sum(u, today(), 30 * DAY)} for u in users]
    new = [{"user_purchase_30d": shop.purchase_sum(u, today(), 7 * DAY)} for u in users]
    store.catalog.invalidate()
    assert rounded(store.get_online_features_batch(["user_purchase_30d"], users)) == rounded(old)
    store.materialize(today() - DAY, today() + DAY, ["user_purchase_30d"])
    assert rounded(store.get_online_features_batch(["user_purchase_30d"], users)) == rounded(new)
    # the old version stays readable, pinned
    pinned = store.get_online_features_batch(["user_purchase_30d@1"], users)
    assert rounded([r["user_purchase_30d@1"] for r in pinned]) == rounded(
        [r["user_purchase_30d"] for r in old]
    )


def test_dependency_errors_say_what_would_be_right(store: SyncFeatureStore) -> None:
    store.register(
        "CREATE SOURCE refunds (user_id VARCHAR, purchase_amount DOUBLE, ts TIMESTAMP) "
        "FROM 'data/orders' FORMAT PARQUET EVENT TIME ts"
    )
    with pytest.raises(
        DefinitionError, match=r"ambiguous dependency purchase_amount.*'orders\.purchase_amount'"
    ):
        store.register_feature(PURCHASE_30D)
    with pytest.raises(
        DefinitionError, match=r"unknown dependency purchse_amount.*purchase_amount"
    ):
        store.register_feature(
            FeatureDefinition(
                "x", "user", "float", WindowedAggregation("sum", "7d"), ["purchse_amount"]
            )
        )
    with pytest.raises(DefinitionError, match="mix features"):
        store.register_feature(
            FeatureDefinition("x", "user", "float", WindowedAggregation("sum", "7d"),
                              ["orders.purchase_amount", "user_orders"])
        )  # fmt: skip
    # qualified, it registers (as a new version: the SQL differs only in nothing → unchanged)
    qualified = FeatureDefinition(
        "user_purchase_30d", "user", "float", WindowedAggregation("sum", "30d"),
        ["orders.purchase_amount"],
    )  # fmt: skip
    store.register_feature(qualified)
    assert store.get_feature_info("user_purchase_30d").version == 1
    with pytest.raises(
        DefinitionError,
        match="no feature or feature set named user_purchase_3d; did you mean user_purchase_30d",
    ):
        store.get_online_features(["user_purchase_3d"], "u001")


def test_pipelines(store: SyncFeatureStore, tmp_path: Path) -> None:
    try:
        import fsql.pipelines.manager  # noqa: F401
    except ImportError:
        with pytest.raises(NotSupportedError, match='issue "Pipelines"'):
            store.create_pipeline(["user_purchase_30d"])
        return
    pipeline_id = store.create_pipeline(["user_purchase_30d"], dags_folder=str(tmp_path / "dags"))
    assert pipeline_id and any((tmp_path / "dags").iterdir())
    assert store.get_pipeline_status(pipeline_id).pipeline_id == pipeline_id


def test_derived_feature_from_python(store: SyncFeatureStore, shop: Shop) -> None:
    from fsql.api import Expression

    derived = FeatureDefinition(
        name="avg_purchase", entity="user", value_type="float",
        transformation=Expression("user_purchase_30d / NULLIF(user_orders, 0)"),
        dependencies=["user_purchase_30d", "user_orders"],
    )  # fmt: skip
    store.register_feature(derived)
    assert store.get_feature_info("avg_purchase").sql.endswith(
        "AS SELECT user_id, user_purchase_30d / NULLIF(user_orders, 0) FROM user"
    )
    store.materialize(today() - DAY, today() + DAY, ["avg_purchase"])
    for user in shop.users:
        spend, orders = shop.purchase_sum(user, today(), 30 * DAY), shop.order_count(user, today())
        want = None if spend is None or not orders else spend / orders
        got = store.get_online_features(["avg_purchase"], user)["avg_purchase"]
        assert rounded(got) == rounded(want), user


def test_config_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fsql.errors import ConfigError

    monkeypatch.delenv("FSQL_REPO", raising=False)
    monkeypatch.chdir(tmp_path)
    default = SyncFeatureStore()
    assert default.config.repo == tmp_path.resolve()
    assert default.config.online_store.url == "sqlite:///.fsql/online.db"
    (tmp_path / "fsql.toml").write_text('[online_store]\nurl = "redis://example:6380/2"\n')
    assert SyncFeatureStore(tmp_path).config.online_store.url == "redis://example:6380/2"
    design = SyncFeatureStore({"online_store_config": {"host": "cache", "port": 6381}})
    assert design.config.online_store.url == "redis://cache:6381/0"
    with pytest.raises(ConfigError, match="not a feature repo directory"):
        SyncFeatureStore(tmp_path / "missing")
    with pytest.raises(ConfigError, match="expected None, a repo path, a dict or a Config"):
        SyncFeatureStore(42)  # type: ignore[arg-type]


def test_one_read_mixing_entities_and_the_compute_cache(
    store: SyncFeatureStore, shop: Shop
) -> None:
    """Features of two entities and an ONLINE FALSE one in one call: every value lands
    under its own name, in request order, for sync and asyncio alike. Each key is a dict
    naming both entities' key columns; a scalar key is refused (it would be read as the key
    of both entities and find nothing for one of them: a silent NULL)."""
    store.register(
        "CREATE ENTITY country KEY (country VARCHAR);\n"
        "CREATE FEATURE country_profiles ENTITY country AS "
        "SELECT country, COUNT(*) FROM profiles"
    )
    store.materialize(today() - DAY, today() + DAY, ["country_profiles"])
    countries = sorted({p[1] for p in shop.profiles})
    pairs = [(shop.users[0], countries[0]), (shop.users[1], countries[-1]), ("nobody", "XX")]
    keys = [{"user_id": u, "country": c} for u, c in pairs]
    ids = ["user_orders", "country_profiles", "user_orders_offline", "user_country"]

    def want(user: str, country: str) -> dict[str, object]:
        rows = [p for p in shop.profiles if p[1] == country and p[2] < today()]
        count = shop.order_count(user, today())
        return {"user_orders": count, "country_profiles": len(rows) if rows else None,
                "user_orders_offline": count, "user_country": shop.country(user, today())}  # fmt: skip

    expected_rows = [want(u, c) for u, c in pairs]
    assert any(r["country_profiles"] for r in expected_rows)
    assert any(r["user_orders"] for r in expected_rows)
    assert store.get_online_features_batch(ids, keys) == expected_rows
    assert asyncio.run(FeatureStore(store.config).get_online_features_batch(ids, keys)) == (
        expected_rows
    )
    online_only = [i for i in ids if i != "user_orders_offline"]
    with pytest.raises(EntityKeyError, match="user_orders describes entity user .* and "
                       "country_profiles describes entity country"):  # fmt: skip
        store.get_online_features_batch(online_only, [shop.users[0]])
    got = asyncio.run(FeatureStore(store.config).get_online_features_batch(online_only, keys))
    assert got == [{i: r[i] for i in online_only} for r in expected_rows]
