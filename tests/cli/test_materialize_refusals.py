"""A mistyped ``fsql materialize`` is refused before any run is recorded (so ``fsql status``
and ``fsql_feature_last_run_success`` are not told a run failed); a run whose online push
failed is recorded as failed, with the error."""

from __future__ import annotations

import json
import socket
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


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_failed_online_push_fails_the_run(tmp_path: Path, run: Run) -> None:
    repo = tmp_path / "repo"
    config = make_repo(repo)
    run("materialize", "spend_2d", "--start", "2024-01-01", "--end", "2024-01-04", repo=repo)
    down = {"FSQL_ONLINE_URL": f"redis://127.0.0.1:{closed_port()}/0", "FSQL_ONLINE_TIMEOUT": "0.5"}
    result = run("materialize", "spend_2d", "--start", "2024-01-01", "--end", "2024-01-04",
                 "--force", repo=repo, env=down, ok=False)  # fmt: skip
    assert "Error:" in result.stderr
    runs = recorded_runs(config)
    latest = runs[0]
    assert (latest.feature, latest.status) == ("spend_2d", "failed")
    assert latest.error is not None
    assert latest.error.startswith(
        "committed to the offline store, but the online push failed (the next fsql materialize "
        "pushes again): "
    )
    assert latest.rows is not None and latest.rows > 0  # the offline part did happen
    assert [r.status for r in runs[1:]] == ["success"]
    # the store is back: a run with nothing new to compute pushes and exits 0
    again = run("materialize", "spend_2d", "--start", "2024-01-01", "--end", "2024-01-04",
                "--json", repo=repo)  # fmt: skip
    assert json.loads(again.stdout)[0]["online_rows"] is not None
