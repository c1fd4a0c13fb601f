"""The CLI against a team registry: a real PostgreSQL server, selected by FSQL_REGISTRY_URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsql.language.project import load_project
from tests.cli.conftest import Run, as_json

pytestmark = pytest.mark.postgres


def test_plan_apply_ls_describe_on_postgres(run: Run, example_repo: Path,
                                            postgres_db_url: str) -> None:
    env = {"FSQL_REGISTRY_URL": postgres_db_url}
    definitions = load_project(example_repo).definitions
    plan = as_json(run("plan", "--json", repo=example_repo, env=env))
    assert plan["summary"]["add"] == len(definitions)
    applied = as_json(run("apply", "--json", repo=example_repo, env=env))
    assert len(applied["applied"]) == len(definitions)
    assert not (example_repo / ".fsql").exists()  # nothing embedded was used

    listing = as_json(run("ls", "--json", repo=example_repo, env=env))
    assert {o["name"] for o in listing["objects"]} == set(definitions)
    described = as_json(run("describe", "fraud_model_v1", "--json", repo=example_repo, env=env))
    assert described["options"]["features"] == list(definitions["fraud_model_v1"].features)
    assert as_json(run("plan", "--json", repo=example_repo, env=env))["empty"] is True

    # a broken repo leaves the PostgreSQL registry as it was
    (example_repo / "features" / "broken.sql").write_text(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, SUM(nope) FROM purchases;\n"
    )
    run("plan", repo=example_repo, env=env, ok=False)
    run("apply", "--yes", repo=example_repo, env=env, ok=False)
    after = as_json(run("ls", "--json", repo=example_repo, env=env))
    assert after == listing
