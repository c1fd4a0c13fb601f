"""Definition checks that `fsql plan` makes before anything is applied or materialized
(issue 16): each problem at its file:line:col, saying what to write instead."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.cli.conftest import Run, as_json

HOURLY_DERIVED = """
CREATE FEATURE user_avg_purchase_hourly
  ENTITY user
  TYPE DOUBLE
  EVERY '1 hour'
AS SELECT user_id, user_purchase_sum_30d / NULLIF(user_purchase_count_30d, 0) FROM user;
"""


def test_derived_every_not_a_multiple_of_its_inputs_fails_plan(
    run: Run, example_repo: Path
) -> None:
    (example_repo / "features" / "hourly.sql").write_text(HOURLY_DERIVED)
    result = run("plan", repo=example_repo, ok=False)
    err = result.stderr
    assert err.startswith("Error: ")
    line = next(x for x in err.splitlines() if x.startswith("features/hourly.sql:"))
    assert line.startswith("features/hourly.sql:5:9:"), line
    assert "EVERY '1 hour' of derived feature user_avg_purchase_hourly" in line
    assert "multiple of '1 day' (the EVERY of input user_purchase" in line
    assert "write EVERY '1 day'" in line
    assert "1:00:00" not in err and "Traceback" not in err
    assert run("apply", "--yes", repo=example_repo, ok=False).stderr.startswith("Error: ")


def test_source_whose_path_does_not_exist_is_a_warning_at_plan_and_apply(
    run: Run, example_repo: Path
) -> None:
    # the example repo's copy has no data/: each local source path is missing
    (example_repo / "data" / "clicks").mkdir(parents=True)
    (example_repo / "data" / "users").mkdir()
    result = run("plan", repo=example_repo)  # a warning, not an error: exit 0
    warnings = [x for x in result.stderr.splitlines() if x.startswith("Warning: ")]
    assert len(warnings) == 1, result.stderr
    assert warnings[0].startswith("Warning: sources/purchases.sql:11:8: source purchases reads ")
    resolved = str((example_repo / "data" / "purchases").resolve())
    assert f"'data/purchases', which does not exist ({resolved})" in warnings[0]
    lines = result.stderr.splitlines()
    at = lines.index(warnings[0])
    assert lines[at + 1].strip() == "FROM 'data/purchases'"
    caret = lines[at + 2].index("^")
    assert lines[at + 1][caret : caret + len("'data/purchases'")] == "'data/purchases'"
    assert "Plan for" in result.stdout

    data = as_json(run("plan", "--json", repo=example_repo))
    assert [(w["code"], w["file"], w["line"], w["col"]) for w in data["warnings"]] == [
        ("source-missing", "sources/purchases.sql", 11, 8)
    ]
    applied = run("apply", "--yes", repo=example_repo)  # does not block apply
    assert "Warning: sources/purchases.sql:11:8:" in applied.stderr
    assert "Applied" in applied.stdout

    (example_repo / "data" / "purchases").mkdir()
    assert "Warning" not in run("plan", repo=example_repo).stderr


def test_s3_source_paths_are_not_checked_at_plan_time(run: Run, example_repo: Path) -> None:
    (example_repo / "data" / "clicks").mkdir(parents=True)
    (example_repo / "data" / "users").mkdir()
    path = example_repo / "sources" / "purchases.sql"
    path.write_text(path.read_text().replace("'data/purchases'", "'s3://bucket/purchases'"))
    (example_repo / "fsql.toml").write_text(
        (example_repo / "fsql.toml").read_text() + '\n[sources]\nroots = ["s3://bucket"]\n'
    )
    result = run("plan", repo=example_repo)
    assert "Warning" not in result.stderr


def test_syntax_error_in_one_file_does_not_hide_meaning_errors_in_others(
    run: Run, example_repo: Path
) -> None:
    (example_repo / "features" / "typo.sql").write_text(
        "CREATE FEATURE user_typo ENTITY user\nAS SELECT user_id, SUM(amount FROM purchases;\n"
    )
    (example_repo / "features" / "column.sql").write_text(
        "CREATE FEATURE user_bad_column ENTITY user\nAS SELECT user_id, SUM(amout) FROM purchases;\n"
    )
    result = run("plan", repo=example_repo, ok=False)
    err = result.stderr
    assert err.startswith("Error: 2 problems in the definitions:"), err
    lines = err.splitlines()
    column = next(x for x in lines if x.startswith("features/column.sql:"))
    assert column.startswith("features/column.sql:2:24: unknown column amout in source purchases")
    typo = next(x for x in lines if x.startswith("features/typo.sql:"))
    assert typo.startswith("features/typo.sql:2:")
    assert lines.index(column) < lines.index(typo)  # reading order across files

    data = as_json(run("plan", "--json", repo=example_repo, ok=False))
    assert {e["file"] for e in data["errors"]} == {"features/column.sql", "features/typo.sql"}
    assert run("apply", "--yes", repo=example_repo, ok=False).stderr.startswith("Error: 2 problems")


def test_names_of_a_file_that_does_not_parse_are_not_reported_unknown(
    run: Run, example_repo: Path
) -> None:
    # entities.sql no longer parses: the features of user/item are not "unknown entity user"
    path = example_repo / "entities.sql"
    path.write_text(path.read_text().replace("KEY (", "KEY ((", 1))
    err = run("plan", repo=example_repo, ok=False).stderr
    files = {x.split(":")[0] for x in err.splitlines() if ".sql:" in x.split(" ")[0]}
    assert files == {"entities.sql"}, err
    assert "unknown entity" not in err


def _remove_statement(path: Path, name: str) -> None:
    text = path.read_text()
    start = text.index(f"CREATE FEATURE {name}\n")
    end = text.index(";", start) + 1
    path.write_text(text[:start] + text[end:])


def test_a_feature_removed_from_the_repo_but_still_used_says_so(
    run: Run, example_repo: Path
) -> None:
    run("apply", repo=example_repo)
    _remove_statement(example_repo / "features" / "purchases.sql", "user_purchase_count_30d")
    result = run("plan", repo=example_repo, ok=False)
    err = result.stderr
    assert err.startswith("Error: 1 problem in the definitions:"), err
    line = next(x for x in err.splitlines() if x.startswith("features/"))
    assert line == (
        "features/derived.sql:8:51: user_purchase_count_30d was removed from "
        "features/purchases.sql (where registry version v1 was declared) but "
        "user_avg_purchase_30d still uses it; remove user_avg_purchase_30d's use of "
        "user_purchase_count_30d or keep user_purchase_count_30d"
    )
    assert "did you mean" not in err
    data = as_json(run("plan", "--json", repo=example_repo, ok=False))
    assert [e["code"] for e in data["errors"]] == ["removed-dependency"]


def test_a_removed_entity_still_used_says_so_and_without_a_registry_it_is_unknown(
    run: Run, example_repo: Path
) -> None:
    path = example_repo / "features" / "orphan.sql"
    path.write_text(
        "CREATE ENTITY shop KEY (shop_id VARCHAR);\n"
        "CREATE SOURCE orders (shop_id VARCHAR, ts TIMESTAMP) FROM 'data/users' EVENT TIME ts;\n"
        "CREATE FEATURE shop_orders ENTITY shop AS SELECT shop_id, COUNT(*) FROM orders;\n"
    )
    unapplied = example_repo.parent / "unapplied"
    shutil.copytree(example_repo, unapplied)
    run("apply", repo=example_repo)
    for repo in (example_repo, unapplied):
        path = repo / "features" / "orphan.sql"
        path.write_text(path.read_text().replace("CREATE ENTITY shop KEY (shop_id VARCHAR);\n", ""))
    line = next(
        x
        for x in run("plan", repo=example_repo, ok=False).stderr.splitlines()
        if x.startswith("features/orphan.sql:")
    )
    assert line.startswith("features/orphan.sql:2:35: shop was removed from features/orphan.sql ")
    assert "but shop_orders still uses it" in line
    # no registry: nothing was removed, the name is simply unknown
    err = run("plan", repo=unapplied, ok=False).stderr
    assert "unknown entity shop" in err and "removed" not in err
