"""Ctrl-C during ``fsql materialize``: exit 130, a short message, nothing half-committed.

The command runs as a real process (the console script's ``main``); a wrapper around the
interval computation announces itself and then works until interrupted, so the SIGINT lands
mid-interval every time (no sleep-and-hope). The interval being computed is neither in the
offline store nor in the ledger afterwards; the one completed before it is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fsql.config import load_config
from fsql.registry import open_registry
from tests.pipelines._repo import D, make_repo

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import fsql.compute.materialize as m
    from fsql.cli import main

    real = m.materialize_interval
    calls = []

    def slow_second_interval(engine, store, ledger, plan, version, start, end, **kw):
        calls.append(start)
        if len(calls) == {block_at}:
            print("computing", flush=True)
            # stands for a long engine query: interruptible work that never finishes alone
            while True:
                engine.query("SELECT count(*) FROM range(5000000)")
        return real(engine, store, ledger, plan, version, start, end, **kw)

    m.materialize_interval = slow_second_interval
    main(sys.argv[1:])
    """
)


@pytest.mark.parametrize("block_at", [1, 2])
def test_ctrl_c_exits_130_and_commits_nothing_of_the_interrupted_interval(
    tmp_path: Path, block_at: int
) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    # two intervals: [D+2, D+3) is already done, so a run over [D+1, D+4) computes two
    # missing intervals, [D+1, D+2) and [D+3, D+4), in that order
    first = subprocess.run(
        [sys.executable, "-m", "fsql.cli", "--repo", str(repo), "materialize", "spend_2d",
         "--start", (D.replace(day=3)).date().isoformat(), "--end",
         (D.replace(day=4)).date().isoformat(), "--no-online"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    with open_registry(load_config(repo)) as registry:
        before = registry.ledger_intervals("spend_2d", 1)
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(block_at=block_at), "--repo", str(repo),
         "materialize", "spend_2d", "--start", D.replace(day=2).date().isoformat(),
         "--end", D.replace(day=5).date().isoformat(), "--no-online"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "computing", proc.stderr.read() if proc.stderr else line
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    # the progress line, then the one-line message
    assert err.splitlines()[-1].startswith(
        "Interrupted: what was being computed was not committed"
    ), err
    assert "Traceback" not in err
    with open_registry(load_config(repo)) as registry:
        after = registry.ledger_intervals("spend_2d", 1)
    day = D.replace(day=2) - D.replace(day=1)
    if block_at == 1:  # stopped in the first missing interval: nothing new
        assert after == before
    else:  # the first missing interval completed and stays; the second is not there
        assert after == [(D.replace(day=2), D.replace(day=2) + 2 * day)]
    assert before == [(D.replace(day=3), D.replace(day=4))]
