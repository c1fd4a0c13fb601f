"""Fixtures for CLI tests: an in-process runner and throwaway copies of the example repo."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from fsql.cli import cli

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "sql_features"

Run = Callable[..., Result]


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    """A copy of sql_features/ (definitions and fsql.toml only: no data, no registry)."""
    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("data", ".fsql", "__pycache__"))
    return repo


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Run:
    """``run(*args, repo=None, ok=True)``: invoke fsql in-process; asserts the exit code."""
    for var in ("FSQL_REPO", "FSQL_DEBUG", "FSQL_REGISTRY_URL", "FSQL_ENGINE"):
        monkeypatch.delenv(var, raising=False)

    def invoke(
        *args: str,
        repo: Path | None = None,
        ok: bool | None = True,
        env: dict[str, str] | None = None,
        input: str | None = None,
    ) -> Result:
        argv = (["--repo", str(repo)] if repo is not None else []) + list(args)
        result = CliRunner().invoke(cli, argv, env=env, input=input, catch_exceptions=False)
        if ok is True:
            assert result.exit_code == 0, f"fsql {' '.join(argv)} failed:\n{result.output}"
        elif ok is False:
            assert result.exit_code == 1, f"fsql {' '.join(argv)} should fail:\n{result.output}"
        return result

    return invoke


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)
