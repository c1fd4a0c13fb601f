"""What each ledger entry read (late-data detection) and the stale marks (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fsql.errors import RegistryError
from fsql.registry import InputFile, Registry, StaleMark, open_registry_url
from tests.registry._world import BASE, desired

F = "purchase_sum_30d"


def day(n: int) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n)



FILES = {"purchases": [InputFile("/d/a.parquet", 120, 1_700_000_000_123_456_789, day(-3)),
                       InputFile("/d/b.csv", 55, None, None)]}  # fmt: skip


def commit(registry: Registry, start: int, end: int, inputs=FILES) -> int:
    return registry.ledger_commit(F, 1, day(start), day(end), engine="duckdb", rows=1,
                                  location="x", inputs=inputs)  # fmt: skip


def test_inputs_round_trip_and_survive_a_split(applied: Registry) -> None:
    commit(applied, 0, 10)
    commit(applied, 3, 5, inputs={"purchases": []})  # splits the first entry around it
    entries = applied.ledger_entries(F)
    assert [((e.start - day(0)).days, (e.end - day(0)).days) for e in entries] == [
        (0, 3), (3, 5), (5, 10),
    ]  # fmt: skip
    outer = {k: list(v) for k, v in (entries[0].inputs or {}).items()}
    assert outer == FILES and entries[2].inputs == entries[0].inputs  # the split keeps them
    assert entries[1].inputs == {"purchases": ()}
    assert entries[0].to_json()["input_files"] == {"purchases": 2}


def test_entries_without_inputs_are_unknown(applied: Registry) -> None:
    commit(applied, 0, 2, inputs=None)
    assert applied.ledger_entries(F)[0].inputs is None


def test_stale_marks_are_replaced_and_cleared_by_a_recommit(applied: Registry) -> None:
    commit(applied, 0, 10)
    assert applied.ledger_stale(F, 1) == []
    applied.ledger_set_stale(F, 1, [StaleMark(day(2), day(10), "source changed")])
    [mark] = applied.ledger_stale(F, 1)
    assert (mark.start, mark.end, mark.reason) == (day(2), day(10), "source changed")
    assert mark.detected_at is not None
    commit(applied, 4, 6)  # recomputes the middle: the mark is split around it
    assert [(m.start, m.end) for m in applied.ledger_stale(F, 1)] == [
        (day(2), day(4)), (day(6), day(10)),
    ]  # fmt: skip
    applied.ledger_set_stale(F, 1, [])
    assert applied.ledger_stale(F, 1) == []
    with pytest.raises(RegistryError, match="not all of it is materialized"):
        applied.ledger_set_stale(F, 1, [StaleMark(day(8), day(12), "source changed")])


def test_a_registry_from_before_inputs_gets_the_column_on_open(registry_url: str) -> None:
    registry = open_registry_url(registry_url)
    state = desired(BASE)
    registry.apply(registry.plan(state), state)
    registry.ledger_commit(F, 1, day(0), day(2), engine="duckdb", rows=1, location="x")
    db = registry.backend
    with db.transaction(write=True):  # what a registry created by an older fsql looks like
        db.execute("ALTER TABLE fsql_ledger DROP COLUMN inputs")
        db.execute("DROP TABLE fsql_ledger_stale")
    assert "inputs" not in db.table_columns("fsql_ledger")
    registry.close()
    registry = open_registry_url(registry_url)
    try:
        assert "inputs" in registry.backend.table_columns("fsql_ledger")
        [old] = registry.ledger_entries(F)
        assert old.inputs is None  # unknown: never judged stale
        assert registry.ledger_stale(F, 1) == []
        commit(registry, 2, 4)
        assert registry.ledger_entries(F)[1].inputs is not None
    finally:
        registry.close()
