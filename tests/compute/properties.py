"""Engines against the reference: shared by the DuckDB and Spark property tests.

:func:`check_against_reference` materializes a fixed set of features (every aggregate,
windowed and lifetime, latest value, derived, with and without TTL, two cadences) over random
source rows on one engine, builds a training set for a random spine, and compares every value
with :mod:`tests.reference`. Materialization runs over two intervals with a gap, so "the latest
*materialized* tick" and TTL expiry across the gap are exercised too.

Use it from any engine's tests::

    @given(data=scenarios())
    def test_spark_matches_reference(data, spark_engine):
        check_against_reference(spark_engine, data)
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import strategies as st

from fsql.workspace import Workspace
from tests import reference as ref
from tests.compute._repo import make_repo

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
BASE = datetime(2024, 1, 1)

DEFINITIONS = """
CREATE ENTITY ent KEY (k VARCHAR);
CREATE ENTITY ent_item KEY (k VARCHAR, item VARCHAR);
CREATE SOURCE ev (k VARCHAR, amount DOUBLE, item VARCHAR, ts TIMESTAMP, created TIMESTAMP)
  FROM 'data/ev' EVENT TIME ts CREATED TIME created;
CREATE FEATURE w_sum ENTITY ent WINDOW '2 days' AS SELECT k, SUM(amount) FROM ev;
CREATE FEATURE w_count ENTITY ent WINDOW '2 days' AS SELECT k, COUNT(amount) FROM ev;
CREATE FEATURE w_count_star ENTITY ent WINDOW '2 days' TTL '1 day' AS SELECT k, COUNT(*) FROM ev;
CREATE FEATURE w_distinct ENTITY ent WINDOW '3 days' AS SELECT k, COUNT(DISTINCT item) FROM ev;
CREATE FEATURE w_avg ENTITY ent WINDOW '2 days' AS SELECT k, AVG(amount) FROM ev;
CREATE FEATURE w_min ENTITY ent WINDOW '1 day' AS SELECT k, MIN(amount) FROM ev WHERE amount > 0;
CREATE FEATURE w_max ENTITY ent WINDOW '12 hours' EVERY '6 hours' TTL '6 hours'
  AS SELECT k, MAX(amount) FROM ev;
CREATE FEATURE w_ratio ENTITY ent WINDOW '2 days'
  AS SELECT k, SUM(amount) / NULLIF(COUNT(*), 0) FROM ev WHERE amount > 0;
CREATE FEATURE l_sum ENTITY ent TTL '2 days' AS SELECT k, SUM(amount) FROM ev;
CREATE FEATURE l_distinct ENTITY ent AS SELECT k, COUNT(DISTINCT item) FROM ev;
CREATE FEATURE l_item_distinct_6h ENTITY ent EVERY '6 hours' AS SELECT k, COUNT(DISTINCT item) FROM ev;
CREATE FEATURE latest_amount ENTITY ent AS SELECT k, amount FROM ev;
CREATE FEATURE latest_item ENTITY ent TTL '12 hours' AS SELECT k, item FROM ev;
CREATE FEATURE ki_count ENTITY ent_item WINDOW '2 days' TTL '1 day'
  AS SELECT k, item, COUNT(*) FROM ev;
CREATE FEATURE d_avg ENTITY ent AS SELECT k, w_sum / NULLIF(w_count, 0) FROM ent;
CREATE FEATURE d_plus ENTITY ent TTL '1 day' AS SELECT k, COALESCE(l_sum, 0) + w_count_star FROM ent;
"""


def _div(a: Any, b: Any) -> Any:
    return None if a is None or b is None or b == 0 else a / b


def _specs() -> dict[str, ref.Spec]:
    amount = lambda r: r["amount"]  # noqa: E731 - tiny accessors read best inline
    item = lambda r: r["item"]  # noqa: E731
    positive = lambda r: None if r["amount"] is None else r["amount"] > 0  # noqa: E731
    specs = [
        ref.Spec("w_sum", "aggregate", DAY, window=2 * DAY, aggregates=[("sum", amount)]),
        ref.Spec("w_count", "aggregate", DAY, window=2 * DAY, aggregates=[("count", amount)]),
        ref.Spec("w_count_star", "aggregate", DAY, window=2 * DAY, ttl=DAY, aggregates=[("count", None)]),
        ref.Spec("w_distinct", "aggregate", DAY, window=3 * DAY, aggregates=[("count_distinct", item)]),
        ref.Spec("w_avg", "aggregate", DAY, window=2 * DAY, aggregates=[("avg", amount)]),
        ref.Spec("w_min", "aggregate", DAY, window=DAY, where=positive, aggregates=[("min", amount)]),
        ref.Spec("w_max", "aggregate", 6 * HOUR, window=12 * HOUR, ttl=6 * HOUR, aggregates=[("max", amount)]),
        ref.Spec(
            "w_ratio", "aggregate", DAY, window=2 * DAY, where=positive,
            aggregates=[("sum", amount), ("count", None)], combine=lambda v: _div(v[0], v[1]),
        ),
        ref.Spec("l_sum", "aggregate", DAY, ttl=2 * DAY, aggregates=[("sum", amount)]),
        ref.Spec("l_distinct", "aggregate", DAY, aggregates=[("count_distinct", item)]),
        ref.Spec("l_item_distinct_6h", "aggregate", 6 * HOUR, aggregates=[("count_distinct", item)]),
        ref.Spec("latest_amount", "latest", DAY, value=amount, created_time="created"),
        ref.Spec("latest_item", "latest", DAY, ttl=12 * HOUR, value=item, created_time="created"),
        ref.Spec("ki_count", "aggregate", DAY, keys=("k", "item"), window=2 * DAY, ttl=DAY,
                 aggregates=[("count", None)]),
        ref.Spec("d_avg", "derived", DAY, inputs=["w_sum", "w_count"],
                 combine=lambda v: _div(v["w_sum"], v["w_count"])),
        ref.Spec("d_plus", "derived", DAY, ttl=DAY, inputs=["l_sum", "w_count_star"],
                 combine=lambda v: None if v["w_count_star"] is None
                 else (v["l_sum"] or 0) + v["w_count_star"]),
    ]  # fmt: skip
    return {s.name: s for s in specs}


SPECS = _specs()
#: materialized intervals: a gap between them, the second starting mid-day
INTERVALS = [(BASE, BASE + 3 * DAY), (BASE + 4 * DAY + 12 * HOUR, BASE + 7 * DAY)]


def _instants(lo: timedelta, hi: timedelta) -> st.SearchStrategy[datetime]:
    """Instants around BASE, biased to exact tick boundaries (whole hours / 6 hours / days)."""
    hours = st.integers(int(lo / HOUR), int(hi / HOUR)).map(lambda h: BASE + h * HOUR)
    seconds = st.integers(int(lo.total_seconds()), int(hi.total_seconds())).map(
        lambda s: BASE + timedelta(seconds=s)
    )
    return st.one_of(hours, hours, seconds)


@dataclass
class Scenario:
    events: list[dict[str, Any]]
    spine: list[dict[str, Any]]
    #: the materialize calls, (start, end, force), covering exactly INTERVALS in any order and
    #: pieces (stored rows are changes, so each call's rows depend on its neighbours in the
    #: ledger); None: one call per interval, in order
    schedule: list[tuple[datetime, datetime, bool]] | None = None


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    keys = st.sampled_from(["a", "b", "c", "d"])
    event = st.fixed_dictionaries({
        "k": st.one_of(keys, keys, keys, st.none()),
        "amount": st.one_of(st.none(), st.integers(-3, 9).map(float), st.floats(-5, 50, allow_nan=False, width=32).map(float)),
        "item": st.one_of(st.none(), st.sampled_from(["x", "y", "z", "w"])),
        "ts": _instants(-3 * DAY, 9 * DAY),
        "created": st.one_of(st.none(), _instants(-3 * DAY, 9 * DAY)),
    })  # fmt: skip
    events = draw(st.lists(event, min_size=0, max_size=30))
    if events and draw(st.booleans()):
        events.append(dict(draw(st.sampled_from(events))))  # an exact duplicate row
    spine_row = st.fixed_dictionaries({
        "k": st.one_of(st.sampled_from(["a", "b", "c", "d", "never"]), st.none()),
        "item": st.one_of(st.none(), st.sampled_from(["x", "y", "z", "w"])),
        "event_time": st.one_of(_instants(-2 * DAY, 10 * DAY), st.none()),
        "label": st.integers(0, 1),
    })  # fmt: skip
    spine = draw(st.lists(spine_row, min_size=1, max_size=20))
    pieces: list[tuple[datetime, datetime, bool]] = []
    for start, end in INTERVALS:
        hours = int((end - start) / HOUR)
        cuts = sorted(set(draw(st.lists(st.integers(1, hours - 1), max_size=2))))
        bounds = [start, *(start + c * HOUR for c in cuts), end]
        pieces += [(a, b, False) for a, b in zip(bounds, bounds[1:], strict=False)]
    order = draw(st.permutations(pieces))
    if draw(st.booleans()):  # recompute a part of what is materialized
        a, b, _ = draw(st.sampled_from(pieces))
        order.append((a, b, True))
    return Scenario(events, spine, order)


EVENT_SCHEMA = pa.schema([
    ("k", pa.string()), ("amount", pa.float64()), ("item", pa.string()),
    ("ts", pa.timestamp("us")), ("created", pa.timestamp("us")),
])  # fmt: skip
SPINE_SCHEMA = pa.schema([
    ("k", pa.string()), ("item", pa.string()), ("event_time", pa.timestamp("us")),
    ("label", pa.int64()),
])  # fmt: skip


def reference_training_set(scenario: Scenario) -> list[dict[str, Any]]:
    """The expected training set for ``scenario``, from the reference implementation."""
    timelines: dict[str, dict[Any, Any]] = {}
    for name, spec in SPECS.items():  # inputs come before derived specs in SPECS
        tl: dict[Any, Any] = {}
        for start, end in INTERVALS:
            tl.update(
                ref.timeline(
                    spec, scenario.events, ref.ticks(start, end, spec.every), timelines=timelines
                )
            )
        timelines[name] = tl
    return ref.training_set(list(SPECS.values()), timelines, scenario.spine)


def engine_training_set(engine: Any, scenario: Scenario, root: Path) -> list[dict[str, Any]]:
    """Materialize both intervals with ``engine`` (an Engine instance) and join the spine."""
    from fsql.compute.materialize import materialize
    from fsql.compute.training import training_batches, training_set

    events = pa.Table.from_pylist(scenario.events, schema=EVENT_SCHEMA)
    config, registry = make_repo(root, DEFINITIONS, {"ev": events})
    try:
        schedule = scenario.schedule or [(a, b, False) for a, b in INTERVALS]
        for start, end, force in schedule:
            materialize(Workspace(config, registry=registry), None, start, end, engine=engine, online=False, force=force)
        spine = pa.Table.from_pylist(scenario.spine, schema=SPINE_SCHEMA)
        result = training_set(Workspace(config, registry=registry), spine, list(SPECS), engine=engine)
        if engine.name == "duckdb":
            # the streamed path (the server's), in batches of 3 rows so that batches and
            # duplicate keys/times straddle each other: exactly the collected result
            batches = list(training_batches(Workspace(config, registry=registry), spine,
                                            list(SPECS), engine=engine, batch_rows=3))
            assert all(b.num_rows <= 3 for b in batches)
            assert pa.Table.from_batches(batches, result.schema).equals(result)
    finally:
        registry.close()
    assert result.column_names[:4] == SPINE_SCHEMA.names
    assert result.select(SPINE_SCHEMA.names).equals(spine)
    return result.to_pylist()


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def check_against_reference(engine: Any, scenario: Scenario) -> None:
    """Assert that ``engine`` and the reference give the same training set for ``scenario``."""
    expected = reference_training_set(scenario)
    with tempfile.TemporaryDirectory() as tmp:
        actual = engine_training_set(engine, scenario, Path(tmp))
    assert len(actual) == len(expected)
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        for name in SPECS:
            assert same(got[name], want[name]), (
                f"spine row {i} {scenario.spine[i]}: {name} = {got[name]!r}, reference says "
                f"{want[name]!r}\nevents: {scenario.events}"
            )
