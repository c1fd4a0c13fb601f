"""The Feast virtualenv the benchmark smoke tests compare against, made once per session.

bench/setup.sh creates bench/.venv-feast (about 90 s on a fresh clone) and returns at once when
it is ready. It is not safe to run twice at the same time on one directory, and pytest-xdist
workers or another checkout's test run can reach it together, so the fixture holds an
exclusive file lock (in the ignored bench/.data/) while it runs.
"""

from __future__ import annotations

import fcntl
import subprocess

import pytest

from bench._common import BENCH


@pytest.fixture(scope="session")
def feast_venv() -> None:
    """bench/.venv-feast, ready (bench/setup.sh run under a lock; it is idempotent)."""
    lock_path = BENCH / ".data" / "feast-setup.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(["bash", str(BENCH / "setup.sh")], capture_output=True, text=True,
                              timeout=1200, check=False)  # fmt: skip
    assert done.returncode == 0, f"bench/setup.sh failed:\n{done.stdout}\n{done.stderr}"
