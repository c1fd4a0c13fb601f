"""``FeatureStore``: the asyncio Python API of the original design.

Each method is a coroutine. Online reads are natively asynchronous (redis-py's asyncio client;
the embedded SQLite store reads in a worker thread); everything else — registry calls, engine
runs — is blocking work and runs in a worker thread via :func:`asyncio.to_thread`, so the event
loop is never blocked. ``FeatureStore.sync()`` returns the blocking twin,
:class:`~fsql.api.sync.SyncFeatureStore`, sharing the same connections.

>>> store = FeatureStore("sql_features")                       # doctest: +SKIP
>>> await store.get_online_features(["user_country"], "u00001")  # doctest: +SKIP
{'user_country': 'DE'}
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fsql.api.definition import FeatureDefinition
from fsql.api.sync import ConfigLike, FeatureInfo, SyncFeatureStore
from fsql.registry.catalog import FeatureMeta
from fsql.serving.reader import ReadPlan, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from datetime import datetime

    from fsql.registry.base import VersionRecord


class FeatureStore:
    """The feature store, asyncio API. ``FeatureStore(config)`` — see
    :func:`fsql.workspace.resolve_config` for what ``config`` may be."""

    def __init__(self, config: ConfigLike = None, *, engine: str | None = None):
        self._sync = SyncFeatureStore(config, engine=engine)

    @property
    def config(self) -> Any:
        return self._sync.config

    def sync(self) -> SyncFeatureStore:
        """The blocking twin of this store (same configuration and connections)."""
        return self._sync

    async def close(self) -> None:
        computer, self._sync._computer = self._sync._computer, None
        if computer is not None:
            await asyncio.to_thread(computer.close)
        await self._sync.workspace.aclose()

    async def __aenter__(self) -> FeatureStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def register_feature(self, feature_def: FeatureDefinition | str) -> str:
        """See :meth:`SyncFeatureStore.register_feature`."""
        return await asyncio.to_thread(self._sync.register_feature, feature_def)

    async def register(self, sql: str) -> list[VersionRecord]:
        """See :meth:`SyncFeatureStore.register`."""
        return await asyncio.to_thread(self._sync.register, sql)

    async def get_feature_info(
        self, feature_id: str, version: int | str | None = None
    ) -> FeatureInfo:
        """See :meth:`SyncFeatureStore.get_feature_info`."""
        return await asyncio.to_thread(self._sync.get_feature_info, feature_id, version)

    async def materialize(
        self, start: datetime, end: datetime, features: Sequence[str] | None = None, **kw: Any
    ) -> list[Any]:
        """See :meth:`SyncFeatureStore.materialize`."""
        return await asyncio.to_thread(self._sync.materialize, start, end, features, **kw)

    async def get_online_features(
        self, feature_ids: Sequence[str], entity_key: Any
    ) -> dict[str, Any]:
        """See :meth:`SyncFeatureStore.get_online_features`."""
        return (await self.get_online_features_batch(feature_ids, [entity_key]))[0]

    async def get_online_features_batch(
        self, feature_ids: Sequence[str], entity_keys: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """See :meth:`SyncFeatureStore.get_online_features_batch`."""
        sync = self._sync
        catalog = sync.catalog
        if catalog.stale:  # the registry may be queried: not on the event loop
            plan = await asyncio.to_thread(ReadPlan.for_ids, catalog, feature_ids)
        else:
            plan = ReadPlan.for_ids(catalog, feature_ids)
        if plan.offline:
            # ONLINE FALSE features need the compute cache: blocking work, off the loop.
            return await asyncio.to_thread(sync.get_online_features_batch, feature_ids, entity_keys)
        now = utc_now()
        unserved: list[FeatureMeta] = []
        rows = await plan.values_async(sync.online_store, entity_keys, now, unserved)
        if unserved:
            unserved = await asyncio.to_thread(plan.confirm_unserved, sync.online_store, unserved)
        if unserved:  # never pushed online: through the compute cache, off the loop
            return await asyncio.to_thread(
                sync._with_computed, plan, entity_keys, now, rows, unserved
            )
        names = plan.names
        return [dict(zip(names, r, strict=True)) for r in rows]

    async def compute_features(
        self, feature_ids: Sequence[str], entity_keys: Sequence[Any], *, as_arrow: bool = False
    ) -> Any:
        """See :meth:`SyncFeatureStore.compute_features`."""
        return await asyncio.to_thread(
            self._sync.compute_features, feature_ids, entity_keys, as_arrow=as_arrow
        )

    async def get_batch_features(
        self, feature_ids: Sequence[str], entity_keys_or_spine: Any, **kw: Any
    ) -> Any:
        """See :meth:`SyncFeatureStore.get_batch_features`."""
        return await asyncio.to_thread(
            self._sync.get_batch_features, feature_ids, entity_keys_or_spine, **kw
        )

    async def create_pipeline(self, feature_ids: Sequence[str]) -> str:
        """See :meth:`SyncFeatureStore.create_pipeline`."""
        return await asyncio.to_thread(self._sync.create_pipeline, feature_ids)

    async def get_pipeline_status(self, pipeline_id: str) -> Any:
        """See :meth:`SyncFeatureStore.get_pipeline_status`."""
        return await asyncio.to_thread(self._sync.get_pipeline_status, pipeline_id)
