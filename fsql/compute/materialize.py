"""Materialization: compute feature timelines for [start, end) into the offline store.

For the named features (default: all) and every feature they read, in topological order
(inputs first): ask the registry's ledger which parts of [start, end) are missing for the
current version (all of it with ``force``), compile the feature's plan for the engine, let the
engine write the rows to a staging directory, commit them to the offline store atomically,
and only then record the interval in the ledger. Online features are then pushed to the
online store (:func:`fsql.compute.push.push_feature`).

Every source involved is checked against its declared schema before anything runs, so a bad
file fails the run naming the file and the column, and nothing is written.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from fsql.compile.expressions import utc_date
from fsql.compile.plan import (
    FEATURE_TIME,
    FeaturePlan,
    build_plan,
    source_relation,
    timeline_relation,
)
from fsql.compile.sql import CHANGES, Layout, tick_bounds, timeline_query
from fsql.compile.target import Target
from fsql.compute.late_data import detect_late_data, input_files
from fsql.compute.progress import Progress, as_progress
from fsql.compute.push import latest_values_sql, online_push_pending, push_feature
from fsql.compute.statistics import tick_statistics
from fsql.engines.base import Engine
from fsql.engines.duckdb import connect
from fsql.errors import ComputeError, RejectedData
from fsql.intervals import ceil_tick, watermark_end
from fsql.registry import Inputs, merge_intervals
from fsql.stores.files import SourceFiles
from fsql.stores.sources import arrow_type, source_files
from fsql.workspace import Workspace

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from fsql.config import Config
    from fsql.language.definitions import ResolvedFeature
    from fsql.registry.base import Registry
    from fsql.stores.offline import OfflineStore

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class StagedInterval:
    """One computed interval of one feature version, staged but not committed yet."""

    feature: str
    version: int
    start: datetime
    end: datetime
    #: reads the staged timeline rows (keys, ``feature_time``, the value), the given columns
    #: only (all: ``None``), from the staging directory
    read: Callable[[Sequence[str] | None], pa.Table]
    #: the run statistics of the interval: the values at each of its ticks, staged rows and
    #: the committed history they continue (:func:`fsql.compute.statistics.tick_statistics`)
    statistics: Callable[[], dict[str, Any]] | None = None

    @property
    def table(self) -> pa.Table:
        """Every staged row and column."""
        return self.read(None)

    def values(self) -> pa.ChunkedArray:
        """The staged values (the feature's column only)."""
        return self.read([self.feature]).column(self.feature)


#: Called with every computed interval before it is committed. Raising
#: :class:`~fsql.errors.RejectedData` (e.g. a failed check) stops the run with nothing of that
#: interval committed (offline store, ledger and online store stay as they were) and keeps
#: the refused rows in the offline store's quarantine; the exception carries their location.
Gate = Callable[[StagedInterval], None]


@dataclass(frozen=True)
class MaterializeResult:
    """What a run did for one feature version.

    ``location`` is where its timeline lives (the offline store's version directory);
    ``last_tick`` the greatest tick the run wrote (``None`` when nothing was computed).
    """

    feature: str
    version: int
    #: the intervals computed by this run (empty: already materialized)
    intervals: tuple[Interval, ...]
    rows: int
    location: str
    last_tick: datetime | None
    seconds: float
    #: the online push's result (``fsql.compute.push.PushResult``), if one ran
    online: Any = field(default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "version": self.version,
            "intervals": [[s.isoformat(), e.isoformat()] for s, e in self.intervals],
            "rows": self.rows,
            "location": self.location,
            "last_tick": self.last_tick.isoformat() if self.last_tick else None,
            "seconds": round(self.seconds, 3),
            "online_rows": getattr(self.online, "rows", None),
        }


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are UTC)."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def timeline_schema(feature: ResolvedFeature) -> pa.Schema:
    """The Arrow schema of a feature's timeline: keys, ``feature_time`` (UTC), the value."""


    fields = [pa.field(k.name, arrow_type(k.type)) for k in feature.entity.keys]
    fields.append(pa.field(FEATURE_TIME, pa.timestamp("us", tz="UTC")))
    fields.append(pa.field(feature.name, arrow_type(feature.value_type)))
    return pa.schema(fields)


def partitioned_query(
    plan: FeaturePlan, target: Target, start: datetime, end: datetime, layout: Layout = CHANGES
) -> str:
    """The timeline query plus the ``date`` partition column (UTC date of the tick)."""

    inner = timeline_query(plan, target, start, end, layout)
    query = exp.select(
        exp.Star(),
        exp.alias_(utc_date(exp.column(FEATURE_TIME), target), "date"),
    ).from_(inner.subquery("__timeline", copy=False))
    return query.sql(dialect=target.dialect)


def materialize(
    workspace: Workspace,
    features: Sequence[str] | None,
    start: datetime,
    end: datetime,
    *,
    engine: str | Engine | None = None,
    force: bool = False,
    online: bool = True,
    progress: Progress | Callable[[str], None] | None = None,
    gate: Gate | None = None,
    now: datetime | None = None,
) -> list[MaterializeResult]:
    """Materialize [start, end) of ``features`` (names or feature sets; ``None``: all) and
    their inputs with the current registry versions of ``workspace``. Returns one result per
    feature, in the order computed. ``online=False`` skips the online push; ``gate`` sees every
    computed interval before it is committed (see :data:`Gate`).

    **The watermark**: no tick later than ``now`` (default: the clock) is ever computed. Each
    feature's end is clamped to its last tick at or before now (:func:`watermark_end`); a
    clamped run says so through ``progress`` and records only what it computed, so a later run
    picks up where it stopped."""
    report = as_progress(progress)
    start, end = utc(start), utc(end)
    if end <= start:
        raise ComputeError(
            f"the end ({end.isoformat()}) must be after the start ({start.isoformat()})"
        )
    config = workspace.config
    reg = workspace.registry
    own_engine = not isinstance(engine, Engine)
    eng: Engine | None = engine if isinstance(engine, Engine) else None
    try:
        analysis = reg.analysis()
        current = reg.current()
        order = analysis.topological_order(list(features) if features else None)
        versions = {name: current[name].version for name in order}
        ends = _watermarked_ends(analysis.features, order, start, end, now, report)
        store = workspace.offline_store
        store.writer_lock = reg.writer_lock  # serialises commits of a version on S3 too
        # Late data: ticks already materialized whose sources changed since (recorded as the
        # ledger's stale marks, so `fsql status` says so even if this run fails)
        stale = {
            n: [(m.start, m.end) for m in marks]
            for n, marks in detect_late_data(
                workspace, order, progress=report.note, analysis=analysis
            ).items()
        }
        pending = any(
            ends[n] > start
            and (
                force
                or reg.ledger_missing(n, versions[n], start, ends[n])
                or any(a < ends[n] and b > start for a, b in stale.get(n, ()))
            )
            for n in order
        )
        if pending:
            # Engines can be slow to start (Spark): only start one when there is work.
            if eng is None:
                eng = workspace.open_engine(engine if isinstance(engine, str) else None)
                sandbox(eng, config, store)
            results = materialize_features(
                eng, store, reg, analysis.features, order, versions, start, ends,
                config=config, force=force, progress=report, gate=gate, stale=stale,
            )  # fmt: skip
        else:
            results = [
                MaterializeResult(
                    feature=n,
                    version=versions[n],
                    intervals=(),
                    rows=0,
                    location=store.location(n, versions[n]),
                    last_tick=None,
                    seconds=0.0,
                )  # fmt: skip
                for n in order
            ]
        if online:
            results = [
                push_online(workspace, store, analysis.features[r.feature], r, report)
                for r in results
            ]
        return results
    finally:
        if own_engine and eng is not None:
            eng.close()


def _watermarked_ends(
    resolved: Mapping[str, ResolvedFeature],
    order: Sequence[str],
    start: datetime,
    end: datetime,
    now: datetime | None,
    progress: Progress,
) -> dict[str, datetime]:
    """Each feature's end: its first tick at or after ``end`` (the same ticks lie before it,
    and the ledger's intervals stay tick-aligned), or its watermark when that is earlier (one
    notice). A feature's lateness is its source's ``LATENESS``, or the largest of its inputs'."""
    now = utc(now) if now is not None else datetime.now(UTC)
    ends = {}
    late: dict[str, timedelta] = {}
    for n in order:  # inputs first
        feature = resolved[n]
        every = feature.definition.every
        own = feature.source.lateness if feature.source is not None else None
        late[n] = max([own or timedelta(0), *(late.get(i, timedelta(0)) for i in feature.inputs)])
        ends[n] = min(ceil_tick(end, int(every.total_seconds())), watermark_end(now, every, late[n]))
    clamped = [n for n in order if ends[n] < end]
    if clamped:
        last = max(ends[n] - resolved[n].definition.every for n in clamped)
        if all(ends[n] <= start for n in order):
            progress.note(
                f"nothing to materialize: [{start.isoformat()}, {end.isoformat()}) lies after now "
                f"({now.isoformat(timespec='seconds')}); no tick later than now is computed"
            )
        else:
            waits = "" if not any(late[n] for n in clamped) else " (sources' LATENESS included)"
            progress.note(
                f"--end {end.isoformat()} is after now ({now.isoformat(timespec='seconds')}): "
                f"materializing up to the last complete tick (at most {last.isoformat()}){waits}"
            )
    return ends


def sandbox(engine: Engine, config: Config, store: OfflineStore) -> None:
    """Confine a DuckDB engine that runs SQL compiled from definitions (which users with
    define rights may make over the wire) like the server's sessions: files only under the
    offline store (its staging folder included), the source roots and the engine's own
    scratch folder; no network, extensions or settings (:meth:`~fsql.engines.duckdb.
    DuckDBEngine.confine`). Definitions cannot name a file today (no subqueries; FROM is a
    declared source): this holds whatever SQL the engine is given."""
    confine = getattr(engine, "confine", None)
    scratch = getattr(engine, "scratch_dir", None)
    if confine is None or scratch is None:
        return
    base = store.staging_base()
    folders = {scratch(), base, os.path.realpath(base)}
    if store.is_local:
        folders |= {store.root, os.path.realpath(store.root)}
    for root in [str(config.repo), *config.sources.roots]:
        if "://" not in root:
            folders |= {os.path.normpath(config.repo / root),
                        os.path.realpath(config.repo / root)}  # fmt: skip
    confine(sorted(folders))


def materialize_features(
    engine: Engine,
    store: OfflineStore,
    ledger: Registry,
    resolved: Mapping[str, ResolvedFeature],
    order: Sequence[str],
    versions: Mapping[str, int],
    start: datetime,
    end: datetime | Mapping[str, datetime],
    *,
    config: Config,
    force: bool = False,
    progress: Progress | Callable[[str], None] | None = None,
    gate: Gate | None = None,
    stale: Mapping[str, Sequence[Interval]] | None = None,
) -> list[MaterializeResult]:
    """The core of :func:`materialize`, with every collaborator given (``order`` must list
    inputs before the features reading them; ``end`` may be one per feature). Computed: the
    parts of the range missing from the ledger, the ``stale`` ones (late data, see
    :mod:`fsql.compute.late_data`), and for a derived feature whatever its inputs recompute."""

    report = as_progress(progress)
    start = utc(start)
    ends = {n: utc(end if isinstance(end, datetime) else end[n]) for n in order}
    todo: dict[str, list[Interval]] = {}
    for name in order:
        stop = ends[name]
        if stop <= start:
            todo[name] = []
        elif force:
            todo[name] = [(start, stop)]
        else:
            step = int(resolved[name].definition.every.total_seconds())
            again = [(max(a, start), min(b, stop)) for a, b in (stale or {}).get(name, ())]
            again += [
                (ceil_tick(max(a, start), step), min(b, stop))
                for i in resolved[name].inputs
                for a, b in todo.get(i, ())
            ]  # the ticks its inputs recompute
            todo[name] = merge_intervals(
                [*ledger.ledger_missing(name, versions[name], start, stop),
                 *(iv for iv in again if iv[0] < iv[1])]
            )  # fmt: skip
    # Check every source the run reads before computing anything.
    sources: dict[str, SourceFiles] = {}
    for name in order:
        feature = resolved[name]
        if todo[name] and feature.source is not None and feature.source.name not in sources:
            sources[feature.source.name] = source_files(feature.source, config)
    for source_name, files in sources.items():
        engine.register_source(source_relation(source_name), files)
    report.begin(sum(len(todo[n]) for n in order), "feature intervals")

    def run_feature(name: str) -> MaterializeResult:
        feature = resolved[name]
        version = versions[name]
        plan = build_plan(feature, {i: resolved[i] for i in feature.inputs})
        started = time.perf_counter()
        rows = 0
        last_tick = None
        listed = sources[feature.source.name].files if feature.source and todo[name] else ()
        for a, b in todo[name]:
            label = f"{name} v{version} [{a.isoformat()}, {b.isoformat()})"
            report.start(label)
            began = time.perf_counter()
            # what the interval read, for late-data detection (a derived feature reads no
            # source): files whose events all lie at or after its end cannot change its ticks,
            # so they are left out (detection then sees them as new, and as harmless)
            read = {}
            if feature.source is not None:
                read[feature.source.name] = input_files(
                    f for f in listed if f.min_time is None or f.min_time < b
                )
            count = materialize_interval(
                engine, store, ledger, plan, version, a, b, gate=gate, inputs=read,
                committed=ledger.ledger_intervals(name, version),
                memory_limit=config.compute.memory_limit,
            )  # fmt: skip
            rows += count
            report.finish(label, f"{count} rows ({time.perf_counter() - began:.2f}s)")
            tick = _last_tick(plan, a, b)
            last_tick = tick if last_tick is None or (tick and tick > last_tick) else last_tick
        return MaterializeResult(
            feature=name, version=version, intervals=tuple(todo[name]), rows=rows,
            location=store.location(name, version), last_tick=last_tick,
            seconds=time.perf_counter() - started,
        )  # fmt: skip

    # A feature that fails — the gate refused its rows (RejectedData) or the engine failed
    # computing it (ComputeError) — stops only itself and what reads it: independent features
    # still run and commit, and the first failure (in ``order``) is raised at the end. Written
    # from the level's threads, one key per feature; inputs are read from earlier levels only.
    failed: dict[str, Exception] = {}

    def run_gated(name: str) -> MaterializeResult | None:
        broken = next((i for i in resolved[name].inputs if i in failed), None)
        if broken is not None:
            failed[name] = failed[broken]
            return None
        try:
            with engine.feature_scope(name):
                return run_feature(name)
        except (RejectedData, ComputeError) as exc:
            failed[name] = exc
            return None

    done: dict[str, MaterializeResult | None] = {}
    for level in topological_levels(order, resolved):
        # Input timelines are bound for the whole level: features of one level may share them.
        inputs = sorted({i for name in level for i in resolved[name].inputs})
        for input_name in inputs:
            schema = timeline_schema(resolved[input_name])
            timeline = store.timeline_files(input_name, versions[input_name], schema)
            engine.register_timeline(timeline_relation(input_name), timeline)
        busy = [name for name in level if todo[name]]
        workers = min(engine.parallel_features, len(busy))
        if engine.SUPPORTS_PARALLEL_FEATURES and workers > 1:
            # Shared by the threads, each safe for it: the engine (see
            # Engine.SUPPORTS_PARALLEL_FEATURES), the registry (one connection behind a
            # mutex), the offline store (a commit lock per version directory; one staging
            # directory per interval), the progress reporter and the gate (callers' gates
            # only append to their own collections).
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fsql-feature")
            try:
                futures = [pool.submit(run_gated, name) for name in busy]
                for name, future in zip(busy, futures, strict=True):
                    done[name] = future.result()
            finally:
                # an unexpected error: features not started yet are not started
                pool.shutdown(wait=True, cancel_futures=True)
        for name in level:
            if name not in done:
                done[name] = run_gated(name)
        for input_name in inputs:
            engine.unregister(timeline_relation(input_name))
    for source_name in sources:
        engine.unregister(source_relation(source_name))
    if failed:
        raise next(failed[name] for name in order if name in failed)
    return [r for r in (done[name] for name in order) if r is not None]


def topological_levels(
    order: Sequence[str], resolved: Mapping[str, ResolvedFeature]
) -> list[list[str]]:
    """``order`` grouped into levels: a feature's level is one more than its inputs' highest,
    so the features of one level are independent and may run in parallel."""
    level: dict[str, int] = {}
    for name in order:
        level[name] = 1 + max((level[i] for i in resolved[name].inputs if i in level), default=-1)
    levels: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for name in order:
        levels[level[name]].append(name)
    return levels


def materialize_interval(
    engine: Engine,
    store: OfflineStore,
    ledger: Registry,
    plan: FeaturePlan,
    version: int,
    start: datetime,
    end: datetime,
    *,
    gate: Gate | None = None,
    inputs: Inputs | None = None,
    committed: Sequence[Interval] = (),
    memory_limit: str | None = None,
) -> int:
    """Compute, commit and record one interval of one feature version (with ``inputs``, the
    source files it read). Returns rows written.

    The stored rows are changes (:mod:`fsql.compile.sql`), so how an interval is computed
    depends on its neighbours in the ledger (``committed``): when the tick before it is not
    materialized it starts with a baseline row for every entity seen; when the tick after it
    is, that tick's rows are rewritten as every entity's committed value there (its rows were
    changes relative to the ticks recomputed here; its values, and every later tick's, stay
    what they were).

    Order matters for atomicity: engine → staging; the gate (checks) over the staged rows;
    store commit (manifest switch); ledger commit; only then are superseded files deleted.
    """
    every = timedelta(microseconds=plan.every_us)
    first, stop = tick_bounds(start, end, plan.every_us)
    layout = Layout(baseline=not _covers(committed, _tick(first - 1, plan.every_us)))
    following = _tick(stop, plan.every_us)
    carried = _covers(committed, following)
    through = following + every if carried else end
    sql = partitioned_query(plan, engine.target, start, end, layout)
    schema = timeline_schema(plan.feature)
    staging = store.new_staging_dir()
    try:
        engine.write_partitioned(sql, staging, "date")
        if carried:
            _stage_committed_values(
                store, plan, version, schema, following, staging, memory_limit
            )
        if gate is not None:
            staged = StagedInterval(
                plan.name, version, start, end,
                lambda columns: store.read_staged(staging, schema, columns),
                statistics=lambda: tick_statistics(
                    plan.key_names, plan.name, schema.field(plan.name).type,
                    first * plan.every_us, stop * plan.every_us, plan.every_us,
                    staged=store.staged_paths(staging),
                    history=store.timeline_files(plan.name, version, schema) if committed
                    else None,
                    memory_limit=memory_limit,
                ),
            )  # fmt: skip
            try:
                gate(staged)
            except RejectedData as exc:
                exc.quarantine = store.quarantine(staging, plan.name, version, start, end)
                raise
        result = store.commit(plan.name, version, staging, start, through, schema)
    except BaseException:
        store.discard_staging(staging)
        raise
    ledger.ledger_commit(
        plan.name,
        version,
        start,
        end,
        engine=engine.name,
        rows=result.rows,
        location=result.location,
        inputs=inputs,
    )
    store.delete_files(plan.name, version, result.obsolete)
    return result.rows


def _last_tick(plan: FeaturePlan, start: datetime, end: datetime) -> datetime | None:

    first, stop = tick_bounds(start, end, plan.every_us)
    if stop <= first:
        return None
    return _tick(stop - 1, plan.every_us)


def _stage_committed_values(
    store: OfflineStore,
    plan: FeaturePlan,
    version: int,
    schema: pa.Schema,
    tick: datetime,
    staging: str,
    memory_limit: str | None,
) -> None:
    """Stage, as rows at ``tick``, every entity's committed value there (its latest committed
    row at or before ``tick``), streamed from the offline store."""
    files = store.timeline_files(plan.name, version, schema)
    if not files.paths:
        return
    keys = list(plan.key_names)
    directory = os.path.join(staging, f"date={tick.date().isoformat()}")
    os.makedirs(directory, exist_ok=True)
    stamp = pa.scalar(tick, pa.timestamp("us", tz="UTC"))
    con = connect(memory_limit=memory_limit)
    try:
        con.register("__timeline", files.dataset())
        reader = con.sql(latest_values_sql(keys, plan.name), params=[tick]).to_arrow_reader()
        with pq.ParquetWriter(os.path.join(directory, "part-committed.parquet"), schema) as out:
            for batch in reader:
                times = pa.array([stamp] * batch.num_rows, pa.timestamp("us", tz="UTC"))
                columns = [*batch.columns[: len(keys)], times, batch.column(len(keys))]
                out.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
    finally:
        con.close()


def _tick(index: int, every_us: int) -> datetime:
    """The instant of tick ``index``."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=index * every_us)


def _covers(intervals: Sequence[Interval], moment: datetime) -> bool:
    """Whether ``moment`` lies in one of ``intervals`` ([start, end))."""
    return any(a <= moment < b for a, b in intervals)


def push_online(
    workspace: Workspace,
    store: OfflineStore,
    feature: ResolvedFeature,
    result: MaterializeResult,
    progress: Progress | None = None,
) -> MaterializeResult:
    """Call site of the online push (owned by fsql.compute.push): online features whose
    committed intervals are not all pushed yet get their last-tick values written (reported
    through ``progress``)."""
    if not feature.definition.online:
        return result
    registry = workspace.registry
    if not result.intervals and not online_push_pending(registry, result.feature, result.version):
        return result
    timeline = store.timeline_files(result.feature, result.version, timeline_schema(feature))
    report = as_progress(progress)
    report.note(f"{result.feature} v{result.version}: pushing the values at its last tick online")
    pushed = push_feature(
        workspace.online_store, registry, feature, result.version, timeline,
        batch_size=workspace.config.online_store.batch_size,
        memory_limit=workspace.config.compute.memory_limit,
    )  # fmt: skip
    report.note(f"{result.feature} v{result.version}: {pushed.rows} keys online "
                f"({pushed.seconds:.2f}s)")  # fmt: skip
    return replace(result, online=pushed)
