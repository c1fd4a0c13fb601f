"""``fsql registry export`` / ``import`` move a SQLite registry into PostgreSQL with its history,
ledger, runs and pipelines; ``fsql gc`` deletes the data of versions nothing uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsql.registry import open_registry_url
from tests.cli.conftest import Run, as_json
from tests.pipelines._repo import DEFINITIONS, make_repo


@pytest.fixture
def repo(tmp_path: Path, run: Run) -> Path:
    root = tmp_path / "repo"
    make_repo(root)
    run("materialize", "--start", "2024-01-01", "--end", "2024-01-08", repo=root)
    run("pipeline", "create", "avg_order_2d", "--dags-folder", str(tmp_path / "dags"),
        "--start", "2024-01-01", repo=root)  # fmt: skip
    return root


@pytest.mark.postgres
def test_sqlite_registry_moves_to_postgres(
    repo: Path, run: Run, tmp_path: Path, postgres_db_url: str
) -> None:
    export = tmp_path / "registry.json"
    result = run("registry", "export", "--out", str(export), repo=repo)
    assert "Exported sqlite:///" in result.stderr and "fsql_versions 6" in result.stderr
    document = json.loads(export.read_text())
    assert document["format"] == "fsql-registry-export"

    env = {"FSQL_REGISTRY_URL": postgres_db_url}
    imported = run("registry", "import", str(export), repo=repo, env=env)
    assert "registry revision 1" in imported.stdout
    # the same registry, read from PostgreSQL
    before, after = as_json(run("ls", "--json", repo=repo)), as_json(
        run("ls", "--json", repo=repo, env=env)
    )
    assert after == before
    sqlite_reg = open_registry_url(f"sqlite:///{repo}/.fsql/registry.db")
    pg_reg = open_registry_url(postgres_db_url)
    try:
        for name in ("spend_2d", "orders_2d", "avg_order_2d"):
            assert pg_reg.ledger_intervals(name, 1) == sqlite_reg.ledger_intervals(name, 1) != []
        assert [e.to_json() for e in pg_reg.ledger_entries()] == [
            e.to_json() for e in sqlite_reg.ledger_entries()
        ]
    finally:
        sqlite_reg.close()
        pg_reg.close()
    status = as_json(run("status", "--json", repo=repo, env=env))
    assert {s["feature"] for s in status["features"]} >= {"spend_2d", "avg_order_2d"}
    assert "fsql_avg_order_2d" in run("pipeline", "ls", repo=repo, env=env).stdout
    # new runs get new ids after the imported ones (the identity sequence moved past them)
    run("materialize", "--start", "2024-01-08", "--end", "2024-01-09", repo=repo, env=env)
    # importing again is refused: the registry is not empty any more
    again = run("registry", "import", str(export), repo=repo, env=env, ok=False)
    assert "is not empty (revision 1); import into a new, empty registry database" in again.stderr


def test_gc_deletes_only_versions_nothing_uses(repo: Path, run: Run, tmp_path: Path) -> None:
    # new versions of all three; v1 of spend_2d is pinned by a pipeline of its own, the
    # avg_order_2d pipeline (pinning all three v1) is redeployed on the new versions
    run("pipeline", "create", "spend_2d", "--dags-folder", str(tmp_path / "dags"),
        "--start", "2024-01-01", repo=repo)  # fmt: skip
    changed = DEFINITIONS.replace("WINDOW '2 days' EVERY '1 day'", "WINDOW '3 days' EVERY '1 day'")
    changed = changed.replace("CREATE FEATURE orders_2d ENTITY user WINDOW '2 days'",
                              "CREATE FEATURE orders_2d ENTITY user WINDOW '4 days'")  # fmt: skip
    (repo / "features.sql").write_text(changed)
    run("apply", repo=repo)
    run("materialize", "--start", "2024-01-01", "--end", "2024-01-08", repo=repo)
    run("pipeline", "create", "avg_order_2d", "--dags-folder", str(tmp_path / "dags"),
        "--start", "2024-01-01", repo=repo)  # fmt: skip
    offline = repo / ".fsql" / "offline"
    assert (offline / "feature=orders_2d" / "version=1").is_dir()

    dry = as_json(run("gc", "--dry-run", "--json", repo=repo))
    assert dry["dry_run"] is True
    assert [(d["feature"], d["version"]) for d in dry["deleted"]] == [
        ("avg_order_2d", 1), ("orders_2d", 1)
    ]
    assert (offline / "feature=orders_2d" / "version=1").is_dir()  # nothing deleted yet

    result = run("gc", repo=repo)
    assert "Deleted orders_2d v1:" in result.stdout and "Deleted avg_order_2d v1:" in result.stdout
    assert not (offline / "feature=orders_2d" / "version=1").exists()
    assert (offline / "feature=orders_2d" / "version=2").is_dir()
    assert (offline / "feature=spend_2d" / "version=1").is_dir()  # pinned by the pipeline
    registry = open_registry_url(f"sqlite:///{repo}/.fsql/registry.db")
    try:
        assert registry.ledger_intervals("orders_2d", 1) == []
        assert registry.ledger_intervals("orders_2d", 2) != []
        assert registry.get("orders_2d", 1).version == 1  # history stays
    finally:
        registry.close()
    assert "Nothing to delete" in run("gc", repo=repo).stdout
