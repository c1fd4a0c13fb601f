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


def test_a_sql_ascii_registry_database_is_refused_at_connect(
    run: Run, example_repo: Path, postgres_url: str
) -> None:
    import psycopg

    name = "fsql_sql_ascii_registry"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 "
                     "LC_COLLATE 'C' LC_CTYPE 'C'")  # fmt: skip
    try:
        env = {"FSQL_REGISTRY_URL": postgres_url.rsplit("/", 1)[0] + "/" + name}
        for command in (["apply"], ["ls"]):
            result = run(*command, repo=example_repo, env=env, ok=False)
            message = " ".join(result.stderr.split())
            assert f"the registry database {name}" in message
            assert "has encoding SQL_ASCII; fsql needs UTF8" in message
            assert f"CREATE DATABASE {name}_utf8 ENCODING 'UTF8' TEMPLATE template0" in message
            assert "Traceback" not in result.output
        with psycopg.connect(env["FSQL_REGISTRY_URL"]) as conn:  # nothing was created there
            tables = conn.execute("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_name LIKE 'fsql_%'").fetchone()  # fmt: skip
            assert tables == (0,)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
