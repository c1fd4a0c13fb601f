"""``fsql get`` says why a value is NULL when the semantics do not: a feature never
materialized gets a warning with the command that fixes it; features of two entities, a key of
the wrong type and a composite key given as one value are errors naming what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

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
    run("materialize", "spend_2d", "--start", "2024-01-01", "--end", "2024-01-08", repo=root)
    return root


def test_never_materialized_feature_warns(repo: Path, run: Run) -> None:
    result = run("get", "spend_2d", "orders_2d", "--key", "u1", "--json", repo=repo)
    # the JSON document keeps its shape; the warning goes to stderr
    assert json.loads(result.stdout) == [{"user_id": "u1", "spend_2d": 1.0, "orders_2d": None}]
    assert "orders_2d v1 was applied but never materialized" in result.stderr
    assert "fsql materialize orders_2d --start" in result.stderr
    assert "--end now" in result.stderr
    assert "spend_2d" not in result.stderr  # materialized: no warning
    text = run("get", "orders_2d", "--key", "u1", repo=repo)
    assert "Warning: orders_2d v1 was applied but never materialized" in text.stderr
    assert text.stdout.splitlines()[-1].split() == ["u1", "NULL"]


def test_materialized_offline_only_warns(repo: Path, run: Run) -> None:
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
    assert json.loads(ok.stdout) == [{"item_id": 7, "item_views_1d": None}]


def test_composite_key_given_as_one_value(repo: Path, run: Run) -> None:
    result = run("get", "user_item_views_1d", "--key", "u1", repo=repo, ok=False)
    message = " ".join(result.stderr.split())
    assert "entity user_item has 2 key column(s) (user_id, item_id)" in message
    assert "--key a,7 (values in key order) or --key user_id=a,item_id=7" in message
    assert "tuple" not in message
    bad = run("get", "user_item_views_1d", "--key", "user_id=u1,item=7", repo=repo, ok=False)
    assert "item is not a key column" in " ".join(bad.stderr.split())
    ok = run("get", "user_item_views_1d", "--key", "user_id=u1,item_id=7", "--json", repo=repo)
    assert json.loads(ok.stdout) == [{"user_id": "u1", "item_id": 7, "user_item_views_1d": None}]
