"""A worker's fsql objects, and fsql's own tables as Arrow.

:class:`Services` holds the worker's :class:`~fsql.workspace.Workspace` (registry, cached
catalog, stores) shared by its sessions; :meth:`Services.relation` is what DuckDB scans for
``features.<entity>`` (the online store's current values, :mod:`.scan`),
``offline.<feature>`` (the offline store's committed timeline files), ``sources.<source>``
(the source's files) and ``fsql.<table>``: the registry as tables
(``entities|sources|features|feature_versions|feature_sets|lineage|materializations``) and
pipeline monitoring (``runs|freshness|checks``, :mod:`fsql.compute.monitor`), which
``/metrics`` also serves in Prometheus format.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pyarrow as pa
from fsql_server.features.scan import entity_scan

from fsql.compute import monitor
from fsql.compute.materialize import timeline_schema
from fsql.config import Config
from fsql.intervals import format_interval
from fsql.language.definitions import EntityDef, FeatureDef, FeatureSetDef, SourceDef
from fsql.registry import Registry
from fsql.registry.catalog import Catalog
from fsql.stores.online import OnlineStore
from fsql.stores.online.reader import RedisLookupReader
from fsql.stores.sources import source_files
from fsql.workspace import Workspace

T = TypeVar("T")

#: pipeline monitoring tables, built by :mod:`fsql.compute.monitor`
MONITOR_TABLES = ("runs", "freshness", "checks")
REGISTRY_TABLES = ("entities", "sources", "features", "feature_versions", "feature_sets",
                   "lineage", "materializations", *MONITOR_TABLES)


class Services:
    """A worker's fsql workspace (registry, cached catalog, stores), shared by its sessions;
    everything is opened on first use (a server over an empty repo never touches them)."""

    def __init__(self, config: Config):
        self.config = config
        self.workspace = Workspace(config, catalog_refresh_seconds=1.0)
        self._monitor_lock = threading.Lock()
        self._monitor_registry: Registry | None = None
        #: read the online store through its asyncio API instead of inline (see LookupPlan)
        self.read_async = False
        self._reader: Any = None
        self._reader_checked = False

    @property
    def registry(self) -> Registry:
        return self.workspace.registry

    @property
    def catalog(self) -> Catalog:
        return self.workspace.catalog

    @property
    def online(self) -> OnlineStore:
        return self.workspace.online_store

    @property
    def lookup_reader(self) -> RedisLookupReader | None:
        """The non-blocking Redis reader of the lookup path (None when the online store is not
        a Redis it can reach: those lookups use the store's own read)."""
        if not self._reader_checked:
            # from the configuration: the store object (and redis-py, slow to import) is
            # never needed when every read goes through the reader
            self._reader = RedisLookupReader.for_config(self.config)
            self._reader_checked = True
        return self._reader  # type: ignore[no-any-return]

    def monitoring(self, read: Callable[[Registry], T]) -> T:
        """``read(registry)`` for a :mod:`fsql.compute.monitor` function, on a registry
        connection of its own: the run log reads the registry's database outside the
        :class:`~fsql.registry.Registry`'s own lock, so it must not share the sessions'
        connection (one statement of another thread could land inside its transaction).
        Called from executor threads (statements, ``/metrics``), one read at a time."""
        with self._monitor_lock:
            if self._monitor_registry is None:
                self._monitor_registry = self.workspace.open_registry()
            return read(self._monitor_registry)

    def metrics(self) -> str:
        """The Prometheus text ``/metrics`` serves (read from the registry now)."""
        return self.monitoring(monitor.prometheus_metrics)

    # -- relations for DuckDB -----------------------------------------------------------------

    def relation(self, schema: str, name: str,
                 equal_to: Mapping[str, Sequence[Any]] | None = None) -> Any:
        """The Arrow object DuckDB scans for ``schema.name`` (None when there is none);
        ``equal_to``: the statement's equality filters on its columns (``features.*`` reads
        only the keys they allow)."""
        if schema == "fsql":
            return registry_table(self, name)
        if schema == "features":
            return entity_scan(self.catalog, lambda: self.online, name, equal_to)
        current = self.catalog.current()
        record = current.get(name)
        if record is None:
            return None
        if schema == "offline":
            if not isinstance(record.definition, FeatureDef):
                return None
            feature = self.catalog.analysis().features.get(name)
            if feature is None:
                return None
            files = self.workspace.offline_store.timeline_files(name, record.version,
                                                                timeline_schema(feature))
            return files.dataset()
        if schema == "sources":
            if not isinstance(record.definition, SourceDef):
                return None
            return source_files(record.definition, self.config).dataset()
        return None


def registry_table(services: Services, name: str) -> pa.Table | None:
    """One of the ``fsql.*`` tables, built from the registry now."""
    if name in MONITOR_TABLES:
        build: dict[str, Callable[[Registry], pa.Table]] = {
            "runs": monitor.runs_table, "freshness": monitor.freshness_table,
            "checks": monitor.checks_table,
        }  # fmt: skip
        return services.monitoring(build[name])
    registry = services.registry
    current = registry.current()

    def records(kind: type) -> list[Any]:
        return sorted((r for r in current.values() if isinstance(r.definition, kind)),
                      key=lambda r: r.name)

    ts = pa.timestamp("us", tz="UTC")
    if name == "entities":
        rows = records(EntityDef)
        return pa.table({
            "name": [r.name for r in rows],
            "version": pa.array([r.version for r in rows], pa.int32()),
            "keys": [", ".join(c.sql() for c in r.definition.keys) for r in rows],
            "description": [r.definition.description for r in rows],
            "created_at": pa.array([r.created_at for r in rows], ts),
            "created_by": [r.created_by for r in rows],
            "sql": [r.canonical_sql for r in rows],
        })
    if name == "sources":
        rows = records(SourceDef)
        return pa.table({
            "name": [r.name for r in rows],
            "version": pa.array([r.version for r in rows], pa.int32()),
            "path": [r.definition.path for r in rows],
            "format": [r.definition.format for r in rows],
            "event_time": [r.definition.event_time for r in rows],
            "created_time": [r.definition.created_time for r in rows],
            "columns": [", ".join(c.sql() for c in r.definition.columns) for r in rows],
            "created_at": pa.array([r.created_at for r in rows], ts),
            "sql": [r.canonical_sql for r in rows],
        })
    if name == "features":
        rows = records(FeatureDef)
        analysis = services.catalog.analysis()
        resolved = [analysis.features.get(r.name) for r in rows]

        def interval(value: Any) -> str | None:
            return format_interval(value) if value is not None else None

        return pa.table({
            "name": [r.name for r in rows],
            "version": pa.array([r.version for r in rows], pa.int32()),
            "entity": [r.definition.entity for r in rows],
            "type": [f.value_type if f else r.definition.type for f, r in
                     zip(resolved, rows, strict=True)],
            "kind": [f.kind if f else None for f in resolved],
            "window": [interval(r.definition.window) for r in rows],
            "every": [interval(r.definition.every) for r in rows],
            "ttl": [interval(r.definition.ttl) for r in rows],
            "online": pa.array([r.definition.online for r in rows], pa.bool_()),
            "description": [r.definition.description for r in rows],
            "created_at": pa.array([r.created_at for r in rows], ts),
            "created_by": [r.created_by for r in rows],
            "sql": [r.canonical_sql for r in rows],
        })
    if name == "feature_versions":
        names = sorted({r.name for r in current.values() if isinstance(r.definition, FeatureDef)})
        history = [v for n in names for v in registry.history(n)]
        return pa.table({
            "name": [v.name for v in history],
            "version": pa.array([v.version for v in history], pa.int32()),
            "fingerprint": [v.fingerprint for v in history],
            "change": [v.change for v in history],
            "reason": [v.reason for v in history],
            "retired": pa.array([v.retired for v in history], pa.bool_()),
            "created_at": pa.array([v.created_at for v in history], ts),
            "created_by": [v.created_by for v in history],
            "retired_at": pa.array([v.retired_at for v in history], ts),
            "sql": [v.canonical_sql for v in history],
        })
    if name == "feature_sets":
        rows = records(FeatureSetDef)
        return pa.table({
            "name": [r.name for r in rows],
            "version": pa.array([r.version for r in rows], pa.int32()),
            "features": pa.array([list(r.definition.features) for r in rows],
                                 pa.list_(pa.string())),
            "description": [r.definition.description for r in rows],
            "created_at": pa.array([r.created_at for r in rows], ts),
            "sql": [r.canonical_sql for r in rows],
        })
    if name == "lineage":
        edges = registry.lineage()
        return pa.table({
            "from_name": [e.from_name for e in edges],
            "to_kind": [e.to_kind for e in edges],
            "to_name": [e.to_name for e in edges],
            "column_name": [e.column for e in edges],
        })
    if name == "materializations":
        entries = registry.ledger_entries()
        return pa.table({
            "id": pa.array([e.id for e in entries], pa.int64()),
            "feature": [e.feature for e in entries],
            "version": pa.array([e.version for e in entries], pa.int32()),
            "start": pa.array([e.start for e in entries], ts),
            "end": pa.array([e.end for e in entries], ts),
            "engine": [e.engine for e in entries],
            "rows": pa.array([e.rows for e in entries], pa.int64()),
            "online": pa.array([e.online for e in entries], pa.bool_()),
            "location": [e.location for e in entries],
            "created_at": pa.array([e.created_at for e in entries], ts),
        })
    return None
