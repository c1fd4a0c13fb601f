"""The registry: every applied definition with its full history, lineage and the ledger.

One :class:`Registry` class holds all the logic; a :class:`~fsql.registry.backend.Backend`
(SQLite or PostgreSQL) only supplies the connection, locking and timestamp storage, so both
backends behave identically and pass the same tests.

The registry has a *revision*, a counter bumped by every ``apply`` that changes something. A
:class:`~fsql.registry.plan.Plan` records the revision it was computed against; ``apply`` takes
the registry's write lock, re-reads the revision and refuses a plan made against an older one,
so two concurrent applies are serialised and neither is lost silently.
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fsql.errors import Location, NotFoundError, RegistryError
from fsql.language.analysis import LineageEdge, analyze
from fsql.language.definitions import AnyDefinition, DropDef
from fsql.registry.backend import SCHEMA_VERSION, Backend
from fsql.registry.ledger import Inputs, Interval, Ledger, LedgerEntry, StaleMark
from fsql.registry.plan import (
    Active,
    AnalysisLike,
    Change,
    LineageRow,
    Node,
    Plan,
    PlanResult,
    compute_plan,
    origin_of,
)
from fsql.registry.serialize import definition_from_json, definition_to_json, utc_now

if TYPE_CHECKING:
    from fsql.language.analysis import Analysis, LineageEdge


@dataclass(frozen=True)
class VersionRecord:
    """One stored version of one definition.

    ``change`` is what last happened to this version: ``"added"``, ``"changed"`` (its own
    definition changed), ``"indirect"`` (only something upstream changed) or ``"dropped"``
    (retired by DROP or by removal from the repo); ``created_change`` keeps how it was created.
    """

    kind: str
    name: str
    version: int
    #: effective fingerprint: the definition's own hash combined with its inputs' hashes
    fingerprint: str
    definition: AnyDefinition
    created_at: datetime
    created_by: str | None
    retired: bool
    change: str
    source_text: str | None
    file: str | None
    line: int | None = None
    reason: str = ""
    #: the registry revision that created this version
    revision: int = 0
    created_change: str = ""
    retired_at: datetime | None = None
    retired_by: str | None = None
    retired_reason: str | None = None
    #: the direct dependencies and the versions they had when this version was created
    dependencies: tuple[tuple[str, int], ...] = ()
    semantic_fingerprint: str = ""

    @property
    def origin(self) -> str:
        """Where this version was defined: ``repo``, ``api`` or ``sql`` (:func:`origin_of`)."""
        return origin_of(self.file)

    @property
    def canonical_sql(self) -> str:
        return self.definition.canonical_sql()

    def to_json(self) -> dict[str, Any]:
        """Stable JSON form used by ``fsql describe --json`` and ``fsql ls --json``."""
        return {
            "kind": self.kind,
            "name": self.name,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "change": self.change,
            "created_change": self.created_change,
            "reason": self.reason,
            "revision": self.revision,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "retired": self.retired,
            "retired_at": self.retired_at.isoformat() if self.retired_at else None,
            "retired_by": self.retired_by,
            "retired_reason": self.retired_reason,
            "file": self.file,
            "line": self.line,
            "origin": self.origin,
            "sql": self.canonical_sql,
            "dependencies": {name: version for name, version in self.dependencies},
        }


_VERSION_COLUMNS = (
    "name, version, kind, fingerprint, own_fingerprint, semantic_fingerprint, canonical_sql, "
    "definition, dependencies, source_text, file, line, col, change, reason, revision, "
    "created_at, created_by, retired_revision, retired_at, retired_by, retired_reason"
)
_LATEST = "version = (SELECT MAX(w.version) FROM fsql_versions w WHERE w.name = fsql_versions.name)"
_ACTIVE = f"retired_revision IS NULL AND {_LATEST}"


def _edges(rows: Iterable[Sequence[Any]]) -> list[LineageEdge]:

    edges = {LineageEdge(*row) for row in rows}
    return sorted(edges, key=lambda e: (e.from_name, e.to_kind, e.to_name, e.column or ""))


def default_actor() -> str | None:
    """The OS user running fsql, recorded as ``created_by`` when no actor is given."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return None


class Registry:
    """Versioned storage of definitions, their lineage and the materialization ledger.

    Open one with :func:`fsql.registry.open_registry`. A Registry holds one database
    connection; its methods may be called from several threads (they take turns).
    """

    def __init__(self, backend: Backend):
        self._db = backend
        self._mutex = threading.RLock()
        self._ledger = Ledger(backend)
        backend.initialize()
        with self._db.transaction(write=False):
            (stored,) = self._db.execute("SELECT schema_version FROM fsql_state WHERE id = 1")[0]
        if stored > SCHEMA_VERSION:
            backend.close()
            raise RegistryError(
                f"the registry {backend.url} has schema version {stored}, newer than this fsql "
                f"understands ({SCHEMA_VERSION}); upgrade fsql"
            )

    @property
    def url(self) -> str:
        return self._db.url

    @property
    def backend(self) -> Backend:
        """The database connection, read-only (for modules that keep their own tables in the
        registry DB, e.g. :mod:`fsql.compute.runs`: ``fsql_runs``, ``fsql_check_results``)."""
        return self._db

    def close(self) -> None:
        with self._mutex:
            self._db.close()

    @contextmanager
    def writer_lock(self, name: str, *, timeout: float = 600.0) -> Iterator[None]:
        """Hold the exclusive lock ``name`` for the block, against every process (and thread)
        using this registry: what serialises commits to one feature version of an offline
        store that has no locking of its own (S3). PostgreSQL: an advisory lock; SQLite: a
        record lock on a file beside the database. A killed holder releases it.
        """

        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") >> 1
        with _local_lock(self.url, key):  # record and advisory locks are per process
            deadline = time.monotonic() + timeout
            delay = 0.01
            while True:
                with self._mutex:
                    if self._db.try_lock(key):
                        break
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"waited {timeout:g} s for the lock on {name} in {self.url}; another "
                        "process is committing it (or is stuck): try again later"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
            try:
                yield
            finally:
                with self._mutex:
                    self._db.unlock(key)

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry({self._db.url!r})"

    # -- reading --------------------------------------------------------------------------

    def _record(self, row: Sequence[Any]) -> VersionRecord:
        (name, version, kind, fingerprint, _own, semantic, _sql, definition, dependencies,
         source_text, file, line, col, change, reason, revision, created_at, created_by,
         retired_revision, retired_at, retired_by, retired_reason) = row  # fmt: skip
        location = Location(file, line, col or 1) if line is not None else None
        ts = self._db.ts_value
        retired = retired_revision is not None
        return VersionRecord(
            kind=kind, name=name, version=version, fingerprint=fingerprint,
            definition=definition_from_json(definition, location=location, source_text=source_text),
            created_at=ts(created_at), created_by=created_by, retired=retired,
            change="dropped" if retired else change, source_text=source_text, file=file,
            line=line, reason=reason, revision=revision, created_change=change,
            retired_at=ts(retired_at) if retired_at is not None else None,
            retired_by=retired_by, retired_reason=retired_reason,
            dependencies=tuple((n, v) for n, v in json.loads(dependencies)),
            semantic_fingerprint=semantic,
        )  # fmt: skip

    def _revision(self, *, lock: bool = False) -> int:
        rows = self._db.execute(
            "SELECT revision FROM fsql_state WHERE id = 1" + (self._db.for_update() if lock else "")
        )
        return int(rows[0][0])

    def _active(self) -> dict[str, VersionRecord]:
        rows = self._db.execute(
            f"SELECT {_VERSION_COLUMNS} FROM fsql_versions WHERE {_ACTIVE} ORDER BY name"
        )
        return {row[0]: self._record(row) for row in rows}

    def _active_lineage(self) -> dict[str, list[LineageRow]]:
        rows = self._db.execute(
            "SELECT name, from_kind, from_name, to_kind, to_name, column_name FROM fsql_lineage "
            "WHERE EXISTS (SELECT 1 FROM fsql_versions WHERE fsql_versions.name = fsql_lineage.name"
            f" AND fsql_versions.version = fsql_lineage.version AND {_ACTIVE})"
        )
        lineage: dict[str, list[LineageRow]] = {}
        for name, *edge in rows:
            lineage.setdefault(name, []).append(tuple(edge))  # type: ignore[arg-type]
        return lineage

    def _missing(self, name: str, version: int | None = None) -> NotFoundError:
        if version is not None:
            versions = self._db.execute(
                "SELECT version FROM fsql_versions WHERE name = ? ORDER BY version", (name,)
            )
            if versions:
                listed = ", ".join(f"v{v}" for (v,) in versions)
                return NotFoundError(f"{name} has no version {version}; it has {listed}")
        names = [n for (n,) in self._db.execute("SELECT DISTINCT name FROM fsql_versions")]
        close = difflib.get_close_matches(name, names, n=3)
        if len(close) > 1:
            close[-2:] = [f"{close[-2]} or {close[-1]}"]
        hint = f"; did you mean {', '.join(close)}?" if close else "; `fsql ls` lists them"
        return NotFoundError(f"nothing named {name} in the registry{hint}")

    def revision(self) -> int:
        """The number of applies that changed the registry so far."""
        with self._mutex, self._db.transaction(write=False):
            return self._revision()

    def current(self) -> dict[str, VersionRecord]:
        """The active definitions (not dropped), latest version of each, by name."""
        with self._mutex, self._db.transaction(write=False):
            return self._active()

    def get(self, name: str, version: int | None = None) -> VersionRecord:
        """One version of ``name``; by default its latest (which is retired if it was dropped)."""
        with self._mutex, self._db.transaction(write=False):
            if version is None:
                rows = self._db.execute(
                    f"SELECT {_VERSION_COLUMNS} FROM fsql_versions WHERE name = ? AND {_LATEST}",
                    (name,),
                )
            else:
                rows = self._db.execute(
                    f"SELECT {_VERSION_COLUMNS} FROM fsql_versions WHERE name = ? AND version = ?",
                    (name, version),
                )
            if not rows:
                raise self._missing(name, version)
            return self._record(rows[0])

    def history(self, name: str) -> list[VersionRecord]:
        """Every version of ``name``, retired ones included, oldest first."""
        with self._mutex, self._db.transaction(write=False):
            rows = self._db.execute(
                f"SELECT {_VERSION_COLUMNS} FROM fsql_versions WHERE name = ? ORDER BY version",
                (name,),
            )
            if not rows:
                raise self._missing(name)
            return [self._record(r) for r in rows]

    def lineage(self) -> list[LineageEdge]:
        """Lineage edges of the current definitions (as recorded when each was applied):
        ``from`` depends on ``to`` (and on its ``column`` for source columns)."""
        with self._mutex, self._db.transaction(write=False):
            rows = self._active_lineage()
        return _edges(edge for edge_list in rows.values() for edge in edge_list)

    def version_lineage(self, name: str, version: int) -> list[LineageEdge]:
        """The lineage edges recorded with one version (old versions keep theirs)."""
        self.get(name, version)  # NotFoundError with a hint when there is no such version
        with self._mutex, self._db.transaction(write=False):
            rows = self._db.execute(
                "SELECT from_kind, from_name, to_kind, to_name, column_name FROM fsql_lineage "
                "WHERE name = ? AND version = ?",
                (name, version),
            )
        return _edges(rows)

    def analysis(self) -> Analysis:
        """The current definitions, analysed again (resolved features, dependencies, order)."""

        return analyze(r.definition for r in self.current().values())

    # -- planning and applying ------------------------------------------------------------

    def _plan_locked(
        self, desired: AnalysisLike, drops: Sequence[DropDef], declarative: bool, revision: int,
        prune_foreign: bool = False,
    ) -> tuple[PlanResult, dict[str, VersionRecord]]:  # fmt: skip
        records = self._active()
        lineage = self._active_lineage()
        active = {
            name: Active(
                node=Node(
                    definition=r.definition,
                    dependencies=tuple(n for n, _ in r.dependencies),
                    lineage=tuple(sorted(lineage.get(name, ()), key=str)),
                    effective=r.fingerprint,
                    semantic_effective=r.semantic_fingerprint,
                ),
                version=r.version,
                origin=origin_of(r.file),
            )
            for name, r in records.items()
        }
        latest = {
            n: int(v)
            for n, v in self._db.execute(
                "SELECT name, MAX(version) FROM fsql_versions GROUP BY name"
            )
        }
        result = compute_plan(
            base_revision=revision, active=active, latest_versions=latest, desired=desired,
            drops=drops, declarative=declarative, prune_foreign=prune_foreign,
        )  # fmt: skip
        return result, records

    def plan(
        self, desired: AnalysisLike, drops: Sequence[DropDef] = (), *, declarative: bool = True,
        prune_foreign: bool = False,
    ) -> Plan:  # fmt: skip
        """What :meth:`apply` would change to reach ``desired``.

        ``declarative=True``: ``desired`` is the repo's whole state; active definitions missing
        from it are dropped. ``declarative=False``: only the definitions in ``desired`` and the
        ``drops`` change; everything else stays. Declaratively, definitions made elsewhere (the
        Python API, SQL over the wire) are kept unless ``prune_foreign`` (see
        :func:`~fsql.registry.plan.compute_plan`). Raises :class:`DefinitionError` (naming them)
        when a drop would leave active definitions depending on something gone.
        """
        with self._mutex, self._db.transaction(write=False):
            result, _ = self._plan_locked(
                desired, drops, declarative, self._revision(), prune_foreign
            )
        return result.plan

    def apply(
        self, plan: Plan, desired: AnalysisLike, *, actor: str | None = None
    ) -> list[VersionRecord]:
        """Carry out ``plan`` in one transaction; returns the versions it created or retired.

        ``desired`` must be what the plan was computed from. Raises :class:`RegistryError` if
        the registry changed since the plan was made (another apply won the race) or if
        ``desired`` no longer yields the same plan; nothing is written then.
        """
        if plan.empty:
            return []
        actor = actor if actor is not None else default_actor()
        with self._mutex, self._db.transaction(write=True):
            revision = self._revision(lock=True)
            if revision != plan.base_revision:
                raise RegistryError(
                    f"registry changed since the plan was made (revision {plan.base_revision} → "
                    f"{revision}); run plan again"
                )
            result, records = self._plan_locked(
                desired, plan.drops, plan.declarative, revision, plan.prune_foreign
            )
            if result.plan.changes != plan.changes:
                raise RegistryError(
                    "the definitions given to apply differ from the ones the plan was made "
                    "from; run plan again"
                )
            new_revision = revision + 1
            now = utc_now()
            ts = self._db.ts_param
            self._db.execute(
                "INSERT INTO fsql_revisions (revision, created_at, created_by, plan) "
                "VALUES (?, ?, ?, ?)",
                (new_revision, ts(now), actor, json.dumps(plan.to_json(), sort_keys=True)),
            )
            versions = {name: r.version for name, r in records.items()}
            versions.update({c.name: c.new_version for c in plan.changes if c.new_version})
            for change in plan.changes:
                if change.action == "drop":
                    self._db.execute(
                        "UPDATE fsql_versions SET retired_revision = ?, retired_at = ?, "
                        "retired_by = ?, retired_reason = ? WHERE name = ? AND version = ?",
                        (new_revision, ts(now), actor, change.reason, change.name,
                         change.old_version),
                    )  # fmt: skip
                else:
                    pins = [(d, versions[d]) for d in result.after[change.name].dependencies]
                    self._insert_version(
                        change, result.after[change.name], pins, new_revision, now, actor
                    )
            self._db.execute("UPDATE fsql_state SET revision = ? WHERE id = 1", (new_revision,))
            written = []
            for change in plan.changes:
                version = change.old_version if change.action == "drop" else change.new_version
                rows = self._db.execute(
                    f"SELECT {_VERSION_COLUMNS} FROM fsql_versions WHERE name = ? AND version = ?",
                    (change.name, version),
                )
                written.append(self._record(rows[0]))
        return written

    def _insert_version(
        self,
        change: Change,
        node: Node,
        pins: list[tuple[str, int]],
        revision: int,
        now: datetime,
        actor: str | None,
    ) -> None:
        d = node.definition
        loc = d.location
        created_change = (
            "added" if change.action == "add" else "indirect" if change.indirect else "changed"
        )
        self._db.execute(
            f"INSERT INTO fsql_versions ({_VERSION_COLUMNS}) VALUES ({', '.join('?' * 22)})",
            (
                d.name, change.new_version, d.kind, node.effective, d.fingerprint,
                node.semantic_effective, d.canonical_sql(), definition_to_json(d),
                json.dumps(pins), d.source_text, loc.file if loc else None,
                loc.line if loc else None, loc.col if loc else None, created_change,
                change.reason, revision, self._db.ts_param(now), actor, None, None, None, None,
            ),
        )  # fmt: skip
        for edge in node.lineage:
            self._db.execute(
                "INSERT INTO fsql_lineage (name, version, from_kind, from_name, to_kind, to_name, "
                "column_name) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (d.name, change.new_version, *edge),
            )

    # -- the materialization ledger -------------------------------------------------------

    def ledger_intervals(self, feature: str, version: int) -> list[Interval]:
        """Committed [start, end) intervals of one feature version, merged and sorted (UTC)."""
        with self._mutex:
            return self._ledger.intervals(feature, version)

    def ledger_missing(
        self, feature: str, version: int, start: datetime, end: datetime
    ) -> list[Interval]:
        """The parts of [start, end) not yet committed for this feature version."""
        with self._mutex:
            return self._ledger.missing(feature, version, start, end)

    def ledger_online_intervals(self, feature: str, version: int) -> list[Interval]:
        """Intervals whose values were pushed to the online store, merged and sorted."""
        with self._mutex:
            return self._ledger.online_intervals(feature, version)

    def ledger_commit(
        self,
        feature: str,
        version: int,
        start: datetime,
        end: datetime,
        *,
        engine: str,
        rows: int,
        location: str,
        online: bool = False,
        stats: Mapping[str, Any] | None = None,
        actor: str | None = None,
        inputs: Inputs | None = None,
    ) -> int:
        """Record that [start, end) of ``feature`` v``version`` is committed offline.

        Replaces what older entries said about the same instants (atomically), clears their
        online and stale marks, and returns the new entry's id. ``inputs``: the source files
        the interval read (for late-data detection). Call it only after the data itself is
        committed.
        """
        with self._mutex:
            return self._ledger.commit(
                feature, version, start, end, engine=engine, rows=rows, location=location,
                online=online, stats=stats, actor=actor if actor is not None else default_actor(),
                inputs=inputs,
            )  # fmt: skip

    def ledger_mark_online(
        self, feature: str, version: int, start: datetime, end: datetime
    ) -> None:
        """Record that [start, end) (already committed offline) was pushed to the online store."""
        with self._mutex:
            self._ledger.mark_online(feature, version, start, end)

    def ledger_entries(self, feature: str | None = None) -> list[LedgerEntry]:
        """Ledger entries (all, or of one feature), ordered by feature, version and start."""
        with self._mutex:
            return self._ledger.entries(feature)

    def ledger_forget(self, feature: str, version: int) -> int:
        """Remove one feature version's ledger entries before its data is deleted (``fsql gc``)."""
        with self._mutex:
            return self._ledger.forget(feature, version)

    def feature_versions(self) -> dict[str, list[int]]:
        """Every version ever stored of every feature (retired ones included), by name."""
        with self._mutex, self._db.transaction(write=False):
            rows = self._db.execute(
                "SELECT name, version FROM fsql_versions WHERE kind = 'feature' "
                "ORDER BY name, version"
            )
        out: dict[str, list[int]] = {}
        for name, version in rows:
            out.setdefault(name, []).append(int(version))
        return out

    def ledger_stale(self, feature: str, version: int) -> list[StaleMark]:
        """The parts of this version's committed intervals last found stale, with the reason."""
        with self._mutex:
            return self._ledger.stale(feature, version)

    def ledger_set_stale(self, feature: str, version: int, marks: Sequence[StaleMark]) -> None:
        """Replace this version's stale marks with ``marks`` (what a detection found, possibly
        nothing); :mod:`fsql.compute.late_data` decides them."""
        with self._mutex:
            self._ledger.set_stale(feature, version, marks)


_LOCAL_LOCKS: dict[tuple[str, int], threading.Lock] = {}
_LOCAL_LOCKS_MUTEX = threading.Lock()


def _local_lock(url: str, key: int) -> threading.Lock:
    """The in-process half of :meth:`Registry.writer_lock`: one lock per (registry, key)."""
    with _LOCAL_LOCKS_MUTEX:
        return _LOCAL_LOCKS.setdefault((url, key), threading.Lock())
