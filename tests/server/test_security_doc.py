"""docs/server.md's hardened configuration is real: the server starts with exactly that block
and refuses what the security section says it refuses (issue 15)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.server.conftest import FsqlServer, write_config

pytestmark = pytest.mark.server

DOC = Path(__file__).resolve().parents[2] / "docs" / "server.md"
#: the example passwords the doc's verifiers were made from (the doc says so)
PASSWORDS = {"alice": "alice-example-pw", "bob": "bob-example-pw"}


def hardened_config() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- hardened-config:start -->\n```toml\n(.*?)```\n"
                      r"<!-- hardened-config:end -->", text, re.S)
    assert match, "docs/server.md lost its hardened-config block"
    return match.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FsqlServer]:
    repo = tmp_path_factory.mktemp("hardened_repo")
    config = hardened_config()
    write_config(repo, config)
    tls = repo / "tls"
    tls.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(tls / "server.key"),
         "-out", str(tls / "server.crt")],
        check=True, capture_output=True, timeout=60,
    )
    started = FsqlServer(repo).start()
    yield started
    started.stop()


def connect(server: FsqlServer, user: str, password: str | None = None,
            sslmode: str = "require") -> psycopg.Connection:
    return psycopg.connect(server.dsn(user, password or PASSWORDS[user], sslmode=sslmode),
                           autocommit=True, connect_timeout=30)


def test_the_block_is_the_documented_one() -> None:
    config = hardened_config()
    for line in ('auth = "scram-sha-256"', "require_tls = true", "statement_timeout = 60",
                 'memory_limit = "1GB"', "roots = "):
        assert line in config


def test_plaintext_clients_and_wrong_passwords_are_refused(server: FsqlServer) -> None:
    with pytest.raises(psycopg.OperationalError, match="requires TLS"):
        connect(server, "alice", sslmode="disable")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(server, "alice", "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(server, "mallory", "guess")


def test_alice_defines_bob_reads(server: FsqlServer) -> None:
    with connect(server, "alice") as alice:
        assert alice.info.pgconn.ssl_in_use
        alice.execute("CREATE ENTITY shop KEY (shop_id BIGINT)")
        # sources only inside the repo and [sources] roots
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            alice.execute("CREATE SOURCE stolen (a VARCHAR, ts TIMESTAMP) "
                          "FROM '/etc/passwd' FORMAT CSV EVENT TIME ts")
    with connect(server, "bob") as bob:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not define"):
            bob.execute("CREATE ENTITY region KEY (region_id BIGINT)")
        assert bob.execute("SELECT 1").fetchone() == (1,)


def test_limits_are_caps(server: FsqlServer) -> None:
    with connect(server, "bob") as bob:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="server's limit is 60 s"):
            bob.execute("SET statement_timeout = '120s'")
        bob.execute("SET statement_timeout = '5s'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="memory_limit"):
            bob.execute("SET memory_limit = '8GB'")
        with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="statement is too long"):
            bob.execute("SELECT 1 -- " + "x" * 300_000)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM \"query\"('SELECT 42')",
    "SELECT \"read_text\"('fsql.toml')",
    "SELECT * FROM \"READ_TEXT\"('fsql.toml')",
    "SELECT * FROM \"read_csv\"('/etc/passwd')",
])
def test_quoted_file_functions_are_refused(server: FsqlServer, sql: str) -> None:
    """The sandbox's function check uses the name DuckDB resolves (unquoted, any case)."""
    with connect(server, "bob") as bob:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="the function"):
            bob.execute(sql)
