"""Reading sources: find a source's files (local or S3) and check them against its schema.

A source is declared with columns and types; its files must agree. :func:`source_files` lists
the files (a single file, or every ``.parquet``/``.csv`` under a directory or prefix) and checks
each file's physical schema (Parquet footers; CSV headers and a parse with the declared types)
before anything runs, so a mismatch fails the run naming the file and the column and nothing is
written. The result is a :class:`~fsql.stores.files.SourceFiles` that every engine can bind.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyarrow.types as pat

from fsql.errors import SourceSchemaError, StoreError
from fsql.language.definitions import SourceDef
from fsql.stores.files import SourceFiles

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


def source_files(source: SourceDef, config: Config) -> SourceFiles:
    """The validated files of ``source``; raises :class:`SourceSchemaError` on a mismatch."""

    uri = config.resolve_path(source.path)
    fs, path = filesystem_for(uri, config)
    info = fs.get_file_info(path)
    suffix = "." + source.format
    if info.type == pafs.FileType.NotFound:
        raise SourceSchemaError(f"source {source.name}: {uri} does not exist")
    if info.type == pafs.FileType.File:
        paths = [path]
    else:
        selector = pafs.FileSelector(path, recursive=True)
        paths = sorted(
            i.path
            for i in fs.get_file_info(selector)
            if i.type == pafs.FileType.File
            and i.path.lower().endswith(suffix)
            and not any(part.startswith((".", "_")) for part in i.path[len(path) :].split("/"))
        )
    schema = declared_schema(source)
    for p in paths:
        _check_file(source, fs, p, schema, uri)
    return SourceFiles(
        name=source.name,
        format=source.format,
        paths=tuple(paths),
        filesystem=fs,
        schema=schema,
        uri=uri,
    )


def _check_file(
    source: SourceDef, fs: pafs.FileSystem, path: str, schema: pa.Schema, uri: str
) -> None:
    shown = ("s3://" + path) if fs.type_name == "s3" else path
    if source.format == "parquet":

        try:
            physical = pq.read_schema(path, filesystem=fs)
        except Exception as exc:  # pyarrow raises several types for unreadable files
            raise SourceSchemaError(
                f"source {source.name}: {shown} is not a readable Parquet file: {exc}"
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
        return

    with fs.open_input_stream(path) as stream:
        try:
            table = pacsv.read_csv(
                stream, convert_options=pacsv.ConvertOptions(column_types=schema)
            )
        except pa.ArrowInvalid as exc:
            column = _csv_error_column(fs, path, str(exc))
            what = f", column {_sql(source, column)}" if column else ""
            raise SourceSchemaError(
                f"source {source.name}: file {shown}{what} does not match the declared schema: "
                f"{exc}"
            ) from None
    for field in schema:
        if field.name not in table.column_names:
            raise SourceSchemaError(
                f"source {source.name}: file {shown} has no column {field.name} "
                f"(declared {_sql(source, field.name)}; the file has: {', '.join(table.column_names)})"
            )


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


def _csv_error_column(fs: pafs.FileSystem, path: str, message: str) -> str | None:
    """The column a pyarrow CSV error is about ("In CSV column #1: ..." → its header name)."""

    match = re.search(r"CSV column #(\d+)", message)
    if not match:
        return None
    with fs.open_input_stream(path) as stream:
        header = stream.read(65536).decode(errors="replace").splitlines()[0]
    names = [n.strip().strip('"') for n in header.split(",")]
    index = int(match.group(1))
    return names[index] if index < len(names) else None
