"""fsql: a SQL-first feature warehouse with a Postgres wire interface.

The package root is the Python API (:mod:`fsql.api`: ``FeatureStore``, ``SyncFeatureStore``,
``FeatureDefinition``, ...) and :class:`~fsql.errors.FsqlError`. The stages, bottom up:
:mod:`fsql.language` (parse, analyse) → :mod:`fsql.registry` (validate, version, store) →
:mod:`fsql.compile` (plan → DuckDB / Spark SQL) → :mod:`fsql.stores` and :mod:`fsql.engines` →
:mod:`fsql.workspace` (wires them) → :mod:`fsql.compute` and :mod:`fsql.serving` → the front
ends (:mod:`fsql.api`, :mod:`fsql.cli`, :mod:`fsql.pipelines` for Airflow, and ``fsql_server``
for the Postgres wire). docs/architecture.md draws the layers.
"""

from __future__ import annotations

__version__ = "0.1.0"

# after __version__, which the CLI reads from here
from fsql import api  # noqa: E402
from fsql.api import *  # noqa: E402, F403 - the API is the package's face
from fsql.errors import FsqlError  # noqa: E402

__all__ = ["FsqlError", "__version__", *api.__all__]
