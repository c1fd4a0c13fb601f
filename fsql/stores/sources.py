"""Reading sources: find a source's files (local or S3) and check them against its schema.

A source is declared with columns and types; its files must agree. :func:`source_listing` only
lists the files (path, size, modification time: what late-data detection compares against the
ledger). :func:`source_files` lists
the files (a single file, or every ``.parquet``/``.csv`` under a directory or prefix) and checks
each file's physical schema (Parquet footers; CSV headers and a parse with the declared types)
before anything runs, so a mismatch fails the run naming the file and the column and nothing is
written. The result is a :class:`~fsql.stores.files.SourceFiles` that every engine can bind.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyarrow.types as pat

from fsql.errors import SourceSchemaError, StoreError
from fsql.language.definitions import SourceDef
from fsql.stores.files import SourceFileInfo, SourceFiles

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    import pyarrow.fs as pafs

    from fsql.config import Config

#: canonical SQL type → Arrow type constructor name
_ARROW_TYPES: dict[str, str] = {
    "VARCHAR": "string",
    "TEXT": "string",
    "BIGINT": "int64",
    "INTEGER": "int32",
    "INT": "int32",
    "SMALLINT": "int16",
    "TINYINT": "int8",
    "DOUBLE": "float64",
    "DOUBLE PRECISION": "float64",
    "FLOAT": "float32",
    "REAL": "float32",
    "BOOLEAN": "bool_",
    "DATE": "date32",
}


def arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type fsql uses for a canonical SQL type (``TIMESTAMP`` → naive µs,
    ``TIMESTAMPTZ`` → µs UTC)."""

    t = sql_type.upper().strip()
    if t in ("TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE", "DATETIME"):
        return pa.timestamp("us")
    if t in ("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"):
        return pa.timestamp("us", tz="UTC")
    if t.startswith("DECIMAL") or t.startswith("NUMERIC"):
        inner = t[t.find("(") + 1 : t.find(")")] if "(" in t else "38,9"
        precision, _, scale = inner.partition(",")
        return pa.decimal128(int(precision), int(scale or 0))
    if t.startswith("VARCHAR") or t.startswith("CHAR"):
        return pa.string()
    name = _ARROW_TYPES.get(t)
    if name is None:
        raise SourceSchemaError(f"type {sql_type} is not supported in sources")
    return getattr(pa, name)()


def declared_schema(source: SourceDef) -> pa.Schema:

    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in source.columns])


def filesystem_for(uri: str, config: Config | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem for ``uri`` and the path inside it (``bucket/key`` on S3)."""

    if uri.startswith("s3://"):
        # The SDK's default request timeout (3 s without progress) is too short for a busy
        # S3-compatible endpoint; a slow answer is not a failure.
        kwargs: dict[str, Any] = {"connect_timeout": 10.0, "request_timeout": 60.0}
        store = config.offline_store if config is not None else None
        if store is not None and store.s3_endpoint_url:
            scheme, _, host = store.s3_endpoint_url.partition("://")
            kwargs["endpoint_override"] = host or scheme
            if host:
                kwargs["scheme"] = scheme
        if store is not None and store.region:
            kwargs["region"] = store.region
        return pafs.S3FileSystem(**kwargs), uri[len("s3://") :].rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        raise StoreError(f"unsupported location {uri!r}: use a local path or s3://bucket/prefix")
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), path


@dataclass(frozen=True)
class SourceListing:
    """The files of a source as one listing saw them: no file is opened (the cost of late-data
    detection is this listing); :meth:`with_min_times` reads Parquet footers of chosen files."""

    source: SourceDef
    uri: str
    filesystem: pafs.FileSystem
    files: tuple[SourceFileInfo, ...]

    def with_min_times(self, paths: Collection[str]) -> tuple[SourceFileInfo, ...]:
        """``files``, with the least event time filled in for those in ``paths`` (Parquet: one
        footer read each; CSV: stays unknown, telling would mean reading the file)."""
        if self.source.format != "parquet":
            return self.files
        return tuple(
            replace(f, min_time=_min_event_time(self.source, pq.ParquetFile(
                f.path, filesystem=self.filesystem).metadata))
            if f.path in paths else f
            for f in self.files
        )  # fmt: skip


def source_listing(source: SourceDef, config: Config) -> SourceListing:
    """List the files of ``source`` (a single file, or every ``.parquet``/``.csv`` under a
    directory or prefix, skipping names starting with ``.`` or ``_``) with size and
    modification time; raises :class:`SourceSchemaError` when the location does not exist."""

    uri = config.resolve_path(source.path)
    fs, path = filesystem_for(uri, config)
    info = fs.get_file_info(path)
    suffix = "." + source.format
    if info.type == pafs.FileType.NotFound:
        raise SourceSchemaError(f"source {source.name}: {uri} does not exist")
    if info.type == pafs.FileType.File:
        infos = [info]
    else:
        selector = pafs.FileSelector(path, recursive=True)
        infos = sorted(
            (
                i
                for i in fs.get_file_info(selector)
                if i.type == pafs.FileType.File
                and i.path.lower().endswith(suffix)
                and not any(part.startswith((".", "_")) for part in i.path[len(path) :].split("/"))
            ),
            key=lambda i: i.path,
        )
    files = tuple(SourceFileInfo(i.path, int(i.size or 0), i.mtime_ns) for i in infos)
    return SourceListing(source, uri, fs, files)


def source_files(source: SourceDef, config: Config) -> SourceFiles:
    """The validated files of ``source``; raises :class:`SourceSchemaError` on a mismatch.
    Each file's listing entry comes along (``SourceFiles.files``), with its least event time
    when the file is Parquet (read from the footer the schema check reads anyway)."""

    listing = source_listing(source, config)
    fs, uri = listing.filesystem, listing.uri
    schema = declared_schema(source)
    files = tuple(
        replace(f, min_time=_check_file(source, fs, f.path, schema, uri)) for f in listing.files
    )
    return SourceFiles(
        name=source.name,
        format=source.format,
        paths=tuple(f.path for f in files),
        filesystem=fs,
        schema=schema,
        uri=uri,
        files=files,
    )


def _min_event_time(source: SourceDef, metadata: pq.FileMetaData) -> datetime | None:
    """The least event time in a Parquet file per its row-group statistics, or None when
    they cannot tell (a row group without statistics on the column, a type they do not
    order as time). NULL event times are ignored by the semantics and by the statistics."""

    least: datetime | None = None
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        if group.num_rows == 0:
            continue
        column = next(
            (group.column(c) for c in range(group.num_columns)
             if group.column(c).path_in_schema == source.event_time),
            None,
        )  # fmt: skip
        stats = column.statistics if column is not None else None
        if stats is None or not stats.has_min_max:
            if stats is not None and stats.null_count == group.num_rows:
                continue  # every event time is NULL: these rows are never read
            return None
        value = stats.min
        if isinstance(value, datetime):
            value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        elif isinstance(value, date):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        else:
            return None
        least = value if least is None or value < least else least
    return least


def _check_file(
    source: SourceDef, fs: pafs.FileSystem, path: str, schema: pa.Schema, uri: str
) -> datetime | None:
    """Check one file against the declared schema; returns its least event time when its
    metadata tells (Parquet), else None. A mismatch names the file (as the source's path
    plus its place under it), the line and the column and the declared type, never a value
    from the file: a source may point at a file that is not what it says (``FORMAT CSV``
    over a key file), and its errors reach clients, run logs and ``fsql.runs``."""
    shown = shown_path(source, path, uri)
    if source.format == "parquet":

        try:
            parquet = pq.ParquetFile(path, filesystem=fs)
            physical = parquet.schema_arrow
        except Exception as exc:  # pyarrow raises several types for unreadable files
            why = "no Parquet footer" if "magic bytes" in str(exc) else type(exc).__name__
            raise SourceSchemaError(
                f"source {source.name}: {shown} is not a readable Parquet file ({why}); "
                "fix the file or the source's FORMAT"
            ) from None
        for field in schema:
            idx = physical.get_field_index(field.name)
            if idx < 0:
                raise SourceSchemaError(
                    f"source {source.name}: file {shown} has no column {field.name} "
                    f"(declared {_sql(source, field.name)}; the file has: {', '.join(physical.names)})"
                )
            actual = physical.field(idx).type
            if not _casts_safely(actual, field.type):
                raise SourceSchemaError(
                    f"source {source.name}: file {shown}, column {field.name} is {actual} but the "
                    f"source declares {_sql(source, field.name)}; fix the data or the declared type"
                )
        return _min_event_time(source, parquet.metadata)

    invalid_rows: list[Any] = []

    def invalid_row(row: Any) -> str:
        invalid_rows.append(row)  # its number and column counts (its text is never shown)
        return "error"

    with fs.open_input_stream(path) as stream:
        try:
            table = pacsv.read_csv(
                stream,
                parse_options=pacsv.ParseOptions(invalid_row_handler=invalid_row),
                convert_options=pacsv.ConvertOptions(column_types=schema),
            )
        except pa.ArrowInvalid as exc:
            raise _csv_mismatch(source, fs, path, shown, str(exc), invalid_rows) from None
    for field in schema:
        if field.name not in table.column_names:
            raise SourceSchemaError(
                f"source {source.name}: file {shown} has no column {field.name} in its header "
                f"line (declared {_sql(source, field.name)}; the header has "
                f"{len(table.column_names)} column(s)); is it a CSV file with a header?"
            )
    return None


def shown_path(source: SourceDef, path: str, uri: str) -> str:
    """A source file as messages show it: the source's declared path, then the file's place
    under it (``data/events/2026/01.csv``), never the absolute path on the server."""
    base = uri.removeprefix("s3://").removeprefix("file://").rstrip("/")
    if path == base:
        return source.path
    if path.startswith(base + "/"):
        return source.path.rstrip("/") + path[len(base) :]
    return source.path


def _csv_mismatch(source: SourceDef, fs: pafs.FileSystem, path: str, shown: str,
                  message: str, invalid_rows: list[Any]) -> SourceSchemaError:
    """The error for a CSV file pyarrow could not read with the declared types: where (line,
    column, declared type) and what, without the offending text pyarrow's message holds."""
    if invalid_rows:
        row = _first_invalid_row(fs, path) or invalid_rows[0]
        where = f", record {row.number} (the header is record 1)" if row.number else ""
        return SourceSchemaError(
            f"source {source.name}: file {shown}{where} has {row.actual_columns} field(s) where "
            f"the header has {row.expected_columns}; fix the file, or declare the FORMAT it has"
        )
    column, line = _csv_error_place(fs, path, message)
    where = f", line {line}" if line else ""
    if column is not None:
        return SourceSchemaError(
            f"source {source.name}: file {shown}{where}, column {column} holds a value that is "
            f"not a valid {_declared_type(source, column)} (declared {_sql(source, column)}); "
            "fix the data or the declared type"
        )
    return SourceSchemaError(
        f"source {source.name}: file {shown} cannot be read as CSV with the declared columns: "
        f"{without_file_content(message)}"
    )


def _first_invalid_row(fs: pafs.FileSystem, path: str) -> Any:
    """The first row with the wrong number of fields, numbered (pyarrow numbers rows only
    when it reads in one thread: done again, only on this error)."""
    rows: list[Any] = []

    def invalid_row(row: Any) -> str:
        rows.append(row)
        return "error"

    with fs.open_input_stream(path) as stream:
        try:
            pacsv.read_csv(stream, read_options=pacsv.ReadOptions(use_threads=False),
                           parse_options=pacsv.ParseOptions(invalid_row_handler=invalid_row))
        except pa.ArrowInvalid:
            pass
    return rows[0] if rows else None


def _declared_type(source: SourceDef, name: str) -> str:
    column = source.column(name)
    return column.type if column else "value"


#: the parts of pyarrow's CSV errors that quote the file: a row's text, a value
_CSV_ROW_TEXT = re.compile(r"(Expected \d+ columns, got \d+):.*", re.S)
_CSV_VALUE = re.compile(r"invalid value '.*", re.S)


def without_file_content(message: str) -> str:
    """``message`` (an error out of pyarrow's CSV reader, maybe wrapped by DuckDB's arrow
    scan) without the text it quotes from the file: a row's text or an invalid value is cut,
    with everything after it (a quoted value may run over lines)."""
    message = _CSV_ROW_TEXT.sub(r"\1 (the row's text is not shown)", message)
    return _CSV_VALUE.sub("an invalid value (not shown)", message)


def _sql(source: SourceDef, name: str) -> str:
    column = source.column(name)
    return f"{name} {column.type}" if column else name


def _casts_safely(actual: pa.DataType, declared: pa.DataType) -> bool:
    """Whether values of ``actual`` convert to ``declared`` without loss."""

    if actual == declared:
        return True
    if pat.is_dictionary(actual):
        return _casts_safely(actual.value_type, declared)
    if pat.is_string(declared) or pat.is_large_string(declared):
        return pat.is_string(actual) or pat.is_large_string(actual)
    if pat.is_integer(declared):
        if pat.is_integer(actual):
            return actual.bit_width <= declared.bit_width and (
                pat.is_signed_integer(actual) == pat.is_signed_integer(declared)
                or (pat.is_unsigned_integer(actual) and actual.bit_width < declared.bit_width)
            )
        return False
    if pat.is_floating(declared):
        return (
            pat.is_floating(actual)
            and actual.bit_width <= declared.bit_width
            or (pat.is_integer(actual) and actual.bit_width <= 32)
        )
    if pat.is_timestamp(declared):
        return pat.is_timestamp(actual) or pat.is_date(actual)
    if pat.is_date(declared):
        return pat.is_date(actual)
    if pat.is_decimal(declared):
        return pat.is_decimal(actual) or pat.is_integer(actual)
    return False


def _csv_error_place(fs: pafs.FileSystem, path: str, message: str) -> tuple[str | None, int | None]:
    """Where a pyarrow CSV conversion error is: the column's header name ("In CSV column #1"
    counts from 0) and the 1-based line of the first row holding the invalid value (pyarrow
    names neither). The file is read again with every column as text, only on this error."""

    match = re.search(r"CSV column #(\d+)", message)
    if not match:
        return None, None
    with fs.open_input_stream(path) as stream:
        names = pacsv.open_csv(stream).schema.names
    index = int(match.group(1))
    if index >= len(names):
        return None, None
    bad = re.search(r"invalid value '(.*)'$", message, flags=re.S)
    if bad is None:
        return names[index], None
    as_text = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=False
    )
    with fs.open_input_stream(path) as stream:
        table = pacsv.read_csv(stream, convert_options=as_text)
    try:
        row = table.column(index).to_pylist().index(bad.group(1))
    except ValueError:
        return names[index], None
    # line 1 is the header; quoted values may span lines: count their line breaks too
    line = 2 + row
    for column in table.columns:
        line += sum(v.count("\n") for v in column.slice(0, row).to_pylist() if v)
    return names[index], line
