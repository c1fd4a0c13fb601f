"""Bind parameters: their declared types and their decoding.

Decoding is proportional to the parameter's size: a ``key = ANY($1)`` with 200,000 keys is a
1.3 MB text array that takes a third of a second to parse. The connection decodes a Bind that
large in a thread, within the statement's timeout (see ``Connection.on_large_bind``); this
module holds the decoding itself, free of the event loop.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from fsql_server.pg import errors
from fsql_server.pg.errors import PgError
from fsql_server.pg.types import TEXT, PgType, type_by_oid

#: a Bind this long (bytes) has its parameters decoded in a thread
BIND_IN_THREAD = 64 * 1024


def declared_types(declared: Sequence[int], planned: Sequence[PgType]) -> tuple[int, ...]:
    """The parameter type OIDs of a prepared statement, as ParameterDescription reports them:
    the type the client declared in Parse where it declared one (not 0, "unspecified"),
    else the one the plan inferred (text when it inferred none)."""
    count = max(len(declared), len(planned))
    oids = []
    for i in range(count):
        oid = declared[i] if i < len(declared) else 0
        if not oid:
            oid = planned[i].oid if i < len(planned) else TEXT.oid
        oids.append(oid)
    return tuple(oids)


def bind_values(raws: Sequence[bytes | None], oids: Sequence[int], formats: Sequence[int],
                planned: Sequence[PgType]) -> list[Any]:
    """Every parameter of a Bind, decoded (see :func:`bind_value`)."""
    return [
        None if raw is None else bind_value(raw, fmt, i, type_by_oid(oid),
                                            planned[i] if i < len(planned) else None)
        for i, (raw, oid, fmt) in enumerate(zip(raws, oids, formats, strict=True))
    ]


def bind_value(raw: bytes, fmt: int, index: int, wire: PgType, planned: PgType | None) -> Any:
    """One Bind parameter: decoded as the type it was declared as (what the client encoded
    it as), then converted to the type the plan takes when that differs (an ``int2`` bound
    where the plan compares with a ``bigint`` column), through the text form, as
    PostgreSQL's implicit casts of parameters do. An undecodable value is 22P03 (binary) or
    the type's own input error (text), an ERROR that keeps the session."""
    try:
        value = wire.binary_in(raw) if fmt else wire.text_in(raw)
    except PgError as error:
        if fmt:
            error.code = errors.INVALID_BINARY_REPRESENTATION
            error.message = f"incorrect binary data format in bind parameter {index + 1}"
            error.detail = f"A {wire.name} value was expected ({len(raw)} bytes were sent)."
        raise
    except (ValueError, OverflowError, struct.error, UnicodeDecodeError):
        raise PgError(errors.INVALID_BINARY_REPRESENTATION,
                      f"incorrect binary data format in bind parameter {index + 1}",
                      detail=f"A {wire.name} value was expected.") from None
    if planned is None or planned.oid == wire.oid or planned is TEXT and wire.oid == 705:
        return value
    return planned.text_in(wire.text_out(value))
