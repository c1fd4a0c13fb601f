"""Late data: find materialized intervals whose inputs changed since they were computed.

Every ledger entry records what its interval read from each source: the files with size and
modification time, and the least event time in each file when its metadata tells (Parquet
row-group statistics; see :class:`fsql.registry.InputFile`). Detection lists each source again
(a listing: no file is read, except the Parquet footers of files that are new or changed) and
compares.

**The rule.** A file added, removed or changed (size or modification time) can hold events from
its least event time ``m`` on (``m`` unknown — CSV, no statistics — counts as the beginning of
time; for a changed or removed file, the least of its old and new ``m``). An event at ``t``
changes the value at every tick ``T > t``: inside the window ``(t, t + WINDOW]`` through the
aggregate, and at every later tick through "seen" (an entity's first event gives it a value
at every later tick, whatever the window), so a window does not bound the effect. Hence the ticks of an entry that are stale are those **after the earliest** ``m`` among
the differing files; an entry that recorded nothing (written before inputs were recorded) is
unknown and never judged stale. Never misses a change; over-approximates only when a new file's
early rows belong to entities seen anyway.

A derived feature's ticks are stale where an input's are (same reason), and where an input's
ledger entry is newer than its own (the input was recomputed after it: "input recomputed").

Detection records its answer as the ledger's stale marks (:meth:`Registry.ledger_set_stale`),
which :mod:`fsql.compute.monitor` reads (``fsql status``, ``fsql.freshness``, ``/metrics``);
:func:`fsql.compute.materialize.materialize` detects before computing and recomputes the stale
ticks of its range, and each recommit clears its marks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from fsql.errors import FsqlError
from fsql.intervals import ceil_tick, floor_tick
from fsql.language.analysis import Analysis
from fsql.language.definitions import ResolvedFeature
from fsql.registry import (
    InputFile,
    LedgerEntry,
    Registry,
    StaleMark,
    VersionRecord,
    merge_intervals,
)
from fsql.stores.files import SourceFileInfo
from fsql.stores.sources import SourceListing, source_listing
from fsql.workspace import Workspace

Interval = tuple[datetime, datetime]

SOURCE_CHANGED = "source changed"
INPUT_RECOMPUTED = "input recomputed"
#: when several reasons cover the same ticks, the first one listed here is shown
REASONS = (SOURCE_CHANGED, INPUT_RECOMPUTED)

#: the least event time of a file whose metadata cannot tell: the beginning of time
UNKNOWN = datetime.min.replace(tzinfo=UTC)


def input_files(files: Iterable[SourceFileInfo]) -> tuple[InputFile, ...]:
    """A source listing as the ledger records it."""
    return tuple(InputFile(f.path, f.size, f.modified, f.min_time) for f in files)


def earliest_change(recorded: Iterable[InputFile], current: Iterable[InputFile]) -> datetime | None:
    """The earliest event time the difference between two listings of a source can carry
    (:data:`UNKNOWN` when a differing file's metadata cannot tell), or None: no difference."""
    old = {f.path: f for f in recorded}
    new = {f.path: f for f in current}
    earliest: datetime | None = None
    for path in old.keys() | new.keys():
        before, after = old.get(path), new.get(path)
        if before is not None and after is not None and before.fingerprint == after.fingerprint:
            continue
        for f in (before, after):
            if f is not None:
                least = f.min_time if f.min_time is not None else UNKNOWN
                earliest = least if earliest is None else min(earliest, least)
    return earliest


def stale_ticks(start: datetime, end: datetime, changed: datetime, every: timedelta) -> Interval:
    """The ticks of [start, end) after an event at ``changed``, as an interval starting on a
    tick and ending at ``end`` (empty when start >= end)."""
    step = int(every.total_seconds())
    first = ceil_tick(start, step)
    if changed >= first:
        first = floor_tick(changed, step) + every  # the first tick strictly after it
    return first, end


def _marks(pieces: Iterable[tuple[Interval, str]]) -> list[StaleMark]:
    """Non-empty pieces merged into disjoint marks; a merged mark shows the first reason of
    :data:`REASONS` among its pieces."""
    pieces = [(iv, why) for iv, why in pieces if iv[0] < iv[1]]
    marks = []
    for start, end in merge_intervals(iv for iv, _ in pieces):
        reasons = {why for (s, e), why in pieces if s < end and e > start}
        marks.append(StaleMark(start, end, min(reasons, key=REASONS.index)))
    return marks


def _clip(marks: Iterable[StaleMark], spans: Iterable[Interval], every: timedelta
          ) -> list[tuple[Interval, str]]:  # fmt: skip
    """The parts of ``marks`` inside ``spans``, each starting on a tick of ``every``."""
    step = int(every.total_seconds())
    out = []
    for mark in marks:
        for start, end in spans:
            a, b = max(mark.start, start), min(mark.end, end)
            if a < b:
                out.append(((ceil_tick(a, step), b), mark.reason))
    return out


class _Sources:
    """Source listings of one detection, each taken once; Parquet footers read once per file
    version, and only for files some entry has not recorded as they are now."""

    def __init__(self, workspace: Workspace):
        self._config = workspace.config
        self._listings: dict[str, SourceListing] = {}
        self._min_times: dict[tuple[str, int, int | None], datetime | None] = {}

    def current(
        self, feature: ResolvedFeature, known: Mapping[tuple[str, int, int | None], datetime | None]
    ) -> tuple[InputFile, ...]:
        """The source's files now; least event times from ``known`` (what entries recorded, by
        fingerprint), else from the footer of the file as it is now."""
        source = feature.source
        assert source is not None
        if source.name not in self._listings:
            self._listings[source.name] = source_listing(source, self._config)
        listing = self._listings[source.name]
        min_times = {**self._min_times, **known}
        unread = {f.path for f in listing.files if (f.path, f.size, f.modified) not in min_times}
        for f in listing.with_min_times(unread):
            if f.path in unread:
                self._min_times[(f.path, f.size, f.modified)] = f.min_time
                min_times[(f.path, f.size, f.modified)] = f.min_time
        return tuple(
            InputFile(f.path, f.size, f.modified, min_times[(f.path, f.size, f.modified)])
            for f in listing.files
        )


def detect_late_data(
    workspace: Workspace,
    features: Sequence[str] | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    on_error: Callable[[str, FsqlError], None] | None = None,
    analysis: Analysis | None = None,
) -> dict[str, list[StaleMark]]:
    """Find the stale ticks of ``features`` (default: all) and every feature they read, for
    their current versions, and record them as the ledger's stale marks (replacing the marks
    of each feature examined). Returns the marks by feature name.

    A source that cannot be listed (its location is gone) raises, unless ``on_error`` is given:
    it is then called with the source name and the error, and the features reading that source
    (and their dependants) keep the marks they had. ``analysis``: the registry's current
    analysis, when the caller has it already."""
    registry = workspace.registry
    analysis = analysis if analysis is not None else registry.analysis()
    current = registry.current()
    resolved = analysis.features
    order = analysis.topological_order(list(features) if features else None)
    sources = _Sources(workspace)
    found: dict[str, list[StaleMark]] = {}
    skipped: set[str] = set()
    for name in order:
        feature = resolved[name]
        version = current[name].version
        entries = [e for e in registry.ledger_entries(name) if e.version == version]
        if not entries:
            found[name] = []
            continue
        if feature.source is not None:
            try:
                marks = _source_marks(feature, entries, sources)
            except FsqlError as exc:
                if on_error is None:
                    raise
                on_error(feature.source.name, exc)
                skipped.add(name)
                continue
        elif any(i in skipped for i in feature.inputs):
            skipped.add(name)
            continue
        else:
            marks = _derived_marks(registry, feature, entries, current, found)
        found[name] = marks
        before = [(m.start, m.end, m.reason) for m in registry.ledger_stale(name, version)]
        if before != [(m.start, m.end, m.reason) for m in marks]:  # write only a change
            registry.ledger_set_stale(name, version, marks)
        if progress is not None:
            for m in marks:
                progress(f"{name} v{version}: [{m.start.isoformat()}, {m.end.isoformat()}) is "
                         f"stale ({m.reason})")  # fmt: skip
    return found


def _source_marks(feature: ResolvedFeature, entries: Sequence[LedgerEntry], sources: _Sources
                  ) -> list[StaleMark]:  # fmt: skip
    assert feature.source is not None
    name = feature.source.name
    recorded = [e for e in entries if e.inputs is not None and name in e.inputs]
    if not recorded:
        return []  # nothing recorded: unknown, and no listing needed
    known = {f.fingerprint: f.min_time for e in recorded for f in (e.inputs or {})[name]}
    now = sources.current(feature, known)
    every = feature.definition.every
    pieces = []
    for entry in recorded:
        changed = earliest_change((entry.inputs or {})[name], now)
        if changed is not None:
            pieces.append((stale_ticks(entry.start, entry.end, changed, every), SOURCE_CHANGED))
    return _marks(pieces)


def _derived_marks(
    registry: Registry,
    feature: ResolvedFeature,
    entries: Sequence[LedgerEntry],
    current: Mapping[str, VersionRecord],
    found: Mapping[str, list[StaleMark]],
) -> list[StaleMark]:
    every = feature.definition.every
    spans = [(e.start, e.end) for e in entries]
    pieces = []
    for input_name in feature.inputs:
        pieces += _clip(found.get(input_name, []), spans, every)
        version = current[input_name].version
        newer = [
            StaleMark(max(i.start, e.start), min(i.end, e.end), INPUT_RECOMPUTED)
            for i in registry.ledger_entries(input_name) if i.version == version
            for e in entries
            if i.start < e.end and e.start < i.end and i.created_at and e.created_at
            and i.created_at > e.created_at
        ]  # fmt: skip
        pieces += _clip(newer, spans, every)
    return _marks(pieces)
