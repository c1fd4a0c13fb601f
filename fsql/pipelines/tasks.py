"""What a pipeline task runs: one feature, exactly the ticks of one data interval, recorded.

A run for the data interval [start, end) materializes every tick T of the feature with
start ≤ T < end: the same ticks ``fsql materialize --start start --end end`` computes, so a
backfilled Airflow run and a hand-run command agree. The materialization itself
(:func:`fsql.materialize.materialize`) replaces an interval atomically and records it in the
ledger only after the data is committed, so a task is idempotent: a retry after a failure
computes what is missing, a re-run of a finished interval changes nothing (or recomputes it
identically when the DAG run's conf says ``{"force": true}``), and a failing task leaves the
offline store, the ledger and the online store as they were.

Each task records its run (:mod:`fsql.pipelines.runs`) with statistics of the values the
interval holds and the results of the feature's checks. Checks run on the computed rows
*before* they are committed (:data:`fsql.materialize.Gate`): a failed ``error`` check fails the
task with nothing committed — offline store, ledger and online store stay as they were, so
training sets and serving never see the refused values — and the refused rows are kept in the
offline store's ``_quarantine/`` folder for inspection (the error says where).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fsql.errors import FsqlError, RejectedData
from fsql.pipelines.artifact import PipelineArtifact, load_artifact
from fsql.pipelines.dag import ceil_tick, floor_tick

if TYPE_CHECKING:
    from fsql.config import Config
    from fsql.materialize import MaterializeResult
    from fsql.pipelines.checks import Check, CheckResult
    from fsql.pipelines.runs import Trigger
    from fsql.registry import Registry


class CheckFailed(RejectedData):
    """An ``error``-severity check failed on a run's computed rows: nothing of the interval was
    committed, the run is recorded as failed, and ``quarantine`` says where the rows are kept."""

    def __init__(self, results: list[CheckResult]):
        self.results = results
        super().__init__("; ".join(r.summary() for r in results))


class StaleVersionError(FsqlError):
    """The registry's current version of a feature is not the one the pipeline was built for."""


def _utc(value: Any) -> datetime:
    """Any aware datetime (pendulum's included) or naive UTC one as a plain UTC datetime."""
    if value.tzinfo is None:
        return datetime(value.year, value.month, value.day, value.hour, value.minute,
                        value.second, value.microsecond, tzinfo=UTC)  # fmt: skip
    return datetime.fromtimestamp(value.timestamp(), UTC).replace(microsecond=value.microsecond)


def config_section_values(config: Config) -> dict[str, dict[str, Any]]:
    """The store and compute settings of ``config`` in ``fsql.toml`` shape, paths absolute:
    what a pipeline pins so its tasks use the stores it was created with."""
    sections = {
        "registry": asdict(config.registry),
        "offline_store": asdict(config.offline_store),
        "online_store": asdict(config.online_store),
        "compute": asdict(config.compute),
    }
    sections["registry"]["url"] = config.resolve_url(config.registry.url)
    sections["offline_store"]["uri"] = config.resolve_path(config.offline_store.uri)
    sections["online_store"]["url"] = config.resolve_url(config.online_store.url)
    return {
        name: {k: v for k, v in values.items() if v is not None}
        for name, values in sections.items()
    }


def artifact_config(artifact: PipelineArtifact, env: Mapping[str, str] | None = None) -> Config:
    """The configuration a task runs with: the plan's pinned settings, then ``FSQL_*``
    variables of the worker's environment on top (e.g. a password-bearing registry URL)."""
    from fsql.config import ENV_VARS, config_from_mapping

    env = os.environ if env is None else env
    data: dict[str, dict[str, Any]] = {k: dict(v) for k, v in artifact.config.items()}
    data.setdefault("compute", {})["engine"] = artifact.engine
    for var, (section, key) in ENV_VARS.items():
        if env.get(var) and section in ("registry", "offline_store", "online_store", "compute"):
            data.setdefault(section, {})[key] = env[var]
    return config_from_mapping(data, artifact.repo, origin=f"pipeline plan {artifact.pipeline_id}")


def tick_range(start: datetime, end: datetime, every: timedelta) -> tuple[datetime, datetime]:
    """[a, b) with the same ticks as [start, end) but tick-aligned ends (a == b: no tick)."""
    seconds = int(every.total_seconds())
    return ceil_tick(start, seconds), ceil_tick(end, seconds)


def interval_ending_at(artifact: PipelineArtifact, instant: datetime) -> tuple[datetime, datetime]:
    """The schedule interval [previous boundary, boundary) whose boundary is the latest one at
    or before ``instant``: what a run given a zero-width interval (a trigger-only timetable, or
    an external trigger that set start == end) materializes."""
    instant = _utc(instant)
    if artifact.schedule is None:
        assert artifact.interval_seconds
        # delta timetables are anchored at start_date, itself on a tick of the period
        period = timedelta(seconds=artifact.interval_seconds)
        anchor = _utc(artifact.start_date)
        end = anchor + ((instant - anchor) // period) * period
        return end - period, end
    from croniter import croniter

    naive = instant.replace(tzinfo=None)
    if croniter.match(artifact.schedule, naive):
        end = naive
    else:
        end = croniter(artifact.schedule, naive).get_prev(datetime)
    start = croniter(artifact.schedule, end).get_prev(datetime)
    return start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TaskOutcome:
    """What one task run did (also the Airflow task's return value, stored as an XCom)."""

    run_id: int
    feature: str
    version: int
    start: datetime
    end: datetime
    status: str
    rows: int
    computed: bool
    stats: Mapping[str, Any] = field(default_factory=dict)
    checks: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "feature": self.feature,
            "version": self.version,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "status": self.status,
            "rows": self.rows,
            "computed": self.computed,
            "stats": dict(self.stats),
            "checks": self.checks,
        }


def _check_version(
    registry: Registry, artifact: PipelineArtifact, feature: str, version: int
) -> None:
    record = registry.get(feature)
    if record.retired:
        raise StaleVersionError(
            f"feature {feature} was dropped from the registry after pipeline "
            f"{artifact.pipeline_id} was created; run `fsql pipeline create` again"
        )
    if record.version != version:
        raise StaleVersionError(
            f"pipeline {artifact.pipeline_id} materializes {feature} v{version}, but the "
            f"registry's current version is v{record.version}; redeploy it with "
            "`fsql pipeline create` (the DAG then materializes the new version)"
        )


def interval_statistics(
    config: Config, registry: Registry, feature: str, version: int, start: datetime, end: datetime
) -> tuple[Any, dict[str, Any]]:
    """The committed values of one feature version with ``start ≤ feature_time < end`` (a
    pyarrow array) and their statistics (plus ``ticks``, the ticks in the interval)."""
    from fsql.materialize import timeline_schema
    from fsql.stores.offline import OfflineStore

    resolved = registry.analysis().features[feature]
    table = OfflineStore.from_config(config).read_timeline(
        feature, version, timeline_schema(resolved), start, end
    )
    return _statistics(resolved.definition, table.column(feature), start, end)


def _statistics(
    definition: Any, values: Any, start: datetime, end: datetime
) -> tuple[Any, dict[str, Any]]:
    """``values`` and their statistics, plus ``ticks``: the feature's ticks in [start, end)."""
    from fsql.definitions import FeatureDef
    from fsql.pipelines.checks import value_statistics

    stats = value_statistics(values)
    assert isinstance(definition, FeatureDef)
    first, stop = tick_range(start, end, definition.every)
    stats["ticks"] = int((stop - first) / definition.every)
    return values, stats


def materialize_and_record(
    config: Config,
    features: Sequence[str] | None,
    start: datetime,
    end: datetime,
    *,
    trigger: Trigger = "cli",
    pipeline: str | None = None,
    checks: Sequence[Check] | None = None,
    registry: Registry | None = None,
    **options: Any,
) -> list[MaterializeResult]:
    """:func:`fsql.materialize.materialize`, with every feature interval it computes recorded
    as a run (statistics and the declared checks included): what ``fsql materialize`` and the
    Python API call so that their runs show up next to Airflow's.

    ``options`` are passed to ``materialize`` (``engine``, ``force``, ``online``, ``progress``).
    Checks run on each computed interval before it is committed: a failed ``error`` check
    raises :class:`CheckFailed` with that interval not committed (nor pushed online) and its
    rows in quarantine; intervals committed before it stay committed. If materializing fails
    otherwise, a failed run records the error for every feature it did not finish.
    """
    from fsql.materialize import StagedInterval, materialize
    from fsql.pipelines.checks import checks_from_definitions, evaluate_checks
    from fsql.pipelines.runs import RunLog, format_error
    from fsql.registry import open_registry

    own = registry is None
    reg = registry if registry is not None else open_registry(config)
    try:
        log = RunLog(reg)
        engine = options.get("engine")
        engine_name = getattr(engine, "name", None) or engine or config.compute.engine
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
            values, stats = _statistics(
                definition, staged.table.column(staged.feature), staged.start, staged.end
            )
            outcome = evaluate_checks(
                [c for c in checks if c.feature == staged.feature], values, stats
            )
            bad = [r for r in outcome if r.failed_run]
            if bad:
                error = CheckFailed(bad)
                refused.append((error, staged, stats, outcome))
                raise error
            passed[(staged.feature, staged.start, staged.end)] = (stats, outcome)

        try:
            results = materialize(config, features, start, end, registry=reg, gate=gate, **options)
        except Exception as exc:
            try:
                names = reg.analysis().topological_order(list(features) if features else None)
            except FsqlError:
                names = []  # unknown feature names: the error itself says so; nothing ran
            for error, staged, stats, outcome in refused:
                record(staged.feature, staged.version, staged.start, staged.end,
                       status="failed", rows=stats["rows"], stats=stats, checks=outcome,
                       error=format_error(error))  # fmt: skip
            for (name, a, b), (stats, outcome) in passed.items():
                if not reg.ledger_missing(name, current[name].version, a, b):  # committed
                    record(name, current[name].version, a, b, status="success",
                           rows=stats["rows"], stats=stats, checks=outcome)  # fmt: skip
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
        for result in results:
            for a, b in result.intervals:
                stats, outcome = passed[(result.feature, a, b)]
                record(result.feature, result.version, a, b, status="success",
                       rows=stats["rows"], stats=stats, checks=outcome)  # fmt: skip
        return results
    finally:
        if own:
            reg.close()


def run_feature_interval(
    artifact: PipelineArtifact,
    feature: str,
    start: datetime,
    end: datetime,
    *,
    force: bool = False,
    trigger: Trigger = "airflow",
    external_id: str | None = None,
    try_number: int | None = None,
    config: Config | None = None,
) -> TaskOutcome:
    """Materialize the ticks of [start, end) of one feature of ``artifact`` and record the run.

    Raises (after recording a failed run) when materializing fails or an ``error`` check fails;
    a failed check commits nothing (see the module docstring).
    """
    from fsql.materialize import StagedInterval, materialize
    from fsql.pipelines.checks import evaluate_checks
    from fsql.pipelines.runs import RunLog
    from fsql.registry import open_registry

    task = artifact.task(feature)
    config = config or artifact_config(artifact)
    first, stop = tick_range(_utc(start), _utc(end), task.every)
    registry = open_registry(config)
    try:
        log = RunLog(registry)
        run: dict[str, Any] = {
            "feature": feature, "version": task.version, "start": first, "end": stop,
            "engine": artifact.engine, "pipeline": artifact.pipeline_id, "trigger": trigger,
            "external_id": external_id, "try_number": try_number,
        }  # fmt: skip
        if stop <= first:
            # e.g. a daily feature in an hourly pipeline: most intervals hold none of its ticks
            run_id = log.start(**run)
            log.finish(run_id, status="skipped", rows=0, stats={"ticks": 0})
            return TaskOutcome(run_id, feature, task.version, first, stop, "skipped", 0, False)
        with log.track(**run) as handle:
            _check_version(registry, artifact, feature, task.version)
            definition = registry.get(feature).definition

            def gate(staged: StagedInterval) -> None:
                # the rows of this feature, before they are committed; its inputs' rows were
                # checked by their own tasks
                if staged.feature != feature:
                    return
                values, stats = _statistics(
                    definition, staged.table.column(feature), staged.start, staged.end
                )
                outcome = evaluate_checks(task.checks, values, stats)
                failed = [r for r in outcome if r.failed_run]
                if failed:
                    handle.rows, handle.stats, handle.checks = stats["rows"], stats, outcome
                    raise CheckFailed(failed)

            # offline (through the gate), then the online push of what was committed
            results = materialize(
                config, [feature], first, stop, engine=artifact.engine, force=force,
                registry=registry, online=False, gate=gate,
            )  # fmt: skip
            result = next(r for r in results if r.feature == feature)
            values, stats = interval_statistics(
                config, registry, feature, task.version, first, stop
            )
            stats["computed_rows"] = result.rows
            handle.rows = stats["rows"]
            handle.stats = stats
            handle.checks = evaluate_checks(task.checks, values, stats)
            failed = [r for r in handle.checks if r.failed_run]
            if failed:
                # only when nothing was computed now (the interval was committed earlier and
                # the checks changed since): the committed values are not pushed online
                raise CheckFailed(failed)
            # nothing is missing offline now: this call only pushes what is pending online
            pushed = materialize(
                config, [feature], first, stop, engine=artifact.engine, registry=registry
            )
            online = next(r for r in pushed if r.feature == feature).online
            if online is not None:
                stats["online_rows"] = getattr(online, "rows", None)
        return TaskOutcome(
            handle.id, feature, task.version, first, stop, "success", handle.rows or 0,
            bool(result.intervals), stats, [r.to_json() for r in handle.checks],
        )  # fmt: skip
    finally:
        registry.close()


def run_airflow_task(plan_path: str, feature: str, **context: Any) -> dict[str, Any]:
    """The callable of every generated task: read the plan, take the run's data interval from
    the Airflow context, run :func:`run_feature_interval`. Returns the outcome as a dict."""
    artifact = load_artifact(plan_path)
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None or start == end:
        anchor = end or context.get("logical_date") or context["dag_run"].run_after
        start, end = interval_ending_at(artifact, anchor)
    dag_run = context.get("dag_run")
    conf = (getattr(dag_run, "conf", None) or {}) if dag_run is not None else {}
    ti = context.get("ti")
    try:
        outcome = run_feature_interval(
            artifact, feature, _utc(start), _utc(end),
            force=bool(conf.get("force", False)),
            trigger="airflow",
            external_id=context.get("run_id"),
            try_number=getattr(ti, "try_number", None),
        )  # fmt: skip
    except (CheckFailed, StaleVersionError) as exc:
        # retrying cannot fix bad values or a stale deploy: fail the task without retries
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
    print(
        f"fsql: {feature} v{outcome.version} [{outcome.start.isoformat()}, "
        f"{outcome.end.isoformat()}): {outcome.status}, {outcome.rows} rows"
        + ("" if outcome.computed else ' (already materialized; conf {"force": true} recomputes)')
    )
    return outcome.to_json()


__all__ = [
    "CheckFailed",
    "StaleVersionError",
    "TaskOutcome",
    "artifact_config",
    "config_section_values",
    "floor_tick",
    "interval_ending_at",
    "interval_statistics",
    "materialize_and_record",
    "run_airflow_task",
    "run_feature_interval",
    "tick_range",
]
