"""Training sets: point-in-time correct feature values joined to a spine of labelled events.

For each spine row (entity keys, time t) and each requested feature, the value at the latest
materialized tick T ≤ t, NULL when there is none or when t − T exceeds the feature's TTL
(docs/semantics.md). Ticks are whole multiples of EVERY since the epoch and the materialized
intervals are known (the registry's ledger), so that tick T* is arithmetic on t
(:func:`lookup_ticks`, vectorized over the spine, TTL included). Timelines store changes, so
the value at T* is the latest timeline row at or before T* for the row's keys: an ASOF join
(:func:`fsql.compile.pit.point_in_time_join`).

Spine rows are never dropped, duplicated or reordered: only the row id, keys and lookup ticks
go to the engine, the feature columns that come back are put in spine order by a scatter on
the row id and appended to the *original* spine, so every spine column (labels included) comes
back unchanged, with its type.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyarrow.types as pat

from fsql.compile.pit import PitFeature, point_in_time_join
from fsql.compile.plan import micros, timeline_relation
from fsql.compile.sql import tick_bounds
from fsql.compute.materialize import timeline_schema
from fsql.compute.progress import Progress, as_progress
from fsql.engines.base import Engine
from fsql.errors import ComputeError
from fsql.stores.files import TimelineFiles
from fsql.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from fsql.language.definitions import ResolvedFeature

ROW = "__row"
SPINE = "spine"


def training_set(
    workspace: Workspace,
    spine: Any,
    features: Sequence[str],
    *,
    engine: str | Engine | None = None,
    time_column: str = "event_time",
    progress: Progress | Callable[[str], None] | None = None,
) -> Any:
    """The spine with one column per feature appended (feature sets expand to their features).

    ``spine`` is a :class:`pyarrow.Table` or a pandas DataFrame with the entity key column(s),
    ``time_column`` and any other columns; the result has the same type. Features of several
    entities can be joined at once when the spine has all their keys. Uses the current
    registry version of each feature of ``workspace`` and only its committed (ledger-recorded)
    timeline.
    """
    reg = workspace.registry
    own_engine = not isinstance(engine, Engine)
    eng = engine if isinstance(engine, Engine) else workspace.open_engine(engine)
    try:
        analysis = reg.analysis()
        current = reg.current()
        names = analysis.expand(features)
        store = workspace.offline_store
        lookups = []
        for name in names:
            feature = analysis.features[name]
            version = current[name].version
            files = store.timeline_files(
                name, version, timeline_schema(feature), reg.ledger_intervals(name, version)
            )
            lookups.append((feature, files))
        return point_in_time_lookup(
            eng, spine, lookups, time_column=time_column, progress=progress
        )
    finally:
        if own_engine:
            eng.close()


def point_in_time_lookup(
    engine: Engine,
    spine: Any,
    features: Sequence[tuple[ResolvedFeature, TimelineFiles]],
    *,
    time_column: str = "event_time",
    progress: Progress | Callable[[str], None] | None = None,
) -> Any:
    """:func:`training_set` with the timelines given (the core, without registry or store).

    Only the ticks inside ``files.intervals`` (the committed, ledger-recorded intervals) are
    looked up; timeline rows outside them are never returned."""

    is_pandas = not isinstance(spine, pa.Table)
    columns = _column_names(spine, is_pandas)
    _check_spine(columns, features, time_column)
    keys: dict[str, None] = {}
    for feature, _files in features:
        keys.update(dict.fromkeys(feature.entity.key_names))
    needed = [*keys, time_column] if time_column not in keys else list(keys)
    # pandas: convert only the columns the join reads; the rest of the frame is kept as is
    table = _to_arrow(spine[needed]) if is_pandas else spine
    t_us, t_valid = epoch_micros(table.column(time_column), time_column)
    slim: dict[str, Any] = {ROW: pa.array(np.arange(table.num_rows, dtype=np.int64))}
    slim.update({k: table.column(k) for k in keys})
    pit: list[PitFeature] = []
    tick_columns: dict[tuple[Any, ...], str] = {}
    for feature, files in features:
        every_us = micros(feature.definition.every)
        ttl = feature.definition.ttl
        ttl_us = micros(ttl) if ttl is not None else None
        ranges = tick_ranges(files.intervals, every_us)
        spec = (every_us, ranges, ttl_us)
        if spec not in tick_columns:  # features with the same ticks and TTL share a column
            name = f"__tick{len(tick_columns)}"
            tick_columns[spec] = name
            ticks, found = lookup_ticks(t_us, t_valid, every_us, ranges, ttl_us)
            slim[name] = pa.array(ticks, pa.timestamp("us", tz="UTC"), mask=~found)
        pit.append(
            PitFeature(
                name=feature.name,
                relation=timeline_relation(feature.name),
                key_names=feature.entity.key_names,
                key_types=tuple(c.type for c in feature.entity.keys),
                tick_column=tick_columns[spec],
            )
        )
    groups = [[f] for f in pit] if engine.target.pit_query_per_feature else [pit]
    engine.register_arrow(SPINE, pa.table(slim))
    for feature, files in features:
        engine.register_timeline(timeline_relation(feature.name), files)
    values: dict[str, pa.ChunkedArray] = {}
    report = as_progress(progress)
    report.begin(len(groups), "point-in-time joins")
    try:
        for group in groups:
            label = f"{', '.join(f.name for f in group)} ({table.num_rows} spine rows)"
            report.start(label)
            began = time.perf_counter()
            sql = point_in_time_join(SPINE, group, engine.target).sql(dialect=engine.target.dialect)
            joined = engine.query(sql)
            report.finish(label, f"{time.perf_counter() - began:.2f}s")
            if joined.num_rows != table.num_rows:
                raise ComputeError(
                    f"point-in-time join returned {joined.num_rows} rows for {table.num_rows} "
                    f"spine rows (timelines of {', '.join(f.name for f in group)})"
                )
            ordered = _in_spine_order(joined, [f.name for f in group], table.num_rows)
            for f in group:
                values[f.name] = ordered.column(f.name)
    finally:
        engine.unregister(SPINE)
        for feature, _files in features:
            engine.unregister(timeline_relation(feature.name))
    if is_pandas:
        result = spine.copy()
        for feature, _files in features:
            result[feature.name] = values[feature.name].to_pandas().set_axis(result.index)
        return result
    result = table
    for feature, _files in features:
        result = result.append_column(feature.name, values[feature.name])
    return result


def _in_spine_order(joined: pa.Table, columns: list[str], n: int) -> pa.Table:
    """``columns`` of ``joined`` (one row per spine row, any order) in spine order, by a
    scatter on ``__row``: the inverse permutation, then one gather per column (no sort)."""

    rows = joined.column(ROW).to_numpy()
    values = joined.select(columns)
    if n and rows[0] == 0 and np.array_equal(rows, np.arange(n, dtype=rows.dtype)):
        return values
    inverse = np.empty(n, dtype=np.int64)
    inverse[rows] = np.arange(n, dtype=np.int64)
    return values.take(pa.array(inverse))


def tick_ranges(intervals: Sequence[tuple[Any, Any]], every_us: int) -> tuple[tuple[int, int], ...]:
    """The materialized ticks of ``intervals`` ([start, end) UTC datetimes) as sorted, disjoint
    tick-index ranges ``[(first, stop), ...]`` (tick i is at i × EVERY; stop is exclusive)."""
    ranges: list[tuple[int, int]] = []
    for first, stop in sorted(tick_bounds(a, b, every_us) for a, b in intervals):
        if first >= stop:
            continue  # an interval shorter than EVERY between two ticks holds no tick
        if ranges and first <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], stop))
        else:
            ranges.append((first, stop))
    return tuple(ranges)


def lookup_ticks(
    t_us: np.ndarray,
    valid: np.ndarray,
    every_us: int,
    ranges: Sequence[tuple[int, int]],
    ttl_us: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """T* for each spine time t (microseconds since the epoch): the latest materialized tick
    ≤ t, in microseconds, and whether there is one (``valid`` and a tick exists and, with a
    TTL, t − T* ≤ TTL).

    With i = ⌊t / EVERY⌋ and the ranges sorted: the last range whose first tick is ≤ i holds
    T*, which is i itself when i is inside the range and the range's last tick otherwise (t
    falls in a gap after it)."""

    index = np.floor_divide(t_us, every_us)
    if not ranges:
        return np.zeros_like(t_us), np.zeros(len(t_us), dtype=bool)
    firsts = np.array([a for a, _ in ranges], dtype=np.int64)
    lasts = np.array([b - 1 for _, b in ranges], dtype=np.int64)
    r = np.searchsorted(firsts, index, side="right") - 1
    found = valid & (r >= 0)
    r = np.maximum(r, 0)
    tick = np.minimum(index, lasts[r]) * every_us
    if ttl_us is not None:
        found &= (t_us - tick) <= ttl_us
    return np.where(found, tick, 0), found


def valid_times(spine: Any, time_column: str) -> np.ndarray:
    """The spine's valid (non-NULL) times in microseconds since the epoch (``spine``: an Arrow
    table or a pandas DataFrame)."""
    if isinstance(spine, pa.Table):
        column = spine.column(time_column)
    else:
        column = pa.Table.from_pandas(spine[[time_column]], preserve_index=False).column(0)
    times, valid = epoch_micros(column, time_column)
    return times[valid]


def epoch_micros(column: pa.ChunkedArray | pa.Array, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds since the epoch (floored) of a spine time column, and its validity.

    Timestamps of any unit; naive ones are UTC, zoned ones are instants (their zone only
    affects display). Dates are midnight UTC. Strings are parsed as ISO 8601, with or without
    a zone offset (without: UTC)."""

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pat.is_string(kind) or pat.is_large_string(kind):
        column = _parse_times(column, name)
        kind = column.type
    if pat.is_timestamp(kind):
        per_unit = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}[kind.unit]
    elif pat.is_date32(kind):
        per_unit = 86_400_000_000
    elif pat.is_date64(kind):
        per_unit = 1_000
    else:
        raise ComputeError(
            f"the spine's time column {name!r} has type {kind}; it must be a timestamp, a date "
            "or an ISO 8601 string"
        )
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    raw = pc.fill_null(column.cast(pa.int64()) if not pat.is_date32(kind) else
                       column.cast(pa.int32()).cast(pa.int64()), 0)  # fmt: skip
    values = raw.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    if per_unit is None:
        values = np.floor_divide(values, 1_000)
    elif per_unit != 1:
        values = values * per_unit
    return values, valid


def _parse_times(column: pa.Array, name: str) -> pa.Array:

    for kind in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            return column.cast(kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    raise ComputeError(
        f"the spine's time column {name!r} holds strings that are not ISO 8601 timestamps "
        "(all with a zone offset, or all without one: UTC), e.g. 2024-05-01 12:00:00 or "
        "2024-05-01T12:00:00+02:00"
    )


def _column_names(spine: Any, is_pandas: bool) -> list[str]:
    if not is_pandas:
        return list(spine.column_names)
    try:
        return [str(c) for c in spine.columns]
    except AttributeError:
        raise ComputeError(
            f"the spine must be a pyarrow Table or a pandas DataFrame, not {type(spine).__name__}"
        ) from None


def _to_arrow(spine: Any) -> pa.Table:

    try:
        return pa.Table.from_pandas(spine, preserve_index=False)
    except (TypeError, AttributeError) as exc:
        raise ComputeError(
            f"the spine must be a pyarrow Table or a pandas DataFrame, not {type(spine).__name__}"
        ) from exc


def _check_spine(
    names: list[str], features: Sequence[tuple[ResolvedFeature, TimelineFiles]], time_column: str
) -> None:
    columns = set(names)
    if time_column not in columns:
        raise ComputeError(
            f"the spine has no time column {time_column!r} (columns: {', '.join(names)}); "
            "pass --time-column / time_column= to name it"
        )
    for feature, _files in features:
        missing = [k for k in feature.entity.key_names if k not in columns]
        if missing:
            raise ComputeError(
                f"feature {feature.name} needs the key column(s) {', '.join(missing)} of entity "
                f"{feature.entity.name}, which the spine lacks (columns: {', '.join(names)})"
            )
        if feature.name in columns:
            raise ComputeError(
                f"the spine already has a column named {feature.name}; rename it or drop it"
            )
    if ROW in columns:
        raise ComputeError(f"the spine may not have a column named {ROW}")


def read_spine(path: str) -> pa.Table:
    """Read a spine file (Parquet, or CSV when the name ends in .csv)."""

    if path.lower().endswith(".csv"):
        return pacsv.read_csv(path)
    return pq.read_table(path)
