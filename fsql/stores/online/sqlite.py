"""The embedded online store: one SQLite file (``.fsql/online.db``) in WAL mode.

WAL lets any number of readers — e.g. the Postgres-wire server in another process — read a
consistent snapshot while ``materialize`` writes; each written batch is one transaction.
Tables::

    online_values(entity, entity_key, field, record)  -- field = feature@version
    online_active(feature, version)                   -- the version unpinned reads see

A read resolves active versions and fetches every (key, field) in one statement, so it sees
one snapshot: a version switch (:meth:`SqliteOnlineStore.activate`) is atomic for readers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from fsql.errors import OnlineStoreUnavailable, StoreError
from fsql.stores.online.base import FeatureRef, OnlineStore, field_name

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_values (
    entity TEXT NOT NULL,
    entity_key TEXT NOT NULL,
    field TEXT NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (entity, entity_key, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_active (
    feature TEXT PRIMARY KEY,
    version TEXT NOT NULL
) WITHOUT ROWID;
"""

# One statement: the requested (feature, pinned version) pairs, resolved against the active
# pointers, joined to the values of the requested keys. One statement = one WAL snapshot.
_READ = """
WITH req(pos, feature, pinned) AS (
    SELECT CAST(key AS INTEGER), json_extract(value, '$[0]'), json_extract(value, '$[1]')
    FROM json_each(:features)
),
fields(pos, field, version) AS (
    SELECT req.pos, req.feature || '@' || COALESCE(req.pinned, a.version),
           COALESCE(req.pinned, a.version)
    FROM req LEFT JOIN online_active a ON a.feature = req.feature
    WHERE COALESCE(req.pinned, a.version) IS NOT NULL
)
SELECT v.entity_key, fields.pos, fields.version, v.record
FROM fields JOIN online_values v
  ON v.entity = :entity AND v.field = fields.field
 AND v.entity_key IN (SELECT value FROM json_each(:keys))
"""


class SqliteOnlineStore(OnlineStore):
    """Online store in a local SQLite file; a connection per thread, WAL journal."""

    scheme: ClassVar[str] = "sqlite"

    def __init__(self, path: str | Path, timeout: float = 1.0):
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self.timeout = timeout
        #: one connection per OS thread, by thread id: not ``threading.local``, whose data
        #: Python drops whenever a thread it did not start (DuckDB's workers, pulling
        #: ``features.<entity>``'s scan) returns to C; that made a connection per batch, each
        #: kept open with its own page cache until the store closed (the server grew by ~250
        #: bytes per key scanned, every scan)
        self._by_thread: dict[int, sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        with self._errors("create the online store"):
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        thread = threading.get_ident()
        conn: sqlite3.Connection | None = self._by_thread.get(thread)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise OnlineStoreUnavailable(
                    f"cannot open the online store {self.path}: {exc}; check that the directory "
                    "is writable (or set [online_store] url in fsql.toml)"
                ) from None
            with self._lock:
                self._by_thread[thread] = conn
        return conn

    def _errors(self, action: str) -> _SqliteErrors:
        return _SqliteErrors(self, action)

    # --- reads ---------------------------------------------------------------------------------

    def read_records(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> tuple[list[str | None], list[list[bytes | None]]]:
        versions: list[str | None] = [None] * len(features)
        out: list[list[bytes | None]] = [[None] * len(features) for _ in keys]
        if not keys or not features:
            return versions, out
        params = {
            "entity": entity,
            "features": json.dumps([[f.name, f.version] for f in features]),
            "keys": json.dumps(list(keys)),
        }
        with self._errors("read from the online store"):
            rows = self._conn().execute(_READ, params).fetchall()
        index: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            index.setdefault(key, []).append(i)
        for key, pos, version, record in rows:
            versions[pos] = version
            for i in index[key]:
                out[i][pos] = record
        return versions, out

    def active_versions(self, features: Sequence[str] | None = None) -> dict[str, str]:
        with self._errors("read the online store's active versions"):
            if features is None:
                rows = self._conn().execute("SELECT feature, version FROM online_active").fetchall()
            else:
                rows = (
                    self._conn()
                    .execute(
                        "SELECT feature, version FROM online_active "
                        "WHERE feature IN (SELECT value FROM json_each(?))",
                        (json.dumps(list(features)),),
                    )
                    .fetchall()
                )
        return dict(rows)

    # --- writes --------------------------------------------------------------------------------

    def write(
        self, entity: str, feature: str, version: str, keys: Sequence[str], records: Sequence[bytes]
    ) -> None:
        field = field_name(feature, version)
        conn = self._conn()
        with self._errors(f"write {feature} (version {version}) to the online store"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO online_values VALUES (?, ?, ?, ?)",
                    (
                        (entity, key, field, record)
                        for key, record in zip(keys, records, strict=True)
                    ),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def activate(self, feature: str, version: str) -> None:
        with self._errors(f"switch {feature} to version {version}"):
            self._conn().execute(
                "INSERT OR REPLACE INTO online_active VALUES (?, ?)", (feature, version)
            )

    def entity_keys(self, entity: str, batch: int = 1000) -> Iterator[list[str]]:
        """The entity's keys in key order, one indexed range read per batch (each batch its
        own snapshot: keys written while a scan runs may or may not be seen)."""
        after: str | None = None
        while True:
            with self._errors(f"list the keys of {entity} in the online store"):
                if after is None:
                    rows = self._conn().execute(
                        "SELECT DISTINCT entity_key FROM online_values WHERE entity = ? "
                        "ORDER BY entity_key LIMIT ?", (entity, batch)).fetchall()
                else:
                    rows = self._conn().execute(
                        "SELECT DISTINCT entity_key FROM online_values WHERE entity = ? "
                        "AND entity_key > ? ORDER BY entity_key LIMIT ?",
                        (entity, after, batch)).fetchall()
            if not rows:
                return
            keys = [row[0] for row in rows]
            yield keys
            if len(keys) < batch:
                return
            after = keys[-1]

    def existing_keys(self, entity: str, keys: Sequence[str]) -> list[str]:
        """One indexed read per 500 keys (SQLite's limit on bound values is far above)."""
        found: set[str] = set()
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            marks = ", ".join("?" * len(chunk))
            with self._errors(f"look up keys of {entity} in the online store"):
                rows = self._conn().execute(
                    "SELECT DISTINCT entity_key FROM online_values WHERE entity = ? "
                    f"AND entity_key IN ({marks})", (entity, *chunk)).fetchall()
            found.update(row[0] for row in rows)
        return [key for key in keys if key in found]

    def delete_version(self, entity: str, feature: str, version: str) -> int:
        conn = self._conn()
        with self._errors(f"delete {feature} version {version} from the online store"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "DELETE FROM online_values WHERE entity = ? AND field = ?",
                    (entity, field_name(feature, version)),
                )
                conn.execute(
                    "DELETE FROM online_active WHERE feature = ? AND version = ?",
                    (feature, version),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        return cur.rowcount

    def close(self) -> None:
        with self._lock:
            for conn in self._by_thread.values():
                conn.close()
            self._by_thread.clear()


class _SqliteErrors:
    """Turn sqlite3 errors into fsql's: a locked database is 'unavailable' (it did not answer
    within the timeout), anything else a :class:`StoreError` naming the file."""

    def __init__(self, store: SqliteOnlineStore, action: str):
        self.store, self.action = store, action

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> Literal[False]:
        if exc is None or not isinstance(exc, sqlite3.Error):
            return False
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise OnlineStoreUnavailable(
                f"could not {self.action}: {self.store.path} stayed locked for "
                f"{self.store.timeout:g}s ({text}); another process holds a long write — "
                "retry, or raise [online_store] timeout in fsql.toml"
            ) from None
        raise StoreError(f"could not {self.action} ({self.store.path}): {text}") from None
