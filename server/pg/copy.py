"""COPY over the wire: ``COPY (query) TO STDOUT`` in text, CSV and binary, and
``COPY table FROM STDIN`` for uploading a spine into a session table.

Binary ``COPY TO STDOUT`` is how ADBC, connectorx and polars read bulk data (see
``pgwire-captures/adbc.log``); its rows use the same binary encoders as DataRow. COPY to or
from a *file* or a PROGRAM is refused (42501): fsql's SQL interface never touches the server's
file system.
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
from fsql_server.pg import errors
from fsql_server.pg.backend import Column, Plan, Result, encoders_for
from fsql_server.pg.errors import PgError
from fsql_server.pg.session import Session
from fsql_server.pg.types import pg_type_for_duckdb

BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
BINARY_HEADER = BINARY_SIGNATURE + struct.pack("!ii", 0, 0)
BINARY_TRAILER = struct.pack("!h", -1)

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_COPY = re.compile(
    rf"^\s*COPY\s+(?:\((?P<query>.*)\)|(?P<table>{_IDENT}(?:\.{_IDENT})?)\s*"
    rf"(?:\((?P<cols>[^)]*)\))?)\s+(?P<dir>TO|FROM)\s+(?P<target>STDOUT|STDIN|PROGRAM\b.*|'[^']*'|"
    rf"\S+)(?P<options>.*?)\s*;?\s*$",
    re.I | re.S,
)


@dataclass(frozen=True)
class CopyFormat:
    """Format options of one COPY statement."""

    kind: str = "text"  # text | csv | binary
    delimiter: str = "\t"
    null: str = "\\N"
    header: bool = False
    quote: str = '"'
    escape: str = '"'

    @property
    def binary(self) -> bool:
        return self.kind == "binary"


def _options(text: str) -> CopyFormat:
    """Parse COPY options, new style ``WITH (FORMAT csv, HEADER)`` or legacy ``WITH CSV HEADER``."""
    text = text.strip()
    if text.upper().startswith("WITH"):
        text = text[4:].strip()
    # string literals, quoted identifiers (DuckDB's postgres extension sends FORMAT "binary"),
    # punctuation, words
    tokens = re.findall(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[(),]|[^\s(),'\"]+", text)
    values: dict[str, str] = {}
    words = [t for t in tokens if t not in ("(", ")")]
    i = 0
    while i < len(words):
        word = words[i]
        upper = _unquote(word).upper()
        if word == ",":
            i += 1
            continue
        if upper in ("BINARY", "CSV") and "format" not in values:
            values["format"] = upper.lower()
            i += 1
            continue
        if upper in ("HEADER",):
            nxt = words[i + 1] if i + 1 < len(words) else ","
            if nxt != "," and nxt.upper() in ("TRUE", "FALSE", "ON", "OFF", "1", "0", "MATCH"):
                values["header"] = nxt.lower()
                i += 2
            else:
                values["header"] = "true"
                i += 1
            continue
        if upper in ("FORMAT", "DELIMITER", "NULL", "QUOTE", "ESCAPE", "ENCODING"):
            j = i + 1
            if j < len(words) and words[j].upper() == "AS":
                j += 1
            if j >= len(words):
                raise PgError(errors.SYNTAX_ERROR, f"COPY option {upper} needs a value")
            values[upper.lower()] = _unquote(words[j])
            i = j + 1
            continue
        if upper in ("FREEZE", "FORCE_QUOTE", "FORCE_NOT_NULL", "FORCE_NULL", "OIDS"):
            raise PgError(errors.FEATURE_NOT_SUPPORTED, f"COPY option {upper} is not supported")
        raise PgError(errors.SYNTAX_ERROR, f'COPY option "{word}" not recognized',
                      hint="Supported: FORMAT text|csv|binary, HEADER, DELIMITER, NULL, QUOTE, "
                      "ESCAPE.")
    kind = values.get("format", "text").lower()
    if kind not in ("text", "csv", "binary"):
        raise PgError(errors.INVALID_PARAMETER_VALUE, f'COPY format "{kind}" not recognized')
    enc = values.get("encoding", "UTF8").upper().replace("-", "")
    if enc not in ("UTF8", "UNICODE"):
        raise PgError(errors.FEATURE_NOT_SUPPORTED, "COPY supports only UTF8 encoding")
    csv_mode = kind == "csv"
    delimiter = values.get("delimiter", "," if csv_mode else "\t")
    if len(delimiter) != 1:
        raise PgError(errors.FEATURE_NOT_SUPPORTED, "COPY delimiter must be a single character")
    return CopyFormat(
        kind=kind,
        delimiter=delimiter,
        null=values.get("null", "" if csv_mode else "\\N"),
        header=values.get("header", "false") in ("true", "on", "1", "match"),
        quote=values.get("quote", '"'),
        escape=values.get("escape", values.get("quote", '"')),
    )


def _unquote(token: str) -> str:
    """An option name or value as PostgreSQL reads it: 'string' and "identifier" unquoted."""
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        quote = token[0]
        return token[1:-1].replace(quote * 2, quote)
    return token


# --------------------------------------------------------------------------------------------
# COPY TO STDOUT


def _escape_text(value: str, delimiter: str) -> str:
    value = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    value = value.replace("\t", "\\t")
    if delimiter not in ("\t", "\\"):
        value = value.replace(delimiter, "\\" + delimiter)
    return value


def encode_copy_rows(
    columns: Sequence[Column], rows: Sequence[Sequence[Any]], fmt: CopyFormat,
    zone: str | None = None, header: bool = True, trailer: bool = True,
) -> Iterator[bytes]:
    """The CopyData payloads for ``rows``: one per row, as PostgreSQL sends them (the binary
    header travels with the first row, the trailer alone). Clients depend on that framing:
    connectorx's binary reader decodes one row per CopyData message and drops the rest.
    A streamed COPY calls this per chunk: ``header`` for the first, ``trailer`` for the end."""
    if fmt.binary:
        encoders = [c.type.binary_out for c in columns]
        head = struct.pack("!h", len(columns))
        pending = BINARY_HEADER if header else b""
        for row in rows:
            parts = [pending, head]
            pending = b""
            for value, enc in zip(row, encoders, strict=True):
                if value is None:
                    parts.append(b"\xff\xff\xff\xff")
                else:
                    data = enc(value)
                    parts.append(struct.pack("!i", len(data)) + data)
            yield b"".join(parts)
        # no rows: PostgreSQL sends the header and the trailer in one message
        if trailer:
            yield pending + BINARY_TRAILER
        elif pending:
            yield pending
        return
    texts = encoders_for(columns, [0] * len(columns), zone)
    if fmt.kind == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=fmt.delimiter, quotechar=fmt.quote,
                            escapechar=None if fmt.escape == fmt.quote else fmt.escape,
                            doublequote=fmt.escape == fmt.quote, lineterminator="\n",
                            quoting=csv.QUOTE_MINIMAL)

        def csv_line(values: list[Any]) -> bytes:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(values)
            return buffer.getvalue().encode()

        if fmt.header and header:
            yield csv_line([c.name for c in columns])
        for row in rows:
            values: list[Any] = []
            for value, enc in zip(row, texts, strict=True):
                if value is None:
                    values.append(_NullMarker(fmt.null))
                else:
                    text = enc(value).decode()
                    values.append(_Quoted(text) if text == fmt.null else text)
            yield _csv_with_nulls(csv_line, values, fmt)
        return
    if fmt.header and header:
        yield (fmt.delimiter.join(c.name for c in columns) + "\n").encode()
    for row in rows:
        fields = []
        for value, enc in zip(row, texts, strict=True):
            if value is None:
                fields.append(fmt.null)
            else:
                fields.append(_escape_text(enc(value).decode(), fmt.delimiter))
        yield (fmt.delimiter.join(fields) + "\n").encode()


class _NullMarker(str):
    """A NULL in CSV output: written unquoted as the NULL string."""


class _Quoted(str):
    """A value equal to the NULL string: must be quoted to stay distinguishable."""


def _csv_with_nulls(csv_line: Any, values: list[Any], fmt: CopyFormat) -> bytes:
    if not any(isinstance(v, (_NullMarker, _Quoted)) for v in values):
        return bytes(csv_line(values))
    # csv.writer cannot quote selectively; build the line by hand for these rows.
    out = []
    for v in values:
        if isinstance(v, _NullMarker):
            out.append(str(v))
        elif isinstance(v, _Quoted) or any(ch in v for ch in (fmt.delimiter, fmt.quote, "\n",
                                                               "\r")):
            out.append(fmt.quote + v.replace(fmt.quote, fmt.escape + fmt.quote) + fmt.quote)
        else:
            out.append(v)
    return (fmt.delimiter.join(out) + "\n").encode()


class CopyOutPlan(Plan):
    """``COPY (query) TO STDOUT``: run the query, stream its rows as CopyData."""

    def __init__(self, sql: str, query: Plan, fmt: CopyFormat):
        self.sql = sql
        self.query = query
        self.format = fmt
        self.command = "COPY"
        self.param_types = query.param_types

    def describe(self, session: Session) -> list[Column] | None:
        return None

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        result = await self.query.run(session, params)
        if result.columns is None:
            raise PgError(errors.FEATURE_NOT_SUPPORTED, "COPY query must return rows")
        result.copy_out = self.format
        result.tag = "COPY"
        return result


# --------------------------------------------------------------------------------------------
# COPY FROM STDIN


def _unescape_text(value: str) -> str:
    if "\\" not in value:
        return value
    out = []
    i = 0
    mapping = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", "v": "\v", "\\": "\\"}
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append(mapping.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def parse_copy_text(data: bytes, fmt: CopyFormat, ncols: int) -> list[list[str | None]]:
    """Rows of a text or CSV COPY stream, as strings (None for NULL)."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise PgError("22021", 'invalid byte sequence for encoding "UTF8" in COPY data') from None
    rows: list[list[str | None]] = []
    if fmt.kind == "csv":
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=fmt.delimiter,
                            quotechar=fmt.quote, doublequote=fmt.escape == fmt.quote,
                            escapechar=None if fmt.escape == fmt.quote else fmt.escape,
                            strict=True)
        raw_lines = _csv_raw_fields(text, fmt)
        try:
            for number, record in enumerate(reader, start=1):
                if number == 1 and fmt.header:
                    continue
                if record == ["\\."]:
                    break
                quoted = raw_lines[number - 1] if number - 1 < len(raw_lines) else []
                row: list[str | None] = []
                for i, value in enumerate(record):
                    was_quoted = i < len(quoted) and quoted[i]
                    row.append(None if value == fmt.null and not was_quoted else value)
                rows.append(_check_width(row, ncols, number))
        except csv.Error as exc:
            raise PgError(errors.INVALID_TEXT_REPRESENTATION, f"malformed CSV in COPY data: {exc}"
                          ) from None
        return rows
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if number == 1 and fmt.header:
            continue
        if line == "\\.":
            break
        line = line.rstrip("\r")
        fields = re.split(r"(?<!\\)" + re.escape(fmt.delimiter), line) if line or ncols else []
        row = [None if f == fmt.null else _unescape_text(f) for f in fields]
        rows.append(_check_width(row, ncols, number))
    return rows


def _csv_raw_fields(text: str, fmt: CopyFormat) -> list[list[bool]]:
    """For each CSV record, which fields were quoted (a quoted empty string is not NULL)."""
    result: list[list[bool]] = []
    current: list[bool] = []
    in_quotes = False
    field_start = True
    quoted = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_quotes:
            if ch == fmt.quote:
                if i + 1 < len(text) and text[i + 1] == fmt.quote:
                    i += 1
                else:
                    in_quotes = False
        elif ch == fmt.quote and field_start:
            in_quotes = True
            quoted = True
        elif ch == fmt.delimiter:
            current.append(quoted)
            quoted = False
            field_start = True
            i += 1
            continue
        elif ch == "\n":
            current.append(quoted)
            result.append(current)
            current, quoted, field_start = [], False, True
            i += 1
            continue
        field_start = False
        i += 1
    if current or not field_start:
        current.append(quoted)
        result.append(current)
    return result


def _check_width(row: list[Any], ncols: int, line: int) -> list[Any]:
    if len(row) != ncols:
        what = "extra data after last expected column" if len(row) > ncols else \
            "missing data for column"
        raise PgError(errors.BAD_COPY_FORMAT, f"{what} (COPY data line {line}: {len(row)} values "
                      f"for {ncols} columns)")
    return row


def parse_copy_binary(data: bytes, types: Sequence[Any]) -> list[list[Any]]:
    """Rows of a binary COPY stream, decoded with each column's binary decoder."""
    if not data.startswith(BINARY_SIGNATURE):
        raise PgError(errors.BAD_COPY_FORMAT, "COPY file signature not recognized")
    pos = len(BINARY_SIGNATURE)
    try:
        _flags, ext = struct.unpack_from("!ii", data, pos)
        pos += 8 + ext
        rows = []
        while pos < len(data):
            (n,) = struct.unpack_from("!h", data, pos)
            pos += 2
            if n == -1:
                break
            if n != len(types):
                raise PgError(errors.BAD_COPY_FORMAT,
                              f"row field count is {n}, expected {len(types)}")
            row: list[Any] = []
            for t in types:
                (length,) = struct.unpack_from("!i", data, pos)
                pos += 4
                if length < 0:
                    row.append(None)
                else:
                    row.append(t.binary_in(data[pos : pos + length]))
                    pos += length
            rows.append(row)
    except struct.error:
        raise PgError(errors.BAD_COPY_FORMAT, "unexpected end of binary COPY data") from None
    return rows


class CopyInPlan(Plan):
    """``COPY table [(cols)] FROM STDIN``: the connection collects CopyData, then :meth:`load`."""

    cacheable = False

    def __init__(self, sql: str, table: str, columns: list[str] | None, fmt: CopyFormat):
        self.sql = sql
        self.table = table
        self.column_names = columns
        self.format = fmt
        self.command = "COPY"

    def describe(self, session: Session) -> list[Column] | None:
        return None

    def target_columns(self, session: Session) -> list[tuple[str, str]]:
        if self.table.split(".")[0].strip('"').lower() in ("offline", "sources", "features",
                                                           "fsql"):
            raise PgError(errors.INSUFFICIENT_PRIVILEGE,
                          f"permission denied: {self.table} is read-only",
                          hint="COPY FROM STDIN loads into a table of your session, e.g. "
                          "CREATE TEMP TABLE spine (user_id VARCHAR, ts TIMESTAMP).")
        columns = session.duckdb.table_columns(self.table)
        if self.column_names is None:
            return columns
        by_name = {name.lower(): (name, kind) for name, kind in columns}
        picked = []
        for name in self.column_names:
            if name.lower() not in by_name:
                raise PgError(errors.UNDEFINED_COLUMN,
                              f'column "{name}" of relation "{self.table}" does not exist')
            picked.append(by_name[name.lower()])
        return picked

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        raise PgError(errors.PROTOCOL_VIOLATION, "COPY FROM STDIN needs the copy sub-protocol")

    def load(self, session: Session, data: bytes) -> int:
        """Parse the collected CopyData and insert it; returns the number of rows."""
        columns = self.target_columns(session)
        pg_types = [pg_type_for_duckdb(kind) for _, kind in columns]
        if self.format.binary:
            rows: list[list[Any]] = parse_copy_binary(data, pg_types)
        else:
            text_rows = parse_copy_text(data, self.format, len(columns))
            rows = [[None if v is None else t.text_in(v.encode()) for v, t in
                     zip(row, pg_types, strict=True)] for row in text_rows]
        if not rows:
            return 0
        arrays = {}
        for i in range(len(columns)):
            values = [row[i] for row in rows]
            try:
                arrays[f"c{i}"] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                arrays[f"c{i}"] = pa.array([None if v is None else str(v) for v in values])
        staged = pa.table(arrays)
        backend = session.duckdb
        names = ", ".join('"' + n.replace('"', '""') + '"' for n, _ in columns)
        casts = ", ".join(f'CAST(c{i} AS {kind})' for i, (_, kind) in enumerate(columns))
        con = backend.con
        with backend._lock:
            con.register("__fsql_copy_in", staged)
            try:
                # in the client's block, or alone in a transaction (a shared table's space)
                with backend.writing(session):
                    try:
                        con.execute(f"INSERT INTO {self.table} ({names}) SELECT {casts} "
                                    "FROM __fsql_copy_in")
                    except Exception as exc:  # noqa: BLE001 - errors become SQLSTATEs here
                        raise errors.to_pg_error(exc, None, errors.from_duckdb) from None
            finally:
                with contextlib.suppress(duckdb.Error):  # a failed block: ROLLBACK drops it
                    con.unregister("__fsql_copy_in")
        return len(rows)


def plan_copy(session: Session, sql: str, param_oids: Sequence[int],
              plan_query: Callable[..., Plan | None]) -> Plan:
    """Plan a COPY statement (only STDOUT/STDIN targets); ``plan_query`` plans the query of
    ``COPY (query) TO STDOUT`` (the router's plan_statement, passed in: the router calls this)."""
    match = _COPY.match(sql)
    if not match:
        raise PgError(errors.SYNTAX_ERROR, "syntax error in COPY",
                      hint="Use COPY (query) TO STDOUT [WITH (FORMAT csv|binary)] or "
                      "COPY table FROM STDIN.")
    target = match.group("target").upper()
    direction = match.group("dir").upper()
    if target not in ("STDOUT", "STDIN"):
        raise PgError(
            errors.INSUFFICIENT_PRIVILEGE,
            "permission denied: COPY to or from a file or program is not allowed through "
            "fsql's SQL interface",
            hint="Use COPY ... TO STDOUT or COPY ... FROM STDIN (psql: \\copy).",
        )
    if (direction, target) not in (("TO", "STDOUT"), ("FROM", "STDIN")):
        raise PgError(errors.SYNTAX_ERROR, f"COPY {direction} {target} is not valid")
    fmt = _options(match.group("options") or "")
    if direction == "FROM":
        if match.group("query"):
            raise PgError(errors.SYNTAX_ERROR, "COPY FROM needs a table, not a query")
        cols = match.group("cols")
        names = [c.strip().strip('"') for c in cols.split(",")] if cols else None
        return CopyInPlan(sql, match.group("table"), names, fmt)
    query_sql = match.group("query")
    if query_sql is None:
        table = match.group("table")
        cols = match.group("cols")
        query_sql = f"SELECT {cols or '*'} FROM {table}"
    query = plan_query(session, query_sql, param_oids)
    if query is None:
        raise PgError(errors.SYNTAX_ERROR, "COPY needs a query")
    return CopyOutPlan(sql, query, fmt)
