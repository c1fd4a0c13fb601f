"""Pipeline monitoring over the wire: ``fsql.runs``, ``fsql.freshness``, ``fsql.checks`` and the
Prometheus endpoint ``/metrics`` of a real ``fsql serve`` process.

The repo has runs recorded the ways users make them: ``fsql materialize`` (trigger ``cli``) and
``materialize_and_record`` with checks (one passing, one failing ``warn`` check). What the
server returns must be exactly what :mod:`fsql.compute.monitor` computes from the registry.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fsql.cli import cli
from fsql.compute.jobs import materialize_and_record
from fsql.compute.monitor import checks_table, freshness_table, prometheus_metrics, runs_table
from fsql.config import Config
from fsql.language.checks import Check
from fsql.registry import open_registry
from fsql.workspace import Workspace
from tests.pipelines._repo import D, make_repo
from tests.server.conftest import FsqlServer

pytestmark = pytest.mark.server

DAY = timedelta(days=1)


def metrics_url(server: FsqlServer) -> str:
    [line] = [x for x in server.output if x.startswith("fsql metrics on ")]
    return line.removeprefix("fsql metrics on ").strip()


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, FsqlServer]]:
    """A repo with recorded runs and checks, served with ``--metrics-port 0``."""
    repo = tmp_path_factory.mktemp("monitoring") / "repo"
    config = make_repo(repo)
    result = CliRunner().invoke(
        cli, ["--repo", str(repo), "materialize", "spend_2d", "orders_2d",
              "--start", "2024-01-03", "--end", "2024-01-05"], catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    checks = [
        Check(name="has_rows", feature="orders_2d", expression="rows > 0"),
        Check(name="at_most_one", feature="orders_2d", expression="max <= 1", severity="warn"),
    ]
    materialize_and_record(Workspace(config), ["orders_2d"], D + 4 * DAY, D + 5 * DAY, trigger="api", checks=checks)  # fmt: skip
    server = FsqlServer(repo, ("--metrics-port", "0")).start()
    yield config, server
    server.stop()


def python_side(config: Config, read: Callable[..., Any]) -> Any:
    with open_registry(config) as registry:
        return read(registry)


def wire_rows(server: FsqlServer, sql: str) -> tuple[list[str], list[dict[str, Any]]]:
    import psycopg

    with psycopg.connect(server.dsn()) as conn:
        cur = conn.execute(sql)
        assert cur.description is not None
        names = [c.name for c in cur.description]
        return names, [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_runs_table_over_the_wire(monitored: tuple[Config, FsqlServer]) -> None:
    config, server = monitored
    expected = python_side(config, runs_table)
    names, rows = wire_rows(server, "SELECT * FROM fsql.runs ORDER BY id DESC")
    assert names == expected.column_names
    assert rows == expected.to_pylist()
    # what was recorded, independently of the monitor module: 2 CLI runs, then 1 API run
    assert [(r["feature"], r["trigger"], r["status"], r["interval_start"], r["interval_end"])
            for r in reversed(rows)] == [
        ("spend_2d", "cli", "success", D + 2 * DAY, D + 4 * DAY),
        ("orders_2d", "cli", "success", D + 2 * DAY, D + 4 * DAY),
        ("orders_2d", "api", "success", D + 4 * DAY, D + 5 * DAY),
    ]  # fmt: skip
    # a WHERE on the registry table is plain SQL
    _, api = wire_rows(server, "SELECT id, rows_written FROM fsql.runs WHERE trigger = 'api'")
    assert api == [{"id": rows[0]["id"], "rows_written": rows[0]["rows_written"]}]


def test_checks_table_over_the_wire(monitored: tuple[Config, FsqlServer]) -> None:
    config, server = monitored
    expected = python_side(config, checks_table)
    names, rows = wire_rows(server, "SELECT * FROM fsql.checks ORDER BY run_id, check_name")
    assert names == expected.column_names
    assert rows == sorted(expected.to_pylist(), key=lambda r: (r["run_id"], r["check_name"]))
    # tick 01-05 of orders_2d counts u1's 2 orders of [01-03, 01-05): max 2 fails max <= 1
    assert [(r["check_name"], r["severity"], r["passed"]) for r in rows] == [
        ("at_most_one", "warn", False), ("has_rows", "error", True)]  # fmt: skip


def test_freshness_table_over_the_wire(monitored: tuple[Config, FsqlServer]) -> None:
    config, server = monitored
    # freshness depends on the clock: read the Python side before and after (a tick boundary
    # may pass in between) and require the server's rows to equal one of them
    before = python_side(config, freshness_table)
    names, rows = wire_rows(server, "SELECT * FROM fsql.freshness ORDER BY feature")
    after = python_side(config, freshness_table)
    assert names == before.column_names
    assert rows in (before.to_pylist(), after.to_pylist())
    last = {r["feature"]: (r["last_tick"], r["status"]) for r in rows}
    assert last["spend_2d"] == (D + 3 * DAY, "late")
    assert last["orders_2d"] == (D + 4 * DAY, "late")
    assert last["avg_order_2d"] == (None, "never")


def test_monitoring_tables_are_listed(monitored: tuple[Config, FsqlServer]) -> None:
    _, server = monitored
    _, rows = wire_rows(server, "SELECT table_name FROM information_schema.tables "
                                "WHERE table_schema = 'fsql' ORDER BY table_name")  # fmt: skip
    assert {"runs", "freshness", "checks"} <= {r["table_name"] for r in rows}


def test_metrics_endpoint_serves_the_prometheus_text(
    monitored: tuple[Config, FsqlServer],
) -> None:
    config, server = monitored
    url = metrics_url(server)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
    before = python_side(config, prometheus_metrics)
    with urllib.request.urlopen(url, timeout=30) as response:
        status, content_type = response.status, response.headers["Content-Type"]
        body = response.read().decode()
    after = python_side(config, prometheus_metrics)
    assert status == 200
    assert content_type.startswith("text/plain; version=0.0.4")
    assert body in (before, after)
    lines = body.splitlines()
    assert 'fsql_runs_total{status="success"} 3.0' in lines
    assert 'fsql_check_failed{feature="orders_2d",check="at_most_one",severity="warn"} 1.0' in lines
    assert 'fsql_check_failed{feature="orders_2d",check="has_rows",severity="error"} 0.0' in lines
    assert (f'fsql_feature_last_tick_timestamp_seconds{{feature="spend_2d",version="1"}} '
            f"{(D + 3 * DAY).timestamp()!r}") in lines  # fmt: skip


def test_metrics_endpoint_answers_only_metrics(monitored: tuple[Config, FsqlServer]) -> None:
    _, server = monitored
    url = metrics_url(server)
    base = url.removesuffix("/metrics")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(base + "/", timeout=30)
    assert missing.value.code == 404
    with pytest.raises(urllib.error.HTTPError) as post:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=30)
    assert post.value.code == 405
    # a request head larger than the bound is refused, and the server keeps serving
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as raw:
        raw.sendall(b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * 20000 + b"\r\n\r\n")
        reply = b""
        while chunk := raw.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 431 ")
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
    assert server.alive()


def test_metrics_with_several_workers(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    config = make_repo(repo)
    materialize_and_record(Workspace(config), ["spend_2d"], D + 2 * DAY, D + 3 * DAY, trigger="api")
    server = FsqlServer(repo, ("--workers", "2", "--metrics-port", "0")).start()
    try:
        expected = python_side(config, prometheus_metrics)
        bodies = set()
        for _ in range(4):  # each scrape reaches worker 0, the only one listening
            with urllib.request.urlopen(metrics_url(server), timeout=30) as response:
                bodies.add(response.read().decode())
        assert bodies <= {expected, python_side(config, prometheus_metrics)}
        assert 'fsql_runs_total{status="success"} 1.0' in next(iter(bodies)).splitlines()
        _, rows = wire_rows(server, "SELECT feature, rows_written FROM fsql.runs")
        assert [r["feature"] for r in rows] == ["spend_2d"]
    finally:
        server.stop()


def test_a_busy_metrics_port_is_reported(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    make_repo(repo)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        server = FsqlServer(repo, ("--metrics-port", str(port)))
        with pytest.raises(RuntimeError) as failed:
            server.start()
    server.stop()
    output = "".join(server.output)
    assert f"/metrics: cannot listen on 127.0.0.1:{port}" in output
    assert "pass --metrics-port N (0 picks a free port) or set [server] metrics_port" in output
    assert "fsql serving on" not in str(failed.value)
