"""The online record format: round trips per value type, and garbage is an error, not code."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsql.compute.push import encode_key_columns
from fsql.errors import StoreError
from fsql.stores.online.base import serve_micros
from fsql.stores.online.codec import (
    NO_TTL,
    decode_record,
    encode_column,
    encode_entity_key,
    encode_record,
    encode_records,
    serve_records,
    value_encoder,
)

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def roundtrip(value_type: str, value: object) -> object:
    record = encode_record(value_encoder(value_type)(value), T0)
    stored = decode_record(record, "1")
    assert stored.feature_time == T0 and stored.version == "1" and stored.expires_at is None
    return stored.value


@pytest.mark.parametrize(
    "value_type, value, expected",
    [
        ("DOUBLE", 3, 3.0),
        ("DOUBLE", -1.5, -1.5),
        ("DOUBLE", float("nan"), None),
        ("BIGINT", 42, 42),
        ("INTEGER", -(2**63), -(2**63)),
        ("HUGEINT", 2**100, 2**100),
        ("BOOLEAN", True, True),
        ("BOOLEAN", False, False),
        ("VARCHAR", "héllo|wörld", "héllo|wörld"),
        ("VARCHAR", "", ""),
        (
            "TIMESTAMP",
            datetime(2024, 1, 2, 3, 4, 5, 6),
            datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        ),
        ("DATE", date(1969, 12, 31), date(1969, 12, 31)),
        ("DECIMAL(10,2)", Decimal("12.34"), Decimal("12.34")),
        ("DOUBLE", None, None),
        ("VARCHAR", None, None),
    ],
)
def test_value_roundtrip(value_type: str, value: object, expected: object) -> None:
    got = roundtrip(value_type, value)
    assert got == expected and type(got) is type(expected)


@given(st.floats(allow_nan=False), st.integers(-(2**63), 2**63 - 1), st.text())
def test_roundtrip_property(f: float, i: int, s: str) -> None:
    assert roundtrip("DOUBLE", f) == f
    assert roundtrip("BIGINT", i) == i
    assert roundtrip("VARCHAR", s) == s


def test_expiry_and_columns() -> None:
    expires = T0 + timedelta(hours=1)
    records = encode_records("BIGINT", [1, None], [T0, T0 - timedelta(days=1)], expires_at=expires)
    first, second = (decode_record(r, "7") for r in records)
    assert (first.value, first.expires_at) == (1, expires)
    assert (second.value, second.feature_time) == (None, T0 - timedelta(days=1))
    assert first.expired(expires) and not first.expired(expires - timedelta(microseconds=1))


def test_garbage_is_a_store_error_not_code() -> None:
    import pickle

    with pytest.raises(StoreError, match="corrupt online-store record"):
        decode_record(pickle.dumps(object()), "1")
    with pytest.raises(StoreError, match="corrupt"):
        decode_record(b"\x00", "1")


def test_unsupported_type_names_the_supported_ones() -> None:
    with pytest.raises(StoreError, match="supported: DOUBLE"):
        value_encoder("STRUCT(a INT)")


def test_entity_keys_never_collide() -> None:
    keys = [("a|b", "c"), ("a", "b|c"), ("a\\", "b"), "a|b", ("a", "b")]
    assert len({encode_entity_key(k) for k in keys}) == len(keys)
    assert encode_entity_key("user_123") == encode_entity_key(("user_123",)) == "user_123"


# --- the hot paths give the same answers as the value-by-value reference --------------------

_TYPED_VALUES = st.one_of(
    st.tuples(st.just("DOUBLE"), st.none() | st.floats()),
    st.tuples(st.just("BIGINT"), st.none() | st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("HUGEINT"), st.integers(-(2**80), 2**80)),
    st.tuples(st.just("VARCHAR"), st.none() | st.text(max_size=12)),
    st.tuples(st.just("BOOLEAN"), st.none() | st.booleans()),
    st.tuples(st.just("DATE"), st.dates()),
    st.tuples(
        st.just("DECIMAL(10,2)"), st.decimals(places=2, allow_nan=False, allow_infinity=False)
    ),
)
_MICROS = st.integers(-(10**15), 10**15)


@settings(deadline=None)  # the first example imports pyarrow
@given(
    st.lists(
        st.tuples(
            st.none() | _TYPED_VALUES,
            _MICROS,  # feature time
            st.none() | _MICROS,  # compute-cache expiry
            st.none() | st.integers(0, 10**12),  # TTL in microseconds
        ),
        max_size=8,
    ),
    _MICROS,
)
def test_serve_records_equals_serve_over_decode_record(cells: list, now_us: int) -> None:
    """serve_records (the read path's decoder) = serve_micros(decode_record(r)) per cell:
    absent, fresh, beyond TTL (strictly older than now − ttl), expired write-backs."""
    records, oldest, expected = [], [], []
    for typed, micros, expires, ttl in cells:
        if typed is None:
            record = None
        else:
            value_type, value = typed
            record = encode_record(value_encoder(value_type)(value), micros, expires)
        records.append(record)
        oldest.append(NO_TTL if ttl is None else now_us - ttl)
        stored = None if record is None else decode_record(record, "1")
        expected.append(serve_micros(stored, ttl, now_us))
    got = serve_records(records, oldest, now_us)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g == e or (g != g and e != e)  # NaN == NaN here
        assert type(g) is type(e)


def test_serve_records_reports_corrupt_records() -> None:
    with pytest.raises(StoreError, match="corrupt"):
        serve_records([b"\x00" + b"\x01" * 8 + b"\x05\xff\xfe"], [NO_TTL], 0)  # bad UTF-8
    with pytest.raises(StoreError, match="corrupt"):
        serve_records([b"\x00" * 5], [NO_TTL], 0)


@settings(deadline=None)  # the first example imports pyarrow
@given(
    st.sampled_from(["DOUBLE", "BIGINT", "INTEGER", "VARCHAR", "BOOLEAN"]).flatmap(
        lambda t: st.tuples(
            st.just(t),
            st.lists(
                {
                    "DOUBLE": st.none() | st.floats(),
                    "BIGINT": st.none() | st.integers(-(2**63), 2**63 - 1),
                    "INTEGER": st.none() | st.integers(-(2**31), 2**31 - 1),
                    "VARCHAR": st.none() | st.text(max_size=5),
                    "BOOLEAN": st.none() | st.booleans(),
                }[t],
                max_size=20,
            ),
        )
    ),
    st.data(),
    st.booleans(),
)
def test_encode_column_equals_encode_records(
    typed: tuple, data: st.DataObject, expiry: bool
) -> None:
    """The push's vectorised encoder writes exactly the bytes of the per-value one."""
    import pyarrow as pa

    value_type, values = typed
    times = data.draw(st.lists(_MICROS, min_size=len(values), max_size=len(values)))
    arrow_type = {"DOUBLE": pa.float64(), "BIGINT": pa.int64(), "INTEGER": pa.int32(),
                  "VARCHAR": pa.string(), "BOOLEAN": pa.bool_()}[value_type]  # fmt: skip
    expires = 10**15 if expiry else None
    got = encode_column(value_type, pa.array(values, arrow_type), pa.array(times, pa.int64()),
                        expires)  # fmt: skip
    assert got == encode_records(value_type, values, times, expires)


@settings(deadline=None)  # the first example imports pyarrow
@given(
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=10),
    st.lists(st.text(alphabet="ab|\\é", max_size=4), max_size=10),
)
def test_encode_key_columns_equals_encode_entity_key(ints: list[int], texts: list[str]) -> None:
    import pyarrow as pa

    assert encode_key_columns([pa.array(ints, pa.int64())]) == [encode_entity_key(k) for k in ints]
    assert encode_key_columns([pa.array(texts, pa.string())]) == [
        encode_entity_key(k) for k in texts
    ]
    n = min(len(ints), len(texts))
    pairs = list(zip(ints[:n], texts[:n], strict=True))
    assert encode_key_columns(
        [pa.array(ints[:n], pa.int64()), pa.array(texts[:n], pa.string())]
    ) == [encode_entity_key(p) for p in pairs]
