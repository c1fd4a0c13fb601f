"""The lookup tick T* of the point-in-time join, and the density it relies on.

:func:`fsql.compute.training.lookup_ticks` computes, per spine time t, the latest *materialized* tick
≤ t (with TTL) by arithmetic; these tests compare it with a brute-force search over the
materialized ticks listed by :func:`tests.reference.ticks`. The equi-join is only correct
because every timeline is dense (an entity seen once has a row at every materialized tick
after); ``test_materialized_timelines_are_dense`` checks that on the property tests' features.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsql.compute.timelines import expand
from fsql.compute.training import epoch_micros, lookup_ticks, tick_ranges
from fsql.errors import ComputeError
from fsql.workspace import Workspace
from tests import reference as ref

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def us(t: datetime) -> int:
    return (t - EPOCH) // timedelta(microseconds=1)


def brute_force(
    t: datetime, intervals: list[tuple[datetime, datetime]], every: timedelta, ttl: timedelta | None
) -> datetime | None:
    ticks = [tick for a, b in intervals for tick in ref.ticks(a, b, every) if tick <= t]
    if not ticks:
        return None
    best = max(ticks)
    return None if ttl is not None and t - best > ttl else best


offsets = st.integers(-48, 24 * 12).map(lambda h: BASE + h * HOUR)
seconds = st.integers(-2 * 86_400, 12 * 86_400).map(lambda s: BASE + timedelta(seconds=s))
micro = st.integers(-(10**12), 12 * 86_400 * 10**6).map(lambda m: BASE + timedelta(microseconds=m))
instants = st.one_of(offsets, seconds, micro)


@settings(max_examples=300, deadline=None)
@given(
    bounds=st.lists(instants, min_size=0, max_size=8),
    every_h=st.sampled_from([1, 5, 6, 24, 24 * 7]),
    ttl_h=st.one_of(st.none(), st.sampled_from([0, 1, 6, 24, 36])),
    times=st.lists(st.one_of(instants, st.none()), min_size=1, max_size=30),
)
def test_lookup_ticks_match_brute_force(
    bounds: list[datetime], every_h: int, ttl_h: int | None, times: list[datetime | None]
) -> None:
    every = every_h * HOUR
    ttl = None if ttl_h is None else ttl_h * HOUR
    # pairs of instants → intervals (possibly overlapping, touching, empty or out of order)
    intervals = [(min(a, b), max(a, b)) for a, b in zip(bounds[::2], bounds[1::2], strict=False)]
    intervals = [(a, b) for a, b in intervals if a < b]
    column = pa.array(times, pa.timestamp("us", tz="UTC"))
    t_us, valid = epoch_micros(column, "t")
    every_us = every // timedelta(microseconds=1)
    ttl_us = None if ttl is None else ttl // timedelta(microseconds=1)
    ticks, found = lookup_ticks(t_us, valid, every_us, tick_ranges(intervals, every_us), ttl_us)
    for i, t in enumerate(times):
        expected = None if t is None else brute_force(t, intervals, every, ttl)
        got = EPOCH + timedelta(microseconds=int(ticks[i])) if found[i] else None
        assert got == expected, (t, intervals, every, ttl)


def test_tick_ranges_merge_and_skip_tickless_intervals() -> None:
    day = 86_400_000_000
    d = lambda n, h=0: BASE + timedelta(days=n, hours=h)  # noqa: E731
    first = us(BASE) // day
    ranges = tick_ranges(
        [(d(5), d(7)), (d(0), d(2)), (d(2), d(3)), (d(8, 1), d(8, 23)), (d(1), d(1, 12))], day
    )
    # [0, 3) merges three intervals; [8:01, 8:23) holds no daily tick; [5, 7) stays apart
    assert ranges == ((first, first + 3), (first + 5, first + 7))


def test_ttl_edge_is_inclusive() -> None:
    day = 86_400_000_000
    ranges = tick_ranges([(BASE, BASE + timedelta(days=2))], day)
    times = [BASE + timedelta(days=1, hours=6), BASE + timedelta(days=1, hours=6, microseconds=1)]
    t_us, valid = epoch_micros(pa.array(times, pa.timestamp("us")), "t")
    ticks, found = lookup_ticks(t_us, valid, day, ranges, 6 * 3_600_000_000)
    assert found.tolist() == [True, False]  # t − T = TTL is still valid, one µs later it is not
    assert ticks[0] == us(BASE + timedelta(days=1))


def test_epoch_micros_of_every_time_type() -> None:
    t = datetime(2024, 3, 1, 12, 30, tzinfo=UTC)
    expected = us(t)
    naive = t.replace(tzinfo=None)
    cases = [
        pa.array([t], pa.timestamp("s", tz="America/New_York")),
        pa.array([t], pa.timestamp("ms", tz="UTC")),
        pa.array([naive], pa.timestamp("us")),
        pa.array([naive], pa.timestamp("ns")),
        pa.array(["2024-03-01 12:30:00"]),
        pa.array(["2024-03-01T14:30:00+02:00"]),
        pa.chunked_array([pa.array([naive], pa.timestamp("us"))]),
    ]
    for column in cases:
        values, valid = epoch_micros(column, "t")
        assert values.tolist() == [expected] and valid.tolist() == [True], column.type
    days, valid = epoch_micros(pa.array([t.date(), None], pa.date32()), "t")
    assert days[0] == us(datetime(2024, 3, 1, tzinfo=UTC)) and valid.tolist() == [True, False]
    # nanoseconds floor (not truncate toward zero) before the epoch: -1 ns is in tick -1
    values, _ = epoch_micros(pa.array([-1], pa.timestamp("ns")), "t")
    assert values.tolist() == [-1]
    with pytest.raises(ComputeError, match="time column 't' has type int64"):
        epoch_micros(pa.array([1]), "t")
    with pytest.raises(ComputeError, match="not ISO 8601"):
        epoch_micros(pa.array(["yesterday"]), "t")


def test_stored_rows_are_the_changes_of_dense_timelines(tmp_path: Path) -> None:
    """Every feature shape the materializer writes (windowed and lifetime aggregates, distinct
    counts, FILTER, latest values, derived, a two-column key, two cadences) is dense over the
    materialized ticks of two intervals with a gap: each entity has a row at every
    materialized tick from its first one on."""
    from fsql.compute.materialize import materialize, timeline_schema
    from fsql.engines.duckdb import DuckDBEngine
    from fsql.stores.offline import OfflineStore
    from tests.compute._repo import make_repo
    from tests.compute.properties import DEFINITIONS, EVENT_SCHEMA, INTERVALS

    rng = np.random.default_rng(7)
    events = [
        {
            "k": str(rng.choice(["a", "b", "c", None])),
            "amount": float(rng.integers(-3, 9)),
            "item": str(rng.choice(["x", "y"])),
            "ts": INTERVALS[0][0] + timedelta(hours=int(rng.integers(-72, 24 * 8))),
            "created": None,
        }
        for _ in range(40)
    ]
    for e in events:
        e["k"] = None if e["k"] == "None" else e["k"]
    config, registry = make_repo(
        tmp_path, DEFINITIONS, {"ev": pa.Table.from_pylist(events, schema=EVENT_SCHEMA)}
    )
    engine = DuckDBEngine()
    try:
        for start, end in INTERVALS:
            materialize(Workspace(config, registry=registry), None, start, end, engine=engine, online=False)
        analysis, current = registry.analysis(), registry.current()
        store = OfflineStore.from_config(config)
        checked = 0
        for name, feature in analysis.features.items():
            version = current[name].version
            table = store.read_timeline(name, version, timeline_schema(feature))
            keys = feature.entity.key_names
            materialized = sorted(
                {t for a, b in INTERVALS for t in ref.ticks(a, b, feature.definition.every)}
            )
            starts = {a for a, _ in _ranges(materialized, feature.definition.every)}
            stored: dict[tuple, dict[datetime, Any]] = {}
            for row in table.to_pylist():
                key = tuple(row[k] for k in keys)
                assert row["feature_time"] not in stored.get(key, {}), f"{name}: duplicates"
                stored.setdefault(key, {})[row["feature_time"]] = row[name]
            assert stored, f"{name}: no rows"
            dense = expand(table, keys, name, materialized).to_pylist()
            values: dict[tuple, dict[datetime, Any]] = {}
            for row in dense:
                values.setdefault(tuple(row[k] for k in keys), {})[row["feature_time"]] = row[name]
            for key, at in values.items():
                first = min(at)
                # dense once seen: a value at every materialized tick from the first one
                assert set(at) == {t for t in materialized if t >= first}, f"{name} {key}"
                # stored: the first tick, each range's first tick, and every change
                previous = None
                wanted = {}
                for tick in sorted(at):
                    if tick == first or tick in starts or not _same(at[tick], previous):
                        wanted[tick] = at[tick]
                    previous = at[tick]
                assert stored[key].keys() == wanted.keys(), f"{name} {key}: not the changes"
            checked += 1
        assert checked == len(analysis.features)
    finally:
        engine.close()
        registry.close()


def _ranges(ticks: list[datetime], every: timedelta) -> list[tuple[datetime, datetime]]:
    """Contiguous runs of ``ticks`` as [first, last]."""
    runs: list[tuple[datetime, datetime]] = []
    for t in ticks:
        if runs and t - runs[-1][1] == every:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def _same(a: Any, b: Any) -> bool:
    return a is None and b is None or (a is not None and b is not None and a == b)
