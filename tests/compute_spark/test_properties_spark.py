"""The Spark engine against the reference implementation, with the property tests of
:mod:`tests.compute.properties`: the same features, scenarios, reference and comparison as
the DuckDB engine's tests.

A Spark job costs seconds even on tiny data, so each hypothesis example here packs several
independent scenarios into one materialization: every scenario's entity keys get their own
prefix, and since entities never influence each other (the semantics are per entity), the
packed scenario's expected training set is exactly the scenarios' expected rows side by side.
The reference still checks the packed scenario as a whole, so nothing is assumed. Each run
checks the hand-written edge scenario and 6-10 random ones in two Spark materializations; the
DuckDB tests run many more examples of the same generator.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fsql.engines.spark import SparkEngine
from tests.compute.properties import Scenario, check_against_reference, scenarios
from tests.compute.test_properties import EDGE

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def pack(parts: list[Scenario]) -> Scenario:
    """One scenario holding every part, each part's keys prefixed with its index."""

    def prefixed(row: dict, i: int) -> dict:
        return {**row, "k": None if row["k"] is None else f"s{i}_{row['k']}"}

    return Scenario(
        events=[prefixed(e, i) for i, part in enumerate(parts) for e in part.events],
        spine=[prefixed(r, i) for i, part in enumerate(parts) for r in part.spine],
    )


def test_pack_keeps_every_row_and_separates_keys() -> None:
    packed = pack([EDGE, EDGE])
    assert len(packed.events) == 2 * len(EDGE.events)
    assert len(packed.spine) == 2 * len(EDGE.spine)
    assert {r["k"] for r in packed.spine} == {"s0_a", "s0_b", "s1_a", "s1_b", None}


@settings(
    max_examples=1, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(parts=[EDGE])
@given(parts=st.lists(scenarios(), min_size=6, max_size=10))
def test_spark_training_sets_match_reference(engine: SparkEngine, parts: list[Scenario]) -> None:
    check_against_reference(engine, pack(parts))
