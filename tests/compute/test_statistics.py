"""Run statistics describe the values at each tick of a run's interval, as the dense view does.

The offline store holds changes, so :mod:`fsql.compute.statistics` weights each change row by
the ticks it covers instead of building the dense view. These tests compute the statistics the
slow, obvious way — :func:`fsql.compute.checks.value_statistics` over
:func:`fsql.compute.timelines.expand` at the interval's ticks — and compare, for every feature
shape of the property tests, under random materialize schedules (pieces in any order, a forced
recompute), both for a staged interval (what checks see before the commit) and for a committed
one (what pipeline tasks record after it).
"""

from __future__ import annotations

import math
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings

from fsql.compute.checks import value_statistics
from fsql.compute.jobs import interval_statistics, staged_statistics
from fsql.compute.materialize import StagedInterval, materialize, timeline_schema
from fsql.compute.statistics import tick_statistics
from fsql.compute.timelines import expand
from fsql.engines.duckdb import DuckDBEngine
from fsql.errors import ComputeError
from fsql.workspace import Workspace
from tests import reference as ref
from tests.compute._repo import make_repo
from tests.compute.properties import DEFINITIONS, EVENT_SCHEMA, Scenario, scenarios


def dense_statistics(workspace: Workspace, feature: str, start: datetime, end: datetime) -> dict:
    """value_statistics over the dense view of the committed timeline at [start, end)'s ticks."""
    registry = workspace.registry
    resolved = registry.analysis().features[feature]
    version = registry.current()[feature].version
    changes = workspace.offline_store.read_timeline(feature, version, timeline_schema(resolved))
    ticks = ref.ticks(start, end, resolved.definition.every)
    if not ticks:
        return value_statistics(pa.array([], changes.schema.field(feature).type))
    dense = expand(changes, resolved.entity.key_names, feature, ticks)
    return value_statistics(dense.column(feature))


def assert_same(got: dict[str, Any], want: dict[str, Any], where: str) -> None:
    assert set(got) == {*want, "rows_written"}, (where, got)
    for name, expected in want.items():
        actual = got[name]
        if isinstance(expected, float) and actual is not None:
            assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9), (where, name, got, want)
        else:
            assert actual == expected, (where, name, got, want)


def check(scenario: Scenario, root: Path) -> dict[tuple[str, datetime, datetime], dict[str, Any]]:
    events = pa.Table.from_pylist(scenario.events, schema=EVENT_SCHEMA)
    config, registry = make_repo(root, DEFINITIONS, {"ev": events})
    workspace = Workspace(config, registry=registry)
    staged: dict[tuple[str, datetime, datetime], dict[str, Any]] = {}

    def gate(interval: StagedInterval) -> None:
        definition = registry.current()[interval.feature].definition
        stats = staged_statistics(definition, interval)
        stats.pop("ticks")
        staged[(interval.feature, interval.start, interval.end)] = stats

    engine = DuckDBEngine()
    try:
        assert scenario.schedule is not None
        for start, end, force in scenario.schedule:
            materialize(workspace, None, start, end, engine=engine, online=False, force=force, gate=gate)
        assert staged
        for (feature, start, end), stats in staged.items():
            want = dense_statistics(workspace, feature, start, end)
            assert_same(stats, want, f"staged {feature} [{start}, {end})")
            version = registry.current()[feature].version
            _values, committed = interval_statistics(workspace, feature, version, start, end)
            committed.pop("ticks")
            assert_same(committed, want, f"committed {feature} [{start}, {end})")
    finally:
        engine.close()
        registry.close()
    return staged


@settings(
    max_examples=int(os.environ.get("FSQL_EXAMPLES", "4")), deadline=None, suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking a repo run takes minutes
)
@given(scenario=scenarios())
def test_statistics_are_the_dense_views(scenario: Scenario) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        check(scenario, Path(tmp))


def test_a_quiet_entity_counts_at_every_tick(tmp_path: Path) -> None:
    """One event, then nothing: the 2-day sum's change table holds two rows in the first
    interval (2.0 at its first tick, NULL when the window empties two days later), and the
    statistics count the entity at each of the three daily ticks."""
    from tests.compute.properties import BASE, HOUR, INTERVALS

    scenario = Scenario(
        events=[{"k": "a", "amount": 2.0, "item": "x", "ts": BASE - 20 * HOUR, "created": None}],
        spine=[],
        schedule=[(a, b, False) for a, b in INTERVALS],
    )
    staged = check(scenario, tmp_path / "repo")
    first = min((start, stats) for (f, start, _), stats in staged.items() if f == "w_sum")[1]
    assert first == {"rows": 3, "null_fraction": 1 / 3, "min": 2.0, "max": 2.0, "mean": 2.0,
                     "distinct_count": 1, "rows_written": 2}  # fmt: skip


def test_statistics_over_the_memory_limit_say_which_setting(tmp_path: Path) -> None:
    """Statistics run under ``[compute] memory_limit`` like the rest of a run; past it the
    error names the setting (no DuckDB dump), before anything is committed."""
    rng = np.random.default_rng(3)
    n, day = 2_000_000, 86_400_000_000
    table = pa.table({
        "k": rng.integers(0, 500_000, n),
        "feature_time": pa.array(rng.integers(0, 300, n) * day, pa.timestamp("us", tz="UTC")),
        "f": rng.random(n),
    })  # fmt: skip
    pq.write_table(table, tmp_path / "staged.parquet")
    args = (["k"], "f", pa.float64(), 0, 300 * day, day)
    with pytest.raises(ComputeError, match=r"memory_limit 2MB\): raise \[compute\] memory_limit"):
        tick_statistics(*args, staged=[str(tmp_path / "staged.parquet")], memory_limit="2MB")
    stats = tick_statistics(*args, staged=[str(tmp_path / "staged.parquet")], memory_limit="1GB")
    # with room, the same call answers: every value is in [0, 1), each row counts for a tick
    assert stats["rows"] >= stats["rows_written"] > 0
    assert 0 <= stats["min"] <= stats["mean"] <= stats["max"] < 1
