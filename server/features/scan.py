"""``features.<entity>`` as a relation: every key of the entity in the online store, with the
values a point lookup of that key returns now.

A point lookup (``WHERE user_id = 42``) stays a :class:`~fsql_server.features.lookup.LookupPlan`
(no SQL engine). Any other statement over ``features.<entity>`` (scans, filters on features,
GROUP BY, joins, schema probes) runs in the session's DuckDB, where the relation is an
:class:`EntityScan`: an Arrow stream DuckDB pulls batch by batch. Each batch is one listing of
keys from the online store (:meth:`~fsql.stores.online.OnlineStore.entity_keys`: Redis
``SCAN``, an indexed range read on SQLite) and one read of those keys through the very
read plan point lookups use (:class:`fsql.serving.reader.ReadPlan`: active versions, each
value's TTL, expiry), at one ``now`` for the whole statement. So a scan equals the lookups of
its keys by construction, and memory holds one batch, not the entity.

Which keys: every key with a stored value for the entity (of any feature or version), the
keys a lookup could find something for; a key whose values have all expired is a row of
NULLs, exactly what its lookup returns. A statement that never pulls rows (``LIMIT 0``,
``WHERE false``, a Describe) never reads the store. A key a store lists twice in one listing
(Redis's ``SCAN`` while its table rehashes) is one row: the scan remembers the keys it gave
(for such stores only), which costs memory per key, never per value.

Key filters: when the statement holds every key column to given values (``user_id = 'a'``,
``user_id IN (...)``, ``= ANY($1)``: :mod:`fsql_server.pg.pushdown`), the scan reads only those
keys, through the same read plan, after asking the store which of them hold a value
(:meth:`~fsql.stores.online.OnlineStore.existing_keys`) instead of listing the entity.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from fsql.language.definitions import EntityDef, FeatureDef
from fsql.registry.catalog import Catalog
from fsql.serving.reader import ReadPlan
from fsql.stores.online import OnlineStore
from fsql.stores.online.codec import encode_entity_key
from fsql.stores.sources import arrow_type

#: keys listed and read per batch (one store round trip for the keys, one for the values)
SCAN_BATCH = 2000


def online_features(catalog: Catalog, entity: str) -> list[str]:
    """The entity's served features, sorted: the columns after the key, in lookups too."""
    current = catalog.current()
    analysis = catalog.analysis()
    return sorted(
        name for name, r in current.items()
        if isinstance(r.definition, FeatureDef) and r.definition.entity == entity
        and r.definition.online and name in analysis.features
    )


class EntityScan:
    """The Arrow stream of ``features.<entity>`` (an Arrow PyCapsule stream: DuckDB asks for a
    fresh stream for every scan of the relation in a statement, so self-joins work)."""

    def __init__(self, catalog: Catalog, store: Any, entity: EntityDef,
                 features: list[str], batch: int = SCAN_BATCH,
                 keys: Sequence[Any] | None = None):
        self.catalog = catalog
        #: the only keys to read (typed as lookups take them), None: every key of the store
        self.keys = keys
        #: the online store, opened on the first pull (a probe never opens it)
        self.store = store
        self.entity = entity
        self.features = features
        self.batch = batch
        analysis = catalog.analysis()
        fields = [pa.field(k.name, arrow_type(k.type)) for k in entity.keys]
        fields += [pa.field(f, arrow_type(analysis.features[f].value_type)) for f in features]
        self.schema = pa.schema(fields)
        self.key_types = [field.type for field in fields[: len(entity.keys)]]
        #: the error that ended the last stream (read by the server to report it)
        self.failure: Exception | None = None

    def __arrow_c_schema__(self) -> Any:
        return self.schema.__arrow_c_schema__()

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        reader = pa.RecordBatchReader.from_batches(self.schema, self.batches())
        return reader.__arrow_c_stream__(requested_schema)

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            store: OnlineStore = self.store()
            now = datetime.now(UTC)
            plan = ReadPlan.for_ids(self.catalog, self.features) if self.features else None
            for encoded in self.key_batches(store):
                keys = [decode_entity_key(text, self.key_types) for text in encoded]
                rows = plan.values(store, keys, now) if plan is not None else [[] for _ in keys]
                yield self.record_batch(keys, rows)
        except Exception as exc:
            # DuckDB reports a failed stream as its own error, with the text only: the server
            # asks for this one instead (its SQLSTATE, e.g. the store being unreachable)
            self.failure = exc
            raise

    def key_batches(self, store: OnlineStore) -> Iterator[list[str]]:
        """The encoded keys to read, in batches, each key once."""
        if self.keys is not None:
            wanted = list(dict.fromkeys(encode_entity_key(k) for k in self.keys))
            for start in range(0, len(wanted), self.batch):
                found = store.existing_keys(self.entity.name, wanted[start:start + self.batch])
                if found:
                    yield found
            return
        if not store.keys_may_repeat:
            yield from store.entity_keys(self.entity.name, self.batch)
            return
        seen: set[str] = set()
        for encoded in store.entity_keys(self.entity.name, self.batch):
            fresh = [key for key in encoded if key not in seen]
            seen.update(fresh)
            if fresh:
                yield fresh

    def record_batch(self, keys: list[Any], rows: list[list[Any]]) -> pa.RecordBatch:
        columns: list[list[Any]] = [[] for _ in self.schema]
        n_keys = len(self.key_types)
        for key, values in zip(keys, rows, strict=True):
            parts = key if n_keys > 1 else (key,)
            for i, part in enumerate(parts):
                columns[i].append(part)
            for j, value in enumerate(values):
                columns[n_keys + j].append(value)
        arrays = [pa.array(values, type=field.type)
                  for values, field in zip(columns, self.schema, strict=True)]
        return pa.record_batch(arrays, schema=self.schema)


def entity_scan(catalog: Catalog, store: Any, name: str,
                equal_to: Mapping[str, Sequence[Any]] | None = None) -> EntityScan | None:
    """The relation ``features.<name>`` (None when ``name`` is no entity). ``store`` returns
    the online store when called. ``equal_to`` (column → values, from the statement's
    filters): when it holds every key column, only those keys are read."""
    record = catalog.current().get(name)
    if record is None or not isinstance(record.definition, EntityDef):
        return None
    entity: EntityDef = record.definition
    scan = EntityScan(catalog, store, entity, online_features(catalog, name))
    scan.keys = filtered_keys(entity, scan.key_types, equal_to or {})
    return scan


def filtered_keys(entity: EntityDef, types: list[pa.DataType],
                  equal_to: Mapping[str, Sequence[Any]]) -> list[Any] | None:
    """The typed keys the filters allow (the cross product of each key column's values; NULL
    matches nothing), None when they do not hold every key column or a value is no valid key
    (DuckDB then scans everything and reports the value itself)."""
    per_column: list[list[Any]] = []
    for key, kind in zip(entity.keys, types, strict=True):
        values = equal_to.get(key.name.lower())
        if values is None:
            return None
        typed = []
        for value in values:
            if value is None:
                continue
            try:
                typed.append(_typed_key_value(value, kind))
            except (TypeError, ValueError):
                return None
        per_column.append(typed)
    combos = itertools.product(*per_column)
    return [combo[0] if len(combo) == 1 else combo for combo in combos]


def _typed_key_value(value: Any, kind: pa.DataType) -> Any:
    """A filter's value as the key type (what the key equals once DuckDB casts it)."""
    if pa.types.is_integer(kind):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if not isinstance(value, str):
            raise TypeError(value)  # user_id = 42 on a text key: DuckDB decides
        return value
    if isinstance(value, str):
        return _key_value(value, kind)
    return value


def split_entity_key(text: str) -> list[str]:
    """The parts of an encoded key (:func:`~fsql.stores.online.codec.encode_entity_key`):
    split at unescaped ``|``, ``\\`` escapes removed."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def decode_entity_key(text: str, types: list[pa.DataType]) -> Any:
    """An encoded key back to the typed key a lookup would be given (a tuple when composite)."""
    parts = split_entity_key(text) if len(types) > 1 or "\\" in text or "|" in text else [text]
    values = [_key_value(part, kind) for part, kind in zip(parts, types, strict=False)]
    return values[0] if len(types) == 1 else tuple(values)


def _key_value(text: str, kind: pa.DataType) -> Any:
    if pa.types.is_integer(kind):
        return int(text)
    if pa.types.is_boolean(kind):
        return text == "true"
    if pa.types.is_floating(kind):
        return float(text)
    if pa.types.is_timestamp(kind):
        return datetime.fromisoformat(text)
    if pa.types.is_date(kind):
        return date.fromisoformat(text)
    return text
