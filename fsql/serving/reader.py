"""The online read path: feature ids + entity keys → values, TTLs applied.

:class:`ReadPlan` is the hot path (the Python API): everything that does not depend on the
keys is worked out once per list of feature ids and registry revision, and raw records are
decoded straight to served values (:func:`~fsql.stores.online.codec.serve_records`).
:func:`read_stored` / :func:`served_values` give the same answers through
:class:`~fsql.stores.online.StoredValue` objects (the compute cache and the server use them).

One store round trip per entity involved (all features of one entity and all keys go in one
read); features read their active version unless pinned (``name@3``), and each value's TTL is
the TTL of the version it was written for, so what is served is exactly the offline
point-in-time answer for (key, now).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from fsql.language.definitions import EntityDef
from fsql.registry.catalog import Catalog, FeatureMeta, entity_key_tuple, group_by_entity
from fsql.serving.checks import INTEGER_TYPES, check_key_entities, typed_entity_key
from fsql.stores.online import FeatureRef, OnlineStore, StoredValue
from fsql.stores.online.base import AsyncRecordReader
from fsql.stores.online.codec import NO_TTL, encode_entity_key, serve_records, to_micros


def utc_now() -> datetime:
    return datetime.now(UTC)


def _plan(
    metas: Sequence[FeatureMeta], keys: Sequence[Any], pin_current: bool
) -> list[tuple[str, list[int], list[FeatureRef], list[str]]]:
    """Per entity: (entity, feature positions, refs, encoded keys)."""
    reads = []
    for entity, positions in group_by_entity(metas).items():
        meta0 = metas[positions[0]]
        refs = []
        for i in positions:
            m = metas[i]
            version = m.pinned if m.pinned is not None else (m.version if pin_current else None)
            refs.append(FeatureRef(m.name, None if version is None else str(version)))
        encoded = [encode_entity_key(entity_key_tuple(meta0.entity, k)) for k in keys]
        reads.append((entity, positions, refs, encoded))
    return reads


def _assemble(
    catalog: Catalog,
    metas: Sequence[FeatureMeta],
    n_keys: int,
    reads: Sequence[tuple[str, list[int], list[FeatureRef], list[str]]],
    results: Sequence[list[list[StoredValue | None]]],
) -> list[list[StoredValue | None]]:
    out: list[list[StoredValue | None]] = [[None] * len(metas) for _ in range(n_keys)]
    for (_entity, positions, _refs, _keys), rows in zip(reads, results, strict=True):
        for k, row in enumerate(rows):
            for j, stored in zip(positions, row, strict=True):
                out[k][j] = stored
    return out


def read_stored(
    catalog: Catalog, store: OnlineStore, metas: Sequence[FeatureMeta], keys: Sequence[Any],
    *, pin_current: bool = False,
) -> list[list[StoredValue | None]]:  # fmt: skip
    """Raw records per key × feature (``pin_current``: read the registry's current version
    instead of the active one — the compute cache does)."""
    reads = _plan(metas, keys, pin_current)
    results = [store.read(entity, refs, enc) for entity, _p, refs, enc in reads]
    return _assemble(catalog, metas, len(keys), reads, results)


async def read_stored_async(
    catalog: Catalog, store: OnlineStore, metas: Sequence[FeatureMeta], keys: Sequence[Any],
    *, pin_current: bool = False,
) -> list[list[StoredValue | None]]:  # fmt: skip
    reads = _plan(metas, keys, pin_current)
    if len(reads) == 1:
        entity, _p, refs, enc = reads[0]
        results = [await store.read_async(entity, refs, enc)]
    else:
        results = list(
            await asyncio.gather(*(store.read_async(e, refs, enc) for e, _p, refs, enc in reads))
        )
    return _assemble(catalog, metas, len(keys), reads, results)


def served_values(
    catalog: Catalog,
    metas: Sequence[FeatureMeta],
    stored: Sequence[Sequence[StoredValue | None]],
    now: datetime,
) -> list[list[Any]]:
    """Apply each value's TTL (of the version it was written for) at ``now``."""
    now_us = to_micros(now)
    ttls = [_ttl_us(meta.definition.ttl) for meta in metas]
    current = [str(meta.version) for meta in metas]
    out = []
    for row in stored:
        values: list[Any] = []
        append = values.append
        for j, value in enumerate(row):  # serve_micros, inlined: this loop runs per value
            if value is None:
                append(None)
                continue
            ttl_us = ttls[j]
            if value.version != current[j] and value.version.isdigit():
                # written for another version: apply that version's TTL
                ttl_us = _ttl_us(catalog.definition_at(metas[j].name, int(value.version)).ttl)
            expires = value.expires_at_us
            if (expires is not None and now_us >= expires) or (
                ttl_us is not None and now_us - value.feature_time_us > ttl_us
            ):
                append(None)
            else:
                append(value.value)
        out.append(values)
    return out


def _ttl_us(ttl: timedelta | None) -> int | None:
    return None if ttl is None else ttl // timedelta(microseconds=1)


def feature_id(meta: FeatureMeta) -> str:
    """The id a result is keyed by: the name, or ``name@version`` when pinned."""
    return meta.name if meta.pinned is None else f"{meta.name}@{meta.pinned}"


class _Group:
    """The features of one entity in a :class:`ReadPlan`."""

    __slots__ = ("entity", "simple_key", "int_key", "positions", "refs", "names", "current",
                 "ttls")  # fmt: skip

    def __init__(self, entity: EntityDef, metas: Sequence[FeatureMeta], positions: list[int],
                 pin_current: bool):  # fmt: skip
        self.entity = entity
        #: one key column: scalar keys encode without building tuples
        self.simple_key = len(entity.key_names) == 1
        #: some key column is an integer type: keys are converted (or refused) to match
        self.int_key = any(c.type.upper() in INTEGER_TYPES for c in entity.keys)
        self.positions = positions
        self.refs: list[FeatureRef] = []
        self.names: list[str] = []
        self.current: list[str] = []
        self.ttls: list[int | None] = []
        for i in positions:
            m = metas[i]
            version = m.pinned if m.pinned is not None else (m.version if pin_current else None)
            self.refs.append(FeatureRef(m.name, None if version is None else str(version)))
            self.names.append(m.name)
            self.current.append(str(m.version if m.pinned is None else m.pinned))
            self.ttls.append(_ttl_us(m.definition.ttl))

    def encode_keys(self, keys: Sequence[Any]) -> list[str]:
        """Entity keys as the store spells them (:func:`encode_entity_key`)."""
        entity = self.entity
        if not self.simple_key:
            if self.int_key:
                keys = [typed_entity_key(entity, k) for k in keys]
            return [encode_entity_key(entity_key_tuple(entity, k)) for k in keys]
        out = []
        int_key = self.int_key
        for key in keys:
            kind = type(key)
            if kind is int:
                out.append(str(key))
            elif kind is str and not int_key and "|" not in key and "\\" not in key:
                out.append(key)
            else:
                if int_key:
                    key = typed_entity_key(entity, key)
                out.append(encode_entity_key(entity_key_tuple(entity, key)))
        return out

    def oldest(self, catalog: Catalog, versions: Sequence[str | None], now_us: int) -> list[int]:
        """Per feature, the oldest feature time still fresh at ``now_us``: the TTL is that of
        the version actually read (a pinned or not yet switched version may differ)."""
        out = []
        for j, version in enumerate(versions):
            ttl_us = self.ttls[j]
            if version is not None and version != self.current[j] and version.isdigit():
                ttl_us = _ttl_us(catalog.definition_at(self.names[j], int(version)).ttl)
            out.append(NO_TTL if ttl_us is None else now_us - ttl_us)
        return out


class ReadPlan:
    """How to serve one list of feature ids: the features per entity, their refs, TTLs and
    result names. Built once per list and registry revision (:meth:`for_ids`), so a read is
    key encoding, one store round trip per entity and :func:`serve_records` per key."""

    def __init__(self, catalog: Catalog, metas: Sequence[FeatureMeta], *,
                 pin_current: bool = False):  # fmt: skip
        self.catalog = catalog
        self.metas = list(metas)
        self.names = [feature_id(m) for m in self.metas]
        #: positions of ONLINE TRUE features (the store serves them) and of the others
        self.online = [i for i, m in enumerate(self.metas) if m.definition.online]
        self.offline = [i for i, m in enumerate(self.metas) if not m.definition.online]
        online = [self.metas[i] for i in self.online]
        self.groups = [
            _Group(online[ps[0]].entity, online, ps, pin_current)
            for ps in group_by_entity(online).values()
        ]

    @classmethod
    def for_ids(cls, catalog: Catalog, feature_ids: Sequence[str]) -> ReadPlan:
        """The plan for ``feature_ids`` (cached until the registry changes)."""
        ids = tuple(feature_ids)
        return catalog.memo(("read-plan", ids), lambda: cls(catalog, catalog.features(ids)))

    def values(
        self, store: OnlineStore, keys: Sequence[Any], now: datetime,
        unserved: list[FeatureMeta] | None = None,
    ) -> list[list[Any]]:  # fmt: skip
        """Served values of the ONLINE TRUE features, per key, in :attr:`online` order.
        ``unserved`` (when given) receives the unpinned features the read found no version of
        (no key had a record; :meth:`confirm_unserved` tells which have no active version:
        never materialized or never pushed)."""
        now_us = to_micros(now)
        if len(self.groups) > 1:
            check_key_entities([self.metas[i] for i in self.online], keys)
        parts = []
        for g in self.groups:
            versions, rows = store.read_records(g.entity.name, g.refs, g.encode_keys(keys))
            if unserved is not None:
                self._unserved(g, versions, unserved)
            parts.append(self.serve(g, versions, rows, now_us))
        return self._merge(parts, len(keys))

    @staticmethod
    def confirm_unserved(store: OnlineStore, candidates: list[FeatureMeta]) -> list[FeatureMeta]:
        """Of the features a read found no version of (``unserved`` of :meth:`values`: a store
        may report no version when no key had a record), those with no active version."""
        if not candidates:
            return candidates
        active = store.active_versions([m.name for m in candidates])
        return [m for m in candidates if active.get(m.name) is None]

    def _unserved(
        self, g: _Group, versions: Sequence[str | None], unserved: list[FeatureMeta]
    ) -> None:
        online = self.online
        for j, version in enumerate(versions):
            meta = self.metas[online[g.positions[j]]]
            if version is None and meta.pinned is None:
                unserved.append(meta)

    async def values_async(
        self, store: AsyncRecordReader, keys: Sequence[Any], now: datetime,
        unserved: list[FeatureMeta] | None = None,
    ) -> list[list[Any]]:  # fmt: skip
        """:meth:`values` through the store's asyncio API (one read per entity, concurrent)."""
        now_us = to_micros(now)
        if len(self.groups) > 1:
            check_key_entities([self.metas[i] for i in self.online], keys)
        if len(self.groups) == 1:
            g = self.groups[0]
            reads = [await store.read_records_async(g.entity.name, g.refs, g.encode_keys(keys))]
        else:
            reads = list(
                await asyncio.gather(*(
                    store.read_records_async(g.entity.name, g.refs, g.encode_keys(keys))
                    for g in self.groups
                ))
            )  # fmt: skip
        if unserved is not None:
            for g, (versions, _rows) in zip(self.groups, reads, strict=True):
                self._unserved(g, versions, unserved)
        parts = [
            self.serve(g, versions, rows, now_us)
            for g, (versions, rows) in zip(self.groups, reads, strict=True)
        ]
        return self._merge(parts, len(keys))

    def serve(self, g: _Group, versions: Sequence[str | None],
               rows: Sequence[Sequence[bytes | None]], now_us: int) -> list[list[Any]]:  # fmt: skip
        oldest = g.oldest(self.catalog, versions, now_us)
        return [serve_records(row, oldest, now_us) for row in rows]

    def _merge(self, parts: list[list[list[Any]]], n_keys: int) -> list[list[Any]]:
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return [[] for _ in range(n_keys)]
        out: list[list[Any]] = [[None] * len(self.online) for _ in range(n_keys)]
        for g, rows in zip(self.groups, parts, strict=True):
            for row, served in zip(out, rows, strict=True):
                for slot, value in zip(g.positions, served, strict=True):
                    row[slot] = value
        return out
