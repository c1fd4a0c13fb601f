"""Definitions survive the registry's JSON encoding exactly (property-based)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsql.errors import Location, RegistryError
from fsql.language.definitions import Column, EntityDef, FeatureDef, FeatureSetDef, SourceDef
from fsql.registry.serialize import definition_from_json, definition_to_json

names = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)
text = st.text(max_size=40)
types = st.sampled_from(["VARCHAR", "BIGINT", "DOUBLE", "TIMESTAMP", "DECIMAL(10,2)", "BOOLEAN"])
columns = st.lists(st.builds(Column, names, types), min_size=1, max_size=5).map(tuple)
durations = st.integers(min_value=1, max_value=10**9).map(lambda s: timedelta(seconds=s))
descriptions = st.none() | text

definitions = st.one_of(
    st.builds(EntityDef, name=names, keys=columns, description=descriptions),
    st.builds(
        SourceDef, name=names, columns=columns, path=text,
        format=st.sampled_from(["parquet", "csv"]), event_time=names,
        created_time=st.none() | names, description=descriptions,
    ),
    st.builds(
        FeatureDef, name=names, entity=names, query=text, type=st.none() | types,
        window=st.none() | durations, every=durations, ttl=st.none() | durations,
        online=st.booleans(), description=descriptions,
    ),
    st.builds(
        FeatureSetDef, name=names, features=st.lists(names, min_size=1).map(tuple),
        description=descriptions,
    ),
)  # fmt: skip


@given(definitions)
def test_json_round_trip_is_exact(definition) -> None:
    stored = definition_to_json(definition)
    rebuilt = definition_from_json(stored)
    assert type(rebuilt) is type(definition)
    assert rebuilt == definition
    assert rebuilt.canonical_sql() == definition.canonical_sql()
    assert rebuilt.fingerprint == definition.fingerprint
    assert definition_to_json(rebuilt) == stored


def test_location_and_source_text_are_stored_apart() -> None:
    d = EntityDef(
        name="user", keys=(Column("user_id", "VARCHAR"),),
        location=Location("a.sql", 3, 1), source_text="create entity user key (user_id varchar)",
    )  # fmt: skip
    stored = json.loads(definition_to_json(d))
    assert stored == {
        "format": 1, "kind": "entity",
        "fields": {"name": "user", "description": None,
                   "keys": [{"name": "user_id", "type": "VARCHAR"}]},
    }  # fmt: skip
    rebuilt = definition_from_json(
        definition_to_json(d), location=d.location, source_text=d.source_text
    )
    assert (rebuilt.location, rebuilt.source_text) == (d.location, d.source_text)


def test_unknown_format_is_refused() -> None:
    with pytest.raises(RegistryError, match="stored definition has format 9, this fsql reads "
                       "format 1; upgrade fsql"):  # fmt: skip
        definition_from_json('{"format": 9, "kind": "entity", "fields": {}}')
