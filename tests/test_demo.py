"""scripts/demo.sh (the README's `make demo`) runs end to end on a copy of the project.

The Makefile's part (creating .venv and pip-installing) is exercised by CI's `make test`; here
the script runs against the interpreter running the tests, through a stand-in venv folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fsql.language.project import load_project

ROOT = Path(__file__).resolve().parents[1]

#: Import names of every dependency that is not in pyproject's core ``dependencies`` (the
#: extras and the test tools). The demo is what the README's core install runs, so the demo
#: runs with these imports blocked: a core code path that needs one of them fails here instead
#: of on a user's fresh machine (the test environment has them all installed).
NOT_CORE = {
    "psycopg": "psycopg", "buildpg": "buildpg", "pyspark": "pyspark", "pandas": "pandas",
    "redis": "redis", "hiredis": "hiredis", "boto3": "boto3", "apache-airflow": "airflow",
    "pytest": "pytest", "pytest-timeout": "pytest_timeout", "pytest-xdist": "xdist",
    "hypothesis": "hypothesis",
    "moto": "moto", "asyncpg": "asyncpg", "pg8000": "pg8000", "psycopg2-binary": "psycopg2",
    "sqlalchemy": "sqlalchemy", "adbc-driver-postgresql": "adbc_driver_postgresql",
    "polars": "polars", "ruff": "ruff", "mypy": "mypy", "uvloop": "uvloop",
    "connectorx": "connectorx", "import-linter": "importlinter", "pyodbc": "pyodbc",
    "pgcli": "pgcli",
}
BLOCKER = """
import importlib.abc, sys

BLOCKED = {blocked!r}


class NotCore(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{{name}} is not a core dependency of fsql", name=name)
        return None


sys.meta_path.insert(0, NotCore())
"""


def extras_requirements() -> set[str]:
    """The distribution names of every optional dependency in pyproject.toml."""
    import re
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as fh:
        extras = tomllib.load(fh)["project"]["optional-dependencies"]
    names = {re.split(r"[\[<>=!~ ]", req, maxsplit=1)[0].lower()
             for reqs in extras.values() for req in reqs}
    return names - {"fsql"}


def test_every_optional_dependency_is_blocked_in_the_demo() -> None:
    assert extras_requirements() <= set(NOT_CORE), "add its import name to NOT_CORE"


@pytest.mark.slow
def test_demo_script_plans_applies_and_lists(tmp_path: Path) -> None:
    """The whole demo, with every non-core dependency's import blocked."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "scripts", project / "scripts")
    shutil.copytree(ROOT / "sql_features", project / "sql_features",
                    ignore=shutil.ignore_patterns("data", ".fsql", "__pycache__"))
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    # wrappers, not symlinks: a symlinked venv python outside its venv loses site-packages
    for name, command in (("python", ""), ("fsql", " -m fsql.cli")):
        wrapper = venv_bin / name
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}"{command} "$@"\n')
        wrapper.chmod(0o755)

    blocker = tmp_path / "not-core"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER.format(blocked=sorted(NOT_CORE.values())))
    env = {**os.environ, "VENV": str(tmp_path / "venv"), "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(blocker),
                                                       os.environ.get("PYTHONPATH")]))}
    env.pop("FSQL_REPO", None)
    result = subprocess.run(["bash", str(project / "scripts" / "demo.sh")], env=env,
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

    definitions = load_project(project / "sql_features").definitions
    out = result.stdout
    assert f"{len(definitions)} to add, 0 to change, 0 to drop." in out
    assert f"Applied {len(definitions)} changes: registry revision 1." in out
    listed = out.split("fsql ls")[-1]
    for name in definitions:
        assert f" {name} " in listed, name
    # the data ends today: the online values the demo shows are fresh, not past their TTL
    got = out.split("==> fsql get")[1].split("==>")[0].splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in got if line.startswith("u000")}
    assert set(rows) == {"u00001", "u00021"}
    assert all(len(values) == 3 and "NULL" not in values for values in rows.values()), got
    assert "(0 rows)" not in out and "ERROR" not in out
    print(out)  # the README's psql output is copied from this (pytest -s)
    assert (project / "sql_features" / "data" / "purchases").is_dir()
    assert (project / "sql_features" / ".fsql" / "registry.db").is_file()

    # a second run is a no-op for the registry
    again = subprocess.run(["bash", str(project / "scripts" / "demo.sh")], env=env,
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes: the registry matches" in again.stdout
