"""fsql: a SQL-first feature warehouse with a Postgres wire interface.

Pipeline (one module per stage): SQL text → :mod:`fsql.dialect` (parse) →
:mod:`fsql.analysis` (resolve, type, lineage) → :mod:`fsql.registry` (validate, version,
store) → :mod:`fsql.compile` (plan → DuckDB / Spark SQL) → :mod:`fsql.engines` (run) →
:mod:`fsql.stores` (offline Parquet, online SQLite/Redis) → ``fsql_server`` (Postgres wire)
and :mod:`fsql.pipelines` (Airflow).
"""

from __future__ import annotations

from fsql.errors import FsqlError

__version__ = "0.1.0"

__all__ = ["FsqlError", "__version__"]
