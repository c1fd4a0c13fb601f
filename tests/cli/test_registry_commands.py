"""fsql plan / apply / ls / describe on the example repo, in-process (click's CliRunner)."""

from __future__ import annotations

from pathlib import Path

from fsql.config import load_config
from fsql.language.project import load_project
from fsql.registry import open_registry
from tests.cli.conftest import Run, as_json


def registry_state(repo: Path) -> tuple[int, dict[str, tuple[int, str]]]:
    """(revision, {name: (version, fingerprint)}) read straight from the registry."""
    with open_registry(load_config(repo, env={})) as registry:
        current = registry.current()
        return registry.revision(), {n: (r.version, r.fingerprint) for n, r in current.items()}


def test_plan_lists_every_definition_as_new(run: Run, example_repo: Path) -> None:
    expected = load_project(example_repo).definitions
    data = as_json(run("plan", "--json", repo=example_repo))
    assert data["ok"] is True and data["errors"] == []
    assert data["base_revision"] == 0 and data["empty"] is False
    assert data["summary"] == {"add": len(expected), "change": 0, "drop": 0}
    assert {(c["kind"], c["name"]) for c in data["changes"]} == {
        (d.kind, name) for name, d in expected.items()
    }
    assert all(
        c["action"] == "add" and c["new_version"] == 1 and c["old_version"] is None
        for c in data["changes"]
    )
    # upstream first: every feature comes after the entity and sources it reads
    order = [c["name"] for c in data["changes"]]
    assert order.index("user") < order.index("user_purchase_sum_30d")
    assert order.index("user_purchase_sum_30d") < order.index("user_avg_purchase_30d")
    assert order.index("user_avg_purchase_30d") < order.index("fraud_model_v1")


def test_plan_text_shows_each_change_and_a_summary(run: Run, example_repo: Path) -> None:
    count = len(load_project(example_repo).definitions)
    out = run("plan", repo=example_repo).stdout
    assert f"{count} to add, 0 to change, 0 to drop." in out
    line = next(line for line in out.splitlines() if " user_avg_purchase_30d " in line)
    assert line.split() == ["+", "feature", "user_avg_purchase_30d", "v1", "new"]
    assert "\x1b[" not in out  # not a terminal: no colour codes


def test_plan_writes_nothing(run: Run, example_repo: Path) -> None:
    run("plan", repo=example_repo)
    assert registry_state(example_repo) == (0, {})


def test_apply_then_plan_is_empty_and_ls_lists_everything(run: Run, example_repo: Path) -> None:
    definitions = load_project(example_repo).definitions
    applied = as_json(run("apply", "--json", repo=example_repo))
    assert applied["ok"] is True
    assert applied["plan"]["summary"]["add"] == len(definitions)
    assert {r["name"] for r in applied["applied"]} == set(definitions)
    assert all(r["version"] == 1 and r["change"] == "added" for r in applied["applied"])

    revision, current = registry_state(example_repo)
    assert revision == 1 and set(current) == set(definitions)

    again = as_json(run("plan", "--json", repo=example_repo))
    assert again["empty"] is True and again["changes"] == [] and again["base_revision"] == 1
    assert "No changes" in run("apply", repo=example_repo).stdout
    assert registry_state(example_repo)[0] == 1

    listing = as_json(run("ls", "--json", repo=example_repo))
    assert listing["revision"] == 1
    assert [o["name"] for o in listing["objects"]] == sorted(
        definitions,
        key=lambda n: (
            ["entity", "source", "feature", "feature_set"].index(definitions[n].kind),
            n,
        ),
    )
    by_name = {o["name"]: o for o in listing["objects"]}
    assert by_name["user_lifetime_spend"]["online"] is False
    assert by_name["user_purchase_sum_30d"]["window"] == "30 days"
    assert by_name["user_purchase_sum_30d"]["type"] == "DOUBLE"
    assert by_name["user_purchase_count_7d"]["type"] == "BIGINT"  # inferred from COUNT(*)
    assert by_name["user_item_views_30d"]["entity"] == "user_item"


def test_apply_text_reports_revision(run: Run, example_repo: Path) -> None:
    out = run("apply", "--yes", repo=example_repo).stdout
    count = len(load_project(example_repo).definitions)
    assert f"Applied {count} changes: registry revision 1." in out


def test_ls_kind_filter_and_text(run: Run, example_repo: Path) -> None:
    run("apply", repo=example_repo)
    data = as_json(
        run("ls", "--json", "--kind", "entity", "--kind", "feature_set", repo=example_repo)
    )
    assert {(o["kind"], o["name"]) for o in data["objects"]} == {
        ("entity", "user"),
        ("entity", "item"),
        ("entity", "user_item"),
        ("feature_set", "fraud_model_v1"),
    }
    out = run("ls", "--kind", "source", repo=example_repo).stdout
    names = [line.split()[1] for line in out.splitlines()[1:]]
    assert names == ["clicks", "purchases", "users"]


def test_ls_on_empty_registry(run: Run, tmp_path: Path) -> None:
    assert "The registry is empty" in run("ls", repo=tmp_path).stdout
    assert as_json(run("ls", "--json", repo=tmp_path)) == {"revision": 0, "objects": []}
    # read-only commands never leave an empty registry file behind
    assert not (tmp_path / ".fsql").exists()


def test_describe_without_registry_says_what_to_do(run: Run, tmp_path: Path) -> None:
    result = run("describe", "user", repo=tmp_path, ok=False)
    assert "no registry at" in result.stderr and "fsql apply" in result.stderr
    assert not (tmp_path / ".fsql").exists()


def test_change_creates_new_version_and_describe_shows_history(
    run: Run, example_repo: Path
) -> None:
    run("apply", repo=example_repo)
    path = example_repo / "features" / "purchases.sql"
    text = path.read_text()
    before = text.split("CREATE FEATURE user_purchase_count_30d")[1].split(";")[0]
    path.write_text(text.replace(before, before.replace("WINDOW '30 days'", "WINDOW '28 days'")))

    plan = as_json(run("plan", "--json", repo=example_repo))
    changes = {c["name"]: c for c in plan["changes"]}
    own = changes["user_purchase_count_30d"]
    assert (own["action"], own["old_version"], own["new_version"]) == ("change", 1, 2)
    assert own["reason"] == "definition changed" and own["indirect"] is False
    # the derived feature and the set reading it change too, as indirect changes
    assert changes["user_avg_purchase_30d"]["indirect"] is True
    assert "fraud_model_v1" in changes
    assert "user_purchase_sum_30d" not in changes
    run("apply", repo=example_repo)

    described = as_json(run("describe", "user_purchase_count_30d", "--json", repo=example_repo))
    assert described["version"] == 2
    assert described["options"]["window"] == "28 days"
    assert [h["version"] for h in described["history"]] == [1, 2]
    assert described["type"] == "BIGINT"
    assert {d["name"]: d["version"] for d in described["depends_on"]} == {"user": 1, "purchases": 1}
    assert described["dependencies"] == {"user": 1, "purchases": 1}
    purchases = next(d for d in described["depends_on"] if d["name"] == "purchases")
    assert purchases["kind"] == "source" and purchases["columns"] == ["amount", "user_id"]
    assert described["dependents"] == [
        {"kind": "feature", "name": "user_avg_purchase_30d", "version": 2, "uses_version": 2}
    ]
    assert "WINDOW '28 days'" in described["source_text"]

    old = as_json(
        run("describe", "user_purchase_count_30d", "--version", "1", "--json", repo=example_repo)
    )
    assert old["version"] == 1 and old["options"]["window"] == "30 days"
    assert old["type"] == "BIGINT"  # inferred again from the v1 definition and its inputs
    assert all(d["columns"] is None for d in old["depends_on"])  # lineage is kept for current
    text = run("describe", "user_purchase_count_30d", "--version", "1", repo=example_repo).stdout
    assert "feature user_avg_purchase_30d v2 (built on v2)" in text


def test_describe_text(run: Run, example_repo: Path) -> None:
    run("apply", repo=example_repo)
    out = run("describe", "user_avg_purchase_30d", repo=example_repo).stdout
    assert out.splitlines()[0] == "feature user_avg_purchase_30d v1"
    assert "Average paid order value over 30 days" in out
    depends = out.split("Depends on")[1].split("Used by")[0].split()
    assert " ".join(depends) == ("entity user v1 feature user_purchase_count_30d v1 "
                                 "feature user_purchase_sum_30d v1")
    assert "feature set fraud_model_v1 v1" in out.split("Used by")[1]
    assert "Definition (features/derived.sql:" in out


def test_describe_entity_and_source(run: Run, example_repo: Path) -> None:
    run("apply", repo=example_repo)
    entity = as_json(run("describe", "user_item", "--json", repo=example_repo))
    assert entity["options"]["keys"] == [
        {"name": "user_id", "type": "VARCHAR"},
        {"name": "item_id", "type": "BIGINT"},
    ]
    assert entity["depends_on"] == [] and entity["dependencies"] == {}
    assert {d["name"] for d in entity["dependents"]} == {"user_item_views_30d"}
    source = as_json(run("describe", "users", "--json", repo=example_repo))
    assert source["options"]["format"] == "csv"
    assert source["options"]["event_time"] == "updated_at"
    assert {d["name"] for d in source["dependents"]} == {
        "user_country",
        "user_plan",
        "user_is_paying",
    }


def test_removed_file_is_planned_as_drops(run: Run, example_repo: Path) -> None:
    run("apply", repo=example_repo)
    (example_repo / "features" / "clicks.sql").unlink()
    (example_repo / "features" / "derived.sql").write_text(
        (example_repo / "features" / "derived.sql")
        .read_text()
        .split("CREATE FEATURE user_purchases_per_session_7d")[0]
    )
    text = (example_repo / "feature_sets.sql").read_text()
    (example_repo / "feature_sets.sql").write_text(text.replace("    user_session_count_7d,\n", ""))
    plan = as_json(run("plan", "--json", repo=example_repo))
    drops = {c["name"]: c for c in plan["changes"] if c["action"] == "drop"}
    assert set(drops) == {
        "user_click_count_7d",
        "user_session_count_7d",
        "user_item_views_30d",
        "user_purchases_per_session_7d",
    }
    assert all(c["reason"] == "removed from repo" and c["old_version"] == 1 for c in drops.values())
    run("apply", repo=example_repo)
    retired = as_json(run("describe", "user_click_count_7d", "--json", repo=example_repo))
    assert retired["retired"] is True
    assert "user_click_count_7d" not in {
        o["name"] for o in as_json(run("ls", "--json", repo=example_repo))["objects"]
    }


def test_repo_from_environment_variable(run: Run, example_repo: Path) -> None:
    data = as_json(run("plan", "--json", env={"FSQL_REPO": str(example_repo)}))
    assert data["repo"] == str(example_repo.resolve()) and data["summary"]["add"] > 0


def test_registry_url_from_environment(run: Run, example_repo: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    run("apply", repo=example_repo, env={"FSQL_REGISTRY_URL": url})
    assert (tmp_path / "elsewhere.db").exists()
    assert not (example_repo / ".fsql" / "registry.db").exists()


def test_a_source_column_nobody_reads_versions_only_the_source(
    run: Run, example_repo: Path
) -> None:
    run("apply", repo=example_repo)
    path = example_repo / "sources" / "purchases.sql"
    text = path.read_text()
    # purchase_id is declared but no feature reads it: drop it, and add a column
    path.write_text(text.replace("    purchase_id BIGINT,\n", "").replace(
        "    loaded_at   TIMESTAMP\n", "    loaded_at   TIMESTAMP,\n    channel     VARCHAR\n"))
    plan = as_json(run("plan", "--json", repo=example_repo))
    assert [(c["name"], c["reason"]) for c in plan["changes"]] == [
        ("purchases", "definition changed")]  # fmt: skip
    shown = run("plan", repo=example_repo).stdout
    assert "purchases" in shown and "user_purchase_sum_30d" not in shown
    run("apply", repo=example_repo)
    # retyping a column features read versions exactly those, and says what changed
    path.write_text(path.read_text().replace("amount      DOUBLE", "amount      DECIMAL(12,2)"))
    changes = {c["name"]: c for c in as_json(run("plan", "--json", repo=example_repo))["changes"]}
    spend = changes["user_purchase_sum_30d"]
    assert spend["reason"] == "upstream purchases changed (amount DOUBLE → DECIMAL(12,2))"
    assert (spend["old_version"], spend["new_version"]) == (1, 2)
    assert "user_distinct_items_30d" not in changes  # reads item_id, not amount
    table = run("plan", repo=example_repo).stdout
    assert "amount DOUBLE → DECIMAL(12,2)" in table
