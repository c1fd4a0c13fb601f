"""Engines run the SQL :mod:`fsql.compile` generates: DuckDB embedded, Spark for larger data.

:class:`~fsql.engines.base.Engine` is the interface; :func:`open_engine` picks one by name.
pyspark is imported only inside :mod:`fsql.engines.spark`, when a Spark session starts.
"""

from __future__ import annotations

from fsql.config import Config
from fsql.engines.base import Engine
from fsql.engines.duckdb import DuckDBEngine
from fsql.engines.spark import SparkEngine
from fsql.errors import ConfigError


def open_engine(config: Config, name: str | None = None) -> Engine:
    """The engine ``name`` (default ``config.compute.engine``), started from ``config``."""
    name = name or config.compute.engine
    if name == "duckdb":
        return DuckDBEngine.from_config(config)
    if name == "spark":
        return SparkEngine.from_config(config)
    raise ConfigError(f"unknown engine {name!r}; choose 'duckdb' or 'spark'")


__all__ = ["DuckDBEngine", "Engine", "SparkEngine", "open_engine"]
