"""The online read path: feature ids + entity keys → values, TTLs applied.

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

from fsql.api.catalog import Catalog, FeatureMeta, entity_key_tuple, group_by_entity
from fsql.stores.online import FeatureRef, OnlineStore, StoredValue
from fsql.stores.online.codec import encode_entity_key, to_micros


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
