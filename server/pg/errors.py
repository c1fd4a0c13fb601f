"""Errors as PostgreSQL reports them: severity, SQLSTATE, message, position.

Every failure the server sends is a :class:`PgError`. Clients map the SQLSTATE to exception
classes (psycopg's ``UndefinedTable`` for 42P01, pgjdbc's ``PSQLState``), so the code matters as
much as the text. Exceptions become PgErrors in one place, :func:`to_pg_error`, through a table
of mappings by exception class: DuckDB's own (:func:`from_duckdb`) are there from the start, and
a surface adds its own at wiring time with :func:`register_error_mapping` (fsql's errors:
:mod:`fsql_server.features.errors`). Anything unforeseen becomes ``XX000`` with its message,
never a dropped connection. Texts pass the surface's redactors (:func:`register_redactor`:
fsql masks store passwords) on their way to the wire, whatever raised them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb

# SQLSTATEs the server sends, by name (PostgreSQL's errcodes.txt).
SUCCESSFUL_COMPLETION = "00000"
CONNECTION_FAILURE = "08006"
PROTOCOL_VIOLATION = "08P01"
FEATURE_NOT_SUPPORTED = "0A000"
INVALID_PARAMETER_VALUE = "22023"
INVALID_TEXT_REPRESENTATION = "22P02"
INVALID_BINARY_REPRESENTATION = "22P03"
DIVISION_BY_ZERO = "22012"
NUMERIC_VALUE_OUT_OF_RANGE = "22003"
DATA_EXCEPTION = "22000"
BAD_COPY_FORMAT = "22P04"
INVALID_TRANSACTION_STATE = "25000"
SERIALIZATION_FAILURE = "40001"
IN_FAILED_TRANSACTION = "25P02"
NO_ACTIVE_TRANSACTION = "25P01"
INVALID_AUTHORIZATION = "28000"
INVALID_PASSWORD = "28P01"
INVALID_CURSOR_NAME = "34000"
INVALID_SQL_STATEMENT_NAME = "26000"
DUPLICATE_PREPARED_STATEMENT = "42P05"
DUPLICATE_CURSOR = "42P03"
SYNTAX_ERROR = "42601"
INSUFFICIENT_PRIVILEGE = "42501"
UNDEFINED_COLUMN = "42703"
UNDEFINED_TABLE = "42P01"
UNDEFINED_FUNCTION = "42883"
UNDEFINED_OBJECT = "42704"
DUPLICATE_OBJECT = "42710"
DUPLICATE_TABLE = "42P07"
RESERVED_NAME = "42939"
DATATYPE_MISMATCH = "42804"
INVALID_PARAMETER_TYPE = "42P18"
AMBIGUOUS_COLUMN = "42702"
TOO_MANY_CONNECTIONS = "53300"
PROGRAM_LIMIT_EXCEEDED = "54000"
STATEMENT_TOO_COMPLEX = "54001"
UNDEFINED_PARAMETER = "42P02"
QUERY_CANCELED = "57014"
ADMIN_SHUTDOWN = "57P01"
IDLE_SESSION_TIMEOUT = "57P05"
INVALID_CATALOG_NAME = "3D000"
INTERNAL_ERROR = "XX000"
OUT_OF_MEMORY = "53200"


@dataclass
class PgError(Exception):
    """An error to send as ErrorResponse. ``position`` is 1-based, in characters of the
    statement the client sent."""

    code: str
    message: str
    severity: str = "ERROR"
    position: int | None = None
    detail: str | None = None
    hint: str | None = None
    #: extra fields by protocol letter (e.g. ``{"W": context}``)
    extra: dict[str, str] = field(default_factory=dict)
    #: a 08P01 about a well-formed message's content (a Bind with the wrong number of
    #: parameters): PostgreSQL answers it with an ERROR and keeps the session, where a
    #: message that does not parse ends it
    session_kept: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def fields(self) -> list[tuple[str, str]]:
        """The (field letter, value) pairs of the ErrorResponse, in PostgreSQL's order, texts
        redacted (:func:`register_redactor`)."""
        out = [("S", self.severity), ("V", self.severity), ("C", self.code),
               ("M", redact(self.message))]
        if self.detail:
            out.append(("D", redact(self.detail)))
        if self.hint:
            out.append(("H", redact(self.hint)))
        if self.position is not None:
            out.append(("P", str(self.position)))
        out.extend((letter, redact(value)) for letter, value in self.extra.items())
        return out


#: what every error text passes before it is sent (see :func:`register_redactor`)
_REDACTORS: list[Callable[[str], str]] = []


def register_redactor(redactor: Callable[[str], str]) -> None:
    """Pass every error and notice text through ``redactor`` before it is sent (idempotent):
    a surface masks what must not leave the server, such as passwords in store URLs."""
    if redactor not in _REDACTORS:
        _REDACTORS.append(redactor)


def redact(text: str) -> str:
    """``text`` through every registered redactor."""
    for redactor in _REDACTORS:
        text = redactor(text)
    return text


def position_of(sql: str, line: int, col: int) -> int:
    """1-based character position of 1-based ``line``/``col`` in ``sql``."""
    lines = sql.split("\n")
    line = max(1, min(line, len(lines)))
    return sum(len(x) + 1 for x in lines[: line - 1]) + max(col, 1)


_DUCK_LINE = re.compile(r"\n\nLINE (\d+):.*", re.S)


def _duck_position(message: str, sql: str | None) -> int | None:
    """DuckDB marks the error with ``LINE n: <text>`` and a caret line; turn it into a
    PostgreSQL 1-based position in the statement."""
    match = re.search(r"LINE (\d+): (.*)\n(\s*)\^", message)
    if not match or sql is None:
        return None
    line = int(match.group(1))
    prefix = len(f"LINE {line}: ")
    col = len(match.group(3)) - prefix + 1
    # DuckDB may trim long lines with "..." at the start
    shown = match.group(2)
    if shown.startswith("..."):
        lines = sql.split("\n")
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        idx = text.find(shown[3:].rstrip("."))
        if idx >= 0:
            col = idx + col - 3
    return position_of(sql, line, col) if col > 0 else None


def from_duckdb(exc: Exception, sql: str | None = None) -> PgError:
    """Translate a DuckDB exception into the SQLSTATE PostgreSQL would use."""
    raw = str(exc)
    message = _DUCK_LINE.sub("", raw).strip()
    position = None
    # Strip DuckDB's "Kind Error: " prefix: PostgreSQL messages start with the problem.
    text = re.sub(r"^[A-Za-z ]+ Error: ", "", message)
    code = INTERNAL_ERROR
    hint = None
    if isinstance(exc, duckdb.ParserException):
        code = SYNTAX_ERROR
    elif isinstance(exc, duckdb.PermissionException):
        code = INSUFFICIENT_PRIVILEGE
    elif isinstance(exc, duckdb.CatalogException):
        if re.search(r"Table (with name|Function)", text) or "does not exist" in text:
            code = UNDEFINED_TABLE
        if "Function" in text or "function" in text:
            code = UNDEFINED_FUNCTION
        if "already exists" in text:
            code = DUPLICATE_TABLE
        table = re.search(r"Table with name (\S+) does not exist", text)
        if table:
            text = f'relation "{table.group(1)}" does not exist'
            code = UNDEFINED_TABLE
            hint = SESSION_TABLES_HINT
        function = re.search(r"Function with name (\S+) does not exist", text)
        if function:
            code, text = UNDEFINED_FUNCTION, f"function {function.group(1)} does not exist"
            hint = _FUNCTION_HINT + _did_you_mean(message)
    elif isinstance(exc, duckdb.BinderException):
        column = re.search(r'Referenced column "([^"]+)" not found', text)
        ambiguous = re.search(r'Ambiguous reference to column name "([^"]+)"', text)
        no_match = re.search(r"No function matches the given name and argument types "
                             r"'(\w+)\((.*)\)'", text)
        if column:
            code, text = UNDEFINED_COLUMN, f'column "{column.group(1)}" does not exist'
            rest = re.search(r"Candidate bindings: (.*)", message)
            if rest:
                hint = f"Perhaps you meant: {rest.group(1).strip()}."
        elif ambiguous:
            code, text = AMBIGUOUS_COLUMN, f'column reference "{ambiguous.group(1)}" is ambiguous'
        elif no_match:
            arguments = ", ".join(_pg_type_name(t) for t in no_match.group(2).split(", ") if t)
            code = UNDEFINED_FUNCTION
            text = f"function {no_match.group(1)}({arguments}) does not exist"
            hint = _FUNCTION_HINT
        elif "function" in text.lower():
            code = UNDEFINED_FUNCTION
        else:
            code = DATATYPE_MISMATCH
    elif isinstance(exc, duckdb.ConversionException):
        code = INVALID_TEXT_REPRESENTATION
        conversion = re.search(r"Could not convert string '((?:[^']|'')*)' to (\w+)", text)
        out_of_range = re.search(r"with value (\S+) can't be cast because the value is out of "
                                 r"range for the destination type (\w+)", text)
        if conversion:
            text = (f"invalid input syntax for type {_pg_type_name(conversion.group(2))}: "
                    f'"{conversion.group(1)}"')
        elif out_of_range:
            code = NUMERIC_VALUE_OUT_OF_RANGE
            text = (f'value "{out_of_range.group(1)}" is out of range for type '
                    f"{_pg_type_name(out_of_range.group(2))}")
    elif isinstance(exc, duckdb.OutOfRangeException):
        code = NUMERIC_VALUE_OUT_OF_RANGE
    elif isinstance(exc, duckdb.InvalidInputException):
        code = DATA_EXCEPTION if "Division" not in text else DIVISION_BY_ZERO
        if "locked" in text or "configuration" in text:
            code = INSUFFICIENT_PRIVILEGE
    elif isinstance(exc, duckdb.InterruptException):
        code, text = QUERY_CANCELED, "canceling statement due to user request"
    elif isinstance(exc, duckdb.NotImplementedException):
        code = FEATURE_NOT_SUPPORTED
    elif isinstance(exc, duckdb.OutOfMemoryException):
        code = OUT_OF_MEMORY
    elif isinstance(exc, duckdb.ConstraintException):
        code = "23000"
    elif isinstance(exc, duckdb.TransactionException):
        code = INVALID_TRANSACTION_STATE
        if "Conflict on" in text:
            # two transactions changed the same rows of a shared table: retry, as after
            # PostgreSQL's serialization failures
            code = SERIALIZATION_FAILURE
            hint = ("Another connection changed the same rows in a transaction still open or "
                    "committed meanwhile: ROLLBACK and run the transaction again.")
    elif isinstance(exc, duckdb.DataError):
        code = DATA_EXCEPTION
    if "division by zero" in text.lower():
        code = DIVISION_BY_ZERO
    named = re.search(r'(?:relation|column) "([^"]+)" does not exist', text)
    if named and sql:
        name = named.group(1).split(".")[-1]
        found = re.search(r'(?<![\w"])"?' + re.escape(name) + r'"?(?![\w"])', sql, re.I)
        if found:
            position = found.start() + 1
    return PgError(code, text.split("\n")[0] if code != INTERNAL_ERROR else text,
                   position=position, hint=hint)


#: an unknown table may be another session's temporary one, or another user's
SESSION_TABLES_HINT = (
    "A temporary table (CREATE TEMP TABLE) lives in the session that created it; a table made "
    "with CREATE TABLE is shared by the sessions of the user who created it, and another "
    "user's is not here. fsql's data is in the schemas features, offline, sources and fsql.")

_FUNCTION_HINT = ("No function matches the given name and argument types. You might need to "
                  "add explicit type casts.")

#: DuckDB type names in its messages → PostgreSQL's
_PG_TYPE_NAMES = {
    # DuckDB's INT8 is its 8-bit TINYINT, sent as smallint
    "INT8": "smallint", "TINYINT": "smallint", "UINT8": "smallint", "UINT16": "integer",
    "UINT32": "bigint", "UINT64": "numeric",
    "INT16": "smallint", "SMALLINT": "smallint", "INT32": "integer", "INTEGER": "integer",
    "INTEGER_LITERAL": "integer", "INT64": "bigint", "BIGINT": "bigint", "HUGEINT": "numeric",
    "DOUBLE": "double precision", "FLOAT": "real", "VARCHAR": "text", "STRING_LITERAL": "unknown",
    "BOOLEAN": "boolean", "BOOL": "boolean", "DATE": "date", "TIME": "time without time zone",
    "TIMESTAMP": "timestamp without time zone", "TIMESTAMP WITH TIME ZONE":
    "timestamp with time zone", "INTERVAL": "interval", "BLOB": "bytea", "UUID": "uuid",
    "JSON": "json", "NULL": "unknown",
}


def _pg_type_name(duckdb_type: str) -> str:
    """A DuckDB type as PostgreSQL names it in messages (``INT32`` → ``integer``)."""
    name = duckdb_type.strip().upper()
    if name.startswith(("DECIMAL", "NUMERIC")):
        return "numeric"
    if name.endswith("[]"):
        return _pg_type_name(name[:-2]) + "[]"
    return _PG_TYPE_NAMES.get(name, name.lower())


def _did_you_mean(message: str) -> str:
    """DuckDB's suggestion (``Did you mean "cosh"?``) as a sentence to add to a hint."""
    found = re.search(r'Did you mean "([^"]+)"\?', message)
    return f' Did you mean "{found.group(1)}"?' if found else ""


#: (exception, statement text or None) → the PgError to send
ErrorMapping = Callable[[Exception, str | None], PgError]

#: exception class → its mapping; the most specific class of an exception's MRO wins
_MAPPINGS: dict[type[Exception], ErrorMapping] = {duckdb.Error: from_duckdb}


def register_error_mapping(kind: type[Exception], mapping: ErrorMapping) -> None:
    """Let :func:`to_pg_error` turn ``kind`` (and its subclasses without a mapping of their
    own) into PgErrors with ``mapping``. A surface calls this when it is wired in."""
    _MAPPINGS[kind] = mapping


def internal_error(exc: Exception, sql: str | None = None) -> PgError:
    """An exception nothing maps: XX000 naming its class (the bug shows where it came from)."""
    return PgError(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


def to_pg_error(exc: Exception, sql: str | None = None,
                unmapped: ErrorMapping = internal_error) -> PgError:
    """The PgError to send for ``exc`` raised while running ``sql`` (positions point into
    it): a PgError as it is, a mapped class through its mapping, anything else through
    ``unmapped`` (what the engine sites pass: an error out of DuckDB's API that is not a
    ``duckdb.Error`` is still read as DuckDB's, its ``Kind Error:`` prefix stripped)."""
    if isinstance(exc, PgError):
        return exc
    for kind in type(exc).__mro__:
        mapping = _MAPPINGS.get(kind)
        if mapping is not None:
            return mapping(exc, sql)
    return unmapped(exc, sql)
