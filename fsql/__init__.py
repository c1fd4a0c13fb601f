"""fsql: a SQL-first feature warehouse with a Postgres wire interface.

The package root is the Python API (:mod:`fsql.api`: ``FeatureStore``, ``SyncFeatureStore``,
``FeatureDefinition``, ...) and :class:`~fsql.errors.FsqlError`. The stages, bottom up:
:mod:`fsql.language` (parse, analyse) → :mod:`fsql.registry` (validate, version, store) →
:mod:`fsql.compile` (plan → DuckDB / Spark SQL) → :mod:`fsql.stores` and :mod:`fsql.engines` →
:mod:`fsql.workspace` (wires them) → :mod:`fsql.compute` and :mod:`fsql.serving` → the front
ends (:mod:`fsql.api`, :mod:`fsql.cli`, :mod:`fsql.pipelines` for Airflow, and ``fsql_server``
for the Postgres wire). docs/architecture.md draws the layers.

The API's names are loaded on first use (PEP 562): importing any ``fsql.<module>`` — the CLI,
a worker — runs this file, and must not load the whole API with it.
"""

from __future__ import annotations

import importlib

from fsql.errors import FsqlError

__version__ = "0.1.0"

#: the names of :mod:`fsql.api` this package exposes (tests/test_architecture.py checks the list)
API_NAMES = (
    "Aggregation", "Expression", "FeatureDefinition", "FeatureInfo", "FeatureStore",
    "LatestValue", "SyncFeatureStore", "Transform", "WindowedAggregation",
)  # fmt: skip

__all__ = ["FsqlError", "__version__", *API_NAMES]


def __getattr__(name: str) -> object:
    if name in API_NAMES:
        return getattr(importlib.import_module("fsql.api"), name)
    raise AttributeError(f"module 'fsql' has no attribute {name!r}")
