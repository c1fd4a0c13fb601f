"""Late data end to end through the CLI: a source file added after an interval was materialized,
with events inside it, makes the interval and its dependants stale (``fsql status``); the next
``fsql materialize`` over the same range recomputes them without --force, the online store
gets the new latest values, and a run where nothing changed computes nothing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from fsql.compute.timelines import dense_timeline
from fsql.config import load_config
from fsql.registry import open_registry
from fsql.workspace import Workspace
from tests.cli.conftest import Run
from tests.pipelines._repo import PURCHASES, D, make_repo, purchases_table

FEATURES = ("spend_2d", "orders_2d", "avg_order_2d")
START, END = "2024-01-01", "2024-01-08"
Row = tuple[str, float | None, datetime]

#: arrives late: events inside the materialized range (a new user too)
LATE: list[Row] = [
    ("u2", 50.0, D + timedelta(days=3, hours=3)),
    ("u4", 8.0, D + timedelta(days=5, hours=1)),
    ("u1", 2.5, D + timedelta(days=6, hours=12)),
]
#: arrives later still, with events only after the materialized range
FUTURE: list[Row] = [("u1", 99.0, D + timedelta(days=20))]


def reference(rows: list[Row], feature: str, user: str, tick: datetime) -> Any:
    """docs/semantics.md in plain Python: 2-day windows [tick - 2d, tick), dense timelines."""
    if not any(u == user and ts < tick for u, _, ts in rows):
        return None
    window = [a for u, a, ts in rows if u == user and tick - timedelta(days=2) <= ts < tick]
    present = [a for a in window if a is not None]
    spend = sum(present) if present else None
    if feature == "spend_2d":
        return spend
    if feature == "orders_2d":
        return len(window)
    return None if spend is None or not window else spend / len(window)


def expected(rows: list[Row], feature: str) -> dict[tuple[str, datetime], Any]:
    ticks = [D + timedelta(days=n) for n in range(7)]
    users = sorted({u for u, _, _ in rows})
    return {
        (u, t): reference(rows, feature, u, t)
        for u in users
        for t in ticks
        if any(x == u and ts < t for x, _, ts in rows)
    }


def timeline(repo: Path, feature: str) -> dict[tuple[str, datetime], Any]:
    config = load_config(repo)
    with open_registry(config) as registry:
        table = dense_timeline(Workspace(config, registry=registry), feature)
    return {(r["user_id"], r["feature_time"]): r[feature] for r in table.to_pylist()}


def add_file(repo: Path, name: str, rows: list[Row]) -> None:
    pq.write_table(purchases_table(rows), repo / "data" / "purchases" / name)


def status(run: Run, repo: Path) -> dict[str, dict[str, Any]]:
    printed = json.loads(run("status", "--json", repo=repo).stdout)
    return {f["feature"]: f for f in printed["features"]}


def materialize(run: Run, repo: Path) -> dict[str, list[list[str]]]:
    result = run("materialize", "--start", START, "--end", END, "--json", repo=repo)
    return {r["feature"]: r["intervals"] for r in json.loads(result.stdout)}


@pytest.fixture
def repo(tmp_path: Path, run: Run) -> Path:
    """The pipeline test repo (purchases over Jan 1-6, 2024), materialized over Jan 1-8."""
    root = tmp_path / "repo"
    make_repo(root)
    first = materialize(run, root)
    assert all(first[f] == [[f"{START}T00:00:00+00:00", f"{END}T00:00:00+00:00"]]
               for f in FEATURES)  # fmt: skip
    return root


def test_a_late_file_is_detected_and_recomputed_without_force(repo: Path, run: Run) -> None:
    for f in FEATURES:
        assert timeline(repo, f) == pytest.approx(expected(PURCHASES, f))
    assert all(s["stale_reason"] is None for s in status(run, repo).values())

    add_file(repo, "part-1.parquet", LATE)
    # fsql status: the features reading the source, and the derived one reading them
    text = run("status", repo=repo).stdout
    for f in FEATURES:
        line = next(x for x in text.splitlines() if x.startswith(f + " "))
        assert "stale: source changed" in line, text
    now = status(run, repo)
    for f in FEATURES:
        assert now[f]["status"] == "stale" and now[f]["stale_reason"] == "source changed"
        # the earliest late event is on Jan 4 03:00: ticks from Jan 5 on are stale
        assert now[f]["stale_from"] == "2024-01-05T00:00:00+00:00"

    # the same range again, no --force: only the stale ticks are recomputed
    again = materialize(run, repo)
    for f in FEATURES:
        assert again[f] == [["2024-01-05T00:00:00+00:00", f"{END}T00:00:00+00:00"]], again
        assert timeline(repo, f) == pytest.approx(expected(PURCHASES + LATE, f))
    assert all(s["stale_reason"] is None for s in status(run, repo).values())

    # the online store has the new latest tick's values (Jan 7: u1's late 2.5 of Jan 7 12:00
    # falls after it; u4 exists only through the late file)
    got = json.loads(run("get", "spend_2d", "--key", "u4", "--json", repo=repo).stdout)
    assert got[0]["spend_2d"] == reference(PURCHASES + LATE, "spend_2d", "u4", D + timedelta(6))
    got = json.loads(run("get", "avg_order_2d", "--key", "u1", "--json", repo=repo).stdout)
    assert got[0]["avg_order_2d"] == pytest.approx(
        reference(PURCHASES + LATE, "avg_order_2d", "u1", D + timedelta(days=6))
    )

    # nothing changed since: nothing is computed
    assert materialize(run, repo) == {f: [] for f in FEATURES}
    result = run("materialize", "--start", START, "--end", END, repo=repo)
    assert all(f"{f} v1: up to date" in result.stdout for f in FEATURES)


def test_a_file_with_only_later_events_leaves_old_intervals_alone(repo: Path, run: Run) -> None:
    add_file(repo, "part-2.parquet", FUTURE)
    assert all(s["stale_reason"] is None for s in status(run, repo).values())
    assert materialize(run, repo) == {f: [] for f in FEATURES}


def test_a_changed_csv_file_makes_every_later_tick_stale(tmp_path: Path, run: Run) -> None:
    root = tmp_path / "repo"
    make_repo(root)
    folder = root / "data" / "purchases"
    (folder / "part-0.parquet").unlink()
    definitions = (root / "features.sql").read_text()
    csv = "user_id,amount,ts\n" + "".join(
        f"{u},{'' if a is None else a},{ts.replace(tzinfo=None).isoformat()}\n"
        for u, a, ts in PURCHASES
    )
    (root / "data" / "p.csv").write_text(csv)
    (root / "features.sql").write_text(
        definitions.replace("'data/purchases' FORMAT PARQUET", "'data/p.csv' FORMAT CSV")
    )
    run("apply", "--yes", repo=root)
    materialize(run, root)
    # a late row appended: a CSV's event times cannot be told without reading it, so every
    # materialized tick counts as stale
    (root / "data" / "p.csv").write_text(csv + "u2,50.0,2024-01-04T03:00:00\n")
    assert {s["stale_from"] for s in status(run, root).values()} == {f"{START}T00:00:00+00:00"}
    again = materialize(run, root)
    assert all(again[f] == [[f"{START}T00:00:00+00:00", f"{END}T00:00:00+00:00"]]
               for f in FEATURES)  # fmt: skip
    rows = [*PURCHASES, ("u2", 50.0, D + timedelta(days=3, hours=3))]
    for f in FEATURES:
        assert timeline(root, f) == pytest.approx(expected(rows, f))


def test_status_warns_when_a_source_cannot_be_listed(repo: Path, run: Run) -> None:
    (repo / "data" / "purchases").rename(repo / "data" / "gone")
    result = run("status", repo=repo)
    assert "Warning: cannot check source purchases for late data" in result.stderr
    assert "spend_2d" in result.stdout  # the status itself is still shown
    # materialize needs the files: it fails, naming the source
    failed = run("materialize", "--start", START, "--end", END, repo=repo, ok=False)
    assert "purchases" in failed.output and "does not exist" in failed.output
