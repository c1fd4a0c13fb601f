"""The Python API: :class:`FeatureStore` (asyncio) and :class:`SyncFeatureStore` (blocking),
plus :class:`FeatureDefinition` and its transforms — the Python twin of ``CREATE FEATURE``.

Modules: :mod:`~fsql.api.definition` (definitions ↔ SQL), :mod:`~fsql.registry.catalog` (cached
registry view), :mod:`~fsql.serving.reader` (the online read path), :mod:`~fsql.api.sync` and
:mod:`~fsql.api.store` (the facades). Documented in docs/python-api.md.
"""

from __future__ import annotations

from fsql.api.definition import (
    Aggregation,
    Expression,
    FeatureDefinition,
    LatestValue,
    Transform,
    WindowedAggregation,
)
from fsql.api.store import FeatureStore
from fsql.api.sync import FeatureInfo, SyncFeatureStore

__all__ = [
    "Aggregation",
    "Expression",
    "FeatureDefinition",
    "FeatureInfo",
    "FeatureStore",
    "LatestValue",
    "SyncFeatureStore",
    "Transform",
    "WindowedAggregation",
]
