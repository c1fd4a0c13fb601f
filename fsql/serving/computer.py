"""The compute cache: the original design's ``FeatureComputer`` and ``FeatureRouter``.

``compute_features(features, entity_keys)`` returns the *current* value of each feature for
each key. The rule, per request:

1. **Route** (:class:`FeatureRouter`). A feature is *online-routed* when it is declared
   ``ONLINE TRUE`` and the online store's active version of it is the registry's current
   version: it is read from the online store exactly as ``get_online_features`` serves it
   (TTL applied). Every other feature — ``ONLINE FALSE``, never pushed, or changed since its
   last push — is *offline-routed*: it is looked up in the cache entries the compute cache
   itself wrote (the online store, pinned to the current version) and computed when missing.
2. **Read** both kinds in one online-store round trip per entity.
3. **Compute the misses**: (key, feature) pairs with no record (entities never materialized,
   offline-routed features not cached yet, cache entries past their expiry) are computed on
   demand at the current tick — the latest tick ≤ now, the same value materializing that tick
   would give — with the compute engine, for just those keys (the source is read filtered to
   them when its key expressions are plain columns).
4. **Write back** the computed values under the current version, with an expiry: the
   feature's TTL after the tick when it has one (when the value would turn NULL anyway),
   otherwise the next tick (when the value may change). The next call is a cache hit.
   Keys the computation finds no row for (entities never seen) are NULL and not cached:
   they are computed again on the next call, so a new entity shows up as soon as its first
   event lands in the source.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from fsql.compile.plan import build_plan, source_relation, timeline_relation
from fsql.compile.sql import DENSE, timeline_query
from fsql.errors import ComputeError
from fsql.registry.catalog import FeatureMeta, entity_key_tuple
from fsql.serving.reader import read_stored, served_values, utc_now
from fsql.stores.online import serve
from fsql.stores.online.codec import EPOCH, StoredValue, encode_entity_key, encode_records
from fsql.stores.sources import source_files

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from fsql.config import Config
    from fsql.engines.base import Engine
    from fsql.language.definitions import ResolvedFeature
    from fsql.workspace import Workspace


@dataclass(frozen=True)
class Route:
    """Which requested features come from the online store and which from the offline path."""

    online: tuple[str, ...]
    offline: tuple[str, ...]


class FeatureRouter:
    """Decides per request where each feature's values come from (see the module docstring)."""

    def route(self, metas: Sequence[FeatureMeta], active: Mapping[str, str]) -> Route:
        online, offline = [], []
        for meta in metas:
            wanted = meta.pinned if meta.pinned is not None else meta.version
            if meta.definition.online and active.get(meta.name) == str(wanted):
                online.append(meta.name)
            else:
                offline.append(meta.name)
        return Route(tuple(online), tuple(offline))


def current_tick(now: datetime, every: timedelta) -> datetime:
    """The latest tick ≤ ``now`` for cadence ``every``."""
    step = every // timedelta(microseconds=1)
    us = (now - EPOCH) // timedelta(microseconds=1)
    return EPOCH + timedelta(microseconds=(us // step) * step)


class FeatureComputer:
    """Current feature values: online-store hits, on-demand computation for the misses."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.config = workspace.config
        self.catalog = workspace.catalog
        self.router = FeatureRouter()
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        self._active: dict[str, str] = {}
        self._active_known: set[str] = set()
        self._active_at = float("-inf")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def _active_versions(self, names: Sequence[str]) -> dict[str, str]:
        """The online store's active versions, cached for a second. The read itself is
        pinned to the current version (for an online-routed feature that *is* the active
        version), so the route only labels where values came from and a slightly stale view
        never changes a result; caching keeps an all-hits call at one store round trip."""
        now = time.monotonic()
        if now - self._active_at >= 1.0 or not set(names) <= self._active_known:
            self._active = self.workspace.online_store.active_versions(None)
            self._active_known = set(self._active) | set(names)
            self._active_at = now
        return self._active

    def _get_engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.workspace.open_engine()
        return self._engine

    def compute_features(
        self, feature_ids: Sequence[str], entity_keys: Sequence[Any], *, now: datetime | None = None
    ) -> tuple[list[FeatureMeta], list[list[Any]], dict[str, int]]:
        """Values per key × feature, and counts of ``hits``/``computed`` for observability."""
        now = now or utc_now()
        metas = self.catalog.features(feature_ids)
        for meta in metas:
            if meta.pinned is not None and meta.pinned != meta.version:
                raise ComputeError(
                    f"compute_features computes current versions only; {meta.name}@{meta.pinned} "
                    f"is not the current version (v{meta.version}); use get_online_features to "
                    "read an older version"
                )
        route = self.router.route(metas, self._active_versions([m.name for m in metas]))
        stored = read_stored(self.catalog, self.workspace.online_store, metas, entity_keys, pin_current=True)
        values = served_values(self.catalog, metas, stored, now)
        missing: dict[int, list[int]] = {}  # feature position → key positions
        for k, row in enumerate(stored):
            for j, record in enumerate(row):
                if record is None or record.expired(now):
                    missing.setdefault(j, []).append(k)
        computed = 0
        if missing:
            computed = self._fill(metas, entity_keys, missing, values, now)
        hits = len(entity_keys) * len(metas) - sum(len(v) for v in missing.values())
        return metas, values, {
            "hits": hits, "computed": computed, "online_routed": len(route.online),
            "offline_routed": len(route.offline),
        }  # fmt: skip

    def _fill(
        self,
        metas: Sequence[FeatureMeta],
        entity_keys: Sequence[Any],
        missing: Mapping[int, list[int]],
        values: list[list[Any]],
        now: datetime,
    ) -> int:
        analysis = self.catalog.analysis()
        computed = 0
        by_feature = {metas[j].name: (j, ks) for j, ks in missing.items()}
        with self._engine_lock:
            engine = self._get_engine()
            for name, (j, key_positions) in by_feature.items():
                meta = metas[j]
                feature = analysis.features[name]
                tick = current_tick(now, feature.definition.every)
                keys = [entity_key_tuple(meta.entity, entity_keys[k]) for k in key_positions]
                table = compute_at_tick(
                    engine, self.config, analysis.features, name, tick, meta.entity.key_names, keys
                )
                found = _index_rows(table, meta.entity.key_names, name)
                ttl = feature.definition.ttl
                expires = tick + (ttl if ttl is not None else feature.definition.every)
                write_keys, write_values = [], []
                for k, key in zip(key_positions, keys, strict=True):
                    encoded = encode_entity_key(key)
                    seen, value = found.get(encoded, (False, None))
                    stored = StoredValue(value, tick, str(meta.version))
                    values[k][j] = serve(stored, ttl, now) if seen else None
                    if seen:
                        write_keys.append(encoded)
                        write_values.append(value)
                if write_keys:
                    records = encode_records(
                        feature.value_type, write_values, [tick] * len(write_keys), expires
                    )
                    self.workspace.online_store.write(meta.entity.name, name, str(meta.version), write_keys, records)
                computed += len(key_positions)
        return computed


def _index_rows(
    table: pa.Table, key_names: Sequence[str], feature: str
) -> dict[str, tuple[bool, Any]]:
    columns = [table.column(k).to_pylist() for k in key_names]
    values = table.column(feature).to_pylist()
    keys = zip(*columns, strict=True) if len(columns) > 1 else ((k,) for k in columns[0])
    return {encode_entity_key(tuple(k)): (True, v) for k, v in zip(keys, values, strict=True)}


def compute_at_tick(
    engine: Engine,
    config: Config,
    resolved: Mapping[str, ResolvedFeature],
    name: str,
    tick: datetime,
    key_names: Sequence[str],
    keys: Sequence[tuple[Any, ...]] | None,
) -> pa.Table:
    """The timeline rows of ``name`` at ``tick`` (keys, ``feature_time``, value) for ``keys``
    (``None``: every entity), computed with ``engine`` without touching the offline store.
    Derived features compute their inputs at the same tick first."""

    feature = resolved[name]
    plan = build_plan(feature, {i: resolved[i] for i in feature.inputs})
    end = tick + feature.definition.every
    registered: list[str] = []
    try:
        if feature.kind == "derived":
            for input_name in feature.inputs:
                table = compute_at_tick(engine, config, resolved, input_name, tick, key_names, keys)
                engine.register_arrow(timeline_relation(input_name), table)
                registered.append(timeline_relation(input_name))
        else:
            assert feature.source is not None
            relation = source_relation(feature.source.name)
            engine.register_arrow(relation, _source_rows(feature, config, keys))
            registered.append(relation)
        sql = timeline_query(plan, engine.target, tick, end, DENSE).sql(dialect=engine.target.dialect)
        result = engine.query(sql)
    finally:
        for relation in registered:
            engine.unregister(relation)
    if keys is None:
        return result
    return _filter_keys(result, key_names, keys)


def _source_rows(
    feature: ResolvedFeature, config: Config, keys: Sequence[tuple[Any, ...]] | None
) -> pa.Table:
    """The feature's source rows, filtered to ``keys`` when every key expression is a plain
    column (otherwise all rows: the key is computed by SQL)."""


    assert feature.source is not None
    dataset = source_files(feature.source, config).dataset()
    plain = all(e.isidentifier() and feature.source.column(e) for e in feature.key_exprs)
    if keys is None or not plain:
        return dataset.to_table()
    condition = None
    for i, column in enumerate(feature.key_exprs):
        wanted = sorted({k[i] for k in keys if k[i] is not None}, key=str)
        term = pc.field(column).isin(wanted)
        condition = term if condition is None else condition & term
    return dataset.to_table(filter=condition)


def _filter_keys(
    table: pa.Table, key_names: Sequence[str], keys: Sequence[tuple[Any, ...]]
) -> pa.Table:

    wanted = {encode_entity_key(k) for k in keys}
    mask = [encode_entity_key(k) in wanted for k in _key_tuples(table, key_names)]
    return table.filter(pa.array(mask, pa.bool_()))


def _key_tuples(table: pa.Table, key_names: Sequence[str]) -> list[tuple[Any, ...]]:
    columns = [table.column(k).to_pylist() for k in key_names]
    return list(zip(*columns, strict=True))


def utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
