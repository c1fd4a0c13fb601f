"""The CLI prints data as it is (never as rich markup) and a missing extra as a message:
``fsql pipeline status`` right after ``pipeline create`` (no runs yet), values and keys that
look like markup, ``--schedule`` without croniter (the airflow extra)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import ROOT, Run
from tests.pipelines._repo import make_repo


def test_pipeline_status_without_runs(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    dags = tmp_path / "dags"
    created = run("pipeline", "create", "spend_2d", "--dags-folder", str(dags), repo=repo)
    assert "Created pipeline fsql_spend_2d" in created.stdout
    status = run("pipeline", "status", "fsql_spend_2d", repo=repo)
    assert status.stdout.startswith("Pipeline fsql_spend_2d: ")
    assert "MarkupError" not in status.output
    run("status", repo=repo)


def test_markup_like_data_is_printed_as_is(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    result = run("get", "spend_2d", "--key", "[/]", "--key", "[bold]x[/bold]", repo=repo)
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert rows == [["[/]", "NULL"], ["[bold]x[/bold]", "NULL"]]


def test_schedule_without_croniter_names_the_extra(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    blocked = (
        "import sys; sys.modules['croniter'] = None; from fsql.cli import main; "
        "main(sys.argv[1:])"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSQL_")}
    result = subprocess.run(
        [sys.executable, "-c", blocked, "--repo", str(repo), "pipeline", "create", "spend_2d",
         "--schedule", "0 6 * * *", "--dags-folder", str(tmp_path / "dags")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "Error: croniter is not installed: pip install 'fsql[airflow]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dags").exists()  # nothing written
