"""The materialization ledger (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from fsql.errors import NotFoundError, RegistryError
from fsql.registry import Registry, merge_intervals, subtract_intervals
from tests.registry._world import BASE, desired, replace_statement


def day(n: int) -> datetime:
    return datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=n)



def commit(registry: Registry, start: int, end: int, *, rows: int = 10, version: int = 1,
           online: bool = False, feature: str = "purchase_sum_30d") -> int:  # fmt: skip
    return registry.ledger_commit(
        feature, version, day(start), day(end), engine="duckdb", rows=rows,
        location=f"offline/{feature}/v{version}", online=online, stats={"ticks": end - start},
    )  # fmt: skip


def spans(entries) -> list[tuple[int, int, int | None, bool]]:
    return [((e.start - day(0)).days, (e.end - day(0)).days, e.rows, e.online) for e in entries]


def test_commits_merge_into_intervals(applied: Registry) -> None:
    assert applied.ledger_intervals("purchase_sum_30d", 1) == []
    first = commit(applied, 0, 5)
    second = commit(applied, 5, 8, rows=6)
    commit(applied, 10, 12)
    assert first != second
    assert applied.ledger_intervals("purchase_sum_30d", 1) == [(day(0), day(8)), (day(10), day(12))]
    assert applied.ledger_missing("purchase_sum_30d", 1, day(-1), day(11)) == [
        (day(-1), day(0)), (day(8), day(10)),
    ]  # fmt: skip
    entries = applied.ledger_entries("purchase_sum_30d")
    assert spans(entries) == [(0, 5, 10, False), (5, 8, 6, False), (10, 12, 10, False)]
    e = entries[0]
    assert (e.id, e.feature, e.version, e.engine, e.location, e.stats) == (
        first, "purchase_sum_30d", 1, "duckdb", "offline/purchase_sum_30d/v1", {"ticks": 5},
    )  # fmt: skip
    assert e.created_at is not None and e.created_at.tzinfo is not None
    assert e.start.tzinfo is not None and e.start.utcoffset() == timedelta(0)


def test_recommitting_replaces_overlapping_entries(applied: Registry) -> None:
    commit(applied, 0, 10, rows=100)
    commit(applied, 3, 5, rows=7)  # inside: the old entry is split around it
    assert spans(applied.ledger_entries()) == [
        (0, 3, None, False), (3, 5, 7, False), (5, 10, None, False),
    ]  # fmt: skip
    commit(applied, 4, 12, rows=80)  # over the right edge: trims, and removes what it covers
    assert spans(applied.ledger_entries()) == [
        (0, 3, None, False), (3, 4, None, False), (4, 12, 80, False),
    ]  # fmt: skip
    commit(applied, -1, 20, rows=999)  # covers everything: one entry remains
    assert spans(applied.ledger_entries()) == [(-1, 20, 999, False)]
    assert applied.ledger_intervals("purchase_sum_30d", 1) == [(day(-1), day(20))]


def test_versions_and_features_have_separate_ledgers(applied: Registry) -> None:
    changed = BASE.replace("WHERE amount > 0", "WHERE amount > 1")
    state = desired(changed)
    applied.apply(applied.plan(state), state)
    commit(applied, 0, 2, version=1)
    commit(applied, 5, 6, version=2)
    commit(applied, 0, 1, feature="country")
    assert applied.ledger_intervals("purchase_sum_30d", 1) == [(day(0), day(2))]
    assert applied.ledger_intervals("purchase_sum_30d", 2) == [(day(5), day(6))]
    assert [(e.feature, e.version) for e in applied.ledger_entries()] == [
        ("country", 1), ("purchase_sum_30d", 1), ("purchase_sum_30d", 2),
    ]  # fmt: skip
    assert [e.feature for e in applied.ledger_entries("country")] == ["country"]


def test_online_marks(applied: Registry) -> None:
    commit(applied, 0, 4)
    commit(applied, 4, 8, online=True)
    assert spans(applied.ledger_entries()) == [(0, 4, 10, False), (4, 8, 10, True)]
    applied.ledger_mark_online("purchase_sum_30d", 1, day(0), day(2))
    assert applied.ledger_online_intervals("purchase_sum_30d", 1) == [
        (day(0), day(2)), (day(4), day(8)),
    ]  # fmt: skip
    assert spans(applied.ledger_entries()) == [(0, 4, 10, False), (4, 8, 10, True)]
    applied.ledger_mark_online("purchase_sum_30d", 1, day(2), day(4))
    assert applied.ledger_online_intervals("purchase_sum_30d", 1) == [(day(0), day(8))]
    assert [e.online for e in applied.ledger_entries()] == [True, True]
    # recomputing an interval offline makes its online copy stale until pushed again
    commit(applied, 3, 5)
    assert spans(applied.ledger_entries()) == [
        (0, 3, None, True), (3, 5, 10, False), (5, 8, None, True),
    ]  # fmt: skip
    assert applied.ledger_online_intervals("purchase_sum_30d", 1) == [
        (day(0), day(3)), (day(5), day(8)),
    ]  # fmt: skip
    with pytest.raises(RegistryError) as info:
        applied.ledger_mark_online("purchase_sum_30d", 1, day(6), day(10))
    assert str(info.value) == (
        "cannot mark purchase_sum_30d v1 online over [2024-01-07T00:00:00+00:00, "
        "2024-01-11T00:00:00+00:00): [2024-01-09T00:00:00+00:00, 2024-01-11T00:00:00+00:00) "
        "not materialized offline; materialize it first"
    )
    assert applied.ledger_online_intervals("purchase_sum_30d", 1) == [
        (day(0), day(3)), (day(5), day(8)),
    ]  # fmt: skip


def test_naive_and_offset_datetimes_are_utc(applied: Registry) -> None:
    applied.ledger_commit(
        "country", 1, datetime(2024, 1, 1), datetime(2024, 1, 2, 2, tzinfo=timezone(
            timedelta(hours=2))), engine="spark", rows=1, location="x",
    )  # fmt: skip
    ((start, end),) = applied.ledger_intervals("country", 1)
    assert (start, end) == (day(0), day(1))
    assert start.tzinfo is not None and start.utcoffset() == timedelta(0)


def test_ledger_needs_an_existing_feature_version(applied: Registry) -> None:
    with pytest.raises(NotFoundError, match="feature purchase_sum_30d has no version 3 "
                       r"\(it has v1\)"):  # fmt: skip
        commit(applied, 0, 1, version=3)
    with pytest.raises(NotFoundError, match="no feature named nope in the registry"):
        applied.ledger_intervals("nope", 1)
    with pytest.raises(NotFoundError, match="purchases is a source, not a feature"):
        commit(applied, 0, 1, feature="purchases")
    with pytest.raises(ValueError, match="an interval needs start < end"):
        commit(applied, 2, 2)
    assert applied.ledger_entries() == []


def test_retired_versions_keep_their_ledger(applied: Registry) -> None:
    commit(applied, 0, 3, feature="country")
    state = desired(replace_statement(BASE, "country", ""))
    applied.apply(applied.plan(state), state)
    assert applied.get("country").retired
    assert applied.ledger_intervals("country", 1) == [(day(0), day(3))]


def test_interval_helpers() -> None:
    assert merge_intervals([(3, 4), (1, 2), (2, 3), (6, 7)]) == [(1, 4), (6, 7)]
    assert subtract_intervals((0, 10), [(2, 3), (5, 12)]) == [(0, 2), (3, 5)]
    assert subtract_intervals((0, 10), []) == [(0, 10)]
    assert subtract_intervals((0, 10), [(-5, 20)]) == []
