"""Progress of long work: log lines with counts and an ETA off a terminal."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pyarrow as pa

from fsql.compute.materialize import materialize
from fsql.compute.progress import LogProgress, QuietProgress, as_progress
from fsql.compute.training import training_set
from fsql.workspace import Workspace
from tests.compute._repo import make_repo
from tests.compute.test_materialize import DEFS, ROWS, D, pay


def test_log_lines_count_and_estimate_from_the_pace_so_far() -> None:
    lines: list[str] = []
    now = [100.0]
    progress = LogProgress(lines.append, clock=lambda: now[0])
    progress.begin(4, "feature intervals")
    for i in range(4):
        progress.start(f"f{i}")
        now[0] += 2.0
        progress.finish(f"f{i}", "10 rows (2.00s)")
    assert lines[0] == "feature intervals: 4 to compute"
    assert lines[1] == "[1/4] f0: computing"
    assert lines[2] == "[1/4] f0: 10 rows (2.00s); 2.0s so far, about 6.0s left"
    assert lines[6] == "[3/4] f2: 10 rows (2.00s); 6.0s so far, about 2.0s left"
    assert lines[-1] == "[4/4] f3: 10 rows (2.00s); 8.0s so far"


def test_a_callable_is_a_log_and_none_is_quiet() -> None:
    seen: list[str] = []
    assert isinstance(as_progress(seen.append), LogProgress)
    assert isinstance(as_progress(None), QuietProgress)
    as_progress(seen.append).note("hello")
    assert seen == ["hello"]


def test_training_sets_and_pushes_report_progress(tmp_path: Path) -> None:
    """The point-in-time joins and the online push say what they do (training sets: one line
    per join with its time; pushes: the keys written)."""
    config, registry = make_repo(tmp_path, DEFS, {"pay": pay(ROWS)})
    with registry:
        workspace = Workspace(config, registry=registry)
        lines: list[str] = []
        materialize(workspace, ["spend_2d"], D, D + timedelta(days=3), progress=lines.append)
        assert "spend_2d v1: pushing the values at its last tick online" in lines
        assert any(re.fullmatch(r"spend_2d v1: 2 keys online \(\d+\.\d\ds\)", line) for line in lines)
        lines.clear()
        spine = pa.table({"user_id": ["a", "b"], "event_time": [D + timedelta(days=2)] * 2})
        training_set(workspace, spine, ["spend_2d", "spend_6h"], progress=lines.append)
    assert lines[0] == "point-in-time joins: 2 to compute"
    assert lines[1] == "[1/2] spend_2d (2 spine rows): computing"
    assert re.fullmatch(r"\[2/2\] spend_6h \(2 spine rows\): \d+\.\d\ds; .* so far", lines[-1])
