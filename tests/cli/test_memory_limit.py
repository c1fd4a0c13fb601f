"""``[compute] memory_limit`` end to end through the CLI: a run that needs more memory than the
limit allows stops with what to change (not a dump of the generated SQL), records nothing and
leaves the offline store and ledger as they were; the same run under a larger limit succeeds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.cli.conftest import Run

DEFINITIONS = """
CREATE ENTITY user KEY (user_id BIGINT);
CREATE SOURCE events (user_id BIGINT, item BIGINT, ts TIMESTAMP) FROM 'data/events' EVENT TIME ts;
CREATE FEATURE items_30d ENTITY user WINDOW '30 days' EVERY '1 day'
  AS SELECT user_id, COUNT(DISTINCT item) FROM events;
"""


def make_repo(root: Path, memory_limit: str) -> None:
    rng = np.random.default_rng(5)
    n = 300_000
    start = 1_735_689_600  # 2025-01-01
    events = pa.table({
        "user_id": rng.integers(0, 50_000, n),
        "item": rng.integers(0, 2_000, n),
        "ts": pa.array((start + rng.integers(0, 40 * 86_400, n)) * 1_000_000, pa.timestamp("us")),
    })  # fmt: skip
    (root / "data" / "events").mkdir(parents=True)
    pq.write_table(events, root / "data" / "events" / "part-0.parquet")
    (root / "features.sql").write_text(DEFINITIONS)
    set_limit(root, memory_limit)


def set_limit(root: Path, memory_limit: str) -> None:
    (root / "fsql.toml").write_text(f'[compute]\nengine = "duckdb"\nmemory_limit = "{memory_limit}"\n')


def test_a_run_over_the_memory_limit_says_what_to_change_and_writes_nothing(
    tmp_path: Path, run: Run
) -> None:
    make_repo(tmp_path, "2MB")
    run("apply", "--yes", repo=tmp_path)
    args = ("materialize", "--start", "2025-01-01", "--end", "2025-02-10", "--no-online")
    failed = run(*args, repo=tmp_path, ok=False)
    assert "needs more memory than DuckDB may use (memory_limit 1.9 MiB)" in failed.output
    assert "raise [compute] memory_limit in fsql.toml" in failed.output
    assert "SQL:" not in failed.output and "WITH __seen" not in failed.output
    status = json.loads(run("status", "--json", repo=tmp_path).stdout)
    [feature] = status["features"]
    assert feature["last_tick"] is None  # nothing materialized
    assert not list((tmp_path / ".fsql" / "offline").rglob("*.parquet"))
    set_limit(tmp_path, "1GB")
    done = json.loads(run(*args, "--json", repo=tmp_path).stdout)
    assert done[0]["feature"] == "items_30d" and done[0]["rows"] > 50_000
