"""``fsql describe FEATURE`` shows the last run's statistics (stored with the run record) and,
on a terminal or with --histogram, a text histogram of the last tick's values."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from fsql.cli.describe_stats import histogram
from tests.cli.conftest import Run, as_json
from tests.pipelines._repo import make_repo


def test_describe_shows_the_last_run(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    before = run("describe", "spend_2d", repo=repo)
    assert "Last run" in before.stdout and "(none: `fsql materialize spend_2d" in before.stdout
    assert as_json(run("describe", "spend_2d", "--json", repo=repo))["last_run"] is None

    run("materialize", "spend_2d", "--start", "2024-01-01", "--end", "2024-01-08", repo=repo)
    data = as_json(run("describe", "spend_2d", "--json", repo=repo))["last_run"]
    assert data["status"] == "success"
    assert (data["start"], data["end"]) == ("2024-01-01T00:00:00+00:00", "2024-01-08T00:00:00+00:00")
    stats = data["stats"]
    # the rows written: value changes (docs/semantics.md), not entities x ticks ...
    assert data["rows"] == stats["rows_written"] == 8
    # ... and the statistics describe the values at each tick: u1 from 01-03, u2 from 01-04,
    # u3 from 01-06 to the last tick 01-07 (5 + 4 + 2)
    assert stats["rows"] == 11
    assert stats["min"] == 1.0 and stats["max"] == 100.0  # u1 on 01-07: 1.0; u3: 100.0
    text = run("describe", "spend_2d", "--histogram", repo=repo).stdout
    assert "Last run" in text and "8 rows written" in text and "max 100" in text
    assert "Values at 2024-01-07T00:00" in text and "(3 rows)" in text
    assert "█" in text
    assert "Values at" not in run("describe", "spend_2d", repo=repo).stdout  # not a terminal


def test_histogram_bins() -> None:
    lines = histogram(pa.array([1.0, 1.0, 2.0, 9.0, None]), bins=2, width=4)
    assert [line.split()[-1] for line in lines] == ["3", "1"]
    assert lines[0].count("█") == 4 and lines[1].count("█") == 1
    assert histogram(pa.array([None], pa.float64())) == []
    text = histogram(pa.array(["DE", "FR", "DE"]), width=4)
    assert text[0].split() == ["DE", "████", "2"]
