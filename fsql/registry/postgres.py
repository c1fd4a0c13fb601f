"""The team registry backend: PostgreSQL through psycopg 3.

Every query is a fixed :class:`psycopg.sql.SQL` text with values bound as parameters (never
formatted into the text). Write transactions lock rows with ``SELECT ... FOR UPDATE`` (the
registry's single state row for ``apply``; the feature version's row for ledger writes), so two
processes applying at once queue on the lock and the second sees the first one's revision.
Schema creation is guarded by a transaction-level advisory lock, because concurrent
``CREATE TABLE IF NOT EXISTS`` can collide in PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from fsql.errors import RegistryError
from fsql.extras import require
from fsql.registry.backend import Backend
from fsql.registry.serialize import to_utc
from fsql.secrets import redact

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

#: the first key of the two-key advisory locks taken by try_lock ("fsqL" in ASCII)
LOCK_CLASS = 0x6673714C
#: pg_advisory_xact_lock key serialising schema creation ("fsql" in ASCII)
SCHEMA_LOCK_KEY = 0x6673716C


@cache
def _query(text: str) -> sql.SQL:
    from psycopg import sql

    return sql.SQL(text.replace("?", "%s"))


class PostgresBackend(Backend):
    ddl_types = {"ts": "TIMESTAMPTZ", "id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"}
    row_locks = True

    def __init__(self, url: str):
        pg = require("psycopg", "postgres")
        self.url = redact(url)
        self._dsn = url
        self._error = pg.Error
        self.conn: psycopg.Connection[Any]
        self._connect()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            cursor = self.conn.execute(_query(sql), tuple(params))
            return cursor.fetchall() if cursor.description is not None else []
        except self._error as exc:
            raise RegistryError(f"registry {self.url}: {exc}") from exc

    def _connect(self) -> None:
        pg = require("psycopg", "postgres")
        try:
            # autocommit: we issue BEGIN/COMMIT ourselves, as with SQLite
            self.conn = pg.connect(self._dsn, autocommit=True, connect_timeout=10)
        except pg.Error as exc:
            raise RegistryError(
                f"cannot connect to the registry {self.url}: {str(exc).strip()}; check the "
                "server is running and FSQL_REGISTRY_URL / [registry] url"
            ) from exc
        self._check_encoding()

    def _check_encoding(self) -> None:
        """Refuse a database whose encoding is not UTF-8: under SQL_ASCII PostgreSQL stores
        bytes unchecked and hands them back as bytes, so names and definitions would not read
        back as they were written."""
        (encoding,) = self.conn.execute("SELECT pg_encoding_to_char(encoding) FROM pg_database "
                                        "WHERE datname = current_database()").fetchone() or ("?",)  # fmt: skip
        if isinstance(encoding, bytes):  # SQL_ASCII hands text back as bytes
            encoding = encoding.decode("ascii", "replace")
        if encoding != "UTF8":
            database = self.conn.info.dbname
            self.conn.close()
            raise RegistryError(
                f"the registry database {database} ({self.url}) has encoding {encoding}; fsql "
                "needs UTF8 (definitions, names and descriptions are text). Create one with "
                f"CREATE DATABASE {database}_utf8 ENCODING 'UTF8' TEMPLATE template0 (plus "
                "LC_COLLATE/LC_CTYPE of a UTF-8 locale, e.g. 'C.UTF-8', if the server's default "
                "is not one) and point FSQL_REGISTRY_URL / [registry] url at it; an existing "
                "registry moves with `fsql registry export` / `fsql registry import`"
            )

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[None]:
        begin = "BEGIN" if write else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
        try:
            self.execute(begin)
        except RegistryError:
            if not self.conn.broken:
                raise
            # A long-lived process (the server) outlives a lost connection or a database
            # restart: reconnect once, before the transaction starts (never inside one).
            self._connect()
            self.execute(begin)
        with self._commit_or_rollback(self._error):  # a failed ROLLBACK: the connection is lost
            yield

    def try_lock(self, key: int) -> bool:
        # a session-level advisory lock: held across transactions, released with the session
        # (so by PostgreSQL itself when a writer dies)
        rows = self.execute("SELECT pg_try_advisory_lock(?, ?)", (LOCK_CLASS, key))
        return bool(rows[0][0])

    def unlock(self, key: int) -> None:
        self.execute("SELECT pg_advisory_unlock(?, ?)", (LOCK_CLASS, key))

    def lock_schema(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_KEY,))

    def table_columns(self, table: str) -> set[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = current_schema()",
            (table,),
        )
        return {name for (name,) in rows}

    def ts_param(self, value: datetime) -> datetime:
        return to_utc(value)

    def ts_value(self, value: Any) -> datetime:
        return to_utc(value)

    def close(self) -> None:
        self.conn.close()
