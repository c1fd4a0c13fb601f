"""A mistyped ``fsql materialize`` is refused before any run is recorded (so ``fsql status``
and ``fsql_feature_last_run_success`` are not told a run failed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsql.api import SyncFeatureStore
from fsql.compute.runs import RunLog
from fsql.config import Config
from fsql.errors import ComputeError, DefinitionError
from fsql.registry import open_registry
from tests.cli.conftest import Run
from tests.pipelines._repo import D, make_repo


def recorded_runs(config: Config) -> list[object]:
    with open_registry(config) as registry:
        return list(RunLog(registry).runs())


def test_empty_interval_is_a_usage_error(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    config = make_repo(repo)
    for end in ("2024-01-03", "2024-01-02"):
        result = run("materialize", "--start", "2024-01-03", "--end", end, repo=repo, ok=None)
        assert result.exit_code == 2, result.output
        message = " ".join(result.stderr.split())
        assert "Invalid value for '--end'" in message
        assert "is not after --start 2024-01-03T00:00:00+00:00" in message
    assert recorded_runs(config) == []


def test_unknown_feature_records_no_run(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    config = make_repo(repo)
    for names in (["spend_2dd"], ["spend_2d", "nope"]):
        result = run("materialize", *names, "--start", "2024-01-01", "--end", "2024-01-04",
                     repo=repo, ok=False)  # fmt: skip
        assert "spend_2dd" in result.stderr or "nope" in result.stderr
    assert recorded_runs(config) == []


def test_api_refuses_before_recording(tmp_path: Path) -> None:
    config = make_repo(tmp_path / "repo")
    with SyncFeatureStore(config) as store:
        with pytest.raises(ComputeError, match="must be after the start"):
            store.materialize(D, D)
        with pytest.raises(DefinitionError, match="nope"):
            store.materialize(D, D.replace(day=3), ["nope"])
    assert recorded_runs(config) == []
