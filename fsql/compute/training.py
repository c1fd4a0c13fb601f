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
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pyarrow.types as pat
from sqlglot import exp

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


#: rows per batch a streamed training set is read in (:func:`training_batches`, the server)
BATCH_ROWS = 65_536


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
    timeline. :func:`training_batches` gives the same rows batch by batch.
    """
    own_engine = not isinstance(engine, Engine)
    eng = engine if isinstance(engine, Engine) else workspace.open_engine(engine)
    try:
        return point_in_time_lookup(
            eng, spine, committed_timelines(workspace, features), time_column=time_column,
            progress=progress,
        )  # fmt: skip
    finally:
        if own_engine:
            eng.close()


def training_batches(
    workspace: Workspace,
    spine: Any,
    features: Sequence[str],
    *,
    engine: str | Engine | None = None,
    time_column: str = "event_time",
    batch_rows: int = BATCH_ROWS,
    progress: Progress | Callable[[str], None] | None = None,
) -> Iterator[pa.RecordBatch]:
    """:func:`training_set`'s rows as Arrow record batches of at most ``batch_rows`` rows, in
    spine order, produced as the engine returns them: the whole training set is never held at
    once (only the spine given and one batch). Closing the iterator early stops the join."""
    table = _to_arrow(spine) if not isinstance(spine, pa.Table) else spine
    own_engine = not isinstance(engine, Engine)
    eng = engine if isinstance(engine, Engine) else workspace.open_engine(engine)
    try:
        join = PointInTimeJoin(eng, committed_timelines(workspace, features), time_column)
        try:
            join.load(table.schema, [table])
            offset = 0
            for values in join.batches(batch_rows, progress):
                part = table.slice(offset, values.num_rows).combine_chunks()
                offset += values.num_rows
                yield pa.RecordBatch.from_arrays(
                    [*(c.chunk(0) if c.num_chunks else pa.array([], c.type)
                       for c in part.columns), *values.columns],
                    schema=pa.schema([*table.schema, *values.schema]),
                )  # fmt: skip
        finally:
            join.close()
    finally:
        if own_engine:
            eng.close()


def committed_timelines(
    workspace: Workspace, features: Sequence[str]
) -> list[tuple[ResolvedFeature, TimelineFiles]]:
    """Each feature (sets expanded) with its current version's committed timeline files."""
    reg = workspace.registry
    analysis = reg.analysis()
    current = reg.current()
    store = workspace.offline_store
    lookups = []
    for name in analysis.expand(features):
        feature = analysis.features[name]
        version = current[name].version
        files = store.timeline_files(
            name, version, timeline_schema(feature), reg.ledger_intervals(name, version)
        )
        lookups.append((feature, files))
    return lookups


class PointInTimeJoin:
    """One point-in-time join on an engine, in two steps: :meth:`load` the spine (its row
    numbers, keys and lookup ticks, part by part as they come), then read the feature values,
    either all at once in any order (:meth:`values`) or batch by batch in spine order
    (:meth:`batches`). :meth:`close` forgets what the engine was given.

    Only the ticks inside ``files.intervals`` (the committed, ledger-recorded intervals) are
    looked up; timeline rows outside them are never returned."""

    def __init__(
        self,
        engine: Engine,
        features: Sequence[tuple[ResolvedFeature, TimelineFiles]],
        time_column: str = "event_time",
    ):
        self.engine = engine
        self.features = list(features)
        self.time_column = time_column
        self.keys = list(dict.fromkeys(k for f, _ in features for k in f.entity.key_names))
        #: lookup tick column → (EVERY, materialized tick ranges, TTL), all in microseconds
        self.ticks: dict[str, tuple[int, tuple[tuple[int, int], ...], int | None]] = {}
        self.pit: list[PitFeature] = []
        columns: dict[tuple[Any, ...], str] = {}
        for feature, files in features:
            every_us = micros(feature.definition.every)
            ttl = feature.definition.ttl
            ttl_us = micros(ttl) if ttl is not None else None
            spec = (every_us, tick_ranges(files.intervals, every_us), ttl_us)
            if spec not in columns:  # features with the same ticks and TTL share a column
                columns[spec] = f"__tick{len(columns)}"
                self.ticks[columns[spec]] = spec
            self.pit.append(
                PitFeature(
                    name=feature.name,
                    relation=timeline_relation(feature.name),
                    key_names=feature.entity.key_names,
                    key_types=tuple(c.type for c in feature.entity.keys),
                    tick_column=columns[spec],
                )
            )
        #: spine rows loaded
        self.rows = 0

    @property
    def needed(self) -> list[str]:
        """The spine columns the join reads: the keys and the time column."""
        return [*self.keys, self.time_column] if self.time_column not in self.keys else self.keys

    def load(self, schema: pa.Schema, parts: Iterable[pa.Table | pa.RecordBatch]) -> None:
        """Give the engine the spine: ``parts`` (with at least :attr:`needed` of ``schema``'s
        columns) in spine order; each part's lookup ticks are computed as it comes."""
        check_spine(list(schema.names), self.features, self.time_column)
        slim = pa.schema(
            [pa.field(ROW, pa.int64()), *(schema.field(k) for k in self.keys),
             *(pa.field(t, pa.timestamp("us", tz="UTC")) for t in self.ticks)]
        )  # fmt: skip
        self.engine.register_batches(SPINE, slim, (self._slim(part, slim) for part in parts))
        for feature, files in self.features:
            self.engine.register_timeline(timeline_relation(feature.name), files)

    def _slim(self, part: pa.Table | pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
        t_us, t_valid = epoch_micros(part.column(self.time_column), self.time_column)
        arrays: list[Any] = [pa.array(np.arange(self.rows, self.rows + part.num_rows))]
        for k in self.keys:
            column = part.column(k)
            arrays.append(column.combine_chunks() if isinstance(column, pa.ChunkedArray)
                          else column)  # fmt: skip
        for every_us, ranges, ttl_us in self.ticks.values():
            ticks, found = lookup_ticks(t_us, t_valid, every_us, ranges, ttl_us)
            arrays.append(pa.array(ticks, pa.timestamp("us", tz="UTC"), mask=~found))
        self.rows += part.num_rows
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def groups(self) -> list[list[PitFeature]]:
        """The features joined by one query each (per the engine's target)."""
        return [[f] for f in self.pit] if self.engine.target.pit_query_per_feature else [self.pit]

    def values(self, progress: Progress | Callable[[str], None] | None = None) -> dict[str, Any]:
        """Every feature's values in spine order, as one column each: one query per group,
        whole, put in spine order by a scatter on ``__row``."""
        values: dict[str, pa.ChunkedArray] = {}
        groups = self.groups()
        report = as_progress(progress)
        report.begin(len(groups), "point-in-time joins")
        for group in groups:
            label = f"{', '.join(f.name for f in group)} ({self.rows} spine rows)"
            report.start(label)
            began = time.perf_counter()
            target = self.engine.target
            joined = self.engine.query(
                point_in_time_join(SPINE, group, target).sql(dialect=target.dialect))
            report.finish(label, f"{time.perf_counter() - began:.2f}s")
            if joined.num_rows != self.rows:
                raise self._row_count_error(joined.num_rows, group)
            ordered = _in_spine_order(joined, [f.name for f in group], self.rows)
            for f in group:
                values[f.name] = ordered.column(f.name)
        return values

    def batches(
        self,
        batch_rows: int = BATCH_ROWS,
        progress: Progress | Callable[[str], None] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """The feature columns in spine order, batch by batch as the engine produces them.
        Each group's join runs on its own into an engine table (one join at a time within
        the engine's memory), then one query joins those on ``__row``, ordered by it. Each
        batch's row numbers are checked to continue the previous batch's (no spine row lost,
        repeated or out of place); an empty spine gives one empty batch."""
        target = self.engine.target
        groups = self.groups()
        tables = [f"__g{j}" for j in range(len(groups))]
        report = as_progress(progress)
        report.begin(len(groups), "point-in-time joins")
        try:
            for table, group in zip(tables, groups, strict=True):
                label = f"{', '.join(f.name for f in group)} ({self.rows} spine rows)"
                report.start(label)
                began = time.perf_counter()
                self.engine.create_table(
                    table, point_in_time_join(SPINE, group, target).sql(dialect=target.dialect))
                report.finish(label, f"{time.perf_counter() - began:.2f}s")
            query = exp.select(exp.column(ROW, table=tables[0])).from_(tables[0], copy=False)
            for table, group in zip(tables, groups, strict=True):
                if table != tables[0]:
                    query = query.join(
                        table, join_type="INNER", copy=False,
                        on=exp.EQ(this=exp.column(ROW, table=tables[0]),
                                  expression=exp.column(ROW, table=table)),
                    )  # fmt: skip
                for f in group:
                    query = query.select(
                        exp.column(exp.to_identifier(f.name, quoted=True), table=table),
                        copy=False)  # fmt: skip
            query = query.order_by(exp.column(ROW, table=tables[0]), copy=False)
            offset = 0
            names = [f.name for g in groups for f in g]
            for batch in self.engine.query_batches(query.sql(dialect=target.dialect),
                                                   batch_rows):  # fmt: skip
                rows = batch.column(0).to_numpy(zero_copy_only=False)
                if not np.array_equal(rows, np.arange(offset, offset + len(rows),
                                                      dtype=rows.dtype)):  # fmt: skip
                    raise self._row_count_error(None, self.pit)
                offset += len(rows)
                yield pa.RecordBatch.from_arrays(batch.columns[1:], names=names)
            if offset != self.rows:
                raise self._row_count_error(offset, self.pit)
        finally:
            for table in tables:
                self.engine.unregister(table)

    def _row_count_error(self, returned: int | None, group: Sequence[PitFeature]) -> ComputeError:
        what = "rows out of spine order" if returned is None else f"{returned} rows"
        return ComputeError(
            f"point-in-time join returned {what} for {self.rows} spine rows "
            f"(timelines of {', '.join(f.name for f in group)})"
        )

    def close(self) -> None:
        self.engine.unregister(SPINE)
        for feature, _files in self.features:
            self.engine.unregister(timeline_relation(feature.name))


def point_in_time_lookup(
    engine: Engine,
    spine: Any,
    features: Sequence[tuple[ResolvedFeature, TimelineFiles]],
    *,
    time_column: str = "event_time",
    progress: Progress | Callable[[str], None] | None = None,
) -> Any:
    """:func:`training_set` with the timelines given (the core, without registry or store)."""

    is_pandas = not isinstance(spine, pa.Table)
    columns = _column_names(spine, is_pandas)
    join = PointInTimeJoin(engine, features, time_column)
    check_spine(columns, features, time_column)
    # pandas: convert only the columns the join reads; the rest of the frame is kept as is
    table = _to_arrow(spine[join.needed]) if is_pandas else spine
    try:
        join.load(table.schema, [table])
        values = join.values(progress)
    finally:
        join.close()
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


def check_spine(
    names: list[str], features: Sequence[tuple[ResolvedFeature, Any]], time_column: str
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
