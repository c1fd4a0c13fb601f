"""fsql's own tables and statements on the wire.

- ``features.<entity>``: current online values, one row per requested key — the fast path,
  planned once into a :class:`LookupPlan` that reads the online store (never DuckDB) and
  applies each value's TTL exactly like the Python API (:mod:`fsql.serving.reader`);
- ``offline.<feature>`` / ``sources.<source>``: Arrow datasets over the offline store's
  committed timeline files / the source's files, registered in the session's DuckDB;
- ``fsql.entities|sources|features|feature_versions|feature_sets|lineage|materializations``:
  the registry as tables; ``fsql.runs|freshness|checks``: pipeline monitoring
  (:mod:`fsql.compute.monitor`), which ``/metrics`` also serves in Prometheus format;
- ``training_set('<spine>', 'feature_or_set', ...)``: the point-in-time join of
  :func:`fsql.compute.training.training_set` over a session table (or a source) as the spine;
- ``CREATE ENTITY/SOURCE/FEATURE/FEATURE SET`` and ``DROP ...``: registered through the
  registry's plan/apply, like ``fsql apply`` (users without ``can_define`` get 42501).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from fsql_server import errors
from fsql_server.backend import Column, Plan, Result
from fsql_server.errors import PgError
from fsql_server.types import INT4, INT8, TEXT, TYPES, PgType, sql_type_to_pg
from sqlglot import exp

from fsql.workspace import Workspace

if TYPE_CHECKING:
    import pyarrow as pa
    from fsql_server.session import Session

    from fsql.config import Config
    from fsql.registry import Registry
    from fsql.registry.catalog import Catalog
    from fsql.stores.online import OnlineStore
    from fsql.stores.online.reader import RedisLookupReader

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
            from fsql.stores.online.reader import RedisLookupReader

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
        from fsql.compute.monitor import prometheus_metrics

        return self.monitoring(prometheus_metrics)

    # -- relations for DuckDB -----------------------------------------------------------------

    def relation(self, schema: str, name: str) -> Any:
        """The Arrow object DuckDB scans for ``schema.name`` (None when there is none)."""
        if schema == "fsql":
            return registry_table(self, name)
        current = self.catalog.current()
        record = current.get(name)
        if record is None:
            return None
        if schema == "offline":
            from fsql.compute.materialize import timeline_schema
            from fsql.language.definitions import FeatureDef

            if not isinstance(record.definition, FeatureDef):
                return None
            feature = self.catalog.analysis().features.get(name)
            if feature is None:
                return None
            files = self.workspace.offline_store.timeline_files(name, record.version, timeline_schema(feature))
            return files.dataset()
        if schema == "sources":
            from fsql.language.definitions import SourceDef
            from fsql.stores.sources import source_files

            if not isinstance(record.definition, SourceDef):
                return None
            return source_files(record.definition, self.config).dataset()
        return None


def attach_services(state: Any, config: Config) -> None:
    """Give a worker's state the fsql services and DuckDB's relation provider."""
    services = Services(config)
    state.services = services
    state.relation_provider = services.relation


def _services(session: Session) -> Services:
    services = session.server.services
    if services is None:
        raise PgError(errors.FEATURE_NOT_SUPPORTED, "this server has no fsql repository")
    return services


# --------------------------------------------------------------------------------------------
# registry tables


def registry_table(services: Services, name: str) -> pa.Table | None:
    """One of the ``fsql.*`` tables, built from the registry now."""
    import pyarrow as pa

    from fsql.intervals import format_interval
    from fsql.language.definitions import EntityDef, FeatureDef, FeatureSetDef, SourceDef

    if name in MONITOR_TABLES:
        from fsql.compute import monitor

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


# --------------------------------------------------------------------------------------------
# features.<entity>: the point-lookup fast path


class _Slot:
    """Where a value comes from at run time: a client parameter or a literal. A ``many`` slot
    is an array parameter (``key = ANY($1)``) standing for several values."""

    __slots__ = ("many", "param", "value")

    def __init__(self, param: int | None = None, value: Any = None, many: bool = False):
        self.param = param
        self.value = value
        self.many = many

    def get(self, params: Sequence[Any]) -> Any:
        return params[self.param] if self.param is not None else self.value

    def values(self, params: Sequence[Any]) -> list[Any]:
        value = self.get(params)
        if not self.many:
            return [value]
        return [] if value is None else list(value)


class LookupPlan(Plan):
    """``SELECT cols FROM features.<entity> WHERE key = $1 | key IN (...) [ORDER BY] [LIMIT]``.

    Planned once (parsing, name resolution, key typing); running it is one online-store
    read, the TTL check and the projection — no SQL engine involved.
    """

    interruptible = False

    def __init__(self, sql: str, entity: str, key_types: list[PgType],
                 key_rows: list[list[_Slot]], outputs: list[tuple[str, int]],
                 columns: list[Column], feature_names: list[str],
                 order: list[tuple[int, bool]], limit: _Slot | None, offset: _Slot | None,
                 param_types: tuple[PgType, ...], services: Services):
        self.sql = sql
        self.entity = entity
        self.key_types = key_types
        self.key_rows = key_rows
        self.outputs = outputs
        self.columns = columns
        self.feature_names = feature_names
        self.order = order
        self.limit = limit
        self.offset = offset
        self.param_types = param_types
        self.services = services
        self.command = "SELECT"
        self.output_positions = [i for _, i in outputs]
        #: the one slot of ``key = <value>`` (None for IN lists, arrays and composite keys)
        self._single = key_rows[0][0] if len(key_rows) == 1 and len(key_rows[0]) == 1 \
            and not key_rows[0][0].many else None
        #: no ORDER BY, LIMIT or OFFSET to apply
        self.plain = not order and limit is None and offset is None
        #: the registry state this plan was made from (see :meth:`stale`)
        self.planned_from: object = services.catalog.current()

    def describe(self, session: Session) -> list[Column] | None:
        return self.columns

    def explain(self, session: Session) -> list[str]:
        return [
            f"Online store lookup on entity {self.entity} (one row per key; no SQL engine)",
            f"  features: {', '.join(self.feature_names) or '(none online)'}",
            f"  output: {', '.join(name for name, _ in self.outputs)}",
            f"  store: {self.services.config.online_store.url}",
        ]

    def stale(self) -> bool:
        """True when the registry changed the entity's online features since planning (the
        session's plan cache then plans the statement again)."""
        current = self.services.catalog.current()
        if current is self.planned_from:
            return False
        from fsql.language.definitions import FeatureDef

        features = sorted(
            name for name, r in current.items()
            if isinstance(r.definition, FeatureDef) and r.definition.entity == self.entity
            and r.definition.online
        )
        if features != self.feature_names:
            return True
        self.planned_from = current
        return False

    def keys(self, params: Sequence[Any]) -> list[Any]:
        """The distinct entity keys asked for, in the order given (NULL keys match nothing)."""
        if self._single is not None:  # key = <one value>: the common shape, no combinations
            value = _coerce_key(self._single.get(params), self.key_types[0])
            return [] if value is None else [value]
        keys: list[Any] = []
        seen = set()
        for row in self.key_rows:
            combos: list[tuple[Any, ...]] = [()]
            for slot, kind in zip(row, self.key_types, strict=True):
                combos = [c + (_coerce_key(v, kind),) for c in combos
                          for v in slot.values(params)]
            for values in combos:
                if any(v is None for v in values) or values in seen:
                    continue  # key = NULL matches nothing, as in SQL
                seen.add(values)
                keys.append(values[0] if len(values) == 1 else values)
        return keys

    async def read(self, keys: list[Any]) -> list[list[Any]]:
        """The served values (TTL applied) of every feature for each key: the Python API's
        read plan (:class:`fsql.serving.reader.ReadPlan`), over the worker's own Redis reader."""
        from fsql.serving.reader import ReadPlan

        catalog = self.services.catalog
        try:
            plan = ReadPlan.for_ids(catalog, self.feature_names)
            reader = self.services.lookup_reader
            now = datetime.now(UTC)
            if reader is not None:
                # non-blocking: the lookups of every session in one event-loop iteration
                # share one Redis round trip (see fsql_server.redis_reader)
                return await plan.values_async(reader, keys, now)
            if self.services.read_async:
                return await plan.values_async(self.services.online, keys, now)
            # SQLite: one point read costs less CPU inline than a thread hop
            return plan.values(self.services.online, keys, now)
        except Exception as exc:  # noqa: BLE001 - fsql errors map to SQLSTATEs
            raise _pg_error(exc, self.sql) from None

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        return Result(self.columns, await self.rows(params), "SELECT")

    async def rows(self, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The result rows: one per key that was asked for, projected and ordered."""
        keys = self.keys(params)
        if keys and self.feature_names:
            values_by_key = await self.read(keys)
        else:
            values_by_key = [[None] * len(self.feature_names) for _ in keys]
        return self.project(keys, values_by_key, params)

    def project(self, keys: list[Any], values_by_key: list[list[Any]],
                 params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One row per key (key columns, then the served features), projected and ordered."""
        outputs = self.output_positions
        rows = []
        for key, features in zip(keys, values_by_key, strict=True):
            full = (list(key) if isinstance(key, tuple) else [key]) + features
            rows.append(tuple([full[i] for i in outputs]))
        if not self.plain:
            for index, descending in reversed(self.order):
                rows.sort(key=_sort_key(index), reverse=descending)
            start = int(self.offset.get(params) or 0) if self.offset else 0
            if self.limit is not None and self.limit.get(params) is not None:
                rows = rows[start : start + int(self.limit.get(params))]
            elif start:
                rows = rows[start:]
        return rows


def _sort_key(index: int) -> Callable[[tuple[Any, ...]], tuple[bool, Any]]:
    """ORDER BY one output column, NULLs last ascending and first descending (as in PG)."""

    def key(row: tuple[Any, ...]) -> tuple[bool, Any]:
        value = row[index]
        return value is None, 0 if value is None else value

    return key


def _coerce_key(value: Any, kind: PgType) -> Any:
    if value is None:
        return None
    if kind in (INT8, INT4) or kind.oid == 21:
        try:
            return int(value)
        except (TypeError, ValueError):
            raise PgError(errors.INVALID_TEXT_REPRESENTATION,
                          f'invalid input syntax for type {kind.name}: "{value}"') from None
    if kind is TEXT or kind.oid == 1043:
        return value if isinstance(value, str) else str(value)
    return value


def _pg_error(exc: Exception, sql: str) -> PgError:
    if isinstance(exc, PgError):
        return exc
    from fsql.errors import FsqlError

    if isinstance(exc, FsqlError):
        return errors.from_fsql(exc, sql)
    return PgError(errors.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


def _features_table(tree: exp.Expression) -> exp.Table | None:
    for table in tree.find_all(exp.Table):
        if table.db.lower() == "features" and not table.catalog:
            return table
    return None


def plan_lookup(session: Session, sql: str, tree: exp.Expression,
                param_oids: Sequence[int]) -> Plan | None:
    """A :class:`LookupPlan` when ``tree`` reads ``features.<entity>`` (None otherwise)."""
    table = _features_table(tree)
    if table is None:
        return None
    services = _services(session)
    entity_name = table.name
    hint = (f"SELECT ... FROM features.{entity_name} WHERE <key> = ... | IN (...) reads current "
            f"values; for history use offline.<feature> or training_set(...)")
    if not isinstance(tree, exp.Select) or tree.args.get("joins") or any(
        tree.args.get(k) for k in ("group", "having", "with_", "distinct", "qualify", "windows")
    ) or not isinstance(tree.args.get("from_"), exp.From) or tree.args["from_"].this is not table:
        raise PgError(errors.FEATURE_NOT_SUPPORTED,
                      f"features.{entity_name} supports only point lookups", hint=hint)
    from fsql.language.definitions import EntityDef, FeatureDef

    catalog = services.catalog
    try:
        current = catalog.current()
        analysis = catalog.analysis()
    except Exception as exc:  # noqa: BLE001 - fsql errors map to SQLSTATEs
        raise _pg_error(exc, sql) from None
    record = current.get(entity_name)
    if record is None or not isinstance(record.definition, EntityDef):
        entities = sorted(r.name for r in current.values() if isinstance(r.definition, EntityDef))
        raise PgError(errors.UNDEFINED_TABLE, f'relation "features.{entity_name}" does not exist',
                      position=_position(sql, entity_name),
                      hint=f"entities: {', '.join(entities) or 'none yet'}")
    entity: EntityDef = record.definition
    features = sorted(
        name for name, r in current.items()
        if isinstance(r.definition, FeatureDef) and r.definition.entity == entity_name
        and r.definition.online and name in analysis.features
    )
    names = [k.name for k in entity.keys] + features
    types = [sql_type_to_pg(k.type) for k in entity.keys] + [
        sql_type_to_pg(analysis.features[f].value_type) for f in features
    ]
    lower = {n.lower(): i for i, n in enumerate(names)}
    alias = table.alias_or_name.lower()

    def column_index(col: exp.Column) -> int:
        if col.table and col.table.lower() not in (alias, entity_name.lower()):
            raise PgError(errors.UNDEFINED_TABLE,
                          f'missing FROM-clause entry for table "{col.table}"',
                          position=_position(sql, col.table))
        index = lower.get(col.name.lower())
        if index is None:
            raise PgError(errors.UNDEFINED_COLUMN, f'column "{col.name}" does not exist',
                          position=_position(sql, col.name),
                          hint=f"features.{entity_name} has: {', '.join(names)}")
        return index

    outputs: list[tuple[str, int]] = []
    for projection in tree.expressions:
        if isinstance(projection, exp.Star) or (
            isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
        ):
            outputs.extend((n, i) for i, n in enumerate(names))
        elif isinstance(projection, exp.Column):
            index = column_index(projection)
            outputs.append((names[index], index))
        elif isinstance(projection, exp.Alias) and isinstance(projection.this, exp.Column):
            outputs.append((projection.alias, column_index(projection.this)))
        else:
            raise PgError(errors.FEATURE_NOT_SUPPORTED,
                          "features.<entity> lookups select columns (with optional aliases); "
                          "compute expressions in a client or over offline.<feature>",
                          position=_position(sql, projection.sql(dialect="postgres")[:20]))
    param_types: list[PgType | None] = [TYPES.get(o) if o and o != 705 else None
                                        for o in param_oids]

    def slot(node: exp.Expression, kind: PgType) -> _Slot:
        if isinstance(node, exp.Cast):
            node = node.this
        if isinstance(node, exp.Parameter):
            index = int(node.this.name) - 1
            while len(param_types) <= index:
                param_types.append(None)
            if param_types[index] is None:
                param_types[index] = kind
            return _Slot(param=index)
        if isinstance(node, exp.Literal):
            return _Slot(value=node.this if node.is_string else int(node.this)
                         if node.this.lstrip("-").isdigit() else node.this)
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
            return _Slot(value=-int(node.this.this))
        raise PgError(errors.FEATURE_NOT_SUPPORTED,
                      "key values in a features.<entity> lookup must be literals or parameters",
                      hint=hint)

    key_names = [k.name.lower() for k in entity.keys]
    key_types = types[: len(key_names)]
    per_key: dict[str, list[_Slot]] = {}
    where = tree.args.get("where")
    conditions = _conjuncts(where.this) if where is not None else []
    for condition in conditions:
        if isinstance(condition, exp.EQ) and isinstance(condition.expression, exp.Any) \
                and isinstance(condition.this, exp.Column) \
                and condition.this.name.lower() in key_names:
            i = key_names.index(condition.this.name.lower())
            inner = condition.expression.this
            while isinstance(inner, exp.Paren):
                inner = inner.this
            if isinstance(inner, exp.Array):
                per_key[key_names[i]] = [slot(v, key_types[i]) for v in inner.expressions]
                continue
            if isinstance(inner, exp.Cast):
                inner = inner.this
            if isinstance(inner, exp.Parameter):
                index = int(inner.this.name) - 1
                while len(param_types) <= index:
                    param_types.append(None)
                if param_types[index] is None:
                    param_types[index] = TYPES.get(key_types[i].array_oid, TEXT)
                per_key[key_names[i]] = [_Slot(param=index, many=True)]
                continue
        if isinstance(condition, exp.EQ):
            col, value = condition.this, condition.expression
            if not isinstance(col, exp.Column):
                col, value = value, col
            if isinstance(col, exp.Column) and col.name.lower() in key_names:
                i = key_names.index(col.name.lower())
                per_key[key_names[i]] = [slot(value, key_types[i])]
                continue
        if isinstance(condition, exp.In) and isinstance(condition.this, exp.Column) \
                and condition.this.name.lower() in key_names and not condition.args.get("query"):
            i = key_names.index(condition.this.name.lower())
            per_key[key_names[i]] = [slot(v, key_types[i]) for v in condition.expressions]
            continue
        raise PgError(errors.FEATURE_NOT_SUPPORTED,
                      f"features.{entity_name} can only be filtered by its key "
                      f"({', '.join(k.name for k in entity.keys)})", hint=hint,
                      position=_position(sql, condition.sql(dialect="postgres")[:20]))
    missing = [k.name for k in entity.keys if k.name.lower() not in per_key]
    if missing:
        raise PgError(errors.FEATURE_NOT_SUPPORTED,
                      f"features.{entity_name} needs the key in the WHERE clause: "
                      f"{' AND '.join(f'{m} = ...' for m in missing)}", hint=hint)
    key_rows: list[list[_Slot]] = [[]]  # the cross product of the values given for each key column
    for name in key_names:
        key_rows = [row + [s] for row in key_rows for s in per_key[name]]
    output_names = [n.lower() for n, _ in outputs]
    order: list[tuple[int, bool]] = []
    order_node = tree.args.get("order")
    for ordered in order_node.expressions if order_node else []:
        target = ordered.this
        if isinstance(target, exp.Literal) and not target.is_string:
            position = int(target.this) - 1
        elif isinstance(target, exp.Column) and target.name.lower() in output_names:
            position = output_names.index(target.name.lower())
        else:
            raise PgError(errors.FEATURE_NOT_SUPPORTED,
                          "ORDER BY in a features.<entity> lookup names output columns",
                          hint=hint)
        order.append((position, bool(ordered.args.get("desc"))))
    limit = _limit_slot(tree.args.get("limit"), slot)
    offset = _limit_slot(tree.args.get("offset"), slot)
    columns = [Column(n, types[i]) for n, i in outputs]
    final_types = tuple(t or TEXT for t in param_types)
    return LookupPlan(sql, entity_name, key_types, key_rows, outputs, columns, features,
                      order, limit, offset, final_types, services)


def _limit_slot(node: exp.Expression | None, slot: Callable[..., _Slot]) -> _Slot | None:
    if node is None:
        return None
    value = node.expression if isinstance(node, exp.Limit) else node.expression or node.this
    if value is None:
        return None
    return slot(value, INT8)


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _position(sql: str, text: str) -> int | None:
    index = sql.lower().find(text.lower())
    return index + 1 if index >= 0 else None


# --------------------------------------------------------------------------------------------
# DuckDB-bound statements: fsql.* tables and training_set(...)


def prepare_for_duckdb(session: Session, tree: exp.Expression) -> None:
    """Nothing to prepare on the tree itself: ``fsql.*``, ``offline.*`` and ``sources.*`` are
    resolved by the DuckDB backend's relation provider when first used."""
    return None


def find_training_sets(tree: exp.Expression) -> list[exp.Expression]:
    found: list[exp.Expression] = []
    for node in tree.find_all(exp.Anonymous, exp.Table):
        if isinstance(node, exp.Anonymous) and str(node.this).lower() == "training_set":
            found.append(node)
        elif isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous) and \
                str(node.this.this).lower() == "training_set":
            found.append(node.this)
    return found


class TrainingSetPlan(Plan):
    """A DuckDB statement reading ``training_set('spine', 'f', ...)``: the point-in-time join
    runs first (through :func:`fsql.compute.training.training_set`, so the result is the Python
    API's), and its Arrow result is registered under the name the statement reads."""

    cacheable = False

    def __init__(self, sql: str, inner: Plan, calls: list[tuple[str, str, list[str]]],
                 services: Services):
        self.sql = sql
        self.inner = inner
        self.calls = calls
        self.services = services
        self.param_types = inner.param_types
        self.command = inner.command

    def describe(self, session: Session) -> list[Column] | None:
        return self.inner.describe(session)

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._materialize, session)
        return await self.inner.run(session, params)

    def _materialize(self, session: Session) -> None:
        backend = session.duckdb
        for alias, spine, features in self.calls:
            table = compute_training_set(session, self.services, spine, features, self.sql)
            with backend._lock:
                backend.con.register(alias, table)


def spine_table(session: Session, services: Services, spine: str, sql: str) -> pa.Table:
    """The spine as Arrow: a table of the session, or a source (``sources.<name>`` or a bare
    source name)."""
    backend = session.duckdb
    name = spine.split(".")[-1]
    if spine.lower().startswith("sources.") or (
        "." not in spine and not _session_has_table(session, spine)
        and services.catalog.current().get(spine) is not None
    ):
        data = services.relation("sources", name)
        if data is None:
            raise PgError(errors.UNDEFINED_TABLE, f'spine "{spine}" does not exist',
                          position=_position(sql, spine))
        return data.to_table()
    with backend._lock:
        try:
            quoted = ".".join('"' + p.replace('"', '""') + '"' for p in spine.split("."))
            return backend.con.sql(f"SELECT * FROM {quoted}").to_arrow_table()
        except Exception as exc:  # noqa: BLE001 - every DuckDB error maps to a SQLSTATE
            error = errors.from_duckdb(exc, None)
            if error.code == errors.UNDEFINED_TABLE:
                error.message = f'spine table "{spine}" does not exist'
                error.hint = ("Create it in this session first: CREATE TEMP TABLE spine (...) "
                              "then INSERT or COPY spine FROM STDIN.")
                error.position = _position(sql, spine)
            raise error from None


def _session_has_table(session: Session, name: str) -> bool:
    backend = session.duckdb
    with backend._lock:
        rows = backend.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE lower(table_name) = lower($1)", [name]
        ).fetchall()
    return bool(rows and rows[0][0])


def _time_column(table: pa.Table, spine: str) -> str:
    import pyarrow as pa

    if "event_time" in table.column_names:
        return "event_time"
    stamps = [f.name for f in table.schema if pa.types.is_timestamp(f.type)]
    if len(stamps) == 1:
        return stamps[0]
    raise PgError(errors.UNDEFINED_COLUMN,
                  f'spine "{spine}" needs one timestamp column (or one named event_time); '
                  f"it has {', '.join(stamps) or 'none'}")


def compute_training_set(session: Session, services: Services, spine: str,
                         features: list[str], sql: str) -> pa.Table:
    from fsql.compute.training import training_set

    table = spine_table(session, services, spine, sql)
    try:
        return training_set(services.workspace, table, features,
                            time_column=_time_column(table, spine))
    except PgError:
        raise
    except Exception as exc:  # noqa: BLE001 - fsql errors map to SQLSTATEs
        raise _pg_error(exc, sql) from None


def plan_training_set(session: Session, sql: str, tree: exp.Expression,
                      param_oids: Sequence[int]) -> Plan | None:
    calls = find_training_sets(tree)
    if not calls:
        return None
    services = _services(session)
    tree = tree.copy()
    specs: list[tuple[str, str, list[str]]] = []
    for index, call in enumerate(find_training_sets(tree)):
        args = call.expressions
        if len(args) < 2 or not all(isinstance(a, exp.Literal) and a.is_string for a in args):
            raise PgError(errors.UNDEFINED_FUNCTION,
                          "training_set takes a spine table name and one or more feature or "
                          "feature set names, all as string literals",
                          hint="SELECT * FROM training_set('spine', 'user_spend_30d', "
                          "'fraud_model_v1')", position=_position(sql, "training_set"))
        spine, *features = [a.this for a in args]
        alias = f"__fsql_training_{index}"
        specs.append((alias, spine, features))
        # describe needs the columns: register an empty table of the right schema now
        table = compute_training_set_schema(session, services, spine, features, sql)
        backend = session.duckdb
        with backend._lock:
            backend.con.register(alias, table)
        parent = call.parent
        replacement = exp.to_table(alias)
        if isinstance(parent, exp.Table):
            if parent.alias:
                replacement.set("alias", parent.args.get("alias"))
            else:
                replacement.set("alias", exp.TableAlias(this=exp.to_identifier("training_set")))
            parent.replace(replacement)
        else:
            call.replace(replacement)
    from fsql_server import commands

    inner = commands.plan_on_duckdb(session, sql, tree, param_oids)
    return TrainingSetPlan(sql, inner, specs, services)


def compute_training_set_schema(session: Session, services: Services, spine: str,
                                features: list[str], sql: str) -> pa.Table:
    """An empty table with the training set's columns (spine columns + features)."""
    import pyarrow as pa

    from fsql.stores.sources import arrow_type

    table = spine_table(session, services, spine, sql)
    try:
        analysis = services.catalog.analysis()
        names = analysis.expand(features)
    except Exception as exc:  # noqa: BLE001 - fsql errors map to SQLSTATEs
        raise _pg_error(exc, sql) from None
    fields = list(table.schema) + [
        pa.field(n, arrow_type(analysis.features[n].value_type)) for n in names
    ]
    return pa.schema(fields).empty_table()


# --------------------------------------------------------------------------------------------
# CREATE / DROP of fsql definitions


class DefinitionPlan(Plan):
    """``CREATE ENTITY|SOURCE|FEATURE|FEATURE SET`` / ``DROP ...`` through plan/apply."""

    cacheable = False

    def __init__(self, sql: str, tag: str):
        self.sql = sql
        self.command = tag

    def describe(self, session: Session) -> list[Column] | None:
        return None

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        loop = asyncio.get_running_loop()
        notices = await loop.run_in_executor(None, self._apply, session)
        return Result(None, (), self.command, counted=False, notices=notices)

    def _apply(self, session: Session) -> list[PgError]:
        from fsql.language.analysis import analyze
        from fsql.language.definitions import DropDef
        from fsql.language.parser import parse

        if not session.can_define:
            raise PgError(errors.INSUFFICIENT_PRIVILEGE,
                          f'permission denied: user "{session.user}" may not define or drop '
                          "entities, sources, features or feature sets",
                          hint="An administrator sets can_define = true for the user in "
                          "[[server.users]].")
        services = _services(session)
        try:
            statements = parse(self.sql, file="<wire>")
            registry = services.registry
            drops = [s for s in statements if isinstance(s, DropDef)]
            new = [s for s in statements if not isinstance(s, DropDef)]
            current = {n: r.definition for n, r in registry.current().items()}
            for definition in new:
                current[definition.name] = definition
            for drop in drops:
                current.pop(drop.name, None)
            desired = analyze(current.values(), drops=drops)
            plan = registry.plan(desired, drops, declarative=False)
            written = registry.apply(plan, desired, actor=session.user)
        except PgError:
            raise
        except Exception as exc:  # noqa: BLE001 - fsql errors map to SQLSTATEs
            raise _pg_error(exc, self.sql) from None
        services.catalog.invalidate()
        notices = []
        for record in written:
            what = "retired" if record.retired else f"version {record.version}"
            notices.append(PgError("00000", f"{record.kind} {record.name}: {what}",
                                   severity="NOTICE"))
        if not written:
            notices.append(PgError("00000", "no change: the registry already has this "
                                   "definition", severity="NOTICE"))
        return notices


def plan_definition(session: Session, sql: str) -> Plan:
    from fsql_server.surface import first_words

    words = first_words(sql, 3)
    kind = words[1] if len(words) > 1 else ""
    if kind == "FEATURE" and len(words) > 2 and words[2] == "SET":
        kind = "FEATURE SET"
    return DefinitionPlan(sql, f"{words[0]} {kind}")


