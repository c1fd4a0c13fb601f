"""``fsql training-set`` warns where the Python API does (tests/api/test_silent_nulls.py): spine
rows before a feature's first materialized tick, features never materialized."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.api._shop import DAY, today
from tests.api.test_silent_nulls import SQL, write_purchases
from tests.cli.conftest import Run


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "fsql.toml").write_text("")
    write_purchases(root)
    return root


def test_cli_training_set_says_the_same(repo: Path, run: Run, tmp_path: Path) -> None:
    (repo / "features.sql").write_text(
        SQL + "CREATE FEATURE user_purchase_30d ENTITY user WINDOW '30 days'\n"
        "AS SELECT user_id, SUM(purchase_amount) FROM purchases;\n"
    )
    run("apply", repo=repo)
    start = today() - 5 * DAY
    run("materialize", "user_purchase_30d", "--start", start.isoformat(), "--end", "now",
        repo=repo)  # fmt: skip
    spine = tmp_path / "spine.csv"
    spine.write_text(
        "user_id,item_id,event_time\n"
        f"user_123,7,{(today() - 10 * DAY).isoformat()}\n"
        f"user_123,7,{(today() + timedelta(hours=1)).isoformat()}\n"
    )
    out = tmp_path / "out.parquet"
    result = run("training-set", "--spine", str(spine), "--features",
                 "user_purchase_30d,item_sales_7d", "--out", str(out), repo=repo)  # fmt: skip
    err = " ".join(result.stderr.split())
    assert ("Warning: 1 of 2 spine row(s) are before the first materialized tick of "
            f"user_purchase_30d v1 ({start.isoformat()})") in err  # fmt: skip
    assert "Warning: item_sales_7d v1 was applied but never materialized" in err
    assert "2 rows" in result.stdout
    assert pq.read_table(out).column("user_purchase_30d").to_pylist() == [
        None, pytest.approx(960.65)
    ]


