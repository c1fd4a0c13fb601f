"""User SQL can read and write nothing but fsql's data and the session's own tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.conftest import FsqlServer

pytestmark = pytest.mark.server


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_csv_auto('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_parquet('/tmp/x.parquet')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM glob('/etc/*')",
        "COPY (SELECT 1) TO '/tmp/fsql_sandbox_escape.csv'",
        "COPY (SELECT 1) TO PROGRAM 'touch /tmp/fsql_sandbox_escape'",
        "COPY t FROM '/etc/passwd'",
        "ATTACH '/tmp/fsql_sandbox_escape.db' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET threads = 1",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "SET memory_limit = '100GB'",
        "PRAGMA threads = 1",
        "EXPORT DATABASE '/tmp/fsql_sandbox_escape'",
        "SELECT getenv('HOME')",
        "CREATE MACRO m(x) AS x",
    ],
)
def test_refused_with_insufficient_privilege(fsql_server: FsqlServer, sql: str) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as info:
            conn.execute(sql)
        assert info.value.sqlstate == "42501", (sql, info.value)
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not Path("/tmp/fsql_sandbox_escape.csv").exists()
    assert not Path("/tmp/fsql_sandbox_escape").exists()


def test_refusals_from_duckdb_itself(fsql_server: FsqlServer) -> None:
    """Even SQL that slips past the AST checks meets DuckDB's own locked sandbox."""
    import psycopg
    from fsql_server.pg.duckdb_backend import DuckDBBackend

    backend = DuckDBBackend()
    try:
        for sql in ("SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access=true",
                    "SET lock_configuration=false"):
            with pytest.raises(psycopg.Error if False else Exception) as info:
                backend.execute_sync(sql)
            assert getattr(info.value, "code", None) == "42501", (sql, info.value)
    finally:
        backend.close()


def test_allowed_postgres_settings_and_unknown_ones(fsql_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '5s'")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("5000",)
        conn.execute("SET search_path TO public")
        conn.execute("SET application_name = 'probe'")
        assert conn.info.parameter_status("application_name") == "probe"
        assert conn.execute("SELECT current_setting('application_name')").fetchone() == ("probe",)
        conn.execute("RESET application_name")
        assert conn.execute("SHOW application_name").fetchone() == ("",)
        with pytest.raises(psycopg.errors.UndefinedObject):
            conn.execute("SET no_such_setting = 1")
        assert conn.execute("SELECT set_config('myapp.mode', 'fast', false)").fetchone() == (
            "fast",)
        assert conn.execute("SHOW myapp.mode").fetchone() == ("fast",)
