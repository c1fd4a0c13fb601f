"""Compact, safe encoding of online values: a tiny tagged binary format.

One stored record is::

    flags:u8 | feature_time:i64 | [expires_at:i64] | tag:u8 | payload

little-endian, times in microseconds since the Unix epoch (UTC). ``flags`` bit 0 says an
``expires_at`` follows (set on values the compute cache writes back; see
:mod:`fsql.serving.computer`). The value is one type tag and its payload:

====  ==========  ==========================================
tag   type        payload
====  ==========  ==========================================
0     NULL        (none)
1/2   BOOLEAN     false / true (none)
3     integer     i64
4     float       f64
5     text        UTF-8 bytes (to the end)
6     timestamp   i64 microseconds since the epoch, UTC
7     date        i32 days since 1970-01-01
8     decimal     its exact text, ASCII (to the end)
9     big integer decimal text (integers beyond 64 bits)
====  ==========  ==========================================

Decoding only ever builds ints, floats, strings, booleans, datetimes, dates and Decimals, so a
record an attacker wrote into Redis can at worst be a wrong value, never code (unlike pickle).
Encoding is chosen by the feature's declared value type, so a DOUBLE feature stores 3 as 3.0.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from fsql.errors import StoreError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DATE = date(1970, 1, 1)

_NULL, _FALSE, _TRUE, _INT, _FLOAT, _TEXT, _TIMESTAMP, _DATE, _DECIMAL, _BIGINT = range(10)
_HAS_EXPIRY = 0x01

_HEAD = struct.Struct("<Bq")
_HEAD_EXP = struct.Struct("<Bqq")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_I32 = struct.Struct("<i")
_TAG_I64 = struct.Struct("<Bq")
_TAG_F64 = struct.Struct("<Bd")
_TAG_I32 = struct.Struct("<Bi")

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1


class StoredValue:
    """One feature value as the online store holds it for one entity key.

    Times are kept as microseconds since the epoch (``feature_time_us``, ``expires_at_us``)
    so the read path compares integers; ``feature_time``/``expires_at`` give datetimes.
    """

    __slots__ = ("value", "feature_time_us", "version", "expires_at_us")

    def __init__(
        self,
        value: Any,
        feature_time: datetime | int,
        version: str,
        expires_at: datetime | int | None = None,
    ):
        self.value = value
        #: the tick the value belongs to
        self.feature_time_us = to_micros(feature_time)
        #: the feature version the value was written for
        self.version = version
        #: set on values written back by the compute cache: from then on they are misses
        self.expires_at_us = None if expires_at is None else to_micros(expires_at)

    @property
    def feature_time(self) -> datetime:
        return from_micros(self.feature_time_us)

    @property
    def expires_at(self) -> datetime | None:
        return None if self.expires_at_us is None else from_micros(self.expires_at_us)

    def expired(self, now: datetime | int) -> bool:
        return self.expires_at_us is not None and to_micros(now) >= self.expires_at_us

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredValue):
            return NotImplemented
        return (self.value, self.feature_time_us, self.version, self.expires_at_us) == (
            other.value, other.feature_time_us, other.version, other.expires_at_us,
        )  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"StoredValue({self.value!r}, {self.feature_time.isoformat()}, version="
            f"{self.version!r}, expires_at={self.expires_at})"
        )


def to_micros(moment: datetime | date | int | Any) -> int:
    """Microseconds since the epoch. Naive datetimes are UTC (as everywhere in fsql)."""
    if isinstance(moment, int):
        return moment
    if hasattr(moment, "to_pydatetime"):  # pandas.Timestamp
        moment = moment.to_pydatetime()
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(moment, date):
        return (moment - _EPOCH_DATE).days * 86_400_000_000
    raise TypeError(f"not a timestamp: {moment!r}")


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


# --- value encoders, one per value-type family ---------------------------------------------


def _enc_float(value: Any) -> bytes:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return b"\x00"
    return _TAG_F64.pack(_FLOAT, float(value))


def _enc_int(value: Any) -> bytes:
    if value is None:
        return b"\x00"
    value = int(value)
    if _INT_MIN <= value <= _INT_MAX:
        return _TAG_I64.pack(_INT, value)
    return bytes([_BIGINT]) + str(value).encode()


def _enc_bool(value: Any) -> bytes:
    if value is None:
        return b"\x00"
    return b"\x02" if value else b"\x01"


def _enc_text(value: Any) -> bytes:
    if value is None:
        return b"\x00"
    return bytes([_TEXT]) + str(value).encode()


def _enc_timestamp(value: Any) -> bytes:
    if value is None:
        return b"\x00"
    return _TAG_I64.pack(_TIMESTAMP, to_micros(value))


def _enc_date(value: Any) -> bytes:
    if value is None:
        return b"\x00"
    if isinstance(value, datetime):
        value = value.date()
    return _TAG_I32.pack(_DATE, (value - _EPOCH_DATE).days)


def _enc_decimal(value: Any) -> bytes:
    if value is None:
        return b"\x00"
    return bytes([_DECIMAL]) + str(Decimal(value)).encode()


_FAMILIES: list[tuple[re.Pattern[str], Callable[[Any], bytes]]] = [
    (re.compile(r"^(DOUBLE|FLOAT|FLOAT4|FLOAT8|REAL|DOUBLE PRECISION)$"), _enc_float),
    (
        re.compile(
            r"^(BIGINT|INT|INTEGER|INT2|INT4|INT8|SMALLINT|TINYINT|HUGEINT|UBIGINT|UINTEGER"
            r"|USMALLINT|UTINYINT|LONG)$"
        ),
        _enc_int,
    ),
    (re.compile(r"^(BOOLEAN|BOOL)$"), _enc_bool),
    (re.compile(r"^(VARCHAR|TEXT|STRING|CHAR|BPCHAR|UUID)(\(\d+\))?$"), _enc_text),
    (
        re.compile(r"^(TIMESTAMP|TIMESTAMPTZ|TIMESTAMP WITH TIME ZONE|TIMESTAMP_NTZ|DATETIME)$"),
        _enc_timestamp,
    ),
    (re.compile(r"^DATE$"), _enc_date),
    (re.compile(r"^(DECIMAL|NUMERIC)(\(\s*\d+\s*(,\s*\d+\s*)?\))?$"), _enc_decimal),
]


def value_encoder(value_type: str) -> Callable[[Any], bytes]:
    """The encoder for a feature's declared value type (``DOUBLE``, ``BIGINT``, ``VARCHAR``...)."""
    normalized = " ".join(value_type.upper().split())
    for pattern, encoder in _FAMILIES:
        if pattern.match(normalized):
            return encoder
    raise StoreError(
        f"the online store cannot hold values of type {value_type}; supported: DOUBLE, BIGINT "
        "(and other integers), BOOLEAN, VARCHAR, TIMESTAMP, DATE, DECIMAL"
    )


def encode_record(
    encoded_value: bytes, feature_time: datetime | int, expires_at: datetime | int | None = None
) -> bytes:
    """A full record from an already encoded value (see :func:`value_encoder`)."""
    if expires_at is None:
        return _HEAD.pack(0, to_micros(feature_time)) + encoded_value
    return (
        _HEAD_EXP.pack(_HAS_EXPIRY, to_micros(feature_time), to_micros(expires_at)) + encoded_value
    )


def encode_records(
    value_type: str,
    values: Sequence[Any],
    feature_times: Sequence[datetime | int],
    expires_at: datetime | int | None = None,
) -> list[bytes]:
    """Encode a column of values with their feature times (one record per row)."""
    encode = value_encoder(value_type)
    if expires_at is None:
        head = _HEAD.pack
        return [
            head(0, to_micros(t)) + encode(v) for v, t in zip(values, feature_times, strict=True)
        ]
    exp = to_micros(expires_at)
    head_exp = _HEAD_EXP.pack
    return [
        head_exp(_HAS_EXPIRY, to_micros(t), exp) + encode(v)
        for v, t in zip(values, feature_times, strict=True)
    ]


def encode_column(
    value_type: str, values: Any, times_us: Any, expires_at: datetime | int | None = None
) -> list[bytes]:
    """:func:`encode_records` for Arrow columns: ``values`` (a pyarrow Array of the
    feature's type) and ``times_us`` (int64 microseconds since the epoch).

    The materialize push encodes every value it writes: DOUBLE and integer columns without
    expiry are packed at once with numpy (a structured array whose rows are the records'
    bytes); other types go value by value. The bytes are the same either way."""

    encode = value_encoder(value_type)
    n = len(values)
    times = np.asarray(times_us, dtype=np.int64)
    if n and expires_at is None and encode in (_enc_float, _enc_int):
        try:
            if encode is _enc_float:
                tag, kind = _FLOAT, "<f8"
                numbers = values.cast(pa.float64()).to_numpy(zero_copy_only=False)
            else:
                tag, kind = _INT, "<i8"
                numbers = values.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # e.g. UBIGINT beyond int64
            numbers = None
        if numbers is not None:
            rows = np.empty(n, dtype=_record_dtype(kind))
            rows["flags"] = 0
            rows["time"] = times
            rows["tag"] = tag
            rows["value"] = numbers
            size = rows.dtype.itemsize
            blob = rows.tobytes()
            records = [blob[i : i + size] for i in range(0, n * size, size)]
            nulls = values.is_null().to_numpy(zero_copy_only=False)
            if tag == _FLOAT:
                nulls = nulls | np.isnan(numbers)
            for i in np.flatnonzero(nulls).tolist():  # NULL (and NaN, as _enc_float does)
                records[i] = _HEAD.pack(0, int(times[i])) + b"\x00"
            return records
    return encode_records(value_type, values.to_pylist(), times.tolist(), expires_at)


@functools.cache
def _record_dtype(kind: str) -> Any:
    """The numpy dtype whose rows are records without expiry: flags, time, tag, 8-byte value
    (packed, little-endian: 18 bytes, the layout of the module docstring)."""

    return np.dtype([("flags", "u1"), ("time", "<i8"), ("tag", "u1"), ("value", kind)])


_FAST_FLOAT = struct.Struct("<BqBd")  # the common records: no expiry, a float or an int
_FAST_SIZE = _FAST_FLOAT.size


def _stored(value: Any, micros: int, version: str) -> StoredValue:
    """A StoredValue without expiry, built without __init__'s conversions (the hot path)."""
    stored = _new_stored(StoredValue)
    stored.value, stored.feature_time_us, stored.version, stored.expires_at_us = (
        value, micros, version, None,
    )  # fmt: skip
    return stored


_new_stored = object.__new__
_NULL_SIZE = _HEAD.size + 1


def decode_record(data: bytes, version: str) -> StoredValue:
    """Decode one record. Raises :class:`StoreError` on bytes that are not a record."""
    size = len(data)
    if data[:1] == b"\x00":  # no expiry: the common records first
        if size == _FAST_SIZE:
            tag = data[9]
            if tag == _FLOAT:
                _flags, micros, _tag, number = _FAST_FLOAT.unpack(data)
                return _stored(number, micros, version)
            if tag == _INT:
                return _stored(_I64.unpack_from(data, 10)[0], _I64.unpack_from(data, 1)[0], version)
        elif size == _NULL_SIZE and data[9] == _NULL:
            return _stored(None, _I64.unpack_from(data, 1)[0], version)
    try:
        flags, micros = _HEAD.unpack_from(data, 0)
        if flags & ~_HAS_EXPIRY:
            raise ValueError(f"unknown flags {flags:#x}")
        offset = _HEAD.size
        expires_at = None
        if flags & _HAS_EXPIRY:
            (expires_at,) = _I64.unpack_from(data, offset)
            offset += 8
        value = _decode_value(data, offset)
    except (struct.error, IndexError, UnicodeDecodeError, ValueError, ArithmeticError) as exc:
        raise StoreError(f"a corrupt online-store record ({len(data)} bytes): {exc}") from None
    return StoredValue(value, micros, version, expires_at)


def decode_rows(
    rows: Sequence[Sequence[bytes | None]], versions: Sequence[str | None]
) -> list[list[StoredValue | None]]:
    """:func:`decode_record` over a read's raw rows (``versions[i]``: feature i's version)."""
    return [
        [
            None if data is None else decode_record(data, versions[i] or "")
            for i, data in enumerate(row)
        ]
        for row in rows
    ]


#: the ``oldest_us`` of :func:`serve_records` for a feature without TTL: no time is older
NO_TTL = -(1 << 80)


def serve_records(
    records: Sequence[bytes | None], oldest_us: Sequence[int], now_us: int
) -> list[Any]:
    """Decode one entity key's records straight to the values served at ``now_us``.

    ``records[i]`` is a raw record or None (absent); ``oldest_us[i]`` the oldest feature time
    still fresh for it (``now_us − ttl``, or :data:`NO_TTL`). A value is None when absent,
    older than that, or written back by the compute cache and expired at ``now_us`` — the
    same answer as :func:`~fsql.stores.online.base.serve_micros` over :func:`decode_record`,
    without building a :class:`StoredValue` per record (this runs once per value read).
    """
    out: list[Any] = []
    append = out.append
    i64 = _I64.unpack_from
    f64 = _F64.unpack_from
    for data, oldest in zip(records, oldest_us, strict=True):
        if data is None:
            append(None)
            continue
        size = len(data)
        if size > 9 and data[0] == 0:  # no expiry: the records materialize writes
            tag = data[9]
            if size == _FAST_SIZE:
                if tag == _FLOAT:
                    append(None if i64(data, 1)[0] < oldest else f64(data, 10)[0])
                    continue
                if tag == _INT:
                    append(None if i64(data, 1)[0] < oldest else i64(data, 10)[0])
                    continue
            if tag == _TEXT:
                if i64(data, 1)[0] < oldest:
                    append(None)
                else:
                    try:
                        append(data[10:].decode())
                    except UnicodeDecodeError as exc:
                        raise StoreError(
                            f"a corrupt online-store record ({size} bytes): {exc}"
                        ) from None
                continue
        stored = decode_record(data, "")
        expires = stored.expires_at_us
        if (expires is not None and now_us >= expires) or stored.feature_time_us < oldest:
            append(None)
        else:
            append(stored.value)
    return out


_FIXED_SIZE = {_NULL: 0, _FALSE: 0, _TRUE: 0, _INT: 8, _FLOAT: 8, _TIMESTAMP: 8, _DATE: 4}


def _decode_value(data: bytes, offset: int) -> Any:
    tag = data[offset]
    body = offset + 1
    size = _FIXED_SIZE.get(tag)
    if size is not None and len(data) != body + size:
        raise ValueError(f"tag {tag} needs {size} payload bytes, found {len(data) - body}")
    if tag == _NULL:
        return None
    if tag == _FLOAT:
        return _F64.unpack_from(data, body)[0]
    if tag == _INT:
        return _I64.unpack_from(data, body)[0]
    if tag == _TEXT:
        return data[body:].decode()
    if tag == _FALSE:
        return False
    if tag == _TRUE:
        return True
    if tag == _TIMESTAMP:
        return from_micros(_I64.unpack_from(data, body)[0])
    if tag == _DATE:
        return _EPOCH_DATE + timedelta(days=_I32.unpack_from(data, body)[0])
    if tag == _DECIMAL:
        return Decimal(data[body:].decode("ascii"))
    if tag == _BIGINT:
        return int(data[body:].decode("ascii"))
    raise ValueError(f"unknown value tag {tag}")


# --- entity keys -------------------------------------------------------------------------------


def encode_entity_key(key: Any) -> str:
    """The text form of an entity key (a scalar, or a tuple for composite keys) used in store
    keys: parts joined by ``|``, with ``\\`` and ``|`` escaped, so distinct keys never collide.

    >>> encode_entity_key("user_123")
    'user_123'
    >>> encode_entity_key(("a|b", 7))
    'a\\\\|b|7'
    """
    if isinstance(key, tuple | list):
        if len(key) == 1:
            return _key_part(key[0])
        return "|".join(_key_part(p) for p in key)
    return _key_part(key)


def _key_part(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalar
        text = str(value.item())
    else:
        text = str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|")
