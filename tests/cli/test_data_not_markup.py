"""The CLI prints data as it is (never as rich markup) and a missing extra as a message:
``fsql pipeline status`` right after ``pipeline create`` (no runs yet), values and keys that
look like markup, ``--schedule`` without croniter (the airflow extra)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fsql.pipelines import manager
from tests.cli.conftest import ROOT, Run
from tests.pipelines._repo import make_repo


def test_pipeline_status_without_runs(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    dags = tmp_path / "dags"
    created = run("pipeline", "create", "spend_2d", "--dags-folder", str(dags), repo=repo)
    assert "Created pipeline fsql_spend_2d" in created.stdout
    # a logical date before the start runs nothing in Airflow: create says so
    assert "do nothing: Airflow runs no task for an earlier logical date" in " ".join(
        created.stdout.split()
    )
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


def test_a_manual_run_without_a_data_interval_says_so(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow gives a manually triggered run no data interval: not ``[None, None)``."""
    runs = [
        {"run_id": "manual__1", "data_interval_start": None, "data_interval_end": None,
         "state": "success", "tasks": {"spend_2d": {"state": "success"}}},
        {"run_id": "scheduled__2", "data_interval_start": "2024-01-02T00:00:00+00:00",
         "data_interval_end": "2024-01-03T00:00:00+00:00", "state": "failed",
         "tasks": {"spend_2d": {"state": "failed"}}},
    ]  # fmt: skip
    monkeypatch.setattr(
        manager.FeaturePipelineManager, "get_pipeline_status",
        lambda self, pipeline_id, limit=5: manager.PipelineStatus(
            pipeline_id, "success", "airflow", runs, {}),
    )  # fmt: skip
    repo = tmp_path / "repo"
    repo.mkdir()
    out = run("pipeline", "status", "fsql_x", repo=repo).stdout
    assert "manual__1  (no data interval: manual run)  success" in out
    assert "scheduled__2  [2024-01-02T00:00:00+00:00, 2024-01-03T00:00:00+00:00)  failed" in out
    assert "None" not in out
