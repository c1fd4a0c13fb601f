"""Code run in child processes by the concurrency tests (importable under ``spawn``)."""

from __future__ import annotations

from typing import Any

from fsql.errors import RegistryError
from fsql.registry import open_registry_url
from tests.registry._world import BASE, analyze, definitions


def plan_then_apply(url: str, new_text: str, barrier: Any, results: Any) -> None:
    """Plan adding ``new_text`` on top of the registry's state (as the server does), wait until
    the other process has planned too, apply, and on a "registry changed" refusal plan again.

    Reports ``(first_outcome, retried, final_revision)`` on ``results``.
    """
    registry = open_registry_url(url)
    try:
        overlay = {**definitions(BASE), **definitions(new_text)}
        state = analyze(overlay.values())
        plan = registry.plan(state, declarative=False)
        barrier.wait(timeout=120)
        try:
            registry.apply(plan, state, actor=new_text.split()[2])
            outcome, retried = "applied", False
        except RegistryError as exc:
            outcome, retried = str(exc), True
            # nothing was lost: plan again on top of the other process's change and apply
            fresh = registry.plan(state, declarative=False)
            registry.apply(fresh, state, actor=new_text.split()[2])
        results.put((outcome, retried, registry.revision()))
    finally:
        registry.close()


def open_and_report(url: str, barrier: Any, results: Any) -> None:
    """Open a (possibly brand-new) registry as soon as the other processes are ready too."""
    barrier.wait(timeout=120)
    registry = open_registry_url(url)
    try:
        results.put(registry.revision())
    finally:
        registry.close()


def commit_intervals(url: str, offset: int, barrier: Any, results: Any) -> None:
    """Commit overlapping day intervals of one feature version, racing another process."""
    from datetime import UTC, datetime, timedelta

    day0 = datetime(2024, 1, 1, tzinfo=UTC)
    registry = open_registry_url(url)
    try:
        barrier.wait(timeout=120)
        for i in range(10):
            start = day0 + timedelta(days=2 * i + offset)
            registry.ledger_commit(
                "purchase_sum_30d", 1, start, start + timedelta(days=3), engine="duckdb",
                rows=offset, location=f"p{offset}",
            )  # fmt: skip
        results.put("done")
    finally:
        registry.close()
