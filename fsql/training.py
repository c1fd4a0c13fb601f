"""Training sets: point-in-time correct feature values joined to a spine of labelled events.

For each spine row (entity keys, time t) and each requested feature, the value at the latest
materialized tick T ≤ t, NULL when there is none or when t − T exceeds the feature's TTL
(docs/semantics.md). Spine rows are never dropped, duplicated or reordered: only the row id,
keys and time go to the engine, and the feature columns that come back are put in spine order
by a scatter on the row id and appended to the *original* spine, so every spine column
(labels included) comes back unchanged, with its type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fsql.compile.plan import micros, timeline_relation
from fsql.compile.sql import PitFeature, point_in_time_join
from fsql.engines.base import Engine, TimelineFiles
from fsql.errors import ComputeError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from fsql.config import Config
    from fsql.definitions import ResolvedFeature
    from fsql.registry.base import Registry

ROW = "__row"
SPINE = "spine"


def training_set(
    spine: Any,
    features: Sequence[str],
    *,
    config: Config | None = None,
    engine: str | Engine | None = None,
    time_column: str = "event_time",
    registry: Registry | None = None,
) -> Any:
    """The spine with one column per feature appended (feature sets expand to their features).

    ``spine`` is a :class:`pyarrow.Table` or a pandas DataFrame with the entity key column(s),
    ``time_column`` and any other columns; the result has the same type. Features of several
    entities can be joined at once when the spine has all their keys. Uses the current
    registry version of each feature and only its committed (ledger-recorded) timeline.
    """
    from fsql.config import load_config
    from fsql.materialize import timeline_schema
    from fsql.registry import open_registry
    from fsql.stores.offline import OfflineStore

    config = config or load_config()
    own_registry = registry is None
    reg = registry if registry is not None else open_registry(config)
    own_engine = not isinstance(engine, Engine)
    eng: Engine
    if isinstance(engine, Engine):
        eng = engine
    else:
        from fsql.engines.base import open_engine

        eng = open_engine(config, engine)
    try:
        analysis = reg.analysis()
        current = reg.current()
        names = analysis.expand(features)
        store = OfflineStore.from_config(config)
        lookups = []
        for name in names:
            feature = analysis.features[name]
            version = current[name].version
            files = store.timeline_files(
                name, version, timeline_schema(feature), reg.ledger_intervals(name, version)
            )
            lookups.append((feature, files))
        return point_in_time_lookup(eng, spine, lookups, time_column=time_column)
    finally:
        if own_engine:
            eng.close()
        if own_registry:
            reg.close()


def point_in_time_lookup(
    engine: Engine,
    spine: Any,
    features: Sequence[tuple[ResolvedFeature, TimelineFiles]],
    *,
    time_column: str = "event_time",
) -> Any:
    """:func:`training_set` with the timelines given (the core, without registry or store)."""
    import pyarrow as pa

    is_pandas = not isinstance(spine, pa.Table)
    table = _to_arrow(spine) if is_pandas else spine
    _check_spine(table, features, time_column)
    keys: dict[str, None] = {}
    for feature, _files in features:
        keys.update(dict.fromkeys(feature.entity.key_names))
    import numpy as np

    slim = pa.table(
        {ROW: pa.array(np.arange(table.num_rows, dtype=np.int64)),
         **{k: table.column(k) for k in keys},
         time_column: table.column(time_column)}
    )  # fmt: skip
    pit = [
        PitFeature(
            name=feature.name,
            relation=timeline_relation(feature.name),
            key_names=feature.entity.key_names,
            key_types=tuple(c.type for c in feature.entity.keys),
            ttl_us=micros(feature.definition.ttl) if feature.definition.ttl is not None else None,
        )
        for feature, _files in features
    ]
    sql = point_in_time_join(SPINE, time_column, pit, engine.target).sql(
        dialect=engine.target.dialect
    )
    engine.register_arrow(SPINE, slim)
    for feature, files in features:
        engine.register_timeline(timeline_relation(feature.name), files)
    try:
        joined = engine.query(sql)
    finally:
        engine.unregister(SPINE)
        for feature, _files in features:
            engine.unregister(timeline_relation(feature.name))
    if joined.num_rows != table.num_rows:
        raise ComputeError(
            f"point-in-time join returned {joined.num_rows} rows for {table.num_rows} spine rows"
        )
    # Scatter back into spine order: inverse[row] = position of that row in the result.
    rows = joined.column(ROW).to_numpy()
    inverse = np.empty(table.num_rows, dtype=np.int64)
    inverse[rows] = np.arange(table.num_rows, dtype=np.int64)
    ordered = joined.take(pa.array(inverse))
    result = spine.copy() if is_pandas else table
    for feature, _files in features:
        column = ordered.column(feature.name)
        if is_pandas:
            result[feature.name] = column.to_pandas().set_axis(result.index)
        else:
            result = result.append_column(feature.name, column)
    return result


def _to_arrow(spine: Any) -> pa.Table:
    import pyarrow as pa

    try:
        return pa.Table.from_pandas(spine, preserve_index=False)
    except (TypeError, AttributeError) as exc:
        raise ComputeError(
            f"the spine must be a pyarrow Table or a pandas DataFrame, not {type(spine).__name__}"
        ) from exc


def _check_spine(
    table: pa.Table, features: Sequence[tuple[ResolvedFeature, TimelineFiles]], time_column: str
) -> None:
    columns = set(table.column_names)
    if time_column not in columns:
        raise ComputeError(
            f"the spine has no time column {time_column!r} (columns: {', '.join(table.column_names)}); "
            "pass --time-column / time_column= to name it"
        )
    for feature, _files in features:
        missing = [k for k in feature.entity.key_names if k not in columns]
        if missing:
            raise ComputeError(
                f"feature {feature.name} needs the key column(s) {', '.join(missing)} of entity "
                f"{feature.entity.name}, which the spine lacks (columns: {', '.join(table.column_names)})"
            )
        if feature.name in columns:
            raise ComputeError(
                f"the spine already has a column named {feature.name}; rename it or drop it"
            )
    if ROW in columns:
        raise ComputeError(f"the spine may not have a column named {ROW}")


def read_spine(path: str) -> pa.Table:
    """Read a spine file (Parquet, or CSV when the name ends in .csv)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if path.lower().endswith(".csv"):
        return pacsv.read_csv(path)
    return pq.read_table(path)
