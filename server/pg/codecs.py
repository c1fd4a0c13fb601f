"""Values on the wire: PostgreSQL 15's text and binary formats of the built-in types.

One encoder (Python value → bytes) and one decoder (bytes → Python value) per type and
format, in the exact text format PostgreSQL 15 prints (``DateStyle=ISO``,
``IntervalStyle=postgres``) and its binary ``send``/``recv`` formats, which the captures in
``pgwire-captures/`` show byte for byte. :mod:`.types` assembles them into types (and arrays).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import struct
import uuid
from collections.abc import Callable
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


# --------------------------------------------------------------------------------------------
# text output


def str_text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str).encode()
    return str(value).encode()


def bool_text(value: Any) -> bytes:
    return b"t" if value else b"f"


def int_text(value: Any) -> bytes:
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


def float4_text(value: Any) -> bytes:
    # DuckDB hands FLOAT back as a double; print the float32's shortest form, as PG does.
    f32 = struct.unpack("!f", struct.pack("!f", float(value)))[0]
    if math.isfinite(f32):
        for digits in range(1, 10):
            candidate = float(f"{f32:.{digits}g}")
            if struct.pack("!f", candidate) == struct.pack("!f", f32):
                return format_float(candidate).encode()
    return format_float(f32).encode()


def float8_text(value: Any) -> bytes:
    text = repr(value if type(value) is float else float(value))
    if text[-2:] == ".0":
        return text[:-2].encode()
    if "e" in text or "n" in text:  # exponents, nan, inf: PostgreSQL's spelling
        return format_float(float(value)).encode()
    return text.encode()


def numeric_text(value: Any) -> bytes:
    if isinstance(value, float):
        value = Decimal(repr(value))
    elif not isinstance(value, Decimal):
        value = Decimal(value)
    if value.is_nan():
        return b"NaN"
    if value.is_infinite():
        return b"Infinity" if value > 0 else b"-Infinity"
    return format(value, "f").encode()


def date_text(value: Any) -> bytes:
    if isinstance(value, dt.datetime):
        value = value.date()
    return value.isoformat().encode()


def time_text(value: Any) -> bytes:
    return value.isoformat().encode()


def timestamp_text(value: Any) -> bytes:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ").encode()


def timestamptz_text(value: Any) -> bytes:
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
        return timestamptz_text

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


def interval_text(value: Any) -> bytes:
    return format_interval(value).encode()


def bytea_text(value: Any) -> bytes:
    return b"\\x" + bytes(value).hex().encode()


def json_text(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, default=str).encode()


# --------------------------------------------------------------------------------------------
# binary output

INT2_FORMAT = struct.Struct("!h")
INT4_FORMAT = struct.Struct("!i")
INT8_FORMAT = struct.Struct("!q")
FLOAT4_FORMAT = struct.Struct("!f")
FLOAT8_FORMAT = struct.Struct("!d")


def bool_bin(value: Any) -> bytes:
    return b"\x01" if value else b"\x00"


def int2_bin(value: Any) -> bytes:
    return INT2_FORMAT.pack(int(value))


def int4_bin(value: Any) -> bytes:
    return INT4_FORMAT.pack(int(value))


def int8_bin(value: Any) -> bytes:
    return INT8_FORMAT.pack(int(value))


def float4_bin(value: Any) -> bytes:
    return FLOAT4_FORMAT.pack(float(value))


def float8_bin(value: Any) -> bytes:
    return FLOAT8_FORMAT.pack(float(value))


def numeric_bin(value: Any) -> bytes:
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


def date_bin(value: Any) -> bytes:
    if isinstance(value, dt.datetime):
        value = value.date()
    return INT4_FORMAT.pack(value.toordinal() - _PG_EPOCH_ORDINAL)


def time_bin(value: Any) -> bytes:
    micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
    return INT8_FORMAT.pack(micros + value.microsecond)


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def timestamp_bin(value: Any) -> bytes:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return INT8_FORMAT.pack(_micros(value - PG_EPOCH))


def timestamptz_bin(value: Any) -> bytes:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return INT8_FORMAT.pack(_micros(value - PG_EPOCH_TZ))


def interval_bin(value: Any) -> bytes:
    days, micros = _interval_parts(value)
    return struct.pack("!qii", micros, days, 0)


def bytea_bin(value: Any) -> bytes:
    return bytes(value)


def jsonb_bin(value: Any) -> bytes:
    return b"\x01" + json_text(value)


def uuid_bin(value: Any) -> bytes:
    return uuid.UUID(str(value)).bytes


# --------------------------------------------------------------------------------------------
# input (parameters and COPY FROM): text and binary


def bool_in(data: bytes) -> bool:
    text = data.decode().strip().lower()
    if text in ("t", "true", "y", "yes", "on", "1"):
        return True
    if text in ("f", "false", "n", "no", "off", "0"):
        return False
    raise PgError("22P02", f'invalid input syntax for type boolean: "{data.decode()}"')


def int_in(data: bytes) -> int:
    try:
        return int(data.decode().strip())
    except ValueError:
        raise PgError(
            "22P02", f'invalid input syntax for type integer: "{data.decode()}"'
        ) from None


def float_in(data: bytes) -> float:
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


def numeric_in(data: bytes) -> Decimal:
    try:
        return Decimal(data.decode().strip())
    except InvalidOperation:
        raise PgError(
            "22P02", f'invalid input syntax for type numeric: "{data.decode()}"'
        ) from None


def str_in(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise PgError("22021", "invalid byte sequence for encoding \"UTF8\"") from None


def date_in(data: bytes) -> dt.date:
    """A date; like PostgreSQL's, a time of day or zone after it is read and dropped
    (pgjdbc's ``setDate`` sends ``2024-01-02 +00``)."""
    text = data.decode().strip()
    try:
        if len(text) > 10 and text[10] in " T":
            return _parse_timestamp(text).date()
        return dt.date.fromisoformat(text)
    except (ValueError, PgError):
        raise PgError(
            "22007", f'invalid input syntax for type date: "{data.decode()}"'
        ) from None


def time_in(data: bytes) -> dt.time:
    try:
        return dt.time.fromisoformat(data.decode().strip())
    except ValueError:
        raise PgError(
            "22007", f'invalid input syntax for type time: "{data.decode()}"'
        ) from None


def _parse_timestamp(text: str) -> dt.datetime:
    text = text.strip()
    # pgjdbc sends "2024-01-02 03:04:05.123 +00" (a blank before the offset): drop the blank
    zoned = re.search(r"\s+([+-]\d{2}(?::?\d{2})?)$", text)
    if zoned:
        text = text[: zoned.start()] + zoned.group(1)
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        text += " 00:00:00"
    # PostgreSQL prints "+00" offsets; Python wants "+00:00".
    match = re.search(r"([+-]\d{2})$", text)
    if match:
        text = text + ":00"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise PgError("22007", f'invalid input syntax for type timestamp: "{text}"') from None


def timestamp_in(data: bytes) -> dt.datetime:
    value = _parse_timestamp(data.decode())
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def timestamptz_in(data: bytes) -> dt.datetime:
    value = _parse_timestamp(data.decode())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


_INTERVAL_UNITS = {
    "microsecond": 1e-6, "millisecond": 1e-3, "second": 1, "sec": 1, "minute": 60, "min": 60,
    "hour": 3600, "day": 86400, "week": 7 * 86400, "mon": 30 * 86400, "month": 30 * 86400,
    "year": 365.25 * 86400,
}


def interval_in(data: bytes) -> dt.timedelta:
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


def bytea_in(data: bytes) -> bytes:
    text = data.decode()
    if text.startswith("\\x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise PgError("22P02", "invalid hexadecimal data in bytea input") from None
    return data


def uuid_in(data: bytes) -> uuid.UUID:
    try:
        return uuid.UUID(data.decode().strip())
    except ValueError:
        raise PgError(
            "22P02", f'invalid input syntax for type uuid: "{data.decode()}"'
        ) from None


def fixed_width(fmt: struct.Struct, what: str) -> Decoder:
    def decode(data: bytes) -> Any:
        if len(data) != fmt.size:
            raise PgError("22P03", f"incorrect binary data format for {what} parameter")
        return fmt.unpack(data)[0]

    return decode


def bool_bin_in(data: bytes) -> bool:
    if len(data) != 1:
        raise PgError("22P03", "incorrect binary data format for boolean parameter")
    return data != b"\x00"


def numeric_bin_in(data: bytes) -> Decimal:
    if len(data) < 8:
        raise PgError("22P03", "incorrect binary data format for numeric parameter")
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


def date_bin_in(data: bytes) -> dt.date:
    return dt.date.fromordinal(fixed_width(INT4_FORMAT, "date")(data) + _PG_EPOCH_ORDINAL)


def time_bin_in(data: bytes) -> dt.time:
    micros = fixed_width(INT8_FORMAT, "time")(data)
    return (dt.datetime.min + dt.timedelta(microseconds=micros)).time()


def timestamp_bin_in(data: bytes) -> dt.datetime:
    return PG_EPOCH + dt.timedelta(microseconds=fixed_width(INT8_FORMAT, "timestamp")(data))


def timestamptz_bin_in(data: bytes) -> dt.datetime:
    return PG_EPOCH_TZ + dt.timedelta(microseconds=fixed_width(INT8_FORMAT, "timestamptz")(data))


def interval_bin_in(data: bytes) -> dt.timedelta:
    if len(data) != 16:
        raise PgError("22P03", "incorrect binary data format for interval parameter")
    micros, days, months = struct.unpack("!qii", data)
    return dt.timedelta(days=days + 30 * months, microseconds=micros)


def jsonb_bin_in(data: bytes) -> str:
    return str_in(data[1:] if data[:1] == b"\x01" else data)


def uuid_bin_in(data: bytes) -> uuid.UUID:
    if len(data) != 16:
        raise PgError("22P03", "incorrect binary data format for uuid parameter")
    return uuid.UUID(bytes=data)


def oid_in(data: bytes) -> int:
    return int_in(data)
