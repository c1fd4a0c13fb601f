"""Definitions from three places (issue 16): a repo's ``.sql`` files, the Python API
(``register_feature``) and ``CREATE FEATURE`` over the PostgreSQL wire. The registry knows
where each version came from; ``fsql plan`` lists the definitions made elsewhere as kept, and
``fsql apply`` (off a terminal too) never drops them unless ``--prune-foreign``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsql import SyncFeatureStore
from tests.api.test_silent_nulls import write_purchases
from tests.cli.conftest import Run
from tests.server.conftest import FsqlServer

REPO_SQL = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE SOURCE purchases (user_id VARCHAR, item_id BIGINT, purchase_amount DOUBLE, ts TIMESTAMP)
  FROM 'data/purchases' FORMAT PARQUET EVENT TIME ts;
CREATE FEATURE user_spend_7d ENTITY user WINDOW '7 days'
  AS SELECT user_id, SUM(purchase_amount) FROM purchases;
CREATE FEATURE user_orders_7d ENTITY user WINDOW '7 days'
  AS SELECT user_id, COUNT(*) FROM purchases;
"""

CONFIG = """
[[server.users]]
name = "alice"
can_define = true
"""


@pytest.fixture
def repo(tmp_path: Path, run: Run) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "fsql.toml").write_text(CONFIG)
    (root / "features.sql").write_text(REPO_SQL)
    write_purchases(root)
    run("apply", repo=root)
    return root


def test_plan_and_apply_keep_what_the_api_and_the_wire_defined(repo: Path, run: Run) -> None:
    import psycopg

    with SyncFeatureStore(repo) as store:
        store.register_feature(
            "CREATE FEATURE user_max_7d ENTITY user WINDOW '7 days' "
            "AS SELECT user_id, MAX(purchase_amount) FROM purchases"
        )
    server = FsqlServer(repo).start()
    try:
        with psycopg.connect(server.dsn("alice"), autocommit=True) as conn:
            conn.execute("CREATE FEATURE user_min_7d ENTITY user WINDOW '7 days' "
                         "AS SELECT user_id, MIN(purchase_amount) FROM purchases")  # fmt: skip
    finally:
        server.stop()

    # the registry says where each came from
    listed = {r["name"]: r["origin"] for r in json.loads(run("ls", "--json", repo=repo).stdout)["objects"]}
    assert listed["user_spend_7d"] == "repo"
    assert listed["user_max_7d"] == "api"
    assert listed["user_min_7d"] == "sql"

    # plan: nothing to change; the two made elsewhere are listed as kept
    text = run("plan", repo=repo).stdout
    assert ("Kept: 2 definitions defined elsewhere (not in this repo; --prune-foreign drops "
            "them)") in text
    assert "user_max_7d" in text and "defined elsewhere (api: the Python API)" in text
    assert "user_min_7d" in text and "defined elsewhere (sql: SQL over the wire)" in text
    assert "No changes" in text
    as_json = json.loads(run("plan", "--json", repo=repo).stdout)
    assert as_json["changes"] == []
    assert as_json["kept_foreign"] == [
        {"kind": "feature", "name": "user_max_7d", "version": 1, "origin": "api"},
        {"kind": "feature", "name": "user_min_7d", "version": 1, "origin": "sql"},
    ]

    # removing a repo definition drops it (the repo made it), and only it
    (repo / "features.sql").write_text(REPO_SQL.split("CREATE FEATURE user_orders_7d")[0])
    applied = json.loads(run("apply", "--json", repo=repo).stdout)
    assert [(c["action"], c["name"], c["reason"]) for c in applied["plan"]["changes"]] == [
        ("drop", "user_orders_7d", "removed from repo")
    ]
    names = {r["name"] for r in json.loads(run("ls", "--json", repo=repo).stdout)["objects"]}
    assert {"user_max_7d", "user_min_7d"} <= names and "user_orders_7d" not in names

    # --prune-foreign drops them, saying why
    pruned = json.loads(run("plan", "--json", "--prune-foreign", repo=repo).stdout)
    assert sorted((c["action"], c["name"], c["reason"]) for c in pruned["changes"]) == [
        ("drop", "user_max_7d", "defined elsewhere (api); --prune-foreign"),
        ("drop", "user_min_7d", "defined elsewhere (sql); --prune-foreign"),
    ]
    run("apply", "--prune-foreign", repo=repo)
    names = {r["name"] for r in json.loads(run("ls", "--json", repo=repo).stdout)["objects"]}
    assert "user_max_7d" not in names and "user_min_7d" not in names


def test_the_repo_takes_over_a_name_it_declares(repo: Path, run: Run) -> None:
    with SyncFeatureStore(repo) as store:
        store.register_feature(
            "CREATE FEATURE user_max_7d ENTITY user WINDOW '7 days' "
            "AS SELECT user_id, MAX(purchase_amount) FROM purchases"
        )
    (repo / "features.sql").write_text(
        REPO_SQL + "CREATE FEATURE user_max_7d ENTITY user WINDOW '7 days'\n"
        "  AS SELECT user_id, MAX(purchase_amount) FROM purchases;\n"
    )
    text = run("plan", repo=repo).stdout
    assert "Kept" not in text  # the repo declares it now: same text, nothing to change
    assert "No changes" in text


def test_a_repo_definition_using_one_made_elsewhere_says_so(repo: Path, run: Run) -> None:
    with SyncFeatureStore(repo) as store:
        store.register_feature(
            "CREATE FEATURE user_max_7d ENTITY user WINDOW '7 days' "
            "AS SELECT user_id, MAX(purchase_amount) FROM purchases"
        )
    (repo / "features.sql").write_text(
        REPO_SQL + "CREATE FEATURE user_max_share ENTITY user\n"
        "  AS SELECT user_id, user_max_7d / NULLIF(user_spend_7d, 0) FROM user;\n"
    )
    result = run("plan", repo=repo, ok=False)
    message = " ".join(result.stderr.split())
    assert ("user_max_share uses user_max_7d, which is defined elsewhere (the Python API, "
            "registry version v1), not in this repo") in message
    assert "declare user_max_7d in the repo (it then takes it over)" in message
