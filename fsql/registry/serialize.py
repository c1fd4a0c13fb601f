"""Definitions to JSON and back, without re-parsing SQL.

The registry stores each version's fields as JSON so an old version can be rebuilt exactly even
after the dialect changes. The encoding is driven by the dataclass fields and their type hints,
so a field added to :mod:`fsql.language.definitions` is stored without touching this module:

>>> from fsql.language.definitions import EntityDef, Column
>>> d = EntityDef(name="user", keys=(Column("user_id", "VARCHAR"),))
>>> definition_from_json(definition_to_json(d)) == d
True
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from fsql.errors import Location, RegistryError
from fsql.language.definitions import (
    AnyDefinition,
    CheckDef,
    EntityDef,
    FeatureDef,
    FeatureSetDef,
    SourceDef,
)

#: bumped when the JSON layout changes incompatibly; stored with every definition
FORMAT = 1

DEFINITION_CLASSES: dict[str, type[AnyDefinition]] = {
    cls.kind: cls for cls in (EntityDef, SourceDef, FeatureDef, FeatureSetDef, CheckDef)
}

# Stored in their own columns (file, line, col, source_text), not in the JSON.
_OUT_OF_BAND = {"location", "source_text"}


@cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, timedelta):
        # whole microseconds: exact, unlike total_seconds() floats
        return {"microseconds": value // timedelta(microseconds=1)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    raise RegistryError(f"cannot store a value of type {type(value).__name__}: {value!r}")


def _decode(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(value, options[0]) if len(options) == 1 else value
    if origin is typing.Literal:
        return value
    if origin is tuple:
        (item, *_rest) = typing.get_args(hint)
        return tuple(_decode(v, item) for v in value)
    if hint is timedelta:
        return timedelta(microseconds=value["microseconds"])
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = _hints(hint)
        return hint(**{k: _decode(v, hints[k]) for k, v in value.items()})
    return value


def definition_to_json(definition: AnyDefinition) -> str:
    """Encode a definition's fields (not its location or source text) as canonical JSON."""
    fields = {
        f.name: _encode(getattr(definition, f.name))
        for f in dataclasses.fields(definition)
        if f.name not in _OUT_OF_BAND
    }
    return json.dumps({"format": FORMAT, "kind": definition.kind, "fields": fields}, sort_keys=True)


def definition_from_json(
    text: str, *, location: Location | None = None, source_text: str | None = None
) -> AnyDefinition:
    """Rebuild the definition stored by :func:`definition_to_json`."""
    data = json.loads(text)
    if data.get("format") != FORMAT:
        raise RegistryError(
            f"stored definition has format {data.get('format')!r}, this fsql reads format "
            f"{FORMAT}; upgrade fsql to read this registry"
        )
    cls: Any = DEFINITION_CLASSES[data["kind"]]
    hints = _hints(cls)
    kwargs = {k: _decode(v, hints[k]) for k, v in data["fields"].items()}
    return cls(**kwargs, location=location, source_text=source_text)


def to_utc(value: datetime) -> datetime:
    """An aware UTC datetime; naive datetimes are taken as UTC (fsql's rule everywhere)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
