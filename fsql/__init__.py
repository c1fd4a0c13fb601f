"""fsql: a SQL-first feature warehouse with a Postgres wire interface.

Pipeline (one module per stage): SQL text → :mod:`fsql.language.dialect` (parse) →
:mod:`fsql.language.analysis` (resolve, type, lineage) → :mod:`fsql.registry` (validate, version,
store) → :mod:`fsql.compile` (plan → DuckDB / Spark SQL) → :mod:`fsql.engines` (run) →
:mod:`fsql.stores` (offline Parquet, online SQLite/Redis) → ``fsql_server`` (Postgres wire)
and :mod:`fsql.pipelines` (Airflow).
"""

from __future__ import annotations

__version__ = "0.1.0"

from fsql.api import (  # noqa: E402 - after __version__, which the CLI reads from here
    Aggregation,
    Expression,
    FeatureDefinition,
    FeatureInfo,
    FeatureStore,
    LatestValue,
    SyncFeatureStore,
    Transform,
    WindowedAggregation,
)
from fsql.errors import FsqlError  # noqa: E402

__all__ = [
    "Aggregation",
    "Expression",
    "FeatureDefinition",
    "FeatureInfo",
    "FeatureStore",
    "FsqlError",
    "LatestValue",
    "SyncFeatureStore",
    "Transform",
    "WindowedAggregation",
    "__version__",
]
