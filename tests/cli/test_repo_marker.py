"""Where fsql finds the repo: --repo / FSQL_REPO, else the nearest folder at or above the current
one holding fsql.toml (as git finds .git); without one, commands say how to make a repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _fsql(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSQL_")}
    return subprocess.run([sys.executable, "-m", "fsql.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_outside_any_repo_plan_refuses_and_writes_nothing(tmp_path: Path) -> None:
    # a folder of unrelated .sql files, no fsql.toml anywhere above (tmp is outside the repo)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.sql").write_text("SELECT 1;")
    for command in (["plan"], ["materialize", "--start", "-1d", "--end", "now"], ["ls"]):
        done = _fsql(*command, cwd=tmp_path)
        assert done.returncode == 1, (command, done.stderr)
        assert f"no fsql.toml in {tmp_path.resolve()} or any folder above it" in done.stderr
        assert "fsql init DIR" in done.stderr
    assert not (tmp_path / ".fsql").exists()  # no registry left behind


def test_a_repo_is_found_from_a_subfolder(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "features" / "deep").mkdir(parents=True)
    (repo / "fsql.toml").write_text("")
    (repo / "features" / "entities.sql").write_text("CREATE ENTITY user KEY (user_id VARCHAR);\n")
    done = _fsql("plan", "--json", cwd=repo / "features" / "deep")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert plan["repo"] == str(repo.resolve())
    assert [(c["action"], c["name"]) for c in plan["changes"]] == [("add", "user")]
