"""``fsql training-set``: ``--features`` may be repeated (each value still comma-separated) and
``--out`` writes what its name says — Parquet for ``.parquet``, CSV for ``.csv``, a usage
error for anything else."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.cli.conftest import Run
from tests.pipelines._repo import make_repo

SPINE = "user_id,event_time,label\nu1,2024-01-05T00:00:00,1\nu2,2024-01-05,0\n"


@pytest.fixture
def repo(tmp_path: Path, run: Run) -> Path:
    root = tmp_path / "repo"
    make_repo(root)
    run("materialize", "--start", "2024-01-01", "--end", "2024-01-06", "--no-online", repo=root)
    (root / "spine.csv").write_text(SPINE)
    return root


def test_repeated_features_are_all_joined(repo: Path, run: Run) -> None:
    out = repo / "train.parquet"
    run("training-set", "--spine", str(repo / "spine.csv"), "--features", "spend_2d",
        "--features", "orders_2d,avg_order_2d", "--out", str(out), repo=repo)  # fmt: skip
    table = pq.read_table(out)
    assert table.column_names == [
        "user_id", "event_time", "label", "spend_2d", "orders_2d", "avg_order_2d"
    ]  # fmt: skip


def test_csv_out_is_csv(repo: Path, run: Run) -> None:
    out = repo / "train.csv"
    result = run("training-set", "--spine", str(repo / "spine.csv"), "--features", "spend_2d",
                 "--out", str(out), repo=repo)  # fmt: skip
    assert "2 rows × 4 columns" in result.stdout
    with out.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["user_id", "event_time", "label", "spend_2d"]
    assert [r[0] for r in rows[1:]] == ["u1", "u2"]
    assert float(rows[1][3]) == 12.0  # u1 in [01-03, 01-05): 5.0 + 7.0


@pytest.mark.parametrize("name", ["train.txt", "train"])
def test_other_out_names_are_refused(repo: Path, run: Run, name: str) -> None:
    out = repo / name
    result = run("training-set", "--spine", str(repo / "spine.csv"), "--features", "spend_2d",
                 "--out", str(out), repo=repo, ok=None)  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--out'" in result.stderr
    assert "name a .parquet file (Parquet) or a .csv file (CSV)" in " ".join(result.stderr.split())
    assert not out.exists()
