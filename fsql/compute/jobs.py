"""Materialize and record: what ``fsql materialize``, the Python API and pipeline tasks run.

:func:`materialize_and_record` is :func:`fsql.compute.materialize.materialize` with every
feature interval it computes recorded as a run (:mod:`fsql.compute.runs`), with statistics of
the values and the results of the feature's checks (:mod:`fsql.compute.checks`). Checks run on
the computed rows *before* they are committed (:data:`fsql.compute.materialize.Gate`): a failed
``error`` check commits nothing of that interval — offline store, ledger and online store stay
as they were — and the refused rows are kept in the offline store's ``_quarantine/`` folder.
The online push runs last, here (:func:`push_all`): when it fails, the runs of the features not
pushed are recorded as failed ("committed to the offline store, but the online push failed").
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fsql.compile.plan import micros
from fsql.compile.sql import tick_bounds
from fsql.compute.checks import evaluate_checks, value_statistics
from fsql.compute.materialize import (
    MaterializeResult,
    StagedInterval,
    materialize,
    push_online,
    timeline_schema,
    utc,
)
from fsql.compute.progress import as_progress
from fsql.compute.push import online_push_pending
from fsql.compute.runs import RunLog, Trigger, format_error
from fsql.compute.statistics import tick_statistics
from fsql.errors import CheckFailed, ComputeError, FsqlError
from fsql.intervals import tick_range
from fsql.language.checks import Check, checks_from_definitions
from fsql.language.definitions import FeatureDef
from fsql.workspace import Workspace


def interval_statistics(
    workspace: Workspace, feature: str, version: int, start: datetime, end: datetime
) -> tuple[Any, dict[str, Any]]:
    """The committed rows' values of one feature version with ``start ≤ feature_time < end``
    (a pyarrow array, what row checks read) and the statistics of the values at each tick of
    the interval (:mod:`fsql.compute.statistics`; plus ``ticks``, the ticks in the interval)."""
    resolved = workspace.registry.analysis().features[feature]
    schema = timeline_schema(resolved)
    store = workspace.offline_store
    table = store.read_timeline(feature, version, schema, start, end)
    every_us = micros(resolved.definition.every)
    first, stop = tick_bounds(start, end, every_us)
    stats = tick_statistics(
        resolved.entity.key_names, feature, schema.field(feature).type,
        first * every_us, stop * every_us, every_us,
        history=store.timeline_files(feature, version, schema),
        history_until_us=stop * every_us,
        memory_limit=workspace.config.compute.memory_limit,
    )  # fmt: skip
    return table.column(feature), _with_ticks(stats, resolved.definition, start, end)


def run_statistics(
    definition: Any, values: Any, start: datetime, end: datetime
) -> tuple[Any, dict[str, Any]]:
    """``values`` and their statistics, plus ``ticks``: the feature's ticks in [start, end)."""
    return values, _with_ticks(value_statistics(values), definition, start, end)


def staged_statistics(definition: Any, staged: StagedInterval) -> dict[str, Any]:
    """:func:`run_statistics` of a staged interval: the values at each of its ticks
    (:mod:`fsql.compute.statistics`, computed by DuckDB over the staged and committed files;
    no value passes through Python)."""
    if staged.statistics is not None:
        stats = staged.statistics()
    else:
        stats = value_statistics(staged.values())
    return _with_ticks(stats, definition, staged.start, staged.end)


def written(stats: dict[str, Any]) -> int:
    """The rows a run wrote (change rows: ``rows_written``), not the values at its ticks
    (``rows``)."""
    return int(stats.get("rows_written", stats.get("rows", 0)))


def _with_ticks(
    stats: dict[str, Any], definition: Any, start: datetime, end: datetime
) -> dict[str, Any]:
    assert isinstance(definition, FeatureDef)
    first, stop = tick_range(start, end, definition.every)
    stats["ticks"] = int((stop - first) / definition.every)
    return stats


def check_request(
    workspace: Workspace, features: Sequence[str] | None, start: datetime, end: datetime
) -> None:
    """Refuse a request that cannot run — ``end`` not after ``start``, an unknown feature name
    — with the error :func:`materialize` would raise, before anything is recorded."""
    if utc(end) <= utc(start):
        raise ComputeError(
            f"the end ({utc(end).isoformat()}) must be after the start "
            f"({utc(start).isoformat()}): nothing to materialize"
        )
    workspace.registry.analysis().topological_order(list(features) if features else None)


def materialize_and_record(
    workspace: Workspace,
    features: Sequence[str] | None,
    start: datetime,
    end: datetime,
    *,
    trigger: Trigger = "cli",
    pipeline: str | None = None,
    checks: Sequence[Check] | None = None,
    **options: Any,
) -> list[MaterializeResult]:
    """:func:`fsql.compute.materialize.materialize`, with every feature interval it computes recorded
    as a run (statistics and the declared checks included): what ``fsql materialize`` and the
    Python API call so that their runs show up next to Airflow's.

    ``options`` are passed to ``materialize`` (``engine``, ``force``, ``online``, ``progress``).
    Checks run on each computed interval before it is committed: a failed ``error`` check
    raises :class:`CheckFailed` with that interval not committed (nor pushed online) and its
    rows in quarantine; intervals committed before it stay committed. If materializing fails
    otherwise, a failed run records the error for every feature it did not finish.
    """
    config = workspace.config
    reg = workspace.registry
    # A mistyped command is not a failed run: refuse it before any run is recorded.
    check_request(workspace, features, start, end)
    log = RunLog(reg)
    engine = options.get("engine")
    engine_name = (
        getattr(engine, "name", None) or engine or workspace.engine_name or config.compute.engine
    )
    started = datetime.now(UTC)
    current = reg.current()
    if checks is None:
        checks = checks_from_definitions(r.definition for r in current.values())
    # Filled by the gate, which runs in the engine's worker threads: runs are recorded
    # here, in this thread, since the run log shares the registry's connection.
    #: (feature, start, end) → (statistics, check results) of intervals that passed
    passed: dict[tuple[str, datetime, datetime], tuple[dict[str, Any], list[Any]]] = {}
    #: (the refusal, its staged interval, its statistics, its check results)
    refused: list[tuple[CheckFailed, StagedInterval, dict[str, Any], list[Any]]] = []
    recorded: set[str] = set()

    def record(feature: str, version: int, a: datetime, b: datetime, **finish: Any) -> None:
        run_id = log.start(
            feature=feature, version=version, start=a, end=b, engine=str(engine_name),
            pipeline=pipeline, trigger=trigger, started_at=started,
        )  # fmt: skip
        log.finish(run_id, **finish)
        recorded.add(feature)

    def gate(staged: StagedInterval) -> None:
        definition = current[staged.feature].definition
        own = [c for c in checks if c.feature == staged.feature]
        stats = staged_statistics(definition, staged)
        # the values pass through Python only when a check reads them
        outcome = evaluate_checks(own, staged.values(), stats) if own else []
        bad = [r for r in outcome if r.failed_run]
        if bad:
            error = CheckFailed(bad)
            refused.append((error, staged, stats, outcome))
            raise error
        passed[(staged.feature, staged.start, staged.end)] = (stats, outcome)

    online = options.pop("online", True)
    try:
        # the online push runs below, per feature, so that its failure is recorded as such
        results = materialize(workspace, features, start, end, gate=gate, online=False, **options)
    except Exception as exc:
        try:
            names = reg.analysis().topological_order(list(features) if features else None)
        except FsqlError:
            names = []  # unknown feature names: the error itself says so; nothing ran
        for error, staged, stats, outcome in refused:
            record(staged.feature, staged.version, staged.start, staged.end,
                   status="failed", rows=written(stats), stats=stats, checks=outcome,
                   error=format_error(error))  # fmt: skip
        for (name, a, b), (stats, outcome) in passed.items():
            if not reg.ledger_missing(name, current[name].version, a, b):  # committed
                record(name, current[name].version, a, b, status="success",
                       rows=written(stats), stats=stats, checks=outcome)  # fmt: skip
        for name in names:
            if name not in recorded:
                record(name, current[name].version, start, end, status="failed",
                       error=format_error(exc))  # fmt: skip
        if isinstance(exc, CheckFailed) and len(refused) > 1:
            # independent features ran on: report every refusal, each with its quarantine
            combined = CheckFailed([r for e, *_ in refused for r in e.results])
            combined.quarantine = ", ".join(e.quarantine for e, *_ in refused if e.quarantine)
            raise combined from exc
        raise
    push_error: Exception | None = None
    if online:
        results, push_error = push_all(workspace, results, options.get("progress"))
    for result in results:
        # the push failed for this feature (or stopped before it): the offline store has
        # the intervals, the online store does not — the run failed, and says which part did
        unpushed = push_error is not None and result.online is None and needs_push(
            workspace, result
        )
        finish: dict[str, Any] = {"status": "success"}
        if unpushed and push_error is not None:
            finish = {"status": "failed", "error": "committed to the offline store, but the "
                      "online push failed (the next fsql materialize pushes again): "
                      + format_error(push_error)}  # fmt: skip
        for a, b in result.intervals:
            stats, outcome = passed[(result.feature, a, b)]
            record(result.feature, result.version, a, b, rows=written(stats), stats=stats,
                   checks=outcome, **finish)  # fmt: skip
        if unpushed and not result.intervals:  # nothing computed, only the pending push failed
            record(result.feature, result.version, start, end, **finish)
    if push_error is not None:
        raise push_error
    return results


def needs_push(workspace: Workspace, result: MaterializeResult) -> bool:
    """Whether ``result``'s feature is served online and has committed values not pushed."""
    definition = workspace.registry.current()[result.feature].definition
    assert isinstance(definition, FeatureDef)
    return definition.online and (
        bool(result.intervals)
        or online_push_pending(workspace.registry, result.feature, result.version)
    )


def push_all(
    workspace: Workspace, results: Sequence[MaterializeResult], progress: Any = None
) -> tuple[list[MaterializeResult], Exception | None]:
    """Push each result's latest values online, in order; stops at the first failure (the
    store is most likely down) and returns it with the results pushed so far."""
    resolved = workspace.registry.analysis().features
    out = list(results)
    for i, result in enumerate(results):
        try:
            out[i] = push_online(
                workspace, workspace.offline_store, resolved[result.feature], result,
                as_progress(progress),
            )  # fmt: skip
        except Exception as exc:  # recorded in the runs and raised by the caller
            return out, exc
    return out, None
