"""``fsql get`` never answers a silent NULL: a feature never materialized is computed on demand
and a note says so with the command that fixes it; features of two entities, a key of
the wrong type and a composite key given as one value are errors naming what is wrong."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli.conftest import Run
from tests.pipelines._repo import DEFINITIONS, make_repo

ITEMS = """
CREATE ENTITY item KEY (item_id BIGINT);
CREATE ENTITY user_item KEY (user_id VARCHAR, item_id BIGINT);
CREATE SOURCE views (user_id VARCHAR, item_id BIGINT, ts TIMESTAMP)
  FROM 'data/views' FORMAT PARQUET EVENT TIME ts;
CREATE FEATURE item_views_1d ENTITY item WINDOW '1 day' AS SELECT item_id, COUNT(*) FROM views;
CREATE FEATURE user_item_views_1d ENTITY user_item WINDOW '1 day'
AS SELECT user_id, item_id, COUNT(*) FROM views;
"""


@pytest.fixture
def repo(tmp_path: Path, run: Run) -> Path:
    root = tmp_path / "repo"
    make_repo(root, DEFINITIONS + ITEMS)
    (root / "data" / "views").mkdir(parents=True)
    pq.write_table(
        pa.table({"user_id": ["u1"], "item_id": pa.array([7], pa.int64()),
                  "ts": pa.array([datetime(2024, 1, 2, 9)], pa.timestamp("us"))}),
        root / "data" / "views" / "part-0.parquet",
    )  # fmt: skip
    run("materialize", "spend_2d", "--start", "2024-01-01", "--end", "2024-01-08", repo=root)
    return root


def test_never_materialized_feature_is_computed_and_noted(repo: Path, run: Run) -> None:
    result = run("get", "spend_2d", "orders_2d", "--key", "u1", "--json", repo=repo)
    # the JSON document keeps its shape; orders_2d is computed at the current tick (no order
    # of u1 in the last 2 days: 0, not a silent NULL), and stderr says why and what to run
    assert json.loads(result.stdout) == [{"user_id": "u1", "spend_2d": 1.0, "orders_2d": 0}]
    # with --json, each notice is one JSON object on stderr (machine-readable)
    [notice] = [json.loads(line)["notice"] for line in result.stderr.splitlines()]
    assert (notice["feature"], notice["kind"]) == ("orders_2d", "NeverMaterializedWarning")
    assert "orders_2d v1 was applied but never materialized" in notice["message"]
    assert "orders_2d v1 was applied but never materialized" in result.stderr
    assert "computed on demand by the compute cache" in result.stderr
    assert "fsql materialize orders_2d --start" in result.stderr
    assert "--end now" in result.stderr
    assert "spend_2d" not in result.stderr  # materialized and pushed: no note
    text = run("get", "orders_2d", "--key", "u1", repo=repo)
    assert "Note: orders_2d v1 was applied but never materialized" in text.stderr
    assert text.stdout.splitlines()[-1].split() == ["u1", "0"]


def test_materialized_offline_only_notes(repo: Path, run: Run) -> None:
    run("materialize", "orders_2d", "--start", "2024-01-01", "--end", "2024-01-08",
        "--no-online", repo=repo)  # fmt: skip
    result = run("get", "orders_2d", "--key", "u1", repo=repo)
    assert "materialized offline but was never pushed to the online store" in result.stderr
    assert "fsql materialize orders_2d" in result.stderr


def test_features_of_two_entities_are_refused(repo: Path, run: Run) -> None:
    result = run("get", "spend_2d", "item_views_1d", "--key", "u1", repo=repo, ok=False)
    assert "spend_2d describes entity user (key user_id)" in result.stderr
    assert "item_views_1d describes entity item (key item_id)" in result.stderr
    assert result.stdout == ""


def test_wrong_typed_key_is_refused(repo: Path, run: Run) -> None:
    result = run("get", "item_views_1d", "--key", "abc", repo=repo, ok=False)
    assert "the key column item_id of entity item is BIGINT, and 'abc' is not an integer" in (
        result.stderr
    )
    # an integer key is read as one (JSON prints it as a number)
    ok = run("get", "item_views_1d", "--key", "7", "--json", repo=repo)
    # never materialized: computed on demand at the current tick (no view in the last day)
    assert json.loads(ok.stdout) == [{"item_id": 7, "item_views_1d": 0}]


def test_composite_key_given_as_one_value(repo: Path, run: Run) -> None:
    result = run("get", "user_item_views_1d", "--key", "u1", repo=repo, ok=False)
    message = " ".join(result.stderr.split())
    assert "entity user_item has 2 key column(s) (user_id, item_id)" in message
    assert "--key a,7 (values in key order) or --key user_id=a,item_id=7" in message
    assert "tuple" not in message
    bad = run("get", "user_item_views_1d", "--key", "user_id=u1,item=7", repo=repo, ok=False)
    assert "item is not a key column" in " ".join(bad.stderr.split())
    ok = run("get", "user_item_views_1d", "--key", "user_id=u1,item_id=7", "--json", repo=repo)
    assert json.loads(ok.stdout) == [{"user_id": "u1", "item_id": 7, "user_item_views_1d": 0}]
