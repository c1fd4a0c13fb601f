"""The embedded default engine: DuckDB, reading sources and timelines through pyarrow.

DuckDB's httpfs extension cannot be installed offline, so every file (local or S3) is read
through a :mod:`pyarrow.dataset` registered in DuckDB; DuckDB pushes filters and projections
into the dataset scan.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.types as pat

from fsql.compile.target import DUCKDB, Target
from fsql.engines.base import Engine
from fsql.errors import ComputeError
from fsql.stores.files import SourceFiles, TimelineFiles
from fsql.stores.sources import without_file_content

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from fsql.config import Config


def connect(*, memory_limit: str | None = None, threads: int | None = None) -> Any:
    """An in-memory DuckDB connection with fsql's settings: session time zone UTC and the
    configured memory limit and threads (``[compute]``). Engines and side work outside an
    engine (the online push, rewriting a tick) both open theirs here."""
    import duckdb  # a heavy import, paid only when a connection opens (pyproject: TID253)

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit:
        con.execute("SET memory_limit = ?", [memory_limit])
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


class DuckDBEngine(Engine):
    """One in-process DuckDB connection, session time zone UTC."""

    name: ClassVar[str] = "duckdb"
    target: ClassVar[Target] = DUCKDB

    def __init__(self, *, memory_limit: str | None = None, threads: int | None = None):
        import duckdb  # a heavy import, paid only when an engine starts (pyproject: TID253)

        self._duckdb = duckdb
        self.con = connect(memory_limit=memory_limit, threads=threads)
        # Keep objects alive while DuckDB scans them (it only holds a weak reference).
        self._registered: dict[str, Any] = {}
        self._scratch: Any = None

    @classmethod
    def from_config(cls, config: Config) -> DuckDBEngine:
        return cls(memory_limit=config.compute.memory_limit, threads=config.compute.threads)

    def confine(self, directories: Sequence[str]) -> None:
        """Sandbox the connection like a server session's: files only under ``directories``
        (fsql's stores; objects registered from Python are not files), no other file,
        network or extension access, configuration locked. For a connection that runs SQL
        built from what clients named (a training set over the wire)."""
        allowed = ", ".join(_quote_str(d.rstrip("/") + "/") for d in directories)
        self.con.execute(f"SET allowed_directories = [{allowed}]")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")

    def scratch_dir(self) -> str:
        """The engine's own temporary folder (remote CSV sources are copied there), removed
        when it closes."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="fsql-duckdb-")
        return str(self._scratch.name)

    def register_source(self, relation: str, files: SourceFiles) -> None:
        local = files.local_paths()
        if local and files.format == "parquet":
            self._register_parquet(relation, local, files.schema)
        elif files.format == "csv" and local is None:
            # CSV cannot be pruned, so every byte is read anyway: copy the files to a local
            # scratch folder first (pyarrow's S3 filesystem, in parallel) and scan them there,
            # instead of pulling remote reads through DuckDB's arrow scan one request at a time.
            self._register(relation, replace(files, **self._download(files)).dataset())
        else:
            self._register(relation, files.dataset())

    def _download(self, files: SourceFiles) -> dict[str, Any]:


        target = os.path.join(self.scratch_dir(), files.name)
        os.makedirs(target, exist_ok=True)
        local_fs = pafs.LocalFileSystem()
        paths = []
        for i, path in enumerate(files.paths):
            local = os.path.join(target, f"{i}-{os.path.basename(path)}")
            pafs.copy_files(
                path, local, source_filesystem=files.filesystem, destination_filesystem=local_fs
            )
            paths.append(local)
        return {"paths": tuple(paths), "filesystem": local_fs}

    def register_timeline(self, relation: str, files: TimelineFiles) -> None:
        local = files.local_paths()
        if local:
            self._register_parquet(relation, local, files.schema)
        elif files.paths:
            self._register(relation, files.dataset())
        else:
            self._register(relation, files.schema.empty_table())

    def _register_parquet(self, relation: str, paths: tuple[str, ...], schema: pa.Schema) -> None:
        """Local Parquet: DuckDB's own reader (faster than a pyarrow dataset scan), with every
        column cast to its declared type (a no-op cast when the file already has it)."""
        self.unregister(relation)
        files = ", ".join(_quote_str(p) for p in paths)
        columns = ", ".join(
            f"CAST({_quote_ident(f.name)} AS {duckdb_type(f.type)}) AS {_quote_ident(f.name)}"
            for f in schema
        )
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {_quote_ident(relation)} AS SELECT {columns} "
            f"FROM read_parquet([{files}], union_by_name = true)"
        )
        self._registered[relation] = _VIEW

    def register_arrow(self, relation: str, table: pa.Table) -> None:
        self._register(relation, table)

    def register_batches(
        self, relation: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> None:
        """Into a DuckDB table, batch by batch: it lives under the memory limit (and spills
        to DuckDB's temporary directory), never whole in Python."""
        self.unregister(relation)
        failed: list[Exception] = []

        def watched() -> Iterator[pa.RecordBatch]:
            try:
                yield from batches
            except Exception as exc:
                failed.append(exc)  # the batches' own error, not DuckDB's wrapping of it
                raise

        reader = pa.RecordBatchReader.from_batches(schema, watched())
        source = f"__{relation}_batches"
        self.con.register(source, reader)
        try:
            self.con.execute(
                f"CREATE TEMP TABLE {_quote_ident(relation)} AS SELECT * FROM {source}")
        except self._duckdb.Error as exc:
            if failed:
                raise failed[0] from None
            raise self._failure(exc, f"(the {relation} table, loaded batch by batch)") from exc
        finally:
            self.con.unregister(source)
        self._registered[relation] = _TABLE

    def create_table(self, relation: str, sql: str) -> None:
        """A DuckDB table (under the memory limit, spilling to DuckDB's temporary
        directory)."""
        self.unregister(relation)
        try:
            self.con.execute(f"CREATE TEMP TABLE {_quote_ident(relation)} AS {sql}")
        except self._duckdb.Error as exc:
            raise self._failure(exc, sql) from exc
        self._registered[relation] = _TABLE

    def _register(self, relation: str, obj: Any) -> None:
        self.unregister(relation)
        self.con.register(relation, obj)
        self._registered[relation] = obj

    def unregister(self, relation: str) -> None:
        if relation in self._registered:
            if self._registered[relation] is _VIEW:
                self.con.execute(f"DROP VIEW IF EXISTS {_quote_ident(relation)}")
            elif self._registered[relation] is _TABLE:
                self.con.execute(f"DROP TABLE IF EXISTS {_quote_ident(relation)}")
            else:
                self.con.unregister(relation)
            del self._registered[relation]

    def query(self, sql: str) -> pa.Table:
        try:
            return self.con.sql(sql).to_arrow_table()
        except self._duckdb.Error as exc:
            raise self._failure(exc, sql) from exc

    def query_batches(self, sql: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """DuckDB's streaming result: each batch is computed as it is fetched (a sort or a
        join's build side completes first, within the memory limit)."""
        try:
            reader = self.con.sql(sql).to_arrow_reader(batch_rows)
            try:
                empty = True
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    empty = False
                    yield batch
                if empty:
                    yield pa.RecordBatch.from_pylist([], schema=reader.schema)
            finally:
                reader.close()  # closed early: the connection takes the next query
        except self._duckdb.Error as exc:
            raise self._failure(exc, sql) from exc

    def write_partitioned(self, sql: str, directory: str, partition_by: str) -> None:
        copy = (
            f"COPY ({sql}) TO '{directory.replace(chr(39), chr(39) * 2)}' "
            f"(FORMAT parquet, PARTITION_BY ({partition_by}), COMPRESSION zstd)"
        )
        try:
            self.con.execute(copy)
        except self._duckdb.Error as exc:
            raise self._failure(exc, sql) from exc

    def _failure(self, exc: Exception, sql: str) -> ComputeError:
        """What a failed query says: running out of the configured memory is a setting to
        change, not a query to read; anything else shows the SQL that failed."""
        if isinstance(exc, self._duckdb.OutOfMemoryException):
            row = self.con.execute("SELECT current_setting('memory_limit')").fetchone()
            limit = row[0] if row else "?"
            return ComputeError(
                f"the computation needs more memory than DuckDB may use (memory_limit {limit}): "
                "raise [compute] memory_limit in fsql.toml, or lower [compute] threads (each "
                "thread holds its own buffers); nothing was written. DuckDB said: "
                f"{str(exc).splitlines()[0]}"
            )
        # a source file that changed after its check: pyarrow's CSV errors quote its rows
        return ComputeError(f"DuckDB failed: {without_file_content(str(exc))}\nSQL:\n{sql}")

    def close(self) -> None:
        for relation in list(self._registered):
            self.unregister(relation)
        self.con.close()
        if self._scratch is not None:
            self._scratch.cleanup()


_VIEW = object()
_TABLE = object()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type of an Arrow type fsql declares (see :func:`fsql.stores.sources.arrow_type`)."""

    if pat.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pat.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision}, {arrow_type.scale})"
    simple = {
        pa.string(): "VARCHAR", pa.large_string(): "VARCHAR", pa.int64(): "BIGINT",
        pa.int32(): "INTEGER", pa.int16(): "SMALLINT", pa.int8(): "TINYINT",
        pa.float64(): "DOUBLE", pa.float32(): "FLOAT", pa.bool_(): "BOOLEAN", pa.date32(): "DATE",
    }  # fmt: skip
    try:
        return simple[arrow_type]
    except KeyError:
        raise ComputeError(f"no DuckDB type for Arrow type {arrow_type}") from None
