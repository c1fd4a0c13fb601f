"""The materialization ledger: which [start, end) intervals of each feature version are committed
to the offline store, and which of those were also pushed to the online store.

The offline compute writes an interval's data first and records it here only after the data is
committed, so the ledger never claims data that is not there. Committing an interval replaces
whatever older entries said about the same instants of the same feature version: entries wholly
inside it are deleted, entries overlapping its edges are trimmed (their row count becomes
unknown, ``None``). Online pushes are kept as their own interval set; recommitting an interval
clears its online mark until it is pushed again.

Each entry also records what it read from each source (:class:`InputFile`: path, size,
modification time, least event time), so a later run can tell that a file was added or changed
since (late data; :mod:`fsql.compute.late_data` decides which intervals that makes stale and
records them with :meth:`Ledger.set_stale`). Entries written before inputs were recorded have
none (``inputs`` is ``None``): unknown, never judged stale. A recommit clears the stale marks of
the recomputed part, like its online mark.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fsql.errors import NotFoundError, RegistryError
from fsql.registry.backend import Backend
from fsql.registry.serialize import to_utc, utc_now

Interval = tuple[datetime, datetime]


@dataclass(frozen=True)
class InputFile:
    """One source file an interval read, as the source listing saw it (no content read): what
    tells a later run that the file changed, and from which event time a change can matter."""

    path: str
    size: int
    #: modification time, nanoseconds since the epoch (S3: LastModified); None if not known
    modified: int | None
    #: the least event time in the file per its Parquet row-group statistics (metadata);
    #: None when unknown (CSV, no statistics)
    min_time: datetime | None = None

    @property
    def fingerprint(self) -> tuple[str, int, int | None]:
        return (self.path, self.size, self.modified)


#: what an interval read: source name → its files
Inputs = Mapping[str, Sequence[InputFile]]


def inputs_to_json(inputs: Inputs) -> str:
    files = {
        name: [[f.path, f.size, f.modified, f.min_time.isoformat() if f.min_time else None]
               for f in sorted(listed, key=lambda f: f.path)]
        for name, listed in inputs.items()
    }  # fmt: skip
    return json.dumps({"sources": files}, sort_keys=True)


def inputs_from_json(text: str | None) -> dict[str, tuple[InputFile, ...]] | None:
    if text is None:
        return None
    return {
        name: tuple(
            InputFile(path, size, modified, to_utc(datetime.fromisoformat(t)) if t else None)
            for path, size, modified, t in listed
        )
        for name, listed in json.loads(text)["sources"].items()
    }


@dataclass(frozen=True)
class StaleMark:
    """A committed interval found stale, and why ("source changed", "input recomputed")."""

    start: datetime
    end: datetime
    reason: str
    detected_at: datetime | None = None


@dataclass(frozen=True)
class LedgerEntry:
    """One committed materialization of ``feature`` version ``version`` over [start, end)."""

    id: int
    feature: str
    version: int
    start: datetime
    end: datetime
    engine: str
    #: rows written; ``None`` once a later commit trimmed this entry
    rows: int | None
    #: where the data was written (e.g. the offline store path of the partitions)
    location: str
    #: True when the whole interval was also pushed to the online store
    online: bool
    stats: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    created_by: str | None = None
    #: what the interval read from each source; None: not recorded (an older entry: unknown)
    inputs: Mapping[str, tuple[InputFile, ...]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "feature": self.feature,
            "version": self.version,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "engine": self.engine,
            "rows": self.rows,
            "location": self.location,
            "online": self.online,
            "stats": dict(self.stats),
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
            "input_files": (
                None if self.inputs is None else {k: len(v) for k, v in self.inputs.items()}
            ),
        }


def merge_intervals(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with overlapping and touching intervals joined.

    >>> from datetime import datetime as d
    >>> merge_intervals([(d(2024, 1, 3), d(2024, 1, 4)), (d(2024, 1, 1), d(2024, 1, 3))])
    [(datetime.datetime(2024, 1, 1, 0, 0), datetime.datetime(2024, 1, 4, 0, 0))]
    """
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def subtract_intervals(interval: Interval, cuts: Iterable[Interval]) -> list[Interval]:
    """The parts of ``interval`` not covered by ``cuts``, in order."""
    start, end = interval
    rest: list[Interval] = []
    for cut_start, cut_end in merge_intervals(cuts):
        if cut_end <= start or cut_start >= end:
            continue
        if cut_start > start:
            rest.append((start, cut_start))
        start = max(start, cut_end)
    if start < end:
        rest.append((start, end))
    return rest


def _check_interval(start: datetime, end: datetime) -> Interval:
    start, end = to_utc(start), to_utc(end)
    if not start < end:
        raise ValueError(f"an interval needs start < end, got [{start}, {end})")
    return start, end


class Ledger:
    """Ledger operations on a registry's database (used through :class:`Registry`)."""

    def __init__(self, backend: Backend):
        self._db = backend

    # -- reading --------------------------------------------------------------------------

    def _check_version(self, feature: str, version: int, *, lock: bool = False) -> None:
        rows = self._db.execute(
            "SELECT kind FROM fsql_versions WHERE name = ? AND version = ?"
            + (self._db.for_update() if lock else ""),
            (feature, version),
        )
        if not rows:
            known = self._db.execute(
                "SELECT version FROM fsql_versions WHERE name = ? ORDER BY version", (feature,)
            )
            if known:
                listed = ", ".join(f"v{v}" for (v,) in known)
                raise NotFoundError(f"feature {feature} has no version {version} (it has {listed})")
            raise NotFoundError(
                f"no feature named {feature} in the registry; apply its definition first"
            )
        if rows[0][0] != "feature":
            raise NotFoundError(f"{feature} is a {rows[0][0]}, not a feature; only features "
                                "are materialized")  # fmt: skip

    def _committed(self, feature: str, version: int) -> list[Interval]:
        rows = self._db.execute(
            "SELECT start_ts, end_ts FROM fsql_ledger WHERE feature = ? AND version = ?",
            (feature, version),
        )
        return merge_intervals((self._db.ts_value(s), self._db.ts_value(e)) for s, e in rows)

    def _online(self, feature: str, version: int) -> list[Interval]:
        rows = self._db.execute(
            "SELECT start_ts, end_ts FROM fsql_ledger_online WHERE feature = ? AND version = ?",
            (feature, version),
        )
        return merge_intervals((self._db.ts_value(s), self._db.ts_value(e)) for s, e in rows)

    def intervals(self, feature: str, version: int) -> list[Interval]:
        with self._db.transaction(write=False):
            self._check_version(feature, version)
            return self._committed(feature, version)

    def online_intervals(self, feature: str, version: int) -> list[Interval]:
        with self._db.transaction(write=False):
            self._check_version(feature, version)
            return self._online(feature, version)

    def missing(self, feature: str, version: int, start: datetime, end: datetime) -> list[Interval]:
        interval = _check_interval(start, end)
        return subtract_intervals(interval, self.intervals(feature, version))

    def entries(self, feature: str | None = None) -> list[LedgerEntry]:
        columns = (
            "id, feature, version, start_ts, end_ts, engine, row_count, location, stats, "
            "created_at, created_by, inputs"
        )
        with self._db.transaction(write=False):
            if feature is None:
                rows = self._db.execute(f"SELECT {columns} FROM fsql_ledger")
            else:
                rows = self._db.execute(
                    f"SELECT {columns} FROM fsql_ledger WHERE feature = ?", (feature,)
                )
            online = {key: self._online(*key) for key in {(r[1], r[2]) for r in rows}}
        ts = self._db.ts_value
        entries = [
            LedgerEntry(
                id=r[0],
                feature=r[1],
                version=r[2],
                start=ts(r[3]),
                end=ts(r[4]),
                engine=r[5],
                rows=r[6],
                location=r[7],
                online=not subtract_intervals((ts(r[3]), ts(r[4])), online[(r[1], r[2])]),
                stats=json.loads(r[8]),
                created_at=ts(r[9]),
                created_by=r[10],
                inputs=inputs_from_json(r[11]),
            )  # fmt: skip
            for r in rows
        ]
        return sorted(entries, key=lambda e: (e.feature, e.version, e.start, e.id))

    def stale(self, feature: str, version: int) -> list[StaleMark]:
        """The stale marks of one feature version, by start."""
        with self._db.transaction(write=False):
            rows = self._db.execute(
                "SELECT start_ts, end_ts, reason, created_at FROM fsql_ledger_stale "
                "WHERE feature = ? AND version = ?",
                (feature, version),
            )
        ts = self._db.ts_value
        marks = [StaleMark(ts(s), ts(e), reason, ts(at)) for s, e, reason, at in rows]
        return sorted(marks, key=lambda m: (m.start, m.end))

    # -- writing --------------------------------------------------------------------------

    def _cut(self, table: str, columns: Sequence[str], feature: str, version: int,
             interval: Interval, *, reset_rows: bool) -> None:  # fmt: skip
        """Remove ``interval`` from the rows of ``table`` for one feature version: delete rows
        inside it, trim rows crossing its edges (splitting a row that spans it)."""
        start, end = interval
        ts = self._db.ts_param
        select = ", ".join(("id", "start_ts", "end_ts", *columns))
        rows = self._db.execute(
            f"SELECT {select} FROM {table} WHERE feature = ? AND version = ? "
            "AND start_ts < ? AND end_ts > ?",
            (feature, version, ts(end), ts(start)),
        )
        for row_id, row_start, row_end, *rest in rows:
            pieces = subtract_intervals(
                (self._db.ts_value(row_start), self._db.ts_value(row_end)), [interval]
            )
            if not pieces:
                self._db.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
                continue
            rows_sql = ", row_count = NULL" if reset_rows else ""
            (first_start, first_end), *others = pieces
            self._db.execute(
                f"UPDATE {table} SET start_ts = ?, end_ts = ?{rows_sql} WHERE id = ?",
                (ts(first_start), ts(first_end), row_id),
            )
            for piece_start, piece_end in others:
                names = ", ".join(("feature", "version", "start_ts", "end_ts", *columns))
                marks = ", ".join("?" * (4 + len(columns)))
                values = [None if (reset_rows and c == "row_count") else v
                          for c, v in zip(columns, rest, strict=True)]  # fmt: skip
                self._db.execute(
                    f"INSERT INTO {table} ({names}) VALUES ({marks})",
                    (feature, version, ts(piece_start), ts(piece_end), *values),
                )

    def _add_online(self, feature: str, version: int, interval: Interval) -> None:
        """Record an online push, merged with the online intervals it overlaps or touches."""
        ts = self._db.ts_param
        rows = self._db.execute(
            "SELECT id, start_ts, end_ts FROM fsql_ledger_online WHERE feature = ? "
            "AND version = ? AND start_ts <= ? AND end_ts >= ?",
            (feature, version, ts(interval[1]), ts(interval[0])),
        )
        spans = [interval] + [(self._db.ts_value(s), self._db.ts_value(e)) for _, s, e in rows]
        for row_id, _s, _e in rows:
            self._db.execute("DELETE FROM fsql_ledger_online WHERE id = ?", (row_id,))
        (merged,) = merge_intervals(spans)
        self._db.execute(
            "INSERT INTO fsql_ledger_online (feature, version, start_ts, end_ts, created_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (feature, version, ts(merged[0]), ts(merged[1]), ts(utc_now())),
        )

    def commit(
        self, feature: str, version: int, start: datetime, end: datetime, *, engine: str,
        rows: int, location: str, online: bool, stats: Mapping[str, Any] | None,
        actor: str | None, inputs: Inputs | None = None,
    ) -> int:  # fmt: skip
        interval = _check_interval(start, end)
        ts = self._db.ts_param
        # default=str: engines report numpy scalars or datetimes; stats are informational
        stats_json = json.dumps(dict(stats or {}), sort_keys=True, default=str)
        with self._db.transaction(write=True):
            self._check_version(feature, version, lock=True)
            self._cut(
                "fsql_ledger",
                ("engine", "row_count", "location", "stats", "created_at", "created_by",
                 "inputs"),
                feature, version, interval, reset_rows=True,
            )  # fmt: skip
            self._cut("fsql_ledger_online", ("created_at",), feature, version, interval,
                      reset_rows=False)  # fmt: skip
            self._cut("fsql_ledger_stale", ("reason", "created_at"), feature, version, interval,
                      reset_rows=False)  # fmt: skip
            (entry_id,), = self._db.execute(
                "INSERT INTO fsql_ledger (feature, version, start_ts, end_ts, engine, row_count, "
                "location, stats, created_at, created_by, inputs) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (feature, version, ts(interval[0]), ts(interval[1]), engine, int(rows), location,
                 stats_json, ts(utc_now()), actor,
                 None if inputs is None else inputs_to_json(inputs)),
            )  # fmt: skip
            if online:
                self._add_online(feature, version, interval)
        return int(entry_id)

    def mark_online(self, feature: str, version: int, start: datetime, end: datetime) -> None:
        interval = _check_interval(start, end)
        with self._db.transaction(write=True):
            self._check_version(feature, version, lock=True)
            gaps = subtract_intervals(interval, self._committed(feature, version))
            if gaps:
                listed = ", ".join(f"[{s.isoformat()}, {e.isoformat()})" for s, e in gaps)
                raise RegistryError(
                    f"cannot mark {feature} v{version} online over [{interval[0].isoformat()}, "
                    f"{interval[1].isoformat()}): {listed} not materialized offline; "
                    "materialize it first"
                )
            self._add_online(feature, version, interval)

    def forget(self, feature: str, version: int) -> int:
        """Remove every ledger entry of one feature version (offline, online, stale): its data
        is about to be deleted (``fsql gc``), so nothing may claim it is materialized. Returns
        the offline entries removed."""
        with self._db.transaction(write=True):
            self._check_version(feature, version, lock=True)
            count = len(self._committed(feature, version))
            for table in ("fsql_ledger_stale", "fsql_ledger_online", "fsql_ledger"):
                self._db.execute(
                    f"DELETE FROM {table} WHERE feature = ? AND version = ?", (feature, version)
                )
        return count

    def set_stale(self, feature: str, version: int, marks: Sequence[StaleMark]) -> None:
        """Replace the stale marks of one feature version with ``marks`` (a detection's whole
        answer); only committed parts may be marked."""
        ts = self._db.ts_param
        with self._db.transaction(write=True):
            self._check_version(feature, version, lock=True)
            committed = self._committed(feature, version)
            self._db.execute(
                "DELETE FROM fsql_ledger_stale WHERE feature = ? AND version = ?",
                (feature, version),
            )
            now = utc_now()
            for mark in marks:
                start, end = _check_interval(mark.start, mark.end)
                outside = subtract_intervals((start, end), committed)
                if outside:
                    raise RegistryError(
                        f"cannot mark {feature} v{version} stale over [{start.isoformat()}, "
                        f"{end.isoformat()}): not all of it is materialized"
                    )
                self._db.execute(
                    "INSERT INTO fsql_ledger_stale (feature, version, start_ts, end_ts, reason, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (feature, version, ts(start), ts(end), mark.reason, ts(now)),
                )
