"""``SyncFeatureStore``: the Python API for scripts and notebooks (blocking calls).

A thin facade: every method delegates to the stage that does the work — registration to
:mod:`fsql.registry` (through the same parser and analyser as ``.sql`` files), online reads to
:mod:`fsql.serving.reader` and :mod:`fsql.stores.online`, current values to
:mod:`fsql.serving.computer`, batch and training reads to :mod:`fsql.compute.training`, materialization to
:mod:`fsql.compute.materialize`, pipelines to :mod:`fsql.pipelines`. The asyncio twin is
:class:`fsql.api.store.FeatureStore` (``FeatureStore.sync()`` returns one of these).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from fsql.api.definition import FeatureDefinition
from fsql.compute.jobs import materialize_and_record
from fsql.compute.training import training_set, valid_times
from fsql.errors import DefinitionError, MissingExtraError
from fsql.extras import require
from fsql.language.analysis.locations import SourceRoots, analyze_within
from fsql.language.definitions import AnyDefinition, DropDef, FeatureDef
from fsql.language.parser import parse
from fsql.pipelines.manager import FeaturePipelineManager
from fsql.registry import Registry, VersionRecord
from fsql.registry.catalog import Catalog, FeatureMeta, entity_key_tuple
from fsql.serving.checks import (
    Notice,
    check_key_entities,
    emit,
    notices_metadata,
    offline_notices,
    one_entity,
    training_notices,
    typed_entity_key,
)
from fsql.serving.computer import FeatureComputer
from fsql.serving.reader import ReadPlan, feature_id, utc_now
from fsql.stores.online import OnlineStore
from fsql.stores.sources import arrow_type
from fsql.workspace import ConfigLike, Workspace


@dataclass(frozen=True)
class FeatureInfo:
    """What ``get_feature_info`` returns: one version of a feature and its state."""

    feature_id: str
    name: str
    version: int
    entity: str
    value_type: str | None
    definition: FeatureDefinition
    sql: str
    fingerprint: str
    created_at: datetime
    created_by: str | None
    retired: bool
    #: the version the online store serves (None: never pushed or ONLINE FALSE)
    online_version: str | None
    #: committed [start, end) intervals of this version in the offline store
    materialized: tuple[tuple[datetime, datetime], ...]
    ttl: timedelta | None
    description: str | None


class SyncFeatureStore:
    """The feature store, blocking API. Open with a config (see :func:`fsql.workspace.resolve_config`)."""

    def __init__(self, config: ConfigLike = None, *, engine: str | None = None):
        self.workspace = Workspace.open(config, engine=engine)
        self.config = self.workspace.config
        self.engine = engine
        self._computer: FeatureComputer | None = None
        self._lock = threading.Lock()

    # --- collaborators (the workspace's), opened on first use ----------------------------------

    @property
    def registry(self) -> Registry:
        return self.workspace.registry

    @property
    def online_store(self) -> OnlineStore:
        return self.workspace.online_store

    @property
    def catalog(self) -> Catalog:
        return self.workspace.catalog

    @property
    def computer(self) -> FeatureComputer:
        if self._computer is None:
            with self._lock:
                if self._computer is None:
                    self._computer = FeatureComputer(self.workspace)
        return self._computer

    def close(self) -> None:
        """Close connections and engines (the store reopens them if used again)."""
        if self._computer is not None:
            self._computer.close()
            self._computer = None
        self.workspace.close()

    def __enter__(self) -> SyncFeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- registration -------------------------------------------------------------------------

    def register_feature(self, feature_def: FeatureDefinition | str) -> str:
        """Register (or change: a new version) one feature; returns its feature id (the name).

        ``feature_def`` is a :class:`FeatureDefinition` or one ``CREATE FEATURE`` statement.
        Both go through the dialect, the analyser and the registry's versioning."""
        if isinstance(feature_def, str):
            feature_def = FeatureDefinition.from_sql(feature_def)
        current = {n: r.definition for n, r in self.registry.current().items()}
        definition = feature_def.to_definition(current)
        self.apply([definition])
        return definition.name

    def register(self, sql: str) -> list[VersionRecord]:
        """Register every definition in ``sql`` (entities, sources, features, sets, DROPs) —
        the same statements a repo's ``.sql`` files hold. Returns the versions written."""

        statements = parse(sql, "<register>")
        drops = [s for s in statements if isinstance(s, DropDef)]
        return self.apply([s for s in statements if not isinstance(s, DropDef)], drops)

    def apply(
        self, definitions: Sequence[AnyDefinition], drops: Sequence[Any] = ()
    ) -> list[VersionRecord]:
        """Add or change ``definitions`` (others stay as they are) and apply ``drops``. A
        new or changed source must read inside the repo or ``[sources] roots``, as
        ``fsql apply`` and DDL over the wire check it."""

        dropped = {d.name for d in drops}
        merged = {n: r.definition for n, r in self.registry.current().items() if n not in dropped}
        merged.update({d.name: d for d in definitions})
        desired = analyze_within(merged.values(), SourceRoots.from_config(self.config),
                                 drops=list(drops), new=list(definitions))
        plan = self.registry.plan(desired, list(drops), declarative=False)
        written = self.registry.apply(plan, desired)
        self.catalog.invalidate()
        return written

    def get_feature_info(self, feature_id: str, version: int | str | None = None) -> FeatureInfo:
        """One version of a feature (default: the current one) with its online/offline state."""
        name, _, pinned = feature_id.partition("@")
        if version is None and pinned:
            version = pinned
        if isinstance(version, str):
            version = int(version.lstrip("v"))
        record = self.registry.get(name, version)
        if not isinstance(record.definition, FeatureDef):
            raise DefinitionError(f"{name} is a {record.kind.replace('_', ' ')}, not a feature")
        d = record.definition
        online = self.online_store.active_versions([name]).get(name)
        return FeatureInfo(
            feature_id=name, name=name, version=record.version, entity=d.entity,
            value_type=d.type, definition=FeatureDefinition.from_definition(d),
            sql=record.canonical_sql, fingerprint=record.fingerprint,
            created_at=record.created_at, created_by=record.created_by, retired=record.retired,
            online_version=online,
            materialized=tuple(self.registry.ledger_intervals(name, record.version)),
            ttl=d.ttl, description=d.description,
        )  # fmt: skip

    # --- materialization ----------------------------------------------------------------------

    def materialize(
        self,
        start: datetime,
        end: datetime,
        features: Sequence[str] | None = None,
        *,
        force: bool = False,
        online: bool = True,
    ) -> list[Any]:
        """Compute [start, end) of ``features`` (default: all) into the offline store and push
        the latest values online (see :func:`fsql.compute.materialize.materialize`). Every feature
        interval computed is recorded as a run (trigger ``api``), with its statistics and checks,
        next to the CLI's and Airflow's runs."""

        try:
            return materialize_and_record(
                self.workspace, features, start, end, trigger="api", engine=self.engine,
                force=force, online=online,
            )  # fmt: skip
        finally:
            if online:
                self.online_store.forget_versions()  # the push switched active versions

    # --- reads ----------------------------------------------------------------------------------

    def get_online_features(self, feature_ids: Sequence[str], entity_key: Any) -> dict[str, Any]:
        """Current values of ``feature_ids`` for one entity key: ``{feature_id: value}``.

        ``ONLINE TRUE`` features come from the online store (the active version, TTL applied;
        ``None`` when absent — exactly the offline point-in-time answer for now);
        ``ONLINE FALSE`` features, and ``ONLINE TRUE`` ones never pushed online, go through the
        compute cache (:meth:`compute_features`). See :meth:`get_online_features_batch`.
        """
        return self.get_online_features_batch(feature_ids, [entity_key])[0]

    def get_online_features_batch(
        self, feature_ids: Sequence[str], entity_keys: Sequence[Any]
    ) -> list[dict[str, Any]]:
        """:meth:`get_online_features` for many keys in one store round trip per entity.

        An ``ONLINE TRUE`` feature the online store has no active version of (applied or
        registered but never materialized, or materialized with ``online=False``) is served
        like an ``ONLINE FALSE`` one: through the compute cache, which returns what
        :meth:`compute_features` computed and wrote back, and computes a miss at the current
        tick. Features of two entities need dict keys naming every key column; a key that
        does not convert to its column's type raises :class:`~fsql.serving.checks.EntityKeyError`.
        """
        plan = ReadPlan.for_ids(self.catalog, feature_ids)
        now = utc_now()
        names = plan.names
        unserved: list[FeatureMeta] = []
        online_rows = plan.values(self.online_store, entity_keys, now, unserved) if plan.online else []
        if unserved:
            unserved = plan.confirm_unserved(self.online_store, unserved)
        if not plan.offline and not unserved:  # the hot path: the online store serves all
            return [dict(zip(names, r, strict=True)) for r in online_rows]
        return self._with_computed(plan, entity_keys, now, online_rows, unserved)

    def _with_computed(
        self, plan: ReadPlan, entity_keys: Sequence[Any], now: datetime,
        online_rows: Sequence[Sequence[Any]], unserved: Sequence[FeatureMeta],
    ) -> list[dict[str, Any]]:  # fmt: skip
        """The rows of a read where some features go through the compute cache: ONLINE FALSE
        ones and ONLINE TRUE ones without an active online version (``unserved``)."""
        names = plan.names
        entities = {m.entity.name: m.entity for m in plan.metas}
        if len(entities) > 1:
            check_key_entities(plan.metas, entity_keys)
        for entity in entities.values():  # the compute path matches keys by value and type
            entity_keys = [typed_entity_key(entity, k) for k in entity_keys]
        full: list[list[Any]] = [[None] * len(names) for _ in entity_keys]
        for r, values in zip(full, online_rows, strict=True):
            for i, v in zip(plan.online, values, strict=True):
                r[i] = v
        missing = {id(m) for m in unserved}
        computed_at = [*plan.offline, *(i for i in plan.online if id(plan.metas[i]) in missing)]
        ids = [names[i] for i in computed_at]
        _m, computed, _stats = self.computer.compute_features(ids, entity_keys, now=now)
        for r, vs in zip(full, computed, strict=True):
            for i, v in zip(computed_at, vs, strict=True):
                r[i] = v
        return [dict(zip(names, r, strict=True)) for r in full]

    def compute_features(
        self, feature_ids: Sequence[str], entity_keys: Sequence[Any], *, as_arrow: bool = False
    ) -> Any:
        """Current values for ``entity_keys``: online-store hits, the rest computed on demand
        and written back (see :mod:`fsql.serving.computer` for the routing rule). Returns a
        DataFrame (Arrow with ``as_arrow=True``): the key column(s), then one column per
        feature."""
        metas, values, _stats = self.computer.compute_features(feature_ids, entity_keys)
        return _frame(metas, entity_keys, values, as_arrow)

    def get_batch_features(
        self,
        feature_ids: Sequence[str],
        entity_keys_or_spine: Any,
        *,
        time_column: str = "event_time",
        as_arrow: bool = False,
    ) -> Any:
        """Offline values. Given entity keys: each key's latest values from the offline store
        (the point-in-time lookup at now). Given a spine (a DataFrame/Arrow table with key
        columns and ``time_column``): the point-in-time training set."""


        spine = entity_keys_or_spine
        is_table = isinstance(spine, pa.Table) or hasattr(spine, "columns")
        if is_table:
            result = training_set(
                self.workspace, spine, list(feature_ids), engine=self.engine,
                time_column=time_column,
            )  # fmt: skip
            notices = training_notices(
                self.workspace, valid_times(spine, time_column), feature_ids
            )
            if as_arrow and not isinstance(result, pa.Table):
                result = pa.Table.from_pandas(result, preserve_index=False)
            emit(notices)
            return with_notices(result, notices)
        metas = self.catalog.features(feature_ids)
        entity = one_entity(metas, "get_batch_features with entity keys")
        keys = [entity_key_tuple(entity, typed_entity_key(entity, k)) for k in spine]
        now = utc_now()
        columns: dict[str, Any] = {
            name: [k[i] for k in keys] for i, name in enumerate(entity.key_names)
        }
        time_name = "__now" if time_column in columns else time_column
        columns[time_name] = pa.array([now] * len(keys), pa.timestamp("us", tz="UTC"))
        table = training_set(
            self.workspace, pa.table(columns), [_feature_id(m) for m in metas],
            engine=self.engine, time_column=time_name,
        ).drop_columns([time_name])  # fmt: skip
        notices = offline_notices(
            self.registry, [(m.name, m.pinned or m.version, m.definition.every) for m in metas]
        )
        emit(notices)
        return with_notices(table if as_arrow else to_pandas(table), notices)

    # --- pipelines ----------------------------------------------------------------------------

    def create_pipeline(self, feature_ids: Sequence[str], **options: Any) -> str:
        """Generate and deploy a scheduled pipeline (an Airflow DAG) for the features and
        everything they read; returns its id. ``options`` go to
        ``fsql.pipelines.manager.FeaturePipelineManager.create_pipeline`` (``dags_folder``,
        ``schedule``, ``start``, ...). The DAG is written to ``dags_folder``, else
        ``[scheduler] dags_folder``, else the repo's ``dags/`` folder."""
        manager = self._pipelines()
        if "dags_folder" not in options and not self.config.scheduler.dags_folder:
            options["dags_folder"] = str(self.config.repo / "dags")
        return str(manager.create_pipeline(list(feature_ids), **options))

    def get_pipeline_status(self, pipeline_id: str) -> Any:
        """The status of a pipeline made by :meth:`create_pipeline` (latest runs, metrics)."""
        return self._pipelines().get_pipeline_status(pipeline_id)

    def _pipelines(self) -> FeaturePipelineManager:
        return FeaturePipelineManager(self.workspace)


_feature_id = feature_id


def _frame(
    metas: Sequence[FeatureMeta], entity_keys: Sequence[Any], values: Sequence[Sequence[Any]],
    as_arrow: bool,
) -> Any:  # fmt: skip


    entity = metas[0].entity if metas else None
    columns: dict[str, Any] = {}
    if entity is not None:
        keys = [entity_key_tuple(entity, k) for k in entity_keys]
        for i, column in enumerate(entity.keys):
            columns[column.name] = pa.array([k[i] for k in keys], arrow_type(column.type))
    for j, meta in enumerate(metas):
        value_type = meta.definition.type
        typ = arrow_type(value_type) if value_type else None
        columns[_feature_id(meta)] = pa.array([row[j] for row in values], typ)
    table = pa.table(columns)
    return table if as_arrow else to_pandas(table)


def with_notices(result: Any, notices: Sequence[Notice]) -> Any:
    """``result`` carrying ``notices``: in an Arrow table's schema metadata under
    ``fsql.notices`` (JSON), in a DataFrame's ``attrs['fsql_notices']``."""
    if not notices:
        return result
    data = notices_metadata(notices)
    if isinstance(result, pa.Table):
        metadata = dict(result.schema.metadata or {})
        metadata[b"fsql.notices"] = json.dumps(data).encode()
        return result.replace_schema_metadata(metadata)
    result.attrs["fsql_notices"] = data
    return result


def to_pandas(table: pa.Table) -> Any:
    """``table`` as a pandas DataFrame, or a clear error naming the extra when pandas is not
    installed (the core install returns Arrow: pass ``as_arrow=True``)."""
    try:
        require("pandas", "pandas")
    except MissingExtraError as exc:
        exc.args = (f"{exc}; or pass as_arrow=True for a pyarrow Table (no pandas needed)",)
        raise
    return table.to_pandas()
