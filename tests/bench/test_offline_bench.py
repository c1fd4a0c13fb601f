"""The offline benchmark (bench/offline.py) runs end to end at a tiny scale, and its contenders
agree value by value: fsql's training set with the hand-written ASOF join and with Feast's
``get_historical_features``, fsql's materialized timeline with the hand-written query.
Timings are never asserted. Feast runs from bench/.venv-feast (bench/setup.sh, through the
``feast_venv`` fixture in tests/bench/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import offline

pytestmark = pytest.mark.slow


def test_offline_benchmark_contenders_agree(tmp_path: Path, feast_venv: None) -> None:
    out = tmp_path / "offline.json"
    status = offline.main(["--scale", "0.001", "--runs", "1", "--workdir", str(tmp_path / "w"),
                           "--json", str(out)])  # fmt: skip
    result = json.loads(out.read_text())
    training, materialize = result["training"], result["materialize"]
    assert training["facts"] == {**training["facts"], "entities": 200, "timeline_rows": 200 * 50,
                                 "spine_rows": 2000}  # fmt: skip
    for contender in ("fsql", "asof", "asof2", "feast"):
        assert training[contender]["rows"] == 2000, contender
    assert training["disagree_asof"] == 0
    assert training["disagree_asof2"] == 0
    assert training["disagree_feast"] == 0
    # the whole commands (fsql training-set, a stand-alone ASOF script) write the same values
    assert (training["disagree_fsql_cli"], training["disagree_asof_script"]) == (0, 0)
    assert set(training["whole"]) == {"fsql_cli", "asof_script"}
    # change rows: fewer than the dense grid of 200 entities x 90 ticks (ticks where no event
    # enters or leaves the window store nothing); the two may differ by a few rows where float
    # noise in a window sum decides "changed", never in a value (``disagree`` counts values)
    rows = materialize["fsql"]["rows"], materialize["handwritten"]["rows"]
    assert 0 < min(rows) and max(rows) < 200 * 90 and abs(rows[0] - rows[1]) < 0.05 * rows[1]
    assert materialize["disagree"] == 0
    assert materialize["disagree_whole"] == 0 and set(materialize["whole"]) == {"fsql_cli", "script"}
    assert status == 0
