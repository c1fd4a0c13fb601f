"""What a pipeline task runs: one feature, exactly the ticks of one data interval, recorded.

The Airflow side of a run (the core — materialize, checks, run records — is
:mod:`fsql.compute.jobs`). A run for the data interval [start, end) materializes every tick T of the feature with
start ≤ T < end: the same ticks ``fsql materialize --start start --end end`` computes, so a
backfilled Airflow run and a hand-run command agree. The materialization itself
(:func:`fsql.compute.materialize.materialize`) replaces an interval atomically and records it in the
ledger only after the data is committed, so a task is idempotent: a retry after a failure
computes what is missing, a re-run of a finished interval changes nothing (or recomputes it
identically when the DAG run's conf says ``{"force": true}``), and a failing task leaves the
offline store, the ledger and the online store as they were.

Each task records its run (:mod:`fsql.compute.runs`) with statistics of the values the
interval holds and the results of the feature's checks. Checks run on the computed rows
*before* they are committed (:data:`fsql.compute.materialize.Gate`): a failed ``error`` check fails the
task with nothing committed — offline store, ledger and online store stay as they were, so
training sets and serving never see the refused values — and the refused rows are kept in the
offline store's ``_quarantine/`` folder for inspection (the error says where).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fsql.compute.checks import evaluate_checks
from fsql.compute.jobs import interval_statistics, staged_statistics, written
from fsql.compute.materialize import StagedInterval, materialize
from fsql.compute.runs import RunLog, Trigger
from fsql.config import ENV_VARS, Config, config_from_mapping
from fsql.errors import CheckFailed, FsqlError, StaleVersionError
from fsql.extras import require
from fsql.intervals import as_utc, tick_range
from fsql.pipelines.artifact import PipelineArtifact, load_artifact
from fsql.registry import Registry
from fsql.secrets import without_password
from fsql.workspace import Workspace


def config_section_values(config: Config) -> dict[str, dict[str, Any]]:
    """The store and compute settings of ``config`` in ``fsql.toml`` shape: what a pipeline
    pins so its tasks use the stores it was created with. Nothing in it is specific to the
    machine that wrote it: paths inside the repo stay relative to the repo (``sqlite:///
    .fsql/registry.db``, ``.fsql/offline``; resolved against the repo the task runs in), and
    URLs lose their passwords (the plan is a file in the DAGs folder): workers take them from
    their own ``FSQL_*`` environment (:func:`artifact_config`)."""
    sections = {
        "registry": asdict(config.registry),
        "offline_store": asdict(config.offline_store),
        "online_store": asdict(config.online_store),
        "compute": asdict(config.compute),
    }
    sections["registry"]["url"] = without_password(repo_relative_url(config, config.registry.url))
    sections["offline_store"]["uri"] = repo_relative(config, config.offline_store.uri)
    sections["online_store"]["url"] = without_password(
        repo_relative_url(config, config.online_store.url)
    )
    return {
        name: {k: v for k, v in values.items() if v is not None}
        for name, values in sections.items()
    }


def repo_relative(config: Config, path: str) -> str:
    """``path`` relative to the repo when it lies inside it (URIs and outside paths as they
    are, made absolute): a plan moved with its repo to another machine still finds it."""
    resolved = config.resolve_path(path)
    if "://" in resolved:
        return resolved
    root = config.repo.resolve()
    try:
        return Path(resolved).resolve().relative_to(root).as_posix() or "."
    except ValueError:
        return resolved


def repo_relative_url(config: Config, url: str) -> str:
    """:func:`repo_relative` for a ``sqlite:///`` URL; other URLs unchanged."""
    if url.startswith("sqlite:///"):
        return "sqlite:///" + repo_relative(config, url[len("sqlite:///") :])
    return url


def artifact_config(artifact: PipelineArtifact, env: Mapping[str, str] | None = None) -> Config:
    """The configuration a task runs with: the plan's pinned settings, then ``FSQL_*``
    variables of the worker's environment on top (e.g. a password-bearing registry URL).
    Relative paths resolve against the repo: ``FSQL_REPO`` when the worker sets it, else the
    plan's repo (itself relative to the plan file, see :func:`~fsql.pipelines.artifact.load_artifact`)."""
    env = os.environ if env is None else env
    data: dict[str, dict[str, Any]] = {k: dict(v) for k, v in artifact.config.items()}
    data.setdefault("compute", {})["engine"] = artifact.engine
    for var, (section, key) in ENV_VARS.items():
        if env.get(var) and section in ("registry", "offline_store", "online_store", "compute"):
            data.setdefault(section, {})[key] = env[var]
    repo = env.get("FSQL_REPO") or artifact.repo
    return config_from_mapping(data, Path(repo), origin=f"pipeline plan {artifact.pipeline_id}")


def interval_ending_at(artifact: PipelineArtifact, instant: datetime) -> tuple[datetime, datetime]:
    """The schedule interval [previous boundary, boundary) whose boundary is the latest one at
    or before ``instant``: what a run given a zero-width interval (a trigger-only timetable, or
    an external trigger that set start == end) materializes."""
    instant = as_utc(instant)
    if artifact.schedule is None:
        assert artifact.interval_seconds
        # delta timetables are anchored at start_date, itself on a tick of the period
        period = timedelta(seconds=artifact.interval_seconds)
        anchor = as_utc(artifact.start_date)
        end = anchor + ((instant - anchor) // period) * period
        return end - period, end
    croniter = require("croniter", "airflow").croniter
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
    task = artifact.task(feature)
    check_after_start(artifact, feature, start, end)
    config = config or artifact_config(artifact)
    first, stop = tick_range(as_utc(start), as_utc(end), task.every)
    workspace = Workspace(config)
    registry = workspace.registry
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
                stats = staged_statistics(definition, staged)
                outcome = evaluate_checks(task.checks, staged.values(), stats) if task.checks else []
                failed = [r for r in outcome if r.failed_run]
                if failed:
                    handle.rows, handle.stats, handle.checks = written(stats), stats, outcome
                    raise CheckFailed(failed)

            # offline (through the gate), then the online push of what was committed
            results = materialize(
                workspace, [feature], first, stop, engine=artifact.engine, force=force,
                online=False, gate=gate,
            )  # fmt: skip
            result = next(r for r in results if r.feature == feature)
            values, stats = interval_statistics(workspace, feature, task.version, first, stop)
            stats["computed_rows"] = result.rows
            handle.rows = written(stats)
            handle.stats = stats
            handle.checks = evaluate_checks(task.checks, values, stats)
            failed = [r for r in handle.checks if r.failed_run]
            if failed:
                # only when nothing was computed now (the interval was committed earlier and
                # the checks changed since): the committed values are not pushed online
                raise CheckFailed(failed)
            # nothing is missing offline now: this call only pushes what is pending online
            pushed = materialize(workspace, [feature], first, stop, engine=artifact.engine)
            online = next(r for r in pushed if r.feature == feature).online
            if online is not None:
                stats["online_rows"] = getattr(online, "rows", None)
        return TaskOutcome(
            handle.id, feature, task.version, first, stop, "success", handle.rows or 0,
            bool(result.intervals), stats, [r.to_json() for r in handle.checks],
        )  # fmt: skip
    finally:
        workspace.close()


class BeforeStartError(FsqlError):
    """A pipeline task asked for an interval before its pipeline's start (or after its end)."""


def check_after_start(artifact: PipelineArtifact, feature: str, start: datetime,
                      end: datetime) -> None:  # fmt: skip
    """Refuse an interval that starts before the pipeline's start or at/after its end (nothing
    is recorded): Airflow itself never schedules one, so only a task run by hand can ask."""
    begin = as_utc(artifact.start_date)
    finish = as_utc(artifact.end_date) if artifact.end_date else None
    if finish is not None and as_utc(start) >= finish:
        raise BeforeStartError(
            f"the interval [{as_utc(start).isoformat()}, {as_utc(end).isoformat()}) of {feature} "
            f"starts at or after pipeline {artifact.pipeline_id}'s end {finish.isoformat()}: the "
            "pipeline computes nothing after its end. Compute later ticks with `fsql materialize "
            f"{feature} --start {finish.date().isoformat()} --end ...`, or create the pipeline "
            "again with a later --end (or none)"
        )
    if as_utc(start) >= begin:
        return
    raise BeforeStartError(
        f"the interval [{as_utc(start).isoformat()}, {as_utc(end).isoformat()}) of {feature} "
        f"starts before pipeline {artifact.pipeline_id}'s start {begin.isoformat()}: the "
        "pipeline computes only from its start (Airflow runs no task for an earlier logical "
        "date). Compute earlier ticks with `fsql materialize "
        f"{feature} --start {as_utc(start).date().isoformat()} --end "
        f"{begin.date().isoformat()}`, or create the pipeline again with --start "
        f"{as_utc(start).date().isoformat()}"
    )


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
            artifact, feature, as_utc(start), as_utc(end),
            force=bool(conf.get("force", False)),
            trigger="airflow",
            external_id=context.get("run_id"),
            try_number=getattr(ti, "try_number", None),
        )  # fmt: skip
    except (CheckFailed, StaleVersionError, BeforeStartError) as exc:
        # retrying cannot fix bad values, a stale deploy or an interval before the start:
        # fail the task without retries
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from exc
    print(
        f"fsql: {feature} v{outcome.version} [{outcome.start.isoformat()}, "
        f"{outcome.end.isoformat()}): {outcome.status}, {outcome.rows} rows"
        + ("" if outcome.computed else ' (already materialized; conf {"force": true} recomputes)')
    )
    return outcome.to_json()


__all__ = [
    "TaskOutcome",
    "artifact_config",
    "config_section_values",
    "interval_ending_at",
    "run_airflow_task",
    "run_feature_interval",
]
