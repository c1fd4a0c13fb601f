"""Run tracking: one record per materialization of one feature interval, in the registry DB.

Whoever materializes (an Airflow task, ``fsql materialize``, the Python API) records each
feature interval it computes: which pipeline (if any), feature, version, interval, engine,
start/end time, status, error, rows written, statistics of the written values, and the results
of the feature's checks. Records live next to the definitions, in the registry's database, so
``fsql status``, the server's ``fsql.runs`` table and ``get_pipeline_status`` read one truth.

Tables (created on first use, ``CREATE TABLE IF NOT EXISTS``, both registry backends):
``fsql_runs``, ``fsql_check_results`` and ``fsql_pipelines`` (the deployed plans).
"""

from __future__ import annotations

import json
import threading
import traceback
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from fsql.errors import NotFoundError
from fsql.registry import default_actor
from fsql.secrets import redact

if TYPE_CHECKING:
    from fsql.language.checks import CheckResult
    from fsql.registry import Registry
    from fsql.registry.backend import Backend

RunStatus = Literal["running", "success", "failed", "skipped"]
Trigger = Literal["airflow", "cli", "api"]

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS fsql_runs (
        id {id},
        pipeline TEXT,
        trigger TEXT NOT NULL,
        external_id TEXT,
        try_number INTEGER,
        feature TEXT NOT NULL,
        version INTEGER NOT NULL,
        start_ts {ts} NOT NULL,
        end_ts {ts} NOT NULL,
        engine TEXT NOT NULL,
        started_at {ts} NOT NULL,
        finished_at {ts},
        status TEXT NOT NULL,
        error TEXT,
        row_count BIGINT,
        stats TEXT NOT NULL,
        created_by TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS fsql_runs_feature ON fsql_runs (feature, started_at)",
    "CREATE INDEX IF NOT EXISTS fsql_runs_pipeline ON fsql_runs (pipeline, started_at)",
    """CREATE TABLE IF NOT EXISTS fsql_check_results (
        id {id},
        run_id BIGINT NOT NULL,
        check_name TEXT NOT NULL,
        feature TEXT NOT NULL,
        expression TEXT NOT NULL,
        severity TEXT NOT NULL,
        passed BOOLEAN NOT NULL,
        observed TEXT NOT NULL,
        error TEXT,
        checked_at {ts} NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS fsql_check_results_run ON fsql_check_results (run_id)",
    """CREATE TABLE IF NOT EXISTS fsql_pipelines (
        pipeline_id TEXT PRIMARY KEY,
        dags_folder TEXT NOT NULL,
        plan_fingerprint TEXT NOT NULL,
        plan TEXT NOT NULL,
        deployed_at {ts} NOT NULL,
        deployed_by TEXT
    )""",
]

_RUN_COLUMNS = (
    "id, pipeline, trigger, external_id, try_number, feature, version, start_ts, end_ts, engine, "
    "started_at, finished_at, status, error, row_count, stats, created_by"
)

#: backends whose tables exist (weak: a closed registry's backend must not stand for a new one)
_initialized: weakref.WeakSet[Backend] = weakref.WeakSet()
_init_lock = threading.Lock()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _backend(registry: Registry) -> Backend:
    """The registry's database connection, where the run-tracking tables live."""
    return registry.backend


def ensure_tables(registry: Registry) -> Backend:
    """Create the run-tracking tables in the registry's database if missing; its backend."""
    db = _backend(registry)
    with _init_lock:
        if db not in _initialized:
            with db.transaction(write=True):
                for statement in _SCHEMA:
                    db.execute(statement.format(**db.ddl_types))
            _initialized.add(db)
    return db


@dataclass(frozen=True)
class RunRecord:
    """One materialization of one feature version over the tick interval [start, end)."""

    id: int
    pipeline: str | None
    trigger: str
    #: the Airflow run id (``dag_run.run_id``) or another caller's id; None for plain CLI runs
    external_id: str | None
    try_number: int | None
    feature: str
    version: int
    start: datetime
    end: datetime
    engine: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    error: str | None
    rows: int | None
    stats: Mapping[str, Any] = field(default_factory=dict)
    created_by: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish (None while running)."""
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "trigger": self.trigger,
            "external_id": self.external_id,
            "try_number": self.try_number,
            "feature": self.feature,
            "version": self.version,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "engine": self.engine,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_seconds": self.duration,
            "status": self.status,
            "error": self.error,
            "rows": self.rows,
            "stats": dict(self.stats),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class CheckRecord:
    """A stored :class:`~fsql.language.checks.CheckResult` of one run."""

    run_id: int
    name: str
    feature: str
    expression: str
    severity: str
    passed: bool
    observed: Mapping[str, Any]
    error: str | None
    checked_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "name": self.name,
            "feature": self.feature,
            "expression": self.expression,
            "severity": self.severity,
            "passed": self.passed,
            "observed": dict(self.observed),
            "error": self.error,
            "checked_at": self.checked_at.isoformat(),
        }


class RunLog:
    """Reads and writes run records in one registry's database."""

    def __init__(self, registry: Registry):
        self.registry = registry
        self._db = ensure_tables(registry)

    # -- writing ------------------------------------------------------------------------------

    def start(
        self,
        *,
        feature: str,
        version: int,
        start: datetime,
        end: datetime,
        engine: str,
        pipeline: str | None = None,
        trigger: Trigger = "cli",
        external_id: str | None = None,
        try_number: int | None = None,
        actor: str | None = None,
        started_at: datetime | None = None,
    ) -> int:
        """Record a run as ``running`` (started now, or at ``started_at``); returns its id for
        :meth:`finish`."""

        ts = self._db.ts_param
        with self._db.transaction(write=True):
            ((run_id,),) = self._db.execute(
                f"INSERT INTO fsql_runs ({_RUN_COLUMNS.split(', ', 1)[1]}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (pipeline, trigger, external_id, try_number, feature, version, ts(start), ts(end),
                 engine, ts(started_at or _utcnow()), None, "running", None, None, "{}",
                 actor if actor is not None else default_actor()),
            )  # fmt: skip
        return int(run_id)

    def finish(
        self,
        run_id: int,
        *,
        status: RunStatus,
        rows: int | None = None,
        stats: Mapping[str, Any] | None = None,
        error: str | None = None,
        checks: Sequence[CheckResult] = (),
    ) -> None:
        """Close a run with its outcome and store its check results, in one transaction."""
        ts = self._db.ts_param
        now = _utcnow()
        with self._db.transaction(write=True):
            self._db.execute(
                "UPDATE fsql_runs SET finished_at = ?, status = ?, error = ?, row_count = ?, "
                "stats = ? WHERE id = ?",
                (ts(now), status, error, rows,
                 json.dumps(dict(stats or {}), sort_keys=True, default=str), run_id),
            )  # fmt: skip
            for result in checks:
                self._db.execute(
                    "INSERT INTO fsql_check_results (run_id, check_name, feature, expression, "
                    "severity, passed, observed, error, checked_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, result.check.name, result.check.feature, result.check.expression,
                     result.check.severity, bool(result.passed),
                     json.dumps(dict(result.observed), sort_keys=True, default=str),
                     result.error, ts(now)),
                )  # fmt: skip

    @contextmanager
    def track(self, **run: Any) -> Iterator[RunHandle]:
        """Record a run around a block: ``running`` on entry; on exit ``success`` (or what the
        block set on the handle); on an exception ``failed`` with the error, re-raised.

        >>> with log.track(feature="f", version=1, start=s, end=e, engine="duckdb") as h:  # doctest: +SKIP
        ...     h.rows = write_interval()
        """
        handle = RunHandle(self.start(**run))
        try:
            yield handle
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.finish(
                handle.id, status="failed", rows=handle.rows, stats=handle.stats,
                error=message if handle.error is None else handle.error, checks=handle.checks,
            )  # fmt: skip
            raise
        self.finish(
            handle.id, status=handle.status, rows=handle.rows, stats=handle.stats,
            error=handle.error, checks=handle.checks,
        )  # fmt: skip

    # -- reading ------------------------------------------------------------------------------

    def _record(self, row: Sequence[Any]) -> RunRecord:
        ts = self._db.ts_value
        return RunRecord(
            id=int(row[0]), pipeline=row[1], trigger=row[2], external_id=row[3],
            try_number=row[4], feature=row[5], version=int(row[6]), start=ts(row[7]),
            end=ts(row[8]), engine=row[9], started_at=ts(row[10]),
            finished_at=ts(row[11]) if row[11] is not None else None, status=row[12],
            error=row[13], rows=int(row[14]) if row[14] is not None else None,
            stats=json.loads(row[15]), created_by=row[16],
        )  # fmt: skip

    def runs(
        self,
        *,
        feature: str | None = None,
        pipeline: str | None = None,
        external_id: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Run records, newest first, optionally filtered."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("feature", feature), ("pipeline", pipeline),
                              ("external_id", external_id)):  # fmt: skip
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {_RUN_COLUMNS} FROM fsql_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._db.transaction(write=False):
            rows = self._db.execute(sql, params)
        return [self._record(r) for r in rows]

    def get(self, run_id: int) -> RunRecord:

        with self._db.transaction(write=False):
            rows = self._db.execute(f"SELECT {_RUN_COLUMNS} FROM fsql_runs WHERE id = ?", (run_id,))
        if not rows:
            raise NotFoundError(f"no run with id {run_id}; `fsql status --json` lists recent runs")
        return self._record(rows[0])

    def latest(self, pipeline: str | None = None) -> dict[str, RunRecord]:
        """The newest run of each feature (optionally of one pipeline), by feature name: one
        indexed lookup per feature, however long the history."""
        same = "r2.feature = r.feature" + (" AND r2.pipeline = ?" if pipeline is not None else "")
        sql = (
            f"SELECT {', '.join('r.' + c for c in _RUN_COLUMNS.split(', '))} FROM fsql_runs r "
            f"WHERE r.id = (SELECT r2.id FROM fsql_runs r2 WHERE {same} "
            "ORDER BY r2.started_at DESC, r2.id DESC LIMIT 1)"
        )
        with self._db.transaction(write=False):
            rows = self._db.execute(sql, [pipeline] if pipeline is not None else [])
        return {record.feature: record for record in map(self._record, rows)}

    def status_counts(self) -> dict[str, int]:
        """How many runs are recorded, by status."""
        with self._db.transaction(write=False):
            rows = self._db.execute("SELECT status, COUNT(*) FROM fsql_runs GROUP BY status")
        return {status: int(count) for status, count in rows}

    def check_results(
        self, run_ids: Sequence[int] | None = None, *, feature: str | None = None
    ) -> list[CheckRecord]:
        """Stored check results (of some runs, or of one feature), newest first."""
        sql = (
            "SELECT run_id, check_name, feature, expression, severity, passed, observed, error, "
            "checked_at FROM fsql_check_results"
        )
        where: list[str] = []
        params: list[Any] = []
        if run_ids is not None:
            if not run_ids:
                return []
            where.append(f"run_id IN ({', '.join('?' * len(run_ids))})")
            params.extend(run_ids)
        if feature is not None:
            where.append("feature = ?")
            params.append(feature)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY checked_at DESC, id DESC"
        with self._db.transaction(write=False):
            rows = self._db.execute(sql, params)
        return [
            CheckRecord(
                run_id=int(r[0]),
                name=r[1],
                feature=r[2],
                expression=r[3],
                severity=r[4],
                passed=bool(r[5]),
                observed=json.loads(r[6]),
                error=r[7],
                checked_at=self._db.ts_value(r[8]),
            )  # fmt: skip
            for r in rows
        ]


@dataclass
class RunHandle:
    """What a block inside :meth:`RunLog.track` fills in about its run."""

    id: int
    status: RunStatus = "success"
    rows: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    checks: list[CheckResult] = field(default_factory=list)


def format_error(exc: BaseException, *, with_traceback: bool = False) -> str:
    """An exception as stored in a run record: ``Type: message`` (plus the traceback), store
    passwords masked (:func:`fsql.secrets.redact`)."""
    text = f"{type(exc).__name__}: {exc}"
    if with_traceback:
        text += "\n" + "".join(traceback.format_exception(exc))
    return redact(text)


@dataclass(frozen=True)
class DeployedPipeline:
    """A pipeline as last deployed: where, which plan (JSON), when."""

    pipeline_id: str
    dags_folder: str
    plan_fingerprint: str
    plan: Mapping[str, Any]
    deployed_at: datetime
    deployed_by: str | None


def record_deployment(
    registry: Registry,
    pipeline_id: str,
    dags_folder: str,
    fingerprint: str,
    plan: Mapping[str, Any],
) -> None:
    """Remember the deployed plan of ``pipeline_id`` (replacing the previous one)."""

    db = ensure_tables(registry)
    with db.transaction(write=True):
        db.execute("DELETE FROM fsql_pipelines WHERE pipeline_id = ?", (pipeline_id,))
        db.execute(
            "INSERT INTO fsql_pipelines (pipeline_id, dags_folder, plan_fingerprint, plan, "
            "deployed_at, deployed_by) VALUES (?, ?, ?, ?, ?, ?)",
            (pipeline_id, dags_folder, fingerprint, json.dumps(dict(plan), sort_keys=True),
             db.ts_param(_utcnow()), default_actor()),
        )  # fmt: skip


def deployed_pipelines(registry: Registry) -> list[DeployedPipeline]:
    """Every deployed pipeline, by id."""
    db = ensure_tables(registry)
    with db.transaction(write=False):
        rows = db.execute(
            "SELECT pipeline_id, dags_folder, plan_fingerprint, plan, deployed_at, deployed_by "
            "FROM fsql_pipelines ORDER BY pipeline_id"
        )
    return [
        DeployedPipeline(r[0], r[1], r[2], json.loads(r[3]), db.ts_value(r[4]), r[5]) for r in rows
    ]
