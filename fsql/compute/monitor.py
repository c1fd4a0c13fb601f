"""Monitoring: freshness per feature, the latest runs and checks, as rows anyone can show.

Freshness follows the pipeline contract (:mod:`fsql.pipelines.tasks`): the run for the interval
[T, T + EVERY) materializes tick T and runs once that interval has closed, so at time ``now``
the **expected tick** of a feature is ``floor(now / EVERY) * EVERY - EVERY``. A feature is
``fresh`` when its last materialized tick (the greatest tick inside the ledger's committed
intervals of its current version) is at least the expected tick, ``late`` when it is behind
(``behind`` says by how many ticks), and ``never`` when nothing is materialized. A feature with
materialized ticks found stale by late-data detection (:mod:`fsql.compute.late_data`: a source
file added or changed since, or an input recomputed since) is ``stale`` whatever its lag, with
the reason (``stale_reason``: "source changed", "input recomputed") and the first stale tick.
Staleness is what the last detection recorded in the ledger (``fsql status`` and every
``fsql materialize`` detect; reading the figures lists no source).

Everything here returns plain rows (dicts, dataclasses, Arrow tables, Prometheus text), so the
CLI (``fsql status``), the Postgres-wire server (``fsql.runs``, ``fsql.freshness``,
``fsql.checks``) and the API show the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fsql.compute.late_data import REASONS as STALE_REASONS
from fsql.compute.runs import CheckRecord, RunLog, RunRecord
from fsql.intervals import EPOCH, floor_tick
from fsql.language.definitions import FeatureDef

if TYPE_CHECKING:
    import pyarrow as pa

    from fsql.registry import Registry

Interval = tuple[datetime, datetime]


def last_tick_in(intervals: Iterable[Interval], every: timedelta) -> datetime | None:
    """The greatest tick (a whole multiple of ``every`` since the epoch) inside any [start, end)."""
    step = int(every.total_seconds())
    best: datetime | None = None
    for start, end in intervals:
        tick = floor_tick(end - timedelta(microseconds=1), step)
        if tick >= start and (best is None or tick > best):
            best = tick
    return best


def expected_tick(now: datetime, every: timedelta) -> datetime:
    """The tick a healthy pipeline has materialized by ``now``: the last tick of the last
    closed schedule interval."""
    return floor_tick(now, int(every.total_seconds())) - every


@dataclass(frozen=True)
class Freshness:
    """How current one feature's materialized timeline is."""

    feature: str
    version: int
    every: timedelta
    last_tick: datetime | None
    expected_tick: datetime
    #: expected_tick − last_tick when behind, else zero (None: never materialized)
    lag: timedelta | None
    #: whole ticks behind (0 when fresh; None when never materialized)
    behind: int | None
    status: str
    #: True when the last tick's values were pushed to the online store
    online: bool
    #: why materialized ticks are stale (late data), None when none is
    stale_reason: str | None = None
    #: the first stale tick
    stale_from: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "version": self.version,
            "every_seconds": int(self.every.total_seconds()),
            "last_tick": self.last_tick.isoformat() if self.last_tick else None,
            "expected_tick": self.expected_tick.isoformat(),
            "lag_seconds": int(self.lag.total_seconds()) if self.lag is not None else None,
            "behind_ticks": self.behind,
            "status": self.status,
            "online": self.online,
            "stale_reason": self.stale_reason,
            "stale_from": self.stale_from.isoformat() if self.stale_from else None,
        }


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def freshness(
    registry: Registry, now: datetime | None = None, features: Sequence[str] | None = None
) -> list[Freshness]:
    """Freshness of the current version of each feature (all, or ``features``), by name."""

    now = _now(now)
    current = registry.current()
    names = sorted(n for n, r in current.items() if isinstance(r.definition, FeatureDef))
    if features is not None:
        wanted = set(features)
        names = [n for n in names if n in wanted]
    rows = []
    for name in names:
        record = current[name]
        definition = record.definition
        assert isinstance(definition, FeatureDef)
        every = definition.every
        committed = registry.ledger_intervals(name, record.version)
        last = last_tick_in(committed, every)
        expected = expected_tick(now, every)
        if last is None:
            lag, behind, status = None, None, "never"
        elif last >= expected:
            lag, behind, status = timedelta(0), 0, "fresh"
        else:
            lag = expected - last
            behind, status = int(lag / every), "late"
        online = False
        if last is not None and definition.online:
            pushed = registry.ledger_online_intervals(name, record.version)
            online = any(s <= last < e for s, e in pushed)
        stale = registry.ledger_stale(name, record.version) if last is not None else []
        reason = min((m.reason for m in stale), key=_reason_rank, default=None)
        if reason is not None:
            status = "stale"
        rows.append(
            Freshness(name, record.version, every, last, expected, lag, behind, status, online,
                      reason, min((m.start for m in stale), default=None))
        )  # fmt: skip
    return rows


def _reason_rank(reason: str) -> int:
    return STALE_REASONS.index(reason) if reason in STALE_REASONS else len(STALE_REASONS)


@dataclass(frozen=True)
class FeatureStatus:
    """One line of ``fsql status``: freshness, the latest run and its checks."""

    freshness: Freshness
    last_run: RunRecord | None
    checks: tuple[CheckRecord, ...]

    @property
    def checks_summary(self) -> str:
        if not self.checks:
            return "-"
        failed = sum(1 for c in self.checks if not c.passed and c.severity == "error")
        warned = sum(1 for c in self.checks if not c.passed and c.severity == "warn")
        passed = len(self.checks) - failed - warned
        parts = [f"{passed} passed"]
        if failed:
            parts.append(f"{failed} failed")
        if warned:
            parts.append(f"{warned} warned")
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            **self.freshness.to_json(),
            "last_run": self.last_run.to_json() if self.last_run else None,
            "checks": [c.to_json() for c in self.checks],
        }


def feature_status(
    registry: Registry,
    now: datetime | None = None,
    features: Sequence[str] | None = None,
    pipeline: str | None = None,
) -> list[FeatureStatus]:
    """Freshness, latest run and that run's check results for each feature."""
    log = RunLog(registry)
    latest = log.latest(pipeline=pipeline)
    fresh = freshness(registry, now, features)
    run_ids = [latest[f.feature].id for f in fresh if f.feature in latest]
    by_run: dict[int, list[CheckRecord]] = {}
    for record in log.check_results(run_ids):
        by_run.setdefault(record.run_id, []).append(record)
    rows = []
    for item in fresh:
        run = latest.get(item.feature)
        checks = tuple(sorted(by_run.get(run.id, []), key=lambda c: c.name)) if run else ()
        rows.append(FeatureStatus(item, run, checks))
    return rows


# -- tables for the Postgres-wire server (fsql.runs, fsql.freshness, fsql.checks) -----------


def _table(rows: Sequence[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:

    return pa.Table.from_pylist([dict(r) for r in rows], schema=schema)


def runs_table(registry: Registry, limit: int | None = None) -> pa.Table:
    """Every recorded run, newest first: the ``fsql.runs`` table."""


    ts = pa.timestamp("us", tz="UTC")
    schema = pa.schema([
        ("id", pa.int64()), ("pipeline", pa.string()), ("trigger", pa.string()),
        ("external_id", pa.string()), ("try_number", pa.int32()), ("feature", pa.string()),
        ("version", pa.int32()), ("interval_start", ts), ("interval_end", ts),
        ("engine", pa.string()), ("started_at", ts), ("finished_at", ts),
        ("duration_seconds", pa.float64()), ("status", pa.string()), ("error", pa.string()),
        ("rows_written", pa.int64()), ("null_fraction", pa.float64()), ("min", pa.string()),
        ("max", pa.string()), ("mean", pa.float64()), ("distinct_count", pa.int64()),
        ("stats", pa.string()),
    ])  # fmt: skip
    rows = []
    for r in RunLog(registry).runs(limit=limit):
        s = r.stats
        rows.append({
            "id": r.id, "pipeline": r.pipeline, "trigger": r.trigger,
            "external_id": r.external_id, "try_number": r.try_number, "feature": r.feature,
            "version": r.version, "interval_start": r.start, "interval_end": r.end,
            "engine": r.engine, "started_at": r.started_at, "finished_at": r.finished_at,
            "duration_seconds": r.duration, "status": r.status, "error": r.error,
            "rows_written": r.rows, "null_fraction": s.get("null_fraction"),
            "min": None if s.get("min") is None else str(s["min"]),
            "max": None if s.get("max") is None else str(s["max"]),
            "mean": s.get("mean"), "distinct_count": s.get("distinct_count"),
            "stats": json.dumps(dict(s), sort_keys=True, default=str),
        })  # fmt: skip
    return _table(rows, schema)


def freshness_table(registry: Registry, now: datetime | None = None) -> pa.Table:
    """Freshness of every feature: the ``fsql.freshness`` table."""

    ts = pa.timestamp("us", tz="UTC")
    schema = pa.schema([
        ("feature", pa.string()), ("version", pa.int32()), ("every_seconds", pa.int64()),
        ("last_tick", ts), ("expected_tick", ts), ("lag_seconds", pa.int64()),
        ("behind_ticks", pa.int64()), ("status", pa.string()), ("online", pa.bool_()),
        ("stale_reason", pa.string()), ("stale_from", ts),
    ])  # fmt: skip
    rows = [
        {
            "feature": f.feature,
            "version": f.version,
            "every_seconds": int(f.every.total_seconds()),
            "last_tick": f.last_tick,
            "expected_tick": f.expected_tick,
            "lag_seconds": int(f.lag.total_seconds()) if f.lag is not None else None,
            "behind_ticks": f.behind,
            "status": f.status,
            "online": f.online,
            "stale_reason": f.stale_reason,
            "stale_from": f.stale_from,
        }  # fmt: skip
        for f in freshness(registry, now)
    ]
    return _table(rows, schema)


def checks_table(registry: Registry) -> pa.Table:
    """Every recorded check result, newest first: the ``fsql.checks`` table."""


    schema = pa.schema([
        ("run_id", pa.int64()), ("check_name", pa.string()), ("feature", pa.string()),
        ("expression", pa.string()), ("severity", pa.string()), ("passed", pa.bool_()),
        ("observed", pa.string()), ("error", pa.string()),
        ("checked_at", pa.timestamp("us", tz="UTC")),
    ])  # fmt: skip
    rows = [
        {
            "run_id": c.run_id,
            "check_name": c.name,
            "feature": c.feature,
            "expression": c.expression,
            "severity": c.severity,
            "passed": c.passed,
            "observed": json.dumps(dict(c.observed), sort_keys=True, default=str),
            "error": c.error,
            "checked_at": c.checked_at,
        }  # fmt: skip
        for c in RunLog(registry).check_results()
    ]
    return _table(rows, schema)


# -- Prometheus ------------------------------------------------------------------------------


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_metrics(registry: Registry, now: datetime | None = None) -> str:
    """Prometheus text-format metrics (for ``fsql serve``'s ``/metrics``)::

    fsql_feature_last_tick_timestamp_seconds{feature="f",version="2"} 1.7e9
    fsql_feature_lag_seconds{...}   fsql_feature_behind_ticks{...}   fsql_feature_fresh{...}
    fsql_feature_stale{...}
    fsql_feature_last_run_success{...}   fsql_feature_last_run_rows{...}
    fsql_feature_last_run_duration_seconds{...}   fsql_feature_last_run_null_fraction{...}
    fsql_check_failed{feature="f",check="c",severity="error"}   fsql_runs_total{status="..."}
    """
    statuses = feature_status(registry, now)
    lines: list[str] = []

    def metric(name: str, help_text: str, kind: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{{{labels}}} {float(value)!r}" if labels else f"{name} {float(value)!r}"
                     for labels, value in samples)  # fmt: skip

    def labels(s: FeatureStatus) -> str:
        return f'feature="{_label(s.freshness.feature)}",version="{s.freshness.version}"'

    metric("fsql_feature_last_tick_timestamp_seconds",
           "Last materialized tick of the feature's current version (Unix seconds).", "gauge",
           [(labels(s), (s.freshness.last_tick - EPOCH).total_seconds())
            for s in statuses if s.freshness.last_tick is not None])  # fmt: skip
    metric("fsql_feature_lag_seconds", "How far the last tick is behind the expected tick.",
           "gauge", [(labels(s), s.freshness.lag.total_seconds())
                     for s in statuses if s.freshness.lag is not None])  # fmt: skip
    metric("fsql_feature_behind_ticks", "Whole ticks the feature is behind (0 when fresh).",
           "gauge", [(labels(s), float(s.freshness.behind))
                     for s in statuses if s.freshness.behind is not None])  # fmt: skip
    metric("fsql_feature_fresh", "1 when the feature is fresh, else 0.", "gauge",
           [(labels(s), 1.0 if s.freshness.status == "fresh" else 0.0) for s in statuses])  # fmt: skip
    metric("fsql_feature_stale", "1 when materialized ticks are stale (late data), else 0.",
           "gauge", [(labels(s), 1.0 if s.freshness.stale_reason else 0.0) for s in statuses])  # fmt: skip
    runs = [(labels(s), s.last_run) for s in statuses if s.last_run is not None]
    metric("fsql_feature_last_run_success", "1 when the feature's latest run succeeded.", "gauge",
           [(lab, 1.0 if run.status in ("success", "skipped") else 0.0) for lab, run in runs])  # fmt: skip
    metric("fsql_feature_last_run_rows", "Rows the feature's latest run left in its interval.",
           "gauge", [(lab, float(run.rows)) for lab, run in runs if run.rows is not None])  # fmt: skip
    metric("fsql_feature_last_run_duration_seconds", "Duration of the feature's latest run.",
           "gauge", [(lab, run.duration) for lab, run in runs if run.duration is not None])  # fmt: skip
    metric("fsql_feature_last_run_null_fraction", "Null fraction of the latest run's values.",
           "gauge", [(lab, float(run.stats["null_fraction"])) for lab, run in runs
                     if run.stats.get("null_fraction") is not None])  # fmt: skip
    metric("fsql_check_failed", "1 when the check failed on the feature's latest run.", "gauge",
           [(f'feature="{_label(c.feature)}",check="{_label(c.name)}",severity="{c.severity}"',
             0.0 if c.passed else 1.0) for s in statuses for c in s.checks])  # fmt: skip
    totals = RunLog(registry).status_counts()
    metric("fsql_runs_total", "Materialization runs recorded, by status.", "counter",
           [(f'status="{status}"', float(n)) for status, n in sorted(totals.items())])  # fmt: skip
    return "\n".join(lines) + "\n"
