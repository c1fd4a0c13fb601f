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

from fsql.project import load_project

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_script_plans_applies_and_lists(tmp_path: Path) -> None:
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

    env = {**os.environ, "VENV": str(tmp_path / "venv"), "NO_COLOR": "1"}
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
    assert (project / "sql_features" / "data" / "purchases").is_dir()
    assert (project / "sql_features" / ".fsql" / "registry.db").is_file()

    # a second run is a no-op for the registry
    again = subprocess.run(["bash", str(project / "scripts" / "demo.sh")], env=env,
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes: the registry matches" in again.stdout
