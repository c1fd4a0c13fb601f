"""How ``fsql materialize`` shows progress: a bar on a terminal, a log line per interval
elsewhere."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from fsql.cli.progress import BarProgress, progress_for
from tests.cli.conftest import Run
from tests.pipelines._repo import make_repo


def test_on_a_terminal_a_bar_with_counts_and_time_left() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with progress_for(console) as progress:
        assert isinstance(progress, BarProgress)
        progress.begin(3, "feature intervals")
        for i in range(3):
            progress.start(f"f{i} v1")
            progress.finish(f"f{i} v1", "5 rows (0.01s)")
    text = out.getvalue()
    assert "f2 v1: 5 rows (0.01s)" in text
    assert "3/3" in text and "feature intervals" in text and "left" in text


def test_fsql_materialize_off_a_terminal_logs_each_interval(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    result = run("materialize", "avg_order_2d", "--start", "2024-01-02", "--end", "2024-01-05",
                 "--json", repo=repo)  # fmt: skip
    lines = result.stderr.splitlines()
    assert lines[0] == "feature intervals: 3 to compute"  # the derived feature and its 2 inputs
    done = [line for line in lines if " rows (" in line]
    assert [line.split("]")[0] for line in done] == ["[1/3", "[2/3", "[3/3"]
    rows = {r["feature"]: r["rows"] for r in json.loads(result.stdout)}
    for line in done:
        name = line.split("] ")[1].split(" v1")[0]
        assert f": {rows[name]} rows (" in line
