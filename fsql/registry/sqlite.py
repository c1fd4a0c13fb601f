"""The embedded registry backend: one SQLite file (by default ``.fsql/registry.db`` in the repo).

Write transactions start with ``BEGIN IMMEDIATE``, which takes SQLite's database write lock at
once; a second process waits (up to ``busy_timeout``) instead of interleaving. WAL journaling
lets readers carry on while one process writes.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from fsql.errors import RegistryError
from fsql.registry.backend import Backend
from fsql.registry.serialize import to_utc

#: seconds a writer waits for another process's write transaction to finish
BUSY_TIMEOUT = 60.0


class SqliteBackend(Backend):
    ddl_types = {"ts": "TEXT", "id": "INTEGER PRIMARY KEY AUTOINCREMENT"}
    row_locks = False

    def __init__(self, path: Path):
        self.path = path
        self.url = f"sqlite:///{path}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; we issue BEGIN/COMMIT ourselves.
            self.conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            self.conn.execute("PRAGMA foreign_keys = ON")
            _enable_wal(self.conn)
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(
                f"cannot open the registry {self.url}: {exc}; check that the directory is "
                "writable or set FSQL_REGISTRY_URL"
            ) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise RegistryError(f"registry {self.url}: {exc}") from exc

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[None]:
        try:
            self.conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.OperationalError as exc:
            raise RegistryError(
                f"registry {self.url} is locked by another process ({exc}); try again"
            ) from exc
        with self._commit_or_rollback(sqlite3.Error):  # ROLLBACK fails only if nothing is open
            yield

    def try_lock(self, key: int) -> bool:
        # POSIX record locks on one byte of a file beside the database: shared by every
        # process on this machine (the only ones that can open a SQLite registry) and
        # released by the kernel when the holder dies

        try:
            fcntl.lockf(_lock_file(self.path), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, key)
        except OSError:
            return False
        return True

    def unlock(self, key: int) -> None:

        fcntl.lockf(_lock_file(self.path), fcntl.LOCK_UN, 1, key)

    def table_columns(self, table: str) -> set[str]:
        return {row[1] for row in self.execute(f"PRAGMA table_info({table})")}

    def ts_param(self, value: datetime) -> str:
        # fixed-width ISO text in UTC sorts chronologically
        return to_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")

    def ts_value(self, value: Any) -> datetime:
        return to_utc(datetime.fromisoformat(value))

    def close(self) -> None:
        self.conn.close()


#: One open lock file per registry path for the whole process: closing *any* descriptor of a
#: file drops every POSIX lock the process holds on it, so descriptors are shared, never closed.
_LOCK_FILES: dict[str, Any] = {}
_LOCK_FILES_MUTEX = threading.Lock()


def _lock_file(path: Path) -> Any:
    key = os.path.realpath(path)
    with _LOCK_FILES_MUTEX:
        if key not in _LOCK_FILES:
            _LOCK_FILES[key] = open(f"{key}.locks", "a+b")  # noqa: SIM115 - lives with the process
        return _LOCK_FILES[key]


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL journaling. SQLite answers "database is locked" at once, without its busy
    handler, while another process is creating the same new database; retry until
    ``BUSY_TIMEOUT`` like any other lock wait."""

    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
