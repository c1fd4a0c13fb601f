"""The PostgreSQL v3 frontend/backend protocol: framing, parsing and encoding messages.

Pure functions over bytes, no I/O, so they can be tested against the captures in
``pgwire-captures/`` directly. A frontend message that does not parse raises
:class:`~fsql_server.pg.errors.PgError` with SQLSTATE 08P01 (protocol violation); the connection
layer answers it and closes, the way PostgreSQL does.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from fsql_server.pg.errors import PROTOCOL_VIOLATION, PgError

PROTOCOL_V3 = 196608  # 3 << 16
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_HEADER = struct.Struct("!ci")


# --------------------------------------------------------------------------------------------
# reading frontend messages


class Reader:
    """Cursor over one message body; every read checks bounds (a short body is 08P01)."""

    __slots__ = ("data", "pos", "what")

    def __init__(self, data: bytes, what: str):
        self.data = data
        self.pos = 0
        self.what = what

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.data):
            raise PgError(PROTOCOL_VIOLATION, f"invalid {self.what} message: truncated")

    def int16(self) -> int:
        self._need(2)
        (value,) = _I16.unpack_from(self.data, self.pos)
        self.pos += 2
        return int(value)

    def int32(self) -> int:
        self._need(4)
        (value,) = _I32.unpack_from(self.data, self.pos)
        self.pos += 4
        return int(value)

    def uint32(self) -> int:
        return self.int32() & 0xFFFFFFFF

    def byte(self) -> bytes:
        self._need(1)
        value = self.data[self.pos : self.pos + 1]
        self.pos += 1
        return value

    def take(self, n: int) -> bytes:
        self._need(n)
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def cstring(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise PgError(PROTOCOL_VIOLATION, f"invalid {self.what} message: unterminated string")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise PgError("22021", 'invalid byte sequence for encoding "UTF8"') from None

    def count(self) -> int:
        n = self.int16()
        if n < 0:
            raise PgError(PROTOCOL_VIOLATION, f"invalid {self.what} message: negative count")
        return n

    def rest(self) -> bytes:
        value = self.data[self.pos :]
        self.pos = len(self.data)
        return value


@dataclass(frozen=True)
class Startup:
    """A StartupMessage: protocol version and the client's parameters."""

    version: int
    params: dict[str, str]


def parse_startup(body: bytes) -> Startup:
    """Parse a StartupMessage body (after the length word)."""
    r = Reader(body, "startup")
    version = r.int32()
    params: dict[str, str] = {}
    while r.pos < len(body):
        key = r.cstring()
        if not key:
            break
        params[key] = r.cstring()
    return Startup(version, params)


@dataclass(frozen=True)
class ParseMsg:
    name: str
    sql: str
    param_oids: tuple[int, ...]


def parse_parse(body: bytes) -> ParseMsg:
    r = Reader(body, "Parse")
    name = r.cstring()
    sql = r.cstring()
    oids = tuple(r.uint32() for _ in range(r.count()))
    return ParseMsg(name, sql, oids)


class BindMsg(NamedTuple):
    """A Bind message (a named tuple: one is built per lookup, frozen dataclasses cost more)."""

    portal: str
    statement: str
    param_formats: tuple[int, ...]
    params: tuple[bytes | None, ...]
    result_formats: tuple[int, ...]


def parse_bind(body: bytes) -> BindMsg:
    """Parse a Bind body. Written with offsets instead of :class:`Reader` calls: every lookup
    sends one Bind, and this runs per lookup."""
    try:
        end = body.index(b"\x00")
        portal = body[:end].decode()
        pos = end + 1
        end = body.index(b"\x00", pos)
        statement = body[pos:end].decode()
        pos = end + 1
        (n_formats,) = _I16.unpack_from(body, pos)
        param_formats = struct.unpack_from(f"!{n_formats}h", body, pos + 2) \
            if n_formats > 0 else ()
        pos += 2 + 2 * max(n_formats, 0)
        (n_params,) = _I16.unpack_from(body, pos)
        pos += 2
        params: list[bytes | None] = []
        unpack_i32 = _I32.unpack_from
        for _ in range(n_params):
            (size,) = unpack_i32(body, pos)
            pos += 4
            if size == -1:
                params.append(None)
                continue
            if size < 0 or pos + size > len(body):
                raise struct.error("truncated")
            params.append(body[pos : pos + size])
            pos += size
        (n,) = _I16.unpack_from(body, pos)
        result_formats = struct.unpack_from(f"!{n}h", body, pos + 2) if n > 0 else ()
    except (ValueError, struct.error):
        raise PgError(PROTOCOL_VIOLATION, "invalid Bind message: truncated") from None
    except UnicodeDecodeError:
        raise PgError("22021", 'invalid byte sequence for encoding "UTF8"') from None
    if min(n_formats, n_params, n) < 0:
        raise PgError(PROTOCOL_VIOLATION, "invalid Bind message: negative count")
    for fmt in param_formats + result_formats:
        if fmt not in (0, 1):
            raise PgError(PROTOCOL_VIOLATION, f"unsupported format code: {fmt}")
    return BindMsg(portal, statement, param_formats, tuple(params), result_formats)


def parse_target(body: bytes, what: str) -> tuple[str, str]:
    """Describe and Close: ('S' or 'P', name)."""
    kind = body[:1]
    if kind == b"P" and body[-1:] == b"\x00" and body.find(b"\x00") == len(body) - 1:
        try:  # the common case, one per lookup: Describe of a portal
            return "P", body[1:-1].decode()
        except UnicodeDecodeError:
            pass
    r = Reader(body, what)
    text = r.byte().decode("latin-1")
    if text not in ("S", "P"):
        raise PgError(PROTOCOL_VIOLATION, f"invalid {what} message subtype {text!r}")
    return text, r.cstring()


def parse_execute(body: bytes) -> tuple[str, int]:
    end = body.find(b"\x00")
    if end >= 0 and len(body) == end + 5:  # the only well-formed shape: name, row limit
        try:
            return body[:end].decode(), _I32.unpack_from(body, end + 1)[0]
        except UnicodeDecodeError:
            pass
    r = Reader(body, "Execute")
    return r.cstring(), r.int32()


def parse_query(body: bytes) -> str:
    return Reader(body, "Query").cstring()


def parse_cancel(body: bytes) -> tuple[int, int]:
    """CancelRequest body after the request code: (process id, secret key)."""
    r = Reader(body, "CancelRequest")
    return r.int32(), r.int32()


def formats_for(formats: Sequence[int], n: int, what: str) -> list[int]:
    """Expand a Bind format list: none → all text, one → applies to all, else one each."""
    if not formats:
        return [0] * n
    if len(formats) == 1:
        return [formats[0]] * n
    if len(formats) != n:
        # an ERROR that keeps the session, as in PostgreSQL: the message itself was read whole
        raise PgError(
            PROTOCOL_VIOLATION,
            f"bind message has {len(formats)} {what} formats but {n} {what}s",
            session_kept=True,
        )
    return list(formats)


# --------------------------------------------------------------------------------------------
# writing backend messages


def message(kind: bytes, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload) + 4) + payload


def cstr(text: str) -> bytes:
    return text.encode() + b"\x00"


def authentication(code: int, data: bytes = b"") -> bytes:
    return message(b"R", _I32.pack(code) + data)


AUTH_OK = authentication(0)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!ii", pid, secret))


def ready_for_query(status: str) -> bytes:
    return message(b"Z", status.encode())


@dataclass(frozen=True)
class Field:
    """One column of a RowDescription."""

    name: str
    type_oid: int
    typlen: int = -1
    typmod: int = -1
    table_oid: int = 0
    attnum: int = 0


def row_description(fields: Sequence[Field], formats: Sequence[int]) -> bytes:
    parts = [_I16.pack(len(fields))]
    for f, fmt in zip(fields, formats, strict=True):
        parts.append(
            cstr(f.name)
            + struct.pack("!ihihih", f.table_oid, f.attnum, f.type_oid, f.typlen, f.typmod, fmt)
        )
    return message(b"T", b"".join(parts))


_NULL_FIELD = b"\xff\xff\xff\xff"


def data_row(values: Sequence[bytes | None]) -> bytes:
    parts = [b"", _I16.pack(len(values))]
    size = 6
    pack = _I32.pack
    for v in values:
        if v is None:
            parts.append(_NULL_FIELD)
            size += 4
        else:
            parts.append(pack(len(v)))
            parts.append(v)
            size += 4 + len(v)
    parts[0] = b"D" + pack(size)
    return b"".join(parts)


def encode_data_row(values: Sequence[object], encoders: Sequence[Callable[[Any], bytes]]) -> bytes:
    """A DataRow of ``values`` (None → NULL), each turned into bytes by its encoder: the
    per-row work of every result, done in one pass."""
    parts: list[bytes] = []
    append = parts.append
    pack = _I32.pack
    for value, encode in zip(values, encoders, strict=True):
        if value is None:
            append(_NULL_FIELD)
        else:
            data = encode(value)
            append(pack(len(data)) + data)
    body = b"".join(parts)
    return b"D" + pack(len(body) + 6) + _I16.pack(len(encoders)) + body


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def parameter_description(oids: Iterable[int]) -> bytes:
    oids = list(oids)
    return message(b"t", _I16.pack(len(oids)) + b"".join(struct.pack("!I", o) for o in oids))


def error_response(fields: Iterable[tuple[str, str]]) -> bytes:
    payload = b"".join(k.encode() + cstr(v) for k, v in fields) + b"\x00"
    return message(b"E", payload)


def notice_response(fields: Iterable[tuple[str, str]]) -> bytes:
    payload = b"".join(k.encode() + cstr(v) for k, v in fields) + b"\x00"
    return message(b"N", payload)


def copy_response(kind: bytes, binary: bool, ncols: int) -> bytes:
    """CopyOutResponse ('H') or CopyInResponse ('G')."""
    fmt = 1 if binary else 0
    return message(kind, struct.pack("!bh", fmt, ncols) + _I16.pack(fmt) * ncols)


def copy_data(data: bytes) -> bytes:
    return message(b"d", data)


PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
NO_DATA = message(b"n")
PORTAL_SUSPENDED = message(b"s")
EMPTY_QUERY = message(b"I")
COPY_DONE = message(b"c")

#: ReadyForQuery per transaction status
READY = {status: ready_for_query(status) for status in "ITE"}
_SELECT_COMPLETE = [command_complete(f"SELECT {n}") for n in range(64)]


def select_complete(n: int) -> bytes:
    """CommandComplete ``SELECT n`` (prebuilt for the row counts of lookups)."""
    return _SELECT_COMPLETE[n] if n < 64 else command_complete(f"SELECT {n}")
