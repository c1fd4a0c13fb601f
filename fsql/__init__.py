"""fsql: a SQL-first feature warehouse with a Postgres wire interface.

Pipeline (one module per stage): SQL text → :mod:`fsql.language.parser` (parse) →
:mod:`fsql.language.analysis` (resolve, type, lineage) → :mod:`fsql.registry` (validate, version,
store) → :mod:`fsql.compile` (plan → DuckDB / Spark SQL) → :mod:`fsql.engines` (run) →
:mod:`fsql.stores` (offline Parquet, online SQLite/Redis) → ``fsql_server`` (Postgres wire)
and :mod:`fsql.pipelines` (Airflow).
"""

from __future__ import annotations

from fsql.errors import FsqlError

__version__ = "0.1.0"

__all__ = [
    "Aggregation",
    "Expression",
    "FeatureDefinition",
    "FeatureStore",
    "FsqlError",
    "LatestValue",
    "SyncFeatureStore",
    "WindowedAggregation",
    "__version__",
]

#: the Python API, imported on first use so that `import fsql` stays fast
_API = {
    "Aggregation", "Expression", "FeatureDefinition", "FeatureInfo", "FeatureStore",
    "LatestValue", "SyncFeatureStore", "Transform", "WindowedAggregation",
}  # fmt: skip


def __getattr__(name: str) -> object:
    if name in _API:
        import fsql.api

        return getattr(fsql.api, name)
    raise AttributeError(f"module 'fsql' has no attribute {name!r}")
