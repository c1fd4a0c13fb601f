"""The online record format: round trips per value type, and garbage is an error, not code."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsql.errors import StoreError
from fsql.stores.online.codec import (
    decode_record,
    encode_entity_key,
    encode_record,
    encode_records,
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
