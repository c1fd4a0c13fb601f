"""psql's describe commands against fsql and against a real PostgreSQL 15 holding ordinary
tables with the same names, columns, types, keys and comments: the printed output is equal."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.postgres]

#: the describe commands compared (also the psql corpus: tests/catalog/corpus/psql.txt)
CORPUS = Path(__file__).parent / "corpus" / "psql.txt"


def commands() -> list[str]:
    return [line.strip() for line in CORPUS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def psql(args: list[str], *command: str, notices: bool = False) -> str:
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PSQLRC": "/dev/null", "LC_ALL": "C.UTF-8"}
    argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", *args]
    for c in command:
        argv += ["-c", c]
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert notices or not result.stderr, result.stderr
    return result.stdout


def fsql_args(server: FsqlServer) -> list[str]:
    return ["-h", "127.0.0.1", "-p", str(server.port), "-U", "tester", "-d", "fsql"]


@pytest.mark.parametrize("command", commands())
def test_psql_describe_equals_postgres(catalog_server: FsqlServer, reference_pg: str,
                                       command: str) -> None:
    ours = psql(fsql_args(catalog_server), command)
    theirs = psql([reference_pg], command)
    assert ours == theirs
    assert "(0 rows)" not in ours and "Did not find" not in ours


def test_psql_sees_a_feature_applied_while_connected(private_server: FsqlServer) -> None:
    before = psql(fsql_args(private_server), r"\d features.user_item")
    assert "item_views" in before and "clicks_1d" not in before
    psql(fsql_args(private_server),
         "CREATE FEATURE clicks_1d ENTITY user_item WINDOW '1 day' "
         "DESCRIPTION 'Clicks in a day' AS SELECT user_id, item_id, COUNT(*) FROM tx", notices=True)
    after = psql(fsql_args(private_server), r"\d+ features.user_item")
    assert "clicks_1d" in after and "Clicks in a day. Type BIGINT, version 1." in after


def test_psql_l_and_conninfo(catalog_server: FsqlServer) -> None:
    out = psql(fsql_args(catalog_server), r"\l", r"\conninfo")
    assert " fsql " in out and "UTF8" in out
    assert 'You are connected to database "fsql" as user "tester"' in out
