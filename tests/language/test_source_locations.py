"""Sources read inside the repo and the configured roots only: checked on the parsed path
(symlinks resolved) when a source is defined, by fsql plan/apply and by DDL over the wire."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fsql.cli import cli
from fsql.config import load_config
from fsql.errors import DefinitionError
from fsql.language.analysis.locations import SourceRoots, analyze_within
from fsql.language.parser import parse

ENTITY = "CREATE ENTITY user KEY (user_id VARCHAR);\n"


def source(path: str) -> str:
    return f"CREATE SOURCE s (user_id VARCHAR, ts TIMESTAMP) FROM {path} FORMAT CSV EVENT TIME ts;\n"


def roots(repo: Path, toml: str = "") -> SourceRoots:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "fsql.toml").write_text(toml)
    return SourceRoots.from_config(load_config(repo))


@pytest.mark.parametrize("path", [
    "'/etc/shadow'", "'../outside/data.csv'", "'data/../../outside'", "'file:///etc/passwd'",
    "'http://example.com/x.csv'", "'s3://other-bucket/x'", "'s3://bucket/a/../../other'",
    "'escape/passwd'",  # a symlink in the repo pointing outside it
])
def test_sources_outside_the_roots_are_refused_at_the_path(tmp_path: Path, path: str) -> None:
    repo = tmp_path / "repo"
    allowed = roots(repo, '[sources]\nroots = ["s3://bucket/a", "../shared"]\n')
    (repo / "escape").symlink_to("/etc")
    text = ENTITY + source(path)
    with pytest.raises(DefinitionError) as refused:
        analyze_within(parse(text, "sources.sql"), allowed)
    (problem,) = refused.value.problems
    assert problem.code == "source-location"
    assert problem.location is not None
    assert (problem.location.line, problem.location.col) == (2, text.split("\n")[1].index(path) + 1)
    assert "[sources] roots" in problem.message


@pytest.mark.parametrize("path", [
    "'data/events.csv'", "'./data/*.csv'", "'s3://bucket/a/events'", "'../shared/x.csv'",
])
def test_sources_inside_the_roots_are_accepted(tmp_path: Path, path: str) -> None:
    allowed = roots(tmp_path / "repo", '[sources]\nroots = ["s3://bucket/a", "../shared"]\n')
    analysis = analyze_within(parse(ENTITY + source(path), "sources.sql"), allowed)
    assert "s" in analysis.definitions


def test_by_default_only_the_repo(tmp_path: Path) -> None:
    allowed = roots(tmp_path / "repo")
    with pytest.raises(DefinitionError):
        analyze_within(parse(ENTITY + source("'s3://bucket/a'")), allowed)
    with pytest.raises(DefinitionError):
        analyze_within(parse(ENTITY + source(f"'{tmp_path}/elsewhere'")), allowed)


def test_fsql_plan_refuses_a_source_outside_the_repo_without_a_space_after_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FSQL_REPO", raising=False)
    repo = tmp_path / "repo"
    roots(repo)
    line = source("'/etc/passwd'").replace("FROM '", "FROM'")
    (repo / "defs.sql").write_text(ENTITY + line)
    where = f"defs.sql:2:{line.index(chr(39)) + 1}: source s reads '/etc/passwd'"
    for command in (["plan"], ["apply", "--yes"]):
        result = CliRunner().invoke(cli, ["--repo", str(repo), *command])
        assert result.exit_code == 1, result.output
        assert where in result.output, result.output


@pytest.mark.parametrize("path", ["'/etc/passwd'", "'../x'", "'escape/passwd'"])
def test_load_project_checks_source_locations(tmp_path: Path, path: str) -> None:
    """load_project (the library's one call to validate a repo) refuses what fsql plan
    refuses: an absolute path outside, a relative path climbing out, a symlink escaping."""
    from fsql.language.project import load_project

    repo = tmp_path / "repo"
    roots(repo)
    (repo / "escape").symlink_to("/etc")
    text = ENTITY + source(path)
    (repo / "defs.sql").write_text(text)
    with pytest.raises(DefinitionError) as refused:
        load_project(repo)
    (problem,) = refused.value.problems
    assert problem.code == "source-location", problem
    assert problem.location is not None and problem.location.file == "defs.sql"
    assert (problem.location.line, problem.location.col) == (2, text.split("\n")[1].index(path) + 1)
    # a root listed in fsql.toml makes the same path acceptable
    if path == "'../x'":
        (repo / "fsql.toml").write_text('[sources]\nroots = [".."]\n')
        assert "s" in load_project(repo).definitions


def test_load_project_accepts_sources_inside_the_repo(tmp_path: Path) -> None:
    from fsql.language.project import load_project

    repo = tmp_path / "repo"
    roots(repo)
    (repo / "defs.sql").write_text(ENTITY + source("'data/events.csv'"))
    assert "s" in load_project(repo).definitions
