"""``fsql get`` shows doubles for reading in its table (no binary noise) and exactly in
``--json`` (the shortest text that reads back as the same double, as psql prints them)."""

from __future__ import annotations

import json
from pathlib import Path

from fsql.cli.online import display_value
from tests.cli.conftest import Run
from tests.pipelines._repo import D, make_repo, write_purchases


def test_display_value() -> None:
    assert display_value(3471.5299999999997) == "3471.53"
    assert display_value(44.776666666666664) == "44.776667"
    assert display_value(1.234567e-07) == "1.23457e-07"
    assert display_value(12.0) == "12"
    assert display_value(7) == "7"
    assert display_value(None) == "NULL"
    assert display_value(float("nan")) == "NaN"
    assert display_value(float("-inf")) == "-Infinity"


def test_get_prints_doubles_readably(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    # 0.1 + 0.2 is 0.30000000000000004 in binary floating point
    write_purchases(repo, [("u1", 0.1, D.replace(hour=1)), ("u1", 0.2, D.replace(hour=2))])
    run("materialize", "spend_2d", "--start", "2024-01-02", "--end", "2024-01-03", repo=repo)
    table = run("get", "spend_2d", "--key", "u1", repo=repo)
    assert table.stdout.splitlines()[-1].split() == ["u1", "0.3"]
    exact = run("get", "spend_2d", "--key", "u1", "--json", repo=repo)
    assert '"spend_2d": 0.30000000000000004' in exact.stdout
    assert json.loads(exact.stdout) == [{"user_id": "u1", "spend_2d": 0.1 + 0.2}]
