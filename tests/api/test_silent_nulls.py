"""The Python API says what the CLI says where a value would otherwise be a silent NULL
(issue 16): never-materialized features and spine rows before the first materialized tick are
Python warnings (:class:`fsql.serving.checks.FsqlDataWarning` subclasses) and are listed in the
returned table's metadata; features of two entities read with a scalar key and keys that do not
convert to their column's type raise. The design document's usage flow serves what
``compute_features`` computed."""

from __future__ import annotations

import asyncio
import json
import re
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fsql import FeatureDefinition, FeatureStore, SyncFeatureStore, WindowedAggregation
from fsql.serving.checks import (
    BeforeFirstTickWarning,
    EntityKeyError,
    FsqlDataWarning,
    NeverMaterializedWarning,
)
from tests.api._shop import DAY, today

SQL = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE ENTITY item KEY (item_id BIGINT);
CREATE SOURCE purchases (user_id VARCHAR, item_id BIGINT, purchase_amount DOUBLE, ts TIMESTAMP)
  FROM 'data/purchases' FORMAT PARQUET EVENT TIME ts;
CREATE FEATURE item_sales_7d ENTITY item WINDOW '7 days'
  AS SELECT item_id, COUNT(*) FROM purchases;
"""

#: user_123 bought three times in the last 30 days (960.65 in all), user_456 once, long ago
PURCHASES = [
    ("user_123", 7, 500.0, 3), ("user_123", 7, 400.4, 10), ("user_123", 8, 60.25, 20),
    ("user_456", 8, 12.0, 45),
]  # fmt: skip


def write_purchases(repo: Path) -> None:
    folder = repo / "data" / "purchases"
    folder.mkdir(parents=True, exist_ok=True)
    t0 = today()
    pq.write_table(
        pa.table({
            "user_id": [p[0] for p in PURCHASES],
            "item_id": pa.array([p[1] for p in PURCHASES], pa.int64()),
            "purchase_amount": [p[2] for p in PURCHASES],
            "ts": pa.array([(t0 - p[3] * DAY + timedelta(hours=9)).replace(tzinfo=None)
                            for p in PURCHASES], pa.timestamp("us")),
        }),
        folder / "part-0.parquet",
    )  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "fsql.toml").write_text("")
    write_purchases(root)
    return root


def design_feature() -> FeatureDefinition:
    return FeatureDefinition(
        name="user_purchase_30d",
        entity="user",
        value_type="float",
        transformation=WindowedAggregation(agg_func="sum", window="30d"),
        dependencies=["purchase_amount"],
    )


def test_the_design_flow_serves_what_compute_features_computed(repo: Path) -> None:
    async def flow() -> tuple[object, dict[str, object], dict[str, object]]:
        feature_store = FeatureStore(repo)
        await feature_store.register(SQL)
        feature_id = await feature_store.register_feature(design_feature())
        pipeline_id = await feature_store.create_pipeline([feature_id])
        assert pipeline_id
        computed = await feature_store.compute_features(
            [feature_id], ["user_123", "user_456"], as_arrow=True
        )
        features = await feature_store.get_online_features([feature_id], "user_123")
        other = await feature_store.get_online_features([feature_id], "user_456")
        await feature_store.close()
        return computed, features, other

    with warnings.catch_warnings():
        warnings.simplefilter("error", FsqlDataWarning)  # a value is served: no warning
        computed, features, other = asyncio.run(flow())
    assert isinstance(computed, pa.Table)
    assert computed.column("user_purchase_30d").to_pylist() == [pytest.approx(960.65), None]
    assert features == {"user_purchase_30d": pytest.approx(960.65)}
    assert other == {"user_purchase_30d": None}  # its only purchase left the window


def test_online_read_of_a_never_materialized_feature_computes_it(repo: Path) -> None:
    # no compute_features call first: the miss is computed by get_online_features itself
    with SyncFeatureStore(repo) as store:
        store.register(SQL)
        store.register_feature(design_feature())
        got = store.get_online_features(["user_purchase_30d"], "user_123")
    assert got == {"user_purchase_30d": pytest.approx(960.65)}


def test_keys_of_the_wrong_type_or_entity_raise(repo: Path) -> None:
    with SyncFeatureStore(repo) as store:
        store.register(SQL)
        store.register_feature(design_feature())
        with pytest.raises(EntityKeyError, match=(
            "the key column item_id of entity item is BIGINT, and 'abc' is not an integer"
        )):  # fmt: skip
            store.get_online_features(["item_sales_7d"], "abc")
        with pytest.raises(EntityKeyError, match="is BIGINT, and 'abc' is not an integer"):
            asyncio.run(FeatureStore(store.config).get_online_features(["item_sales_7d"], "abc"))
        with pytest.raises(EntityKeyError, match="is BIGINT, and 'abc' is not an integer"):
            store.get_batch_features(["item_sales_7d"], ["abc"])
        # a string that holds an integer is the integer
        assert store.get_online_features(["item_sales_7d"], "7") == {"item_sales_7d": 1}
        assert store.get_online_features(["item_sales_7d"], 7) == {"item_sales_7d": 1}
        with pytest.raises(EntityKeyError, match=(
            r"user_purchase_30d describes entity user \(key user_id\) and item_sales_7d "
            r"describes entity item \(key item_id\).*pass each key as a dict"
        )):  # fmt: skip
            store.get_online_features(["user_purchase_30d", "item_sales_7d"], "user_123")
        with pytest.raises(EntityKeyError, match="describes entity item"):
            store.get_batch_features(["user_purchase_30d", "item_sales_7d"], ["user_123"])
        both = store.get_online_features(
            ["user_purchase_30d", "item_sales_7d"], {"user_id": "user_123", "item_id": 7}
        )
        assert both == {"user_purchase_30d": pytest.approx(960.65), "item_sales_7d": 1}


def test_offline_reads_warn_and_say_so_in_the_metadata(repo: Path) -> None:
    with SyncFeatureStore(repo) as store:
        store.register(SQL)
        store.register_feature(design_feature())
        with pytest.warns(NeverMaterializedWarning,
                          match="user_purchase_30d v1 was applied but never materialized"):
            table = store.get_batch_features(["user_purchase_30d"], ["user_123"], as_arrow=True)
        assert table.column("user_purchase_30d").to_pylist() == [None]
        notes = json.loads(table.schema.metadata[b"fsql.notices"])
        assert notes[0]["kind"] == "NeverMaterializedWarning"
        assert "fsql materialize user_purchase_30d" in notes[0]["message"]

        store.materialize(today() - 5 * DAY, today() + DAY, ["user_purchase_30d"])
        spine = pa.table({
            "user_id": ["user_123", "user_123", "user_123"],
            "event_time": pa.array([today() - 20 * DAY, today() - 10 * DAY,
                                    today() + timedelta(hours=1)], pa.timestamp("us", tz="UTC")),
        })  # fmt: skip
        first = (today() - 5 * DAY).isoformat()
        with pytest.warns(BeforeFirstTickWarning, match=(
            rf"2 of 3 spine row\(s\) are before the first materialized tick of "
            rf"user_purchase_30d v1 \({re.escape(first)}\)"
        )) as caught:  # fmt: skip
            result = store.get_batch_features(["user_purchase_30d"], spine, as_arrow=True)
        assert "fsql materialize user_purchase_30d --start" in str(caught[0].message)
        assert result.column("user_purchase_30d").to_pylist() == [
            None, None, pytest.approx(960.65)
        ]
        kinds = [n["kind"] for n in json.loads(result.schema.metadata[b"fsql.notices"])]
        assert kinds == ["BeforeFirstTickWarning"]
        # a spine entirely after the first tick: no warning, no metadata
        with warnings.catch_warnings():
            warnings.simplefilter("error", FsqlDataWarning)
            late = store.get_batch_features(["user_purchase_30d"], spine.slice(2), as_arrow=True)
        assert late.schema.metadata is None or b"fsql.notices" not in late.schema.metadata


def test_first_tick_is_on_the_every_grid() -> None:
    from fsql.serving.checks import _first_tick

    assert _first_tick(datetime(2024, 1, 1, 5, tzinfo=UTC), DAY) == datetime(2024, 1, 2, tzinfo=UTC)
    assert _first_tick(datetime(2024, 1, 1, tzinfo=UTC), DAY) == datetime(2024, 1, 1, tzinfo=UTC)
