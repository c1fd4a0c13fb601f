"""A real PostgreSQL 15 server for the test session, started with initdb + pg_ctl.

``postgres_url`` (session scope) starts one server in a temporary directory on a free port and
yields a superuser URL (``postgresql://postgres@127.0.0.1:PORT/postgres``); the server stops when
the session ends. ``postgres_db_url`` (function scope) creates a fresh, empty database on that
server for one test and drops it afterwards, so tests never see each other's tables.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
``postgres`` OS user (via ``runuser``) in a directory that user owns. Nothing is mocked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services._util import free_port, wait_until

PG_BIN = Path(os.environ.get("FSQL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
SERVICE_USER = "postgres"


def _as_service_user(cmd: list[str]) -> list[str]:
    """Prefix ``cmd`` so it runs as the ``postgres`` OS user when we are root."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", SERVICE_USER, "--", *cmd]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        _as_service_user(cmd), cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed with exit code {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def _can_connect(url: str) -> bool:
    import psycopg

    with psycopg.connect(url, connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


class PostgresServer:
    """One throwaway PostgreSQL cluster: ``start()`` it, use ``url``, ``stop()`` it."""

    def __init__(self) -> None:
        if not (PG_BIN / "initdb").exists():
            raise RuntimeError(
                f"PostgreSQL 15 binaries not found in {PG_BIN}; "
                "install Debian's postgresql-15 package (apt-get install -y postgresql-15)"
            )
        # Not under pytest's tmp_path: its parents are 0700 root, so the postgres user could not
        # reach the data directory.
        self.root = Path(tempfile.mkdtemp(prefix="fsql-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, SERVICE_USER, SERVICE_USER)
        self.port = 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        _run(
            [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-locale", "--no-sync"],
            cwd=self.root,
        )  # fmt: skip
        last_error: Exception | None = None
        for _attempt in range(5):  # a free port can be taken by someone else before we bind it
            self.port = free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200 -c wal_level=minimal -c max_wal_senders=0"
            )
            try:
                _run(
                    [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                     "-o", options, "-w", "-t", "60", "start"],
                    cwd=self.root,
                )  # fmt: skip
            except RuntimeError as exc:
                last_error = exc
                continue
            wait_until(lambda: _can_connect(self.url), timeout=60, what="PostgreSQL")
            return
        log = self.log.read_text() if self.log.exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {last_error}\n{log}")

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run(
                _as_service_user(
                    [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"]
                ),
                cwd=self.root,
                capture_output=True,
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL 15 server shared by the whole test session (superuser)."""
    server = PostgresServer()
    try:
        server.start()
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """URL of a fresh, empty database on the session's server, dropped after the test."""
    import psycopg
    from psycopg import sql

    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        # FILE_COPY (with wal_level=minimal) is the cheaper strategy for a tiny template
        conn.execute(sql.SQL("CREATE DATABASE {} STRATEGY FILE_COPY").format(sql.Identifier(name)))
    try:
        yield postgres_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
