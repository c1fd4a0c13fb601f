"""PostgreSQL types on the wire: OIDs, names, lengths and their codecs (:mod:`.codecs`).

Only built-in type OIDs ever leave the server: a client that sees an unknown OID (asyncpg,
pgjdbc) starts introspecting ``pg_type``, which a feature store has no reason to emulate.
Values arrive here as the Python objects DuckDB or the online store return, and go out in the
exact text format PostgreSQL 15 prints (``DateStyle=ISO``, ``IntervalStyle=postgres``) or its
binary ``send`` format, which the captures in ``pgwire-captures/`` show byte for byte.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fsql_server.pg import codecs
from fsql_server.pg.codecs import Decoder, Encoder
from fsql_server.pg.errors import PgError


@dataclass(frozen=True)
class PgType:
    """One built-in PostgreSQL type: its OID, name, storage length and codecs."""

    oid: int
    name: str
    typlen: int
    text_out: Encoder
    binary_out: Encoder
    text_in: Decoder
    binary_in: Decoder
    #: OID of the array type whose elements are this type (0 if none)
    array_oid: int = 0
    #: for array types, the element type's OID
    elem_oid: int = 0


# --------------------------------------------------------------------------------------------
# the registry of types

TYPES: dict[int, PgType] = {}
BY_NAME: dict[str, PgType] = {}


def _register(t: PgType) -> PgType:
    TYPES[t.oid] = t
    BY_NAME[t.name] = t
    return t


BOOL = _register(PgType(16, "bool", 1, codecs.bool_text, codecs.bool_bin, codecs.bool_in, codecs.bool_bin_in, 1000))
BYTEA = _register(PgType(17, "bytea", -1, codecs.bytea_text, codecs.bytea_bin, codecs.bytea_in, bytes, 1001))
CHAR = _register(PgType(18, "char", 1, codecs.str_text, codecs.str_text, codecs.str_in, codecs.str_in, 1002))
NAME = _register(PgType(19, "name", 64, codecs.str_text, codecs.str_text, codecs.str_in, codecs.str_in, 1003))
INT8 = _register(
    PgType(20, "int8", 8, codecs.int_text, codecs.int8_bin, codecs.int_in, codecs.fixed_width(codecs.INT8_FORMAT, "bigint"), 1016)
)
INT2 = _register(
    PgType(21, "int2", 2, codecs.int_text, codecs.int2_bin, codecs.int_in, codecs.fixed_width(codecs.INT2_FORMAT, "smallint"), 1005)
)
INT4 = _register(
    PgType(23, "int4", 4, codecs.int_text, codecs.int4_bin, codecs.int_in, codecs.fixed_width(codecs.INT4_FORMAT, "integer"), 1007)
)
TEXT = _register(PgType(25, "text", -1, codecs.str_text, codecs.str_text, codecs.str_in, codecs.str_in, 1009))
OID = _register(PgType(26, "oid", 4, codecs.int_text, codecs.int4_bin, codecs.oid_in, codecs.fixed_width(codecs.INT4_FORMAT, "oid"), 1028))
JSON = _register(PgType(114, "json", -1, codecs.json_text, codecs.json_text, codecs.str_in, codecs.str_in, 199))
FLOAT4 = _register(
    PgType(700, "float4", 4, codecs.float4_text, codecs.float4_bin, codecs.float_in, codecs.fixed_width(codecs.FLOAT4_FORMAT, "real"), 1021)
)
FLOAT8 = _register(
    PgType(
        701, "float8", 8, codecs.float8_text, codecs.float8_bin, codecs.float_in, codecs.fixed_width(codecs.FLOAT8_FORMAT, "double"), 1022
    )
)
UNKNOWN = _register(PgType(705, "unknown", -2, codecs.str_text, codecs.str_text, codecs.str_in, codecs.str_in))
BPCHAR = _register(PgType(1042, "bpchar", -1, codecs.str_text, codecs.str_text, codecs.str_in, codecs.str_in, 1014))
VARCHAR = _register(PgType(1043, "varchar", -1, codecs.str_text, codecs.str_text, codecs.str_in, codecs.str_in, 1015))
DATE = _register(PgType(1082, "date", 4, codecs.date_text, codecs.date_bin, codecs.date_in, codecs.date_bin_in, 1182))
TIME = _register(PgType(1083, "time", 8, codecs.time_text, codecs.time_bin, codecs.time_in, codecs.time_bin_in, 1183))
TIMESTAMP = _register(
    PgType(
        1114, "timestamp", 8, codecs.timestamp_text, codecs.timestamp_bin, codecs.timestamp_in,
        codecs.timestamp_bin_in, 1115,
    )
)
TIMESTAMPTZ = _register(
    PgType(
        1184, "timestamptz", 8, codecs.timestamptz_text, codecs.timestamptz_bin, codecs.timestamptz_in,
        codecs.timestamptz_bin_in, 1185,
    )
)
INTERVAL = _register(
    PgType(
        1186, "interval", 16, codecs.interval_text, codecs.interval_bin, codecs.interval_in, codecs.interval_bin_in, 1187
    )
)
NUMERIC = _register(
    PgType(1700, "numeric", -1, codecs.numeric_text, codecs.numeric_bin, codecs.numeric_in, codecs.numeric_bin_in, 1231)
)
UUID = _register(PgType(2950, "uuid", 16, codecs.str_text, codecs.uuid_bin, codecs.uuid_in, codecs.uuid_bin_in, 2951))
JSONB = _register(PgType(3802, "jsonb", -1, codecs.json_text, codecs.jsonb_bin, codecs.str_in, codecs.jsonb_bin_in, 3807))


# --------------------------------------------------------------------------------------------
# arrays


def _quote_array_element(text: str) -> str:
    if text == "" or text.upper() == "NULL" or re.search(r'[{},"\\\s]', text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _array_text(elem: PgType) -> Encoder:
    def encode(value: Any) -> bytes:
        def render(items: Any) -> str:
            parts = []
            for item in items:
                if item is None:
                    parts.append("NULL")
                elif isinstance(item, (list, tuple)) and elem.oid not in (JSON.oid, JSONB.oid):
                    parts.append(render(item))
                else:
                    parts.append(_quote_array_element(elem.text_out(item).decode()))
            return "{" + ",".join(parts) + "}"

        return render(value).encode()

    return encode


def _array_dims(value: Any) -> list[int]:
    dims = [len(value)]
    if value and isinstance(value[0], (list, tuple)):
        dims += _array_dims(value[0])
    return dims


def _flatten(value: Any, depth: int) -> list[Any]:
    if depth == 1:
        return list(value)
    return [x for item in value for x in _flatten(item, depth - 1)]


def _array_bin(elem: PgType, lower: int = 1) -> Encoder:
    def encode(value: Any) -> bytes:
        if len(value) == 0:
            return struct.pack("!iii", 0, 0, elem.oid)
        dims = _array_dims(value) if elem.oid not in (JSON.oid, JSONB.oid) else [len(value)]
        items = _flatten(value, len(dims))
        has_null = any(item is None for item in items)
        out = [struct.pack("!iii", len(dims), int(has_null), elem.oid)]
        out += [struct.pack("!ii", n, lower) for n in dims]
        for item in items:
            if item is None:
                out.append(b"\xff\xff\xff\xff")
            else:
                data = elem.binary_out(item)
                out.append(codecs.INT4_FORMAT.pack(len(data)) + data)
        return b"".join(out)

    return encode


def _parse_array_text(text: str) -> list[Any]:
    """Split PostgreSQL array text (``{a,"b c",NULL,{1,2}}``) into nested lists of str/None."""
    pos = 0

    def parse() -> list[Any]:
        nonlocal pos
        if text[pos] != "{":
            raise PgError("22P02", f'malformed array literal: "{text}"')
        pos += 1
        items: list[Any] = []
        while pos < len(text):
            ch = text[pos]
            if ch == "}":
                pos += 1
                return items
            if ch == "," or ch.isspace():  # PostgreSQL allows blanks around elements
                pos += 1
                continue
            if ch == "{":
                items.append(parse())
            elif ch == '"':
                pos += 1
                buf = []
                while text[pos] != '"':
                    if text[pos] == "\\":
                        pos += 1
                    buf.append(text[pos])
                    pos += 1
                pos += 1
                items.append("".join(buf))
            else:
                start = pos
                while text[pos] not in ",}":
                    pos += 1
                raw = text[start:pos].strip()
                items.append(None if raw.upper() == "NULL" else raw)
        raise PgError("22P02", f'malformed array literal: "{text}"')

    try:
        return parse()
    except IndexError:
        raise PgError("22P02", f'malformed array literal: "{text}"') from None


def _array_text_in(elem: PgType) -> Decoder:
    def decode(data: bytes) -> list[Any]:
        def convert(items: list[Any]) -> list[Any]:
            return [
                convert(x) if isinstance(x, list) else None if x is None
                else elem.text_in(x.encode())
                for x in items
            ]

        return convert(_parse_array_text(data.decode()))

    return decode


def _array_bin_in(elem: PgType) -> Decoder:
    def decode(data: bytes) -> list[Any]:
        try:
            ndim, _flags, _elem_oid = struct.unpack("!iii", data[:12])
            if ndim == 0:
                return []
            dims = [struct.unpack("!ii", data[12 + 8 * i : 20 + 8 * i])[0] for i in range(ndim)]
            pos = 12 + 8 * ndim
            items: list[Any] = []
            for _ in range(math.prod(dims)):
                (length,) = struct.unpack("!i", data[pos : pos + 4])
                pos += 4
                if length < 0:
                    items.append(None)
                else:
                    items.append(elem.binary_in(data[pos : pos + length]))
                    pos += length
        except struct.error:
            raise PgError("22P03", "incorrect binary data format for array parameter") from None
        for n in reversed(dims[1:]):
            items = [items[i : i + n] for i in range(0, len(items), n)]
        return items

    return decode


for _elem in list(TYPES.values()):
    if _elem.array_oid:
        _register(
            PgType(
                _elem.array_oid, "_" + _elem.name, -1, _array_text(_elem), _array_bin(_elem),
                _array_text_in(_elem), _array_bin_in(_elem), 0, _elem.oid,
            )
        )


def _vector(oid: int, name: str, elem: PgType) -> PgType:
    """int2vector / oidvector (``pg_index.indkey``, ``pg_proc.proargtypes``): text is the
    elements separated by spaces (``1 2``), binary is an array of ``elem``, as PostgreSQL sends
    them. Values are lists, or that text already (the catalog database computes it)."""
    array_out = _array_bin(elem)
    array_in = _array_bin_in(elem)

    def items(value: Any) -> list[Any]:
        if isinstance(value, str):
            return [int(part) for part in value.split()]
        return list(value)

    def text_out(value: Any) -> bytes:
        return " ".join(str(v) for v in items(value)).encode()

    def text_in(data: bytes) -> list[Any]:
        return [int(part) for part in data.decode().split()]

    return _register(PgType(oid, name, -1, text_out, lambda v: array_out(items(v)), text_in,
                            array_in, 0, elem.oid))


INT2VECTOR = _vector(22, "int2vector", INT2)
OIDVECTOR = _vector(30, "oidvector", OID)

#: first element of a list that stands for a one-dimensional array whose subscripts start at
#: 0 (an int2vector/oidvector cast to an array: ``proargtypes::regtype[]``), put there by the
#: catalog's rewrite for the columns :data:`ZERO_BASED_TEXT_ARRAY` sends
ZERO_BASED = "\x01fsql:lower-bound-0"


def _zero_based_array(elem: PgType) -> PgType:
    """``elem[]`` whose values may start with :data:`ZERO_BASED`: those are sent as
    PostgreSQL sends an array with subscripts from 0 (text ``[0:1]={oid,integer}``, binary
    with lower bound 0); the others as usual (``{oid,integer}``)."""
    text, binary = _array_text(elem), _array_bin(elem)
    zero_binary = _array_bin(elem, lower=0)

    def text_out(value: Any) -> bytes:
        if value and value[0] == ZERO_BASED:
            items = value[1:]
            return (f"[0:{len(items) - 1}]=".encode() if items else b"") + text(items)
        return text(value)

    def binary_out(value: Any) -> bytes:
        if value and value[0] == ZERO_BASED:
            return zero_binary(value[1:])
        return binary(value)

    array = TYPES[elem.array_oid]
    return PgType(array.oid, array.name, -1, text_out, binary_out, array.text_in,
                  array.binary_in, 0, elem.oid)


ZERO_BASED_TEXT_ARRAY = _zero_based_array(TEXT)


def type_by_oid(oid: int) -> PgType:
    """The built-in type for ``oid``; unknown OIDs are treated as text (what PG does for 0)."""
    return TYPES.get(oid, TEXT)


# --------------------------------------------------------------------------------------------
# DuckDB → PostgreSQL

_DUCK_SCALARS = {
    "BOOLEAN": BOOL, "TINYINT": INT2, "SMALLINT": INT2, "UTINYINT": INT2, "INTEGER": INT4,
    "USMALLINT": INT4, "BIGINT": INT8, "UINTEGER": INT8, "UBIGINT": NUMERIC,
    "HUGEINT": NUMERIC, "UHUGEINT": NUMERIC, "FLOAT": FLOAT4, "DOUBLE": FLOAT8,
    "VARCHAR": TEXT, "BLOB": BYTEA, "DATE": DATE, "TIME": TIME, "TIMESTAMP": TIMESTAMP,
    "TIMESTAMP_S": TIMESTAMP, "TIMESTAMP_MS": TIMESTAMP, "TIMESTAMP_NS": TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ, "INTERVAL": INTERVAL, "UUID": UUID, "JSON": JSON,
    "NULL": TEXT, '"NULL"': TEXT,
}


def pg_type_for_duckdb(type_name: str) -> PgType:
    """The PostgreSQL type a DuckDB column type is sent as (STRUCT/MAP/ENUM/... as text)."""
    name = type_name.upper()
    array = re.fullmatch(r"(.*)\[\d*\]", name)
    if array:
        elem = pg_type_for_duckdb(array.group(1))
        if elem.array_oid:
            return TYPES[elem.array_oid]
        return TEXT
    if name.startswith("DECIMAL") or name.startswith("NUMERIC"):
        return NUMERIC
    return _DUCK_SCALARS.get(name, TEXT)


_PG_TO_DUCK = {
    BOOL.oid: "BOOLEAN", INT2.oid: "SMALLINT", INT4.oid: "INTEGER", INT8.oid: "BIGINT",
    FLOAT4.oid: "FLOAT", FLOAT8.oid: "DOUBLE", NUMERIC.oid: "DECIMAL(38,10)", TEXT.oid: "VARCHAR",
    VARCHAR.oid: "VARCHAR", BPCHAR.oid: "VARCHAR", NAME.oid: "VARCHAR", BYTEA.oid: "BLOB",
    DATE.oid: "DATE", TIME.oid: "TIME", TIMESTAMP.oid: "TIMESTAMP",
    TIMESTAMPTZ.oid: "TIMESTAMPTZ", INTERVAL.oid: "INTERVAL", UUID.oid: "UUID", JSON.oid: "JSON",
    JSONB.oid: "JSON", OID.oid: "BIGINT",
}


def duckdb_type_for_pg(oid: int) -> str | None:
    """The DuckDB type a parameter of PostgreSQL type ``oid`` is bound as (None: leave untyped)."""
    t = TYPES.get(oid)
    if t is None:
        return None
    if t.elem_oid:
        elem = _PG_TO_DUCK.get(t.elem_oid)
        return f"{elem}[]" if elem else None
    return _PG_TO_DUCK.get(oid)


def pg_type_for_python(value: Any) -> PgType:
    """The type for a Python value whose column type is not otherwise known."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT8
    if isinstance(value, float):
        return FLOAT8
    if isinstance(value, Decimal):
        return NUMERIC
    if isinstance(value, dt.datetime):
        return TIMESTAMPTZ if value.tzinfo else TIMESTAMP
    if isinstance(value, dt.date):
        return DATE
    if isinstance(value, dt.timedelta):
        return INTERVAL
    if isinstance(value, bytes):
        return BYTEA
    return TEXT


def sql_type_to_pg(type_sql: str) -> PgType:
    """A SQL type name as written in fsql definitions or casts (``BIGINT``, ``DOUBLE``,
    ``VARCHAR(20)``, ``int4``, ``timestamptz``) → the PostgreSQL type."""
    name = re.sub(r"\(.*\)", "", type_sql.strip()).strip().upper()
    aliases = {
        "INT": "INTEGER", "INT4": "INTEGER", "INT8": "BIGINT", "INT2": "SMALLINT",
        "FLOAT8": "DOUBLE", "DOUBLE PRECISION": "DOUBLE", "REAL": "FLOAT", "FLOAT4": "FLOAT",
        "TEXT": "VARCHAR", "STRING": "VARCHAR", "CHARACTER VARYING": "VARCHAR", "BOOL": "BOOLEAN",
        "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE", "BYTEA": "BLOB", "JSONB": "JSON",
        "CHAR": "VARCHAR", "BPCHAR": "VARCHAR",
    }
    if name.endswith("[]"):
        elem = sql_type_to_pg(name[:-2])
        return TYPES.get(elem.array_oid, TEXT)
    return pg_type_for_duckdb(aliases.get(name, name))
