"""A source file that is not what its definition says never has its content echoed in an
error (issue 15, finding 3): ``SELECT * FROM sources.x`` over a file holding a planted secret
answered with the file's first line inside an XX000. Every path is tried — the wire (22000
now), ``fsql materialize`` (stderr, ``--json``), the Python API, the run log (``fsql.runs``
over the wire, ``fsql status --json``) — with files that fail each way a CSV file can (no
header, a bad value, a row of the wrong width, an unclosed quote) and a "Parquet" file that
is not one. The messages still say where: the file as the source names it (relative, not
the server's absolute path), the line or record, the column and the declared type.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from tests.server.conftest import FSQL, FsqlServer, write_config

pytestmark = [pytest.mark.server, pytest.mark.timeout(300)]

SECRET = "planted-secret-7f3a9c"
DEFINITIONS = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE SOURCE ev (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/ev.csv' FORMAT CSV EVENT TIME ts;
CREATE SOURCE pq (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/pq.parquet' EVENT TIME ts;
CREATE FEATURE total ENTITY user TYPE DOUBLE WINDOW '30 days' EVERY '1 day'
  AS SELECT user_id, SUM(amount) FROM ev;
"""
HEADER = "user_id,amount,ts\n"
GOOD_ROW = "u1,1.5,2026-12-01 00:00:00\n"

#: file content → what the message must say (besides the file's name)
CASES = {
    "no header": (f"{SECRET}:root:x:0:0\n{SECRET}\n",
                  "has no column user_id in its header line (declared user_id VARCHAR; "
                  "the header has 1 column(s))"),
    "bad double": (f"{HEADER}{GOOD_ROW}u2,{SECRET},2026-12-01 00:00:00\n",
                   "line 3, column amount holds a value that is not a valid DOUBLE"),
    "bad timestamp": (f"{HEADER}u2,1.0,{SECRET}\n",
                      "line 2, column ts holds a value that is not a valid TIMESTAMP"),
    "short row": (f"{HEADER}{GOOD_ROW}{SECRET},1\n",
                  "record 3 (the header is record 1) has 2 field(s) where the header has 3"),
    "long row": (f"{HEADER}{GOOD_ROW}u1,1.0,2026-12-01 00:00:00,{SECRET}\n",
                 "record 3 (the header is record 1) has 4 field(s) where the header has 3"),
    "unclosed quote": (f'{HEADER}{GOOD_ROW}"{SECRET},1.0,2026-12-01\n', "has 1 field(s)"),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source_errors")
    write_config(root, "")
    (root / "data").mkdir()
    (root / "data" / "ev.csv").write_text(HEADER + GOOD_ROW)
    (root / "data" / "pq.parquet").write_text(f"{SECRET}\nnot parquet at all\n")
    (root / "defs.sql").write_text(DEFINITIONS)
    applied = subprocess.run([FSQL, "--repo", str(root), "apply", "--yes"],
                             capture_output=True, text=True)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    return root


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[FsqlServer]:
    started = FsqlServer(repo).start()
    yield started
    started.stop()


def fsql(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FSQL, "--repo", str(repo), *args], capture_output=True, text=True)


@pytest.mark.parametrize("case", list(CASES))
def test_no_path_echoes_the_file(repo: Path, server: FsqlServer, case: str) -> None:
    from fsql import SyncFeatureStore

    content, expected = CASES[case]
    (repo / "data" / "ev.csv").write_text(content)
    seen: list[str] = []
    # the wire
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as wire:
            conn.execute("SELECT * FROM sources.ev").fetchall()
        assert wire.value.sqlstate == "22000", wire.value
        message = wire.value.diag.message_primary or ""
        assert message.startswith("source ev: file data/ev.csv"), message
        assert expected in message, message
        assert str(repo) not in message  # the server's own paths are not shown
        seen += [str(wire.value), wire.value.diag.message_detail or "",
                 wire.value.diag.message_hint or ""]
        assert conn.execute("SELECT 1").fetchone() == (1,)
    # the CLI, plain and --json
    for extra in ((), ("--json",)):
        run = fsql(repo, "materialize", "--start", "2026-11-30", "--end", "2026-12-02", *extra)
        assert run.returncode == 1, run.stdout + run.stderr
        assert expected in " ".join(run.stderr.split()), run.stderr
        seen += [run.stdout, run.stderr]
    # the Python API
    store = SyncFeatureStore(repo)
    try:
        with pytest.raises(Exception) as api:
            store.materialize(datetime(2026, 11, 30), datetime(2026, 12, 2))
        assert expected in str(api.value), api.value
        seen.append(str(api.value))
    finally:
        store.close()
    # what the failed runs left in the run log
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        seen += [str(row) for row in conn.execute("SELECT * FROM fsql.runs").fetchall()]
    status = fsql(repo, "status", "--json")
    seen += [status.stdout, status.stderr]
    leaked = [text for text in seen if SECRET in text]
    assert not leaked, leaked


def test_a_file_that_is_not_parquet(repo: Path, server: FsqlServer) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as wire:
            conn.execute("SELECT * FROM sources.pq").fetchall()
    assert wire.value.sqlstate == "22000", wire.value
    assert (wire.value.diag.message_primary or "") == (
        "source pq: data/pq.parquet is not a readable Parquet file (no Parquet footer); "
        "fix the file or the source's FORMAT")
