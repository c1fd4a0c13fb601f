"""Pushing a materialized timeline's latest values, and online/offline agreement on random data.

The reference here is a plain-Python point-in-time lookup written from docs/semantics.md
("value at the latest materialized tick T ≤ t with a row for k; NULL if t − T > TTL"), applied
to the same timeline rows the push reads from Parquet.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsql.compute.push import activate_if_newer, last_tick, write_batches, write_tick
from fsql.language.definitions import Column, EntityDef, FeatureDef, ResolvedFeature
from fsql.stores.online import FeatureRef, OnlineStore, open_online_store_url, serve

DAY = timedelta(days=1)
_EXAMPLE = itertools.count()
T0 = datetime(2024, 1, 1, tzinfo=UTC)
USER = EntityDef(name="user", keys=(Column("user_id", "VARCHAR"),))


def feature(
    name: str = "spend", ttl: timedelta | None = None, every: timedelta = DAY
) -> ResolvedFeature:
    definition = FeatureDef(
        name=name, entity="user", query="SELECT SUM(amount) FROM purchases", every=every, ttl=ttl
    )
    return ResolvedFeature(
        definition=definition,
        entity=USER,
        kind="aggregate",
        value_type="DOUBLE",
        value_expr="__agg0",
    )


@pytest.fixture
def store(online_store: OnlineStore) -> OnlineStore:
    """Each test here runs on SQLite and on Redis (tests/services/online_store.py)."""
    return online_store


def write_timeline(
    path: Path, rows: list[tuple[str, datetime, float | None]], name: str = "spend"
) -> pads.Dataset:
    table = pa.table(
        {
            "user_id": pa.array([r[0] for r in rows], pa.string()),
            "feature_time": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
            name: pa.array([r[2] for r in rows], pa.float64()),
        }
    )
    path.mkdir(parents=True, exist_ok=True)
    # several small row groups, so a push streams several batches
    pq.write_table(table, path / "part-0.parquet", row_group_size=7)
    return pads.dataset(str(path), format="parquet")


def test_last_tick() -> None:
    assert last_tick([], DAY) is None
    assert last_tick([(T0, T0 + 3 * DAY)], DAY) == T0 + 2 * DAY
    assert last_tick([(T0, T0 + 3 * DAY + timedelta(hours=1))], DAY) == T0 + 3 * DAY
    # an interval with no tick inside contributes nothing; gaps are fine
    assert (
        last_tick(
            [
                (T0, T0 + 2 * DAY),
                (T0 + 5 * DAY + timedelta(hours=1), T0 + 5 * DAY + timedelta(hours=2)),
            ],
            DAY,
        )
        == T0 + DAY
    )
    assert last_tick([(T0, T0 + timedelta(hours=13))], timedelta(hours=6)) == T0 + timedelta(
        hours=12
    )


def test_write_tick_streams_only_the_latest_rows(store: OnlineStore, tmp_path: Path) -> None:
    rows = [(f"u{i}", T0 + d * DAY, float(i * 10 + d)) for i in range(20) for d in range(3)]
    rows.append(("u0", T0 + 2 * DAY, None))  # (dense timelines have one row; a NULL here anyway)
    rows = [r for r in rows if not (r[0] == "u0" and r[1] == T0 + 2 * DAY and r[2] is not None)]
    dataset = write_timeline(tmp_path / "tl", rows)
    written = write_tick(store, feature(), 1, dataset, T0 + 2 * DAY, batch_size=5)
    assert written == 20
    assert activate_if_newer(store, "spend", 1)
    got = store.read("user", [FeatureRef("spend")], ["u0", "u3", "u19", "nobody"])
    assert [(r[0].value, r[0].feature_time) if r[0] else None for r in got] == [
        (None, T0 + 2 * DAY),
        (32.0, T0 + 2 * DAY),
        (192.0, T0 + 2 * DAY),
        None,
    ]


def test_activate_if_newer_never_switches_back(store: OnlineStore) -> None:
    assert activate_if_newer(store, "spend", 2)
    assert not activate_if_newer(store, "spend", 1)
    assert store.active_versions(["spend"]) == {"spend": "2"}
    assert activate_if_newer(store, "spend", 3)
    assert store.active_versions(["spend"]) == {"spend": "3"}


def test_write_batches_with_composite_keys_and_expiry(store: OnlineStore) -> None:
    batch = pa.record_batch(
        {
            "a": pa.array(["x|y", "x"], pa.string()),
            "b": pa.array([1, 2], pa.int64()),
            "feature_time": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
            "n": pa.array([5, None], pa.int64()),
        }
    )
    expires = T0 + DAY
    assert (
        write_batches(store, "pair", "n", "1", "BIGINT", ["a", "b"], [batch], expires_at=expires)
        == 2
    )
    got = store.read("pair", [FeatureRef("n", "1")], ["x\\|y|1", "x|2"])
    assert [(r[0].value, r[0].expires_at) for r in got if r[0]] == [(5, expires), (None, expires)]


def reference_lookup(
    rows: list[tuple[str, datetime, float | None]],
    ticks: list[datetime],
    key: str,
    at: datetime,
    ttl: timedelta | None,
) -> float | None:
    """docs/semantics.md, point-in-time lookup, written out naively."""
    candidates = [t for (k, t, _) in rows if k == key and t in ticks and t <= at]
    if not candidates:
        return None
    tick = max(candidates)
    if ttl is not None and at - tick > ttl:
        return None
    return next(v for (k, t, v) in rows if k == key and t == tick)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_ticks=st.integers(1, 8),
    ttl_days=st.one_of(st.none(), st.integers(1, 4)),
    lag_hours=st.integers(0, 24 * 6),
)
def test_online_serving_agrees_with_point_in_time_lookup(
    store: OnlineStore, tmp_path_factory: pytest.TempPathFactory,
    seed: int, n_ticks: int, ttl_days: int | None, lag_hours: int,
) -> None:  # fmt: skip
    """Random dense timelines (entities appearing at random ticks, NULL values = emptied
    windows), pushed at the last materialized tick, then read at `now` = last tick + lag."""
    rng = random.Random(seed)
    ttl = None if ttl_days is None else ttl_days * DAY
    ticks = [T0 + d * DAY for d in range(n_ticks)]
    rows: list[tuple[str, datetime, float | None]] = []
    keys = [f"k{i}" for i in range(rng.randint(1, 30))]
    for key in keys:
        first = rng.randrange(n_ticks + 1)  # == n_ticks: never seen
        for tick in ticks[first:]:
            rows.append((key, tick, rng.choice([None, round(rng.uniform(-100, 100), 3), 0.0])))
    name = f"spend_{next(_EXAMPLE)}"  # a fresh feature per example: the store is shared
    f = feature(name, ttl=ttl)
    dataset = write_timeline(tmp_path_factory.mktemp("tl"), rows, name=name)
    tick = last_tick([(ticks[0], ticks[-1] + DAY)], DAY)
    assert tick == ticks[-1]
    write_tick(store, f, 1, dataset, tick, batch_size=rng.randint(1, 10))
    activate_if_newer(store, name, 1)
    now = tick + timedelta(hours=lag_hours)
    probe = [*keys, "never"]
    got = store.read("user", [FeatureRef(name)], probe)
    served = [serve(r[0], ttl, now) for r in got]
    assert served == [reference_lookup(rows, ticks, k, now, ttl) for k in probe]


@pytest.mark.redis
def test_redis_failing_mid_push_leaves_the_old_version_served(redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Redis stops answering after the first batch of version 2: the push fails with
    OnlineStoreUnavailable, version 2 is never activated, readers keep version 1."""
    import signal

    from fsql.errors import OnlineStoreUnavailable

    redis_server.flush()
    store = open_online_store_url(redis_server.url, timeout=0.3)
    keys = [f"u{i}" for i in range(6)]
    rows = [(k, T0, 1.0) for k in keys]
    write_tick(store, feature(), 1, write_timeline(tmp_path / "v1", rows), T0)
    assert activate_if_newer(store, "spend", 1)

    def batches_then_hang() -> Iterator[pa.RecordBatch]:
        table = write_timeline(tmp_path / "v2", [(k, T0 + DAY, 2.0) for k in keys]).to_table()
        yield table.to_batches(max_chunksize=2)[0]
        redis_server.process.send_signal(signal.SIGSTOP)  # the server hangs mid-push
        yield from table.to_batches(max_chunksize=2)[1:]

    try:
        with pytest.raises(OnlineStoreUnavailable, match="could not write spend \\(version 2\\)"):
            write_batches(store, "user", "spend", "2", "DOUBLE", ["user_id"], batches_then_hang())
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    # the failed push never reached activate(): every reader still sees all of version 1
    got = store.read("user", [FeatureRef("spend")], keys)
    assert [(r[0].value, r[0].version) for r in got if r[0]] == [(1.0, "1")] * len(keys)
    assert store.active_versions() == {"spend": "1"}
    store.close()
