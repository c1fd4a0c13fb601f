"""fsql's errors as SQLSTATEs: the mappings this surface adds to the wire layer's table
(:func:`fsql_server.pg.errors.to_pg_error`) when it is wired in (:func:`register`).

Definition problems carry a location: the error's position points at the offending text of
the statement. Other :class:`~fsql.errors.FsqlError` classes map by kind; anything else of
fsql's is ``XX000`` with its message.
"""

from __future__ import annotations

from fsql_server.pg.errors import (
    DATA_EXCEPTION,
    DATATYPE_MISMATCH,
    FEATURE_NOT_SUPPORTED,
    INSUFFICIENT_PRIVILEGE,
    INTERNAL_ERROR,
    SYNTAX_ERROR,
    UNDEFINED_COLUMN,
    UNDEFINED_OBJECT,
    ErrorMapping,
    PgError,
    position_of,
    register_error_mapping,
    register_redactor,
)

from fsql import errors
from fsql.secrets import redact
from fsql.stores.sources import without_file_content

#: fsql problem codes (fsql.errors.Problem.code) → SQLSTATE; anything else is 42P17
#: (invalid_object_definition)
DEFINITION_CODES = {
    "syntax": SYNTAX_ERROR,
    "invalid-select": SYNTAX_ERROR,
    "duplicate-option": SYNTAX_ERROR,
    "invalid-option": SYNTAX_ERROR,
    "invalid-name": "42602",
    "source-location": INSUFFICIENT_PRIVILEGE,
    "unknown-column": UNDEFINED_COLUMN,
    "unknown-name": UNDEFINED_OBJECT,
    "unknown-reference": UNDEFINED_OBJECT,
    "unknown-drop": UNDEFINED_OBJECT,
    "unknown-type": UNDEFINED_OBJECT,
    "invalid-type": DATATYPE_MISMATCH,
    "type-mismatch": DATATYPE_MISMATCH,
    "not-supported": FEATURE_NOT_SUPPORTED,
    "dropped-dependency": "2BP01",
}


def from_definition_error(exc: Exception, sql: str | None = None) -> PgError:
    """A :class:`fsql.errors.DefinitionError`: the first problem's code and location, every
    problem's message."""
    assert isinstance(exc, errors.DefinitionError)
    first = exc.problems[0] if exc.problems else None
    position = None
    if first is not None and first.location is not None and sql is not None:
        position = position_of(sql, first.location.line, first.location.col)
    code = DEFINITION_CODES.get(first.code if first is not None else "", "42P17")
    message = "; ".join(p.message for p in exc.problems) or str(exc)
    return PgError(code, message, position=position)


def register() -> None:
    """Add fsql's mappings to the wire layer's table, and mask store passwords and source
    files' text in every error the server sends (idempotent)."""
    register_redactor(redact)
    register_redactor(without_file_content)  # a source file's rows never reach a client
    register_error_mapping(errors.DefinitionError, from_definition_error)
    for kind, code in ((errors.NotFoundError, UNDEFINED_OBJECT),
                       (errors.NotSupportedError, FEATURE_NOT_SUPPORTED),
                       (errors.OnlineStoreUnavailable, "58000"),
                       (errors.SourceSchemaError, DATA_EXCEPTION),
                       (errors.FsqlError, INTERNAL_ERROR)):
        register_error_mapping(kind, _message_as(code))


def _message_as(code: str) -> ErrorMapping:
    """A mapping that sends the exception's message under ``code``."""

    def mapping(exc: Exception, sql: str | None = None) -> PgError:
        return PgError(code, str(exc))

    return mapping
