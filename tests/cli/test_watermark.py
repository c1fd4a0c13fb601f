"""The watermark, end to end through the CLI: no tick later than now is materialized, pushed or
called fresh; ``--end`` past now is clamped with a notice; relative times are accepted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fsql.config import load_config
from fsql.intervals import floor_tick
from fsql.registry import open_registry
from tests.cli.conftest import Run
from tests.pipelines._repo import make_repo, write_purchases

DAY = timedelta(days=1)


def _today() -> datetime:
    return floor_tick(datetime.now(UTC), 86_400)


@pytest.fixture
def live_repo(tmp_path: Path) -> tuple[Path, datetime]:
    """The pipeline test repo with purchases in the last days, up to an hour ago."""
    repo = tmp_path / "repo"
    config = make_repo(repo)
    today = _today()
    now = datetime.now(UTC)
    write_purchases(repo, [
        ("u1", 10.0, today - 2 * DAY + timedelta(hours=3)),
        ("u1", 5.0, today - DAY + timedelta(hours=1)),
        ("u2", 3.0, now - timedelta(hours=1)),
    ])  # fmt: skip
    assert config.repo == repo
    return repo, today


def test_an_end_after_now_is_clamped_to_the_last_complete_tick(
    live_repo: tuple[Path, datetime], run: Run
) -> None:
    repo, today = live_repo
    result = run("materialize", "spend_2d", "--start", "-3d", "--end", "+3d", "--json", repo=repo)
    if _today() != today:  # the run crossed midnight UTC: its ticks are a day later
        pytest.skip("the clock crossed midnight UTC during the test")
    assert "is after now" in result.stderr and "last complete tick" in result.stderr
    [printed] = json.loads(result.stdout)
    # today's tick (midnight) is complete; tomorrow's is not computed
    assert printed["last_tick"] == today.isoformat()
    assert [b for _, b in printed["intervals"]] == [(today + DAY).isoformat()]
    with open_registry(load_config(repo)) as registry:
        intervals = registry.ledger_intervals("spend_2d", 1)
        online = registry.ledger_online_intervals("spend_2d", 1)
    assert max(b for _, b in intervals) == today + DAY  # the ledger holds no future tick
    assert max(b for _, b in online) <= today + DAY
    # the online value is today's tick: u1's purchase of yesterday (today's tick reads the
    # 2-day window [today - 2d, today)), not a future tick's empty window
    got = run("get", "spend_2d", "--key", "u1", "--json", repo=repo)
    assert json.loads(got.stdout)[0]["spend_2d"] == 15.0
    # asking again up to "now": nothing is missing, nothing is recomputed
    again = run("materialize", "spend_2d", "--start", "-3d", "--end", "now", "--json", repo=repo)
    assert json.loads(again.stdout)[0]["intervals"] == []


def test_a_range_wholly_after_now_computes_nothing(
    live_repo: tuple[Path, datetime], run: Run
) -> None:
    repo, _ = live_repo
    result = run("materialize", "spend_2d", "--start", "+2d", "--end", "+5d", "--json", repo=repo)
    assert "nothing to materialize" in result.stderr
    assert json.loads(result.stdout)[0]["intervals"] == []
    with open_registry(load_config(repo)) as registry:
        assert registry.ledger_intervals("spend_2d", 1) == []


def test_relative_and_named_times_are_accepted_and_bad_ones_explained(
    live_repo: tuple[Path, datetime], run: Run
) -> None:
    repo, today = live_repo
    result = run("materialize", "spend_2d", "--start", "today", "--end", "now", "--json",
                 repo=repo)  # fmt: skip
    if _today() != today:
        pytest.skip("the clock crossed midnight UTC during the test")
    [printed] = json.loads(result.stdout)
    assert printed["intervals"] == [[today.isoformat(), (today + DAY).isoformat()]]
    bad = run("materialize", "spend_2d", "--start", "-7 fortnights", "--end", "now", repo=repo,
              ok=None)  # fmt: skip
    assert bad.exit_code == 2
    assert "--start" in bad.output and "-7 fortnights" in bad.output
    assert "now, today or -7d" in run(
        "materialize", "--start", "yesterdayish", "--end", "now", repo=repo, ok=None
    ).output


def test_a_source_lateness_holds_ticks_back_for_its_features_and_their_dependants(
    tmp_path: Path, run: Run
) -> None:
    from tests.pipelines._repo import DEFINITIONS

    late = DEFINITIONS.replace("EVENT TIME ts;", "EVENT TIME ts LATENESS '2 days';")
    assert late != DEFINITIONS
    repo = tmp_path / "repo"
    make_repo(repo, late)
    today = _today()
    write_purchases(repo, [("u1", 10.0, today - 5 * DAY), ("u1", 4.0, today - 3 * DAY)])
    result = run("materialize", "avg_order_2d", "--start", "-7d", "--end", "now", "--json",
                 repo=repo)  # fmt: skip
    if _today() != today:
        pytest.skip("the clock crossed midnight UTC during the test")
    assert "LATENESS" in result.stderr
    printed = {r["feature"]: r for r in json.loads(result.stdout)}
    # ticks T with T + 2 days <= now: the last one is two days before today's midnight
    for name in ("spend_2d", "orders_2d", "avg_order_2d"):  # the derived one waits too
        assert printed[name]["last_tick"] == (today - 2 * DAY).isoformat(), name
    described = run("describe", "purchases", repo=repo).stdout
    assert "LATENESS '2 days'" in described
