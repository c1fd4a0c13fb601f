"""The serving benchmarks run end to end at a tiny scale, and every contender answers the same.

Each benchmark checks, before any timing counts, that every contender (fsql's Python API, raw
redis-py, Feast, ``fsql serve``, PostgreSQL, ``feast serve``) returns exactly the generated
values for a few users, and raises if one does not; these tests run them at a tiny ``--scale``
and check that every contender was reached and answered. Timings are never asserted.
Feast runs from bench/.venv-feast, made (or found ready) by bench/setup.sh through the
``feast_venv`` fixture (tests/bench/conftest.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import online, server

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def test_online_benchmark_contenders_agree(tmp_path: Path, feast_venv: None) -> None:
    out = tmp_path / "online.json"
    online.main(["--scale", "0.002", "--iterations", "200", "--json", str(out)])
    result = json.loads(out.read_text())
    stats = result["read"]["stats"]
    assert set(stats) == {
        "fsql SyncFeatureStore", "fsql FeatureStore (asyncio)", "raw redis-py HMGET (limit)",
        "raw redis-py asyncio HMGET", "raw redis-py fsql Lua script", "Feast get_online_features",
    }  # fmt: skip
    for per in stats.values():
        assert per["1x10"]["n"] == 200
        assert per["100x10"]["n"] == 50
    materialize = result["materialize"]
    assert materialize["entities"] == 400
    assert materialize["events"] == 400 * 50
    # one event per entity per tick: a stored row at nearly every tick (timelines hold changes,
    # and a latest value repeated on the next tick stores nothing)
    rows = materialize["timeline_rows"]
    assert set(rows) == {"user_last_amount", "user_last_item"}
    assert all(0.99 * 400 * 50 <= n <= 400 * 50 for n in rows.values()), rows
    assert materialize["fsql"]["online_rows"] == 400 * 2
    assert materialize["fsql"]["computed_rows"] == 0  # the push run computes nothing
    assert materialize["feast"]["materialize_s"] > 0


@pytest.mark.postgres
@pytest.mark.server
def test_server_benchmark_contenders_agree(tmp_path: Path, feast_venv: None) -> None:
    out = tmp_path / "server.json"
    server.main(["--scale", "0.002", "--duration", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    for key in ("fsql_error", "fsql_check_error", "feast_missing", "feast_errors"):
        assert key not in result, result[key]
    runs = {(r["who"].split(" (")[0], r["mode"], r["clients"]): r for r in result["runs"]}
    for who in ("fsql serve", "PostgreSQL 15"):
        for mode in ("simple", "prepared"):
            for clients in (8, 1):
                run = runs[(who, mode, clients)]
                assert "error" not in run, run["error"]
                assert run["failed"] == 0
                assert run["transactions"] > 0
        assert runs[(who, "simple", 1)]["n"] == runs[(who, "simple", 1)]["transactions"]
    feast = [r for r in result["runs"] if r["who"].startswith("feast serve")]
    assert len(feast) == 4
    for run in feast:
        assert "error" not in run, run["error"]
        assert run["non_2xx"] == 0
