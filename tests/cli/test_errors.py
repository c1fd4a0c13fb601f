"""The one error handler: `Error: ...` on stderr, exit 1, traceback only with --debug; a broken
repo is reported in full and the registry is left exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Run, as_json
from tests.cli.test_registry_commands import registry_state

BROKEN = """
CREATE FEATURE user_bad_entity ENTITY usr WINDOW '7 days'
AS SELECT user_id, SUM(amount) FROM purchases;

CREATE FEATURE user_bad_column ENTITY user
AS SELECT user_id, SUM(amout) FROM purchases;
"""


def break_repo(repo: Path) -> Path:
    path = repo / "features" / "broken.sql"
    path.write_text(BROKEN)
    return path


def test_broken_repo_plan_fails_and_registry_is_unchanged(run: Run, example_repo: Path) -> None:
    run("apply", repo=example_repo)
    before = registry_state(example_repo)
    break_repo(example_repo)

    result = run("plan", repo=example_repo, ok=False)
    assert result.stdout == ""
    err = result.stderr
    assert err.startswith("Error: 2 problems in the definitions:")
    # every problem: file:line:col: message, the source line, a caret under the offending text
    lines = err.splitlines()
    entity = next(i for i, line in enumerate(lines) if line.startswith("features/broken.sql:2:"))
    assert "usr" in lines[entity]
    assert lines[entity + 1].strip().startswith("CREATE FEATURE user_bad_entity")
    start = lines[entity + 2].index("^")
    assert lines[entity + 1][start : start + 3] == "usr"
    column = next(i for i, line in enumerate(lines) if line.startswith("features/broken.sql:6:"))
    assert entity < column  # reading order, whatever order analysis found them in
    assert "amout" in lines[column]
    caret_line, source_line = lines[column + 2], lines[column + 1]
    start = caret_line.index("^")
    assert source_line[start : start + len("amout")] == "amout"
    assert "Traceback" not in err

    assert run("apply", "--yes", repo=example_repo, ok=False).stderr.startswith("Error: 2 problems")
    assert registry_state(example_repo) == before


def test_broken_repo_plan_json_lists_problems(run: Run, example_repo: Path) -> None:
    break_repo(example_repo)
    result = run("plan", "--json", repo=example_repo, ok=False)
    data = as_json(result)
    assert data["ok"] is False and data["repo"] == str(example_repo.resolve())
    problems = [(p["file"], p["line"]) for p in data["errors"]]
    assert problems == [("features/broken.sql", 2), ("features/broken.sql", 6)]  # reading order
    assert all(
        set(p) == {"code", "message", "file", "line", "col", "highlight"} for p in data["errors"]
    )
    assert any(p["highlight"] == "amout" for p in data["errors"])
    assert registry_state(example_repo) == (0, {})
    apply = run("apply", "--json", repo=example_repo, ok=False)
    assert as_json(apply)["ok"] is False
    assert registry_state(example_repo) == (0, {})


def test_broken_plan_does_not_create_a_registry(run: Run, example_repo: Path) -> None:
    break_repo(example_repo)
    run("plan", repo=example_repo, ok=False)
    assert not (example_repo / ".fsql").exists()


def test_unknown_name_is_a_clean_error(run: Run, example_repo: Path) -> None:
    run("apply", repo=example_repo)
    result = run("describe", "user_purchase_sum_3d", repo=example_repo, ok=False)
    assert result.stderr.startswith("Error: nothing named user_purchase_sum_3d in the registry")
    assert "did you mean" in result.stderr and "Traceback" not in result.stderr
    result = run("describe", "user_country", "--version", "9", repo=example_repo, ok=False)
    assert result.stderr.startswith("Error: user_country has no version 9; it has v1")


def test_debug_adds_the_traceback(run: Run, example_repo: Path) -> None:
    run("apply", repo=example_repo)
    result = run("--debug", "describe", "nope", repo=example_repo, ok=False)
    assert "Traceback (most recent call last)" in result.stderr
    assert "NotFoundError" in result.stderr
    assert "Error: nothing named nope" in result.stderr
    result = run("describe", "nope", repo=example_repo, ok=False, env={"FSQL_DEBUG": "1"})
    assert "Traceback (most recent call last)" in result.stderr


def test_bad_config_names_the_file(run: Run, example_repo: Path) -> None:
    (example_repo / "fsql.toml").write_text("[compute]\nengine = 'flink'\n")
    result = run("ls", repo=example_repo, ok=False)
    assert result.stderr.strip() == (
        f"Error: {example_repo.resolve() / 'fsql.toml'}: [compute] engine must be one of "
        "'duckdb', 'spark', not 'flink'"
    )


@pytest.mark.parametrize("command", ["plan", "apply", "ls", "describe"])
def test_repo_that_is_not_a_folder_is_not_created(run: Run, tmp_path: Path, command: str) -> None:
    args = [command, "user"] if command == "describe" else [command]
    result = run(*args, repo=tmp_path / "missing", ok=False)
    assert result.stderr.startswith(f"Error: {tmp_path / 'missing'} is not a folder; pass --repo")
    assert not (tmp_path / "missing").exists()


def test_usage_errors_keep_clicks_exit_code(run: Run, example_repo: Path) -> None:
    result = run("ls", "--kind", "table", repo=example_repo, ok=None)
    assert result.exit_code == 2 and "'table' is not one of" in result.stderr


@pytest.mark.parametrize("env", [{"NO_COLOR": "1"}, {"TERM": "dumb"}])
def test_errors_are_plain_text_without_a_terminal(
    run: Run, example_repo: Path, env: dict[str, str]
) -> None:
    break_repo(example_repo)
    assert "\x1b[" not in run("plan", repo=example_repo, ok=False, env=env).stderr


def test_a_name_with_a_path_is_refused_before_anything_is_written(
    run: Run, example_repo: Path
) -> None:
    bad = example_repo / "features" / "escape.sql"
    bad.write_text(
        "-- tries to write outside the offline store\n"
        'CREATE FEATURE "../../../../elsewhere/escaped" ENTITY user AS\n'
        "  SELECT user_id, COUNT(*) FROM purchases;\n"
    )
    for command in ("plan", "apply"):
        result = run(command, *(["--yes"] if command == "apply" else []), repo=example_repo,
                     ok=False)
        assert "features/escape.sql:2:16: feature name '../../../../elsewhere/escaped'" in (
            result.output), result.output
    assert not (example_repo / ".fsql" / "registry.db").exists() or "escaped" not in run(
        "ls", repo=example_repo, ok=None).output
    assert not (example_repo.parent / "elsewhere").exists()
