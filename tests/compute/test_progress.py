"""Progress of long work: log lines with counts and an ETA off a terminal."""

from __future__ import annotations

from fsql.compute.progress import LogProgress, QuietProgress, as_progress


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
