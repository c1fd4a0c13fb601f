"""Property tests: the engines and the reference implementation give identical training sets.

``ENGINES`` lists the engines checked here; the Spark tests reuse
:func:`tests.compute.properties.check_against_reference` with a Spark engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

import pytest
from hypothesis import HealthCheck, example, given, settings

from fsql.engines.duckdb import DuckDBEngine
from tests.compute.properties import Scenario, check_against_reference, scenarios

ENGINES = ["duckdb"]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> Iterator[DuckDBEngine]:
    assert request.param == "duckdb"
    eng = DuckDBEngine()
    yield eng
    eng.close()


EDGE = Scenario(
    events=[
        # exactly on a tick: belongs to the next tick
        {"k": "a", "amount": 1.0, "item": "x", "ts": datetime(2024, 1, 2), "created": None},
        # same event time, later created time wins for latest values
        {"k": "a", "amount": 7.0, "item": "y", "ts": datetime(2024, 1, 2),
         "created": datetime(2024, 1, 3)},
        {"k": "a", "amount": None, "item": None, "ts": datetime(2024, 1, 1, 6), "created": None},
        # after the last tick: never visible
        {"k": "b", "amount": 3.0, "item": "x", "ts": datetime(2024, 1, 9), "created": None},
    ],
    spine=[
        {"k": "a", "item": "x", "event_time": datetime(2024, 1, 2), "label": 1},
        {"k": "a", "item": "x", "event_time": datetime(2024, 1, 3), "label": 0},
        {"k": "a", "item": "x", "event_time": datetime(2024, 1, 4, 23), "label": 0},
        {"k": "a", "item": "x", "event_time": datetime(2024, 1, 7, 5), "label": 1},
        {"k": "b", "item": "x", "event_time": datetime(2024, 1, 10), "label": 1},
        {"k": None, "item": "x", "event_time": datetime(2024, 1, 3), "label": 0},
        {"k": "a", "item": None, "event_time": None, "label": 0},
    ],
)  # fmt: skip


@settings(
    max_examples=int(os.environ.get("FSQL_EXAMPLES", "15")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@example(scenario=EDGE)
@given(scenario=scenarios())
def test_training_sets_match_reference(engine: DuckDBEngine, scenario: Scenario) -> None:
    check_against_reference(engine, scenario)
