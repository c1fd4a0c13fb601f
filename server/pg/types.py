"""PostgreSQL types on the wire: OIDs, and text/binary encoders and decoders.

Only built-in type OIDs ever leave the server: a client that sees an unknown OID (asyncpg,
pgjdbc) starts introspecting ``pg_type``, which a feature store has no reason to emulate.
Values arrive here as the Python objects DuckDB or the online store return, and go out in the
exact text format PostgreSQL 15 prints (``DateStyle=ISO``, ``IntervalStyle=postgres``) or its
binary ``send`` format, which the captures in ``pgwire-captures/`` show byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fsql_server.pg.errors import PgError

PG_EPOCH_DATE = dt.date(2000, 1, 1)
PG_EPOCH = dt.datetime(2000, 1, 1)
PG_EPOCH_TZ = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_PG_EPOCH_ORDINAL = PG_EPOCH_DATE.toordinal()

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes], Any]


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
# text output


def _text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str).encode()
    return str(value).encode()


def _bool_text(value: Any) -> bytes:
    return b"t" if value else b"f"


def _int_text(value: Any) -> bytes:
    return str(int(value)).encode()


def format_float(value: float) -> str:
    """A float as PostgreSQL 15 prints it: shortest round-trip digits, ``1`` not ``1.0``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(float(value))
    if text.endswith(".0"):
        text = text[:-2]
    elif "e" in text:
        mantissa, exp = text.split("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        text = f"{mantissa}e{sign}{digits}"
    return text


def _float4_text(value: Any) -> bytes:
    # DuckDB hands FLOAT back as a double; print the float32's shortest form, as PG does.
    f32 = struct.unpack("!f", struct.pack("!f", float(value)))[0]
    if math.isfinite(f32):
        for digits in range(1, 10):
            candidate = float(f"{f32:.{digits}g}")
            if struct.pack("!f", candidate) == struct.pack("!f", f32):
                return format_float(candidate).encode()
    return format_float(f32).encode()


def _float8_text(value: Any) -> bytes:
    text = repr(value if type(value) is float else float(value))
    if text[-2:] == ".0":
        return text[:-2].encode()
    if "e" in text or "n" in text:  # exponents, nan, inf: PostgreSQL's spelling
        return format_float(float(value)).encode()
    return text.encode()


def _numeric_text(value: Any) -> bytes:
    if isinstance(value, float):
        value = Decimal(repr(value))
    elif not isinstance(value, Decimal):
        value = Decimal(value)
    if value.is_nan():
        return b"NaN"
    if value.is_infinite():
        return b"Infinity" if value > 0 else b"-Infinity"
    return format(value, "f").encode()


def _date_text(value: Any) -> bytes:
    if isinstance(value, dt.datetime):
        value = value.date()
    return value.isoformat().encode()


def _time_text(value: Any) -> bytes:
    return value.isoformat().encode()


def _timestamp_text(value: Any) -> bytes:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ").encode()


def _timestamptz_text(value: Any) -> bytes:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return (value.isoformat(sep=" ") + "+00").encode()


def timestamptz_text_in_zone(zone_name: str) -> Encoder:
    """The timestamptz text encoder for a session whose ``TimeZone`` is ``zone_name``:
    PostgreSQL prints the value in that zone with its offset (``+01``, ``+05:30``)."""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return _timestamptz_text

    def encode(value: Any) -> bytes:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            value = dt.datetime.combine(value, dt.time())
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        local = value.astimezone(zone)
        offset = local.utcoffset() or dt.timedelta(0)
        sign = "-" if offset < dt.timedelta(0) else "+"
        minutes = abs(int(offset.total_seconds())) // 60
        suffix = f"{sign}{minutes // 60:02d}" + (f":{minutes % 60:02d}" if minutes % 60 else "")
        return (local.replace(tzinfo=None).isoformat(sep=" ") + suffix).encode()

    return encode


def _interval_parts(value: dt.timedelta) -> tuple[int, int]:
    """(days, microseconds) with both parts carrying the sign, as PostgreSQL keeps them:
    ``-5 minutes`` is 0 days and -300,000,000 µs, not Python's -1 day + 23:55."""
    total = (value.days * 86400 + value.seconds) * 1_000_000 + value.microseconds
    sign = -1 if total < 0 else 1
    days, rest = divmod(abs(total), 86400 * 1_000_000)
    return sign * days, sign * rest


def format_interval(value: dt.timedelta) -> str:
    """``IntervalStyle=postgres``: ``3 days 04:05:06.5``, ``-00:05:00``, ``00:00:00``."""
    days, micros = _interval_parts(value)
    parts = []
    if days:
        parts.append(f"{days} day" + ("" if days == 1 else "s"))  # PG: "-1 days"
    if micros or not days:
        seconds, frac = divmod(abs(micros), 1_000_000)
        hours, rem = divmod(seconds, 3600)
        minutes, secs = divmod(rem, 60)
        clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
        if frac:
            clock += f".{frac:06d}".rstrip("0")
        if micros < 0:
            clock = "-" + clock
        elif days < 0:
            clock = "+" + clock
        parts.append(clock)
    return " ".join(parts)


def _interval_text(value: Any) -> bytes:
    return format_interval(value).encode()


def _bytea_text(value: Any) -> bytes:
    return b"\\x" + bytes(value).hex().encode()


def _json_text(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, default=str).encode()


# --------------------------------------------------------------------------------------------
# binary output

_INT2 = struct.Struct("!h")
_INT4 = struct.Struct("!i")
_INT8 = struct.Struct("!q")
_FLOAT4 = struct.Struct("!f")
_FLOAT8 = struct.Struct("!d")


def _bool_bin(value: Any) -> bytes:
    return b"\x01" if value else b"\x00"


def _int2_bin(value: Any) -> bytes:
    return _INT2.pack(int(value))


def _int4_bin(value: Any) -> bytes:
    return _INT4.pack(int(value))


def _int8_bin(value: Any) -> bytes:
    return _INT8.pack(int(value))


def _float4_bin(value: Any) -> bytes:
    return _FLOAT4.pack(float(value))


def _float8_bin(value: Any) -> bytes:
    return _FLOAT8.pack(float(value))


def _numeric_bin(value: Any) -> bytes:
    """PostgreSQL's numeric send format: base-10000 digits with weight, sign and scale."""
    if isinstance(value, float):
        value = Decimal(repr(value))
    elif not isinstance(value, Decimal):
        value = Decimal(value)
    if value.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    if value.is_infinite():
        return struct.pack("!hhHh", 0, 0, 0xD000 if value > 0 else 0xF000, 0)
    sign_bit, digit_tuple, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    dscale = max(0, -exponent)
    digits = "".join(map(str, digit_tuple))
    if exponent > 0:
        digits += "0" * exponent
        exponent = 0
    int_len = len(digits) + exponent  # digits before the decimal point
    int_part = digits[:int_len] if int_len > 0 else ""
    frac_part = digits[int_len:] if int_len > 0 else "0" * (-int_len) + digits
    int_part = int_part.lstrip("0")
    pad_int = (-len(int_part)) % 4
    int_part = "0" * pad_int + int_part
    pad_frac = (-len(frac_part)) % 4
    frac_part = frac_part + "0" * pad_frac
    groups = [int(int_part[i : i + 4]) for i in range(0, len(int_part), 4)]
    weight = len(groups) - 1
    groups += [int(frac_part[i : i + 4]) for i in range(0, len(frac_part), 4)]
    # strip leading zero groups (adjusting weight) and trailing zero groups
    while groups and groups[0] == 0:
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    sign = 0x4000 if sign_bit else 0x0000
    return struct.pack(f"!hhHh{len(groups)}H", len(groups), weight, sign, dscale, *groups)


def _date_bin(value: Any) -> bytes:
    if isinstance(value, dt.datetime):
        value = value.date()
    return _INT4.pack(value.toordinal() - _PG_EPOCH_ORDINAL)


def _time_bin(value: Any) -> bytes:
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
    return _INT8.pack(micros + value.microsecond)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _timestamp_bin(value: Any) -> bytes:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return _INT8.pack(_micros(value - PG_EPOCH))


def _timestamptz_bin(value: Any) -> bytes:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return _INT8.pack(_micros(value - PG_EPOCH_TZ))


def _interval_bin(value: Any) -> bytes:
    days, micros = _interval_parts(value)
    return struct.pack("!qii", micros, days, 0)


def _bytea_bin(value: Any) -> bytes:
    return bytes(value)


def _jsonb_bin(value: Any) -> bytes:
    return b"\x01" + _json_text(value)


def _uuid_bin(value: Any) -> bytes:
    return uuid.UUID(str(value)).bytes


# --------------------------------------------------------------------------------------------
# input (parameters and COPY FROM): text and binary


def _bool_in(data: bytes) -> bool:
    text = data.decode().strip().lower()
    if text in ("t", "true", "y", "yes", "on", "1"):
        return True
    if text in ("f", "false", "n", "no", "off", "0"):
        return False
    raise PgError("22P02", f'invalid input syntax for type boolean: "{data.decode()}"')


def _int_in(data: bytes) -> int:
    try:
        return int(data.decode().strip())
    except ValueError:
        raise PgError(
            "22P02", f'invalid input syntax for type integer: "{data.decode()}"'
        ) from None


def _float_in(data: bytes) -> float:
    text = data.decode().strip()
    special = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf}
    if text.lower() in special:
        return special[text.lower()]
    try:
        return float(text)
    except ValueError:
        raise PgError(
            "22P02", f'invalid input syntax for type double precision: "{text}"'
        ) from None


def _numeric_in(data: bytes) -> Decimal:
    try:
        return Decimal(data.decode().strip())
    except InvalidOperation:
        raise PgError(
            "22P02", f'invalid input syntax for type numeric: "{data.decode()}"'
        ) from None


def _str_in(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise PgError("22021", "invalid byte sequence for encoding \"UTF8\"") from None


def _date_in(data: bytes) -> dt.date:
    try:
        return dt.date.fromisoformat(data.decode().strip())
    except ValueError:
        raise PgError(
            "22007", f'invalid input syntax for type date: "{data.decode()}"'
        ) from None


def _time_in(data: bytes) -> dt.time:
    try:
        return dt.time.fromisoformat(data.decode().strip())
    except ValueError:
        raise PgError(
            "22007", f'invalid input syntax for type time: "{data.decode()}"'
        ) from None


def _parse_timestamp(text: str) -> dt.datetime:
    text = text.strip()
    # PostgreSQL prints "+00" offsets; Python wants "+00:00".
    match = re.search(r"([+-]\d{2})$", text)
    if match:
        text = text + ":00"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise PgError("22007", f'invalid input syntax for type timestamp: "{text}"') from None


def _timestamp_in(data: bytes) -> dt.datetime:
    value = _parse_timestamp(data.decode())
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _timestamptz_in(data: bytes) -> dt.datetime:
    value = _parse_timestamp(data.decode())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


_INTERVAL_UNITS = {
    "microsecond": 1e-6, "millisecond": 1e-3, "second": 1, "sec": 1, "minute": 60, "min": 60,
    "hour": 3600, "day": 86400, "week": 7 * 86400, "mon": 30 * 86400, "month": 30 * 86400,
    "year": 365.25 * 86400,
}


def _interval_in(data: bytes) -> dt.timedelta:
    text = data.decode().strip().lower()
    total = 0.0
    rest = text
    clock = re.search(r"([+-]?)(\d+):(\d{2})(?::(\d{2}(?:\.\d+)?))?$", rest)
    if clock:
        sign = -1 if clock.group(1) == "-" else 1
        seconds = int(clock.group(2)) * 3600 + int(clock.group(3)) * 60 + float(
            clock.group(4) or 0)
        total += sign * seconds
        rest = rest[: clock.start()]
    for amount, unit in re.findall(r"([+-]?\d+(?:\.\d+)?)\s*([a-z]+)", rest):
        key = unit.rstrip("s") if unit not in ("s",) else "second"
        if key not in _INTERVAL_UNITS:
            raise PgError("22007", f'invalid input syntax for type interval: "{text}"')
        total += float(amount) * _INTERVAL_UNITS[key]
    if not clock and not re.search(r"\d", rest):
        raise PgError("22007", f'invalid input syntax for type interval: "{text}"')
    return dt.timedelta(seconds=total)


def _bytea_in(data: bytes) -> bytes:
    text = data.decode()
    if text.startswith("\\x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise PgError("22P02", "invalid hexadecimal data in bytea input") from None
    return data


def _uuid_in(data: bytes) -> uuid.UUID:
    try:
        return uuid.UUID(data.decode().strip())
    except ValueError:
        raise PgError(
            "22P02", f'invalid input syntax for type uuid: "{data.decode()}"'
        ) from None


def _fixed(fmt: struct.Struct, what: str) -> Decoder:
    def decode(data: bytes) -> Any:
        if len(data) != fmt.size:
            raise PgError("08P01", f"incorrect binary data format for {what} parameter")
        return fmt.unpack(data)[0]

    return decode


def _bool_bin_in(data: bytes) -> bool:
    if len(data) != 1:
        raise PgError("08P01", "incorrect binary data format for boolean parameter")
    return data != b"\x00"


def _numeric_bin_in(data: bytes) -> Decimal:
    if len(data) < 8:
        raise PgError("08P01", "incorrect binary data format for numeric parameter")
    ndigits, weight, sign, dscale = struct.unpack("!hhHh", data[:8])
    if sign == 0xC000:
        return Decimal("NaN")
    groups = struct.unpack(f"!{ndigits}H", data[8 : 8 + 2 * ndigits])
    value = Decimal(0)
    for i, group in enumerate(groups):
        value += Decimal(group) * (Decimal(10000) ** (weight - i))
    if sign == 0x4000:
        value = -value
    return value.quantize(Decimal(1).scaleb(-dscale)) if dscale else value


def _date_bin_in(data: bytes) -> dt.date:
    return dt.date.fromordinal(_fixed(_INT4, "date")(data) + _PG_EPOCH_ORDINAL)


def _time_bin_in(data: bytes) -> dt.time:
    micros = _fixed(_INT8, "time")(data)
    return (dt.datetime.min + dt.timedelta(microseconds=micros)).time()


def _timestamp_bin_in(data: bytes) -> dt.datetime:
    return PG_EPOCH + dt.timedelta(microseconds=_fixed(_INT8, "timestamp")(data))


def _timestamptz_bin_in(data: bytes) -> dt.datetime:
    return PG_EPOCH_TZ + dt.timedelta(microseconds=_fixed(_INT8, "timestamptz")(data))


def _interval_bin_in(data: bytes) -> dt.timedelta:
    if len(data) != 16:
        raise PgError("08P01", "incorrect binary data format for interval parameter")
    micros, days, months = struct.unpack("!qii", data)
    return dt.timedelta(days=days + 30 * months, microseconds=micros)


def _jsonb_bin_in(data: bytes) -> str:
    return _str_in(data[1:] if data[:1] == b"\x01" else data)


def _uuid_bin_in(data: bytes) -> uuid.UUID:
    if len(data) != 16:
        raise PgError("08P01", "incorrect binary data format for uuid parameter")
    return uuid.UUID(bytes=data)


def _oid_in(data: bytes) -> int:
    return _int_in(data)


# --------------------------------------------------------------------------------------------
# the registry of types

TYPES: dict[int, PgType] = {}
BY_NAME: dict[str, PgType] = {}


def _register(t: PgType) -> PgType:
    TYPES[t.oid] = t
    BY_NAME[t.name] = t
    return t


BOOL = _register(PgType(16, "bool", 1, _bool_text, _bool_bin, _bool_in, _bool_bin_in, 1000))
BYTEA = _register(PgType(17, "bytea", -1, _bytea_text, _bytea_bin, _bytea_in, bytes, 1001))
CHAR = _register(PgType(18, "char", 1, _text, _text, _str_in, _str_in, 1002))
NAME = _register(PgType(19, "name", 64, _text, _text, _str_in, _str_in, 1003))
INT8 = _register(
    PgType(20, "int8", 8, _int_text, _int8_bin, _int_in, _fixed(_INT8, "bigint"), 1016)
)
INT2 = _register(
    PgType(21, "int2", 2, _int_text, _int2_bin, _int_in, _fixed(_INT2, "smallint"), 1005)
)
INT4 = _register(
    PgType(23, "int4", 4, _int_text, _int4_bin, _int_in, _fixed(_INT4, "integer"), 1007)
)
TEXT = _register(PgType(25, "text", -1, _text, _text, _str_in, _str_in, 1009))
OID = _register(PgType(26, "oid", 4, _int_text, _int4_bin, _oid_in, _fixed(_INT4, "oid"), 1028))
JSON = _register(PgType(114, "json", -1, _json_text, _json_text, _str_in, _str_in, 199))
FLOAT4 = _register(
    PgType(700, "float4", 4, _float4_text, _float4_bin, _float_in, _fixed(_FLOAT4, "real"), 1021)
)
FLOAT8 = _register(
    PgType(
        701, "float8", 8, _float8_text, _float8_bin, _float_in, _fixed(_FLOAT8, "double"), 1022
    )
)
UNKNOWN = _register(PgType(705, "unknown", -2, _text, _text, _str_in, _str_in))
BPCHAR = _register(PgType(1042, "bpchar", -1, _text, _text, _str_in, _str_in, 1014))
VARCHAR = _register(PgType(1043, "varchar", -1, _text, _text, _str_in, _str_in, 1015))
DATE = _register(PgType(1082, "date", 4, _date_text, _date_bin, _date_in, _date_bin_in, 1182))
TIME = _register(PgType(1083, "time", 8, _time_text, _time_bin, _time_in, _time_bin_in, 1183))
TIMESTAMP = _register(
    PgType(
        1114, "timestamp", 8, _timestamp_text, _timestamp_bin, _timestamp_in,
        _timestamp_bin_in, 1115,
    )
)
TIMESTAMPTZ = _register(
    PgType(
        1184, "timestamptz", 8, _timestamptz_text, _timestamptz_bin, _timestamptz_in,
        _timestamptz_bin_in, 1185,
    )
)
INTERVAL = _register(
    PgType(
        1186, "interval", 16, _interval_text, _interval_bin, _interval_in, _interval_bin_in, 1187
    )
)
NUMERIC = _register(
    PgType(1700, "numeric", -1, _numeric_text, _numeric_bin, _numeric_in, _numeric_bin_in, 1231)
)
UUID = _register(PgType(2950, "uuid", 16, _text, _uuid_bin, _uuid_in, _uuid_bin_in, 2951))
JSONB = _register(PgType(3802, "jsonb", -1, _json_text, _jsonb_bin, _str_in, _jsonb_bin_in, 3807))


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


def _array_bin(elem: PgType) -> Encoder:
    def encode(value: Any) -> bytes:
        if len(value) == 0:
            return struct.pack("!iii", 0, 0, elem.oid)
        dims = _array_dims(value) if elem.oid not in (JSON.oid, JSONB.oid) else [len(value)]
        items = _flatten(value, len(dims))
        has_null = any(item is None for item in items)
        out = [struct.pack("!iii", len(dims), int(has_null), elem.oid)]
        out += [struct.pack("!ii", n, 1) for n in dims]
        for item in items:
            if item is None:
                out.append(b"\xff\xff\xff\xff")
            else:
                data = elem.binary_out(item)
                out.append(_INT4.pack(len(data)) + data)
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
            raise PgError("08P01", "incorrect binary data format for array parameter") from None
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
