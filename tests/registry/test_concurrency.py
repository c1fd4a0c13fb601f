"""Concurrent applies from separate processes serialise (both backends)."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from fsql.registry import Registry, open_registry_url
from tests.registry._workers import commit_intervals, open_and_report, plan_then_apply

# each test starts Python child processes (spawn), a few seconds apiece
pytestmark = pytest.mark.slow

NEW_A = "CREATE FEATURE max_purchase ENTITY user AS SELECT user_id, MAX(amount) FROM purchases;"
NEW_B = "CREATE FEATURE min_purchase ENTITY user AS SELECT user_id, MIN(amount) FROM purchases;"


def _race(target: Any, registry_url: str, arguments: tuple[Any, Any]) -> list[Any]:
    """Two processes running ``target(registry_url, argument, barrier, results)`` released at
    once by a barrier; what each put on ``results``."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [ctx.Process(target=target, args=(registry_url, a, barrier, results))
               for a in arguments]  # fmt: skip
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=180) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    return outcomes


def test_two_processes_applying_at_once_serialise(applied: Registry, registry_url: str) -> None:
    registry = applied
    outcomes = _race(plan_then_apply, registry_url, (NEW_A, NEW_B))
    # Both planned against revision 1 before either applied: exactly one won, the other was
    # refused cleanly, planned again and applied on top. Nothing was lost or interleaved.
    first = sorted(o[0] for o in outcomes)
    assert first == [
        "applied",
        "registry changed since the plan was made (revision 1 → 2); run plan again",
    ]
    assert sorted(o[1] for o in outcomes) == [False, True]
    assert max(o[2] for o in outcomes) == 3
    current = registry.current()
    assert current["max_purchase"].version == 1 and current["min_purchase"].version == 1
    assert {current["max_purchase"].revision, current["min_purchase"].revision} == {2, 3}
    assert (current["max_purchase"].created_by, current["min_purchase"].created_by) == (
        "max_purchase", "min_purchase",
    )  # fmt: skip
    assert registry.revision() == 3
    # a fresh connection sees the same state
    other = open_registry_url(registry_url)
    try:
        assert other.current() == current
    finally:
        other.close()


def test_processes_creating_a_new_registry_at_once_all_succeed(registry_url: str) -> None:
    """First use creates the schema; several processes doing it together must not collide."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=open_and_report, args=(registry_url, barrier, results)) for _ in range(3)
    ]
    for w in workers:
        w.start()
    revisions = [results.get(timeout=180) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert revisions == [0, 0, 0]
    with open_registry_url(registry_url) as registry:
        assert registry.revision() == 0 and registry.current() == {}


def test_concurrent_ledger_commits_never_overlap(applied: Registry, registry_url: str) -> None:
    registry = applied
    assert _race(commit_intervals, registry_url, (0, 1)) == ["done", "done"]
    entries = registry.ledger_entries("purchase_sum_30d")
    # whatever the interleaving, the entries tile the covered span without overlapping
    for before, after in zip(entries, entries[1:], strict=False):
        assert before.end <= after.start
    ((start, end),) = registry.ledger_intervals("purchase_sum_30d", 1)
    assert (start.day, (end - start).days) == (1, 22)
    assert sum((e.end - e.start).days for e in entries) == 22
