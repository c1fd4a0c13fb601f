"""Fixtures for the Postgres-wire server: the real ``fsql serve`` process on a free port.

``FsqlServer`` starts ``fsql serve --port 0`` in a repo folder (a subprocess, exactly what a
user runs), reads the port it prints, and stops it at the end. ``fsql_server`` is one shared
server over an empty repo (session scope); tests that need their own configuration (auth,
limits, timeouts) start one with ``start_server``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.services._util import port_open, wait_until

FSQL = str(Path(sys.executable).with_name("fsql"))


class FsqlServer:
    """One ``fsql serve`` process; ``port`` once started."""

    def __init__(self, repo: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None):
        self.repo = repo
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.output: list[str] = []

    def start(self) -> FsqlServer:
        self.process = subprocess.Popen(
            [FSQL, "--repo", str(self.repo), "serve", "--port", "0", *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("fsql serving on "):
                self.port = int(line.rsplit(":", 1)[1])
                break
        else:
            raise RuntimeError("fsql serve exited:\n" + "".join(self.output))
        # keep draining the output so the server never blocks on a full pipe
        threading.Thread(target=self._drain, daemon=True).start()
        wait_until(lambda: port_open(self.port), what="fsql serve")
        return self

    def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def dsn(self, user: str = "tester", password: str | None = None, **extra: str) -> str:
        parts = [f"host=127.0.0.1 port={self.port} user={user} dbname=fsql"]
        if password is not None:
            parts.append(f"password={password}")
        parts += [f"{k}={v}" for k, v in extra.items()]
        return " ".join(parts)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def cancelling(conn: Any, every: float = 0.3) -> Iterator[None]:
    """Send CancelRequests for ``conn`` (a psycopg connection) every ``every`` seconds while
    the block runs: a cancel that arrives before the query starts is ignored, as in
    PostgreSQL, so one is sent until the query has been cancelled."""
    done = threading.Event()

    def keep_cancelling() -> None:
        while not done.wait(every):
            conn.cancel_safe()

    thread = threading.Thread(target=keep_cancelling)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def write_config(repo: Path, text: str) -> None:
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "fsql.toml").write_text(text)


@pytest.fixture(scope="session")
def fsql_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FsqlServer]:
    """A server over an empty repo, shared by the tests of the session."""
    repo = tmp_path_factory.mktemp("server_repo")
    server = FsqlServer(repo).start()
    yield server
    server.stop()
    assert server.process is not None and server.process.returncode in (0, -15), server.output


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., FsqlServer]]:
    """Start a server with its own fsql.toml: ``start_server(config_text, *args)``."""
    started: list[FsqlServer] = []

    def start(config: str = "", *args: str, repo: Path | None = None) -> FsqlServer:
        folder = repo or tmp_path / f"repo{len(started)}"
        write_config(folder, config)
        server = FsqlServer(folder, args).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
