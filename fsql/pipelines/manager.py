"""The original design's FeaturePipelineManager: compile, deploy, monitor, report.

>>> manager = FeaturePipelineManager(Workspace(config))                          # doctest: +SKIP
>>> pipeline_id = manager.create_pipeline(["user_purchase_sum_30d"], dags_folder="dags")
>>> manager.get_pipeline_status(pipeline_id).status                       # doctest: +SKIP
'success'

``create_pipeline`` resolves the features against the registry (feature sets expanded, inputs
added, versions pinned), compiles the plan artifact (:mod:`fsql.pipelines.artifact`), writes
the DAG file and its plan into the DAGs folder (:func:`fsql.pipelines.dag.deploy`; unchanged →
no-op, changed version → updated DAG), and records the deployment in the registry.
``get_pipeline_status`` reads the state of the latest runs from Airflow's REST API when
``[scheduler] airflow_url`` is configured, otherwise from fsql's own run records, plus the
metrics of :mod:`fsql.compute.monitor`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsql.compute.monitor import feature_status
from fsql.compute.runs import RunLog, deployed_pipelines, record_deployment
from fsql.errors import ConfigError, DefinitionError, FsqlError, Problem
from fsql.extras import require
from fsql.intervals import floor_tick
from fsql.language.checks import Check, checks_from_definitions, validate_checks
from fsql.language.definitions import FeatureDef
from fsql.pipelines.airflow_client import AirflowClient
from fsql.pipelines.artifact import (
    FeatureTask,
    PipelineArtifact,
    RetryPolicy,
    dag_id_for,
    load_artifact,
)
from fsql.pipelines.dag import Deployment, cron_for_period, deploy, deployed_plan, pipeline_period
from fsql.pipelines.tasks import config_section_values
from fsql.workspace import Workspace

if TYPE_CHECKING:
    from fsql.compute.monitor import FeatureStatus
    from fsql.config import Config
    from fsql.registry import Registry


def default_name(features: Sequence[str] | None, feature_set: str | None, repo_name: str) -> str:
    """A stable pipeline name: the feature set, the one feature, a hash of several features'
    names (so the same list always gives the same pipeline), or the repo for all features."""
    if feature_set:
        return feature_set
    if not features:
        return repo_name
    if len(features) == 1:
        return features[0]
    digest = hashlib.sha256(",".join(sorted(set(features))).encode()).hexdigest()[:8]
    return f"features_{digest}"


def _check_cron(expression: str) -> None:
    # croniter comes with the airflow extra: without it, say which extra to install
    croniter = require("croniter", "airflow").croniter
    if not croniter.is_valid(expression):
        raise ConfigError(
            f"--schedule {expression!r} is not a cron expression; write five fields, e.g. "
            "'0 * * * *' (hourly) or '0 0 * * *' (daily, UTC)"
        )


def _end_date(start: datetime, end: datetime | None) -> datetime | None:
    """``end`` as a UTC instant after ``start`` (a pipeline runs no interval past it)."""
    if end is None:
        return None
    end = (end if end.tzinfo else end.replace(tzinfo=UTC)).astimezone(UTC)
    if end <= start.astimezone(UTC):
        raise ConfigError(
            f"--end {end.isoformat()} is not after --start {start.astimezone(UTC).isoformat()}: "
            "the pipeline would run nothing"
        )
    return end


def compile_pipeline(
    config: Config,
    registry: Registry,
    features: Sequence[str] | None = None,
    *,
    feature_set: str | None = None,
    name: str | None = None,
    engine: str | None = None,
    schedule: str | None = None,
    start: datetime | None = None,
    catchup: bool = True,
    retry: RetryPolicy | None = None,
    max_active_runs: int = 1,
    checks: Sequence[Check] = (),
    now: datetime | None = None,
    end: datetime | None = None,
) -> PipelineArtifact:
    """Resolve ``features`` (names or feature sets; ``None``: every feature) or ``feature_set``
    against the registry's current definitions into a plan artifact."""

    if features and feature_set:
        raise FsqlError("name features or a feature set (--set), not both")
    engine = engine or config.compute.engine
    if engine not in ("duckdb", "spark"):
        raise ConfigError(f"--engine must be 'duckdb' or 'spark', not {engine!r}")
    analysis = registry.analysis()
    current = registry.current()
    if feature_set is not None:
        set_record = current.get(feature_set)
        if set_record is None or set_record.kind != "feature_set":
            raise DefinitionError(Problem(
                f"no feature set named {feature_set} in the registry; `fsql ls` lists them "
                "(apply the repo first with `fsql apply`)", code="unknown-feature-set"))  # fmt: skip
        roots = analysis.expand([feature_set])
    elif features:
        roots = analysis.expand(features)
    else:
        roots = sorted(analysis.features)
    if not roots:
        raise FsqlError("there are no features to schedule; apply some with `fsql apply` first")
    order = analysis.topological_order(roots)

    declared = checks_from_definitions(r.definition for r in current.values())
    all_checks = [c for c in [*declared, *checks] if c.feature in order]
    validate_checks(all_checks)
    tasks: list[FeatureTask] = []
    for feature in order:
        resolved = analysis.features[feature]
        definition = resolved.definition
        assert isinstance(definition, FeatureDef)
        tasks.append(
            FeatureTask(
                feature=feature,
                version=current[feature].version,
                fingerprint=current[feature].fingerprint,
                every_seconds=int(definition.every.total_seconds()),
                upstream=tuple(sorted(resolved.inputs)),
                description=definition.description,
                entity=definition.entity,
                online=definition.online,
                checks=tuple(c for c in all_checks if c.feature == feature),
            )
        )

    period = pipeline_period([t.every_seconds for t in tasks])
    interval_seconds: int | None = None
    if schedule is not None:
        _check_cron(schedule)
        cron: str | None = schedule
    else:
        cron = cron_for_period(period)
        interval_seconds = None if cron else period
    if start is None:
        # the interval just closed: the first run is due at once and brings the features up to
        # date; earlier intervals are backfills (pass start, or `airflow backfill create`)
        now = now or datetime.now(UTC)
        start = floor_tick(now, period) - timedelta(seconds=period)
    else:
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        if schedule is None:
            start = floor_tick(start.astimezone(UTC), period)

    pipeline_name = name or default_name(
        list(features) if features else None, feature_set, config.repo.name
    )
    tags = ["fsql", f"engine:{engine}"]
    if feature_set:
        tags.append(f"set:{feature_set}")
    return PipelineArtifact(
        name=pipeline_name,
        repo=str(config.repo),
        engine=engine,  # type: ignore[arg-type]
        tasks=tuple(tasks),
        schedule=cron,
        interval_seconds=interval_seconds,
        start_date=start.astimezone(UTC),
        end_date=_end_date(start, end),
        catchup=catchup,
        max_active_runs=max_active_runs,
        retry=retry or RetryPolicy(),
        tags=tuple(tags),
        feature_set=feature_set,
        config=config_section_values(config),
    )


def deployed_plan_of(registry: Registry, pipeline_id: str) -> PipelineArtifact:
    """The plan last deployed for ``pipeline_id`` (its DAG id, or its name)."""

    deployed = {p.pipeline_id: p for p in deployed_pipelines(registry)}
    if pipeline_id not in deployed and dag_id_for(pipeline_id) in deployed:
        pipeline_id = dag_id_for(pipeline_id)  # a pipeline's name works as well as its id
    if pipeline_id not in deployed:
        known = ", ".join(deployed) or "none yet"
        raise FsqlError(
            f"no pipeline {pipeline_id} has been deployed from this registry "
            f"(deployed: {known}); create one with `fsql pipeline create`"
        )
    return PipelineArtifact.from_json(deployed[pipeline_id].plan)


@dataclass(frozen=True)
class PipelineStatus:
    """The state of a pipeline, as in the original design: ``PipelineStatus(status, metrics)``.

    ``status`` is the state of the latest run (``success``, ``failed``, ``running``, ``queued``
    or ``none``); ``runs`` the latest runs (newest first) from Airflow's REST API
    (``source == "airflow"``) or from fsql's run records (``source == "fsql"``); ``metrics``
    per feature freshness, last run, statistics and checks.
    """

    pipeline_id: str
    status: str
    source: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline_id": self.pipeline_id,
            "status": self.status,
            "source": self.source,
            "runs": self.runs,
            "metrics": self.metrics,
        }


def _fsql_runs(registry: Registry, pipeline_id: str, limit: int) -> list[dict[str, Any]]:
    """Pipeline runs reconstructed from fsql's run records: one per Airflow run id, with each
    feature's latest try; the state is failed/running/success from those."""

    groups: dict[str, dict[str, Any]] = {}
    for record in RunLog(registry).runs(pipeline=pipeline_id):
        key = record.external_id or f"fsql-run-{record.id}"
        group = groups.setdefault(
            key, {"run_id": key, "features": {}, "started_at": record.started_at}
        )
        group["features"].setdefault(record.feature, record)
        group["started_at"] = min(group["started_at"], record.started_at)
    runs = []
    for group in sorted(groups.values(), key=lambda g: g["started_at"], reverse=True)[:limit]:
        records = list(group["features"].values())
        states = {r.status for r in records}
        state = "failed" if "failed" in states else "running" if "running" in states else "success"
        runs.append({
            "run_id": group["run_id"],
            "state": state,
            "data_interval_start": min(r.start for r in records).isoformat(),
            "data_interval_end": max(r.end for r in records).isoformat(),
            "started_at": group["started_at"].isoformat(),
            "tasks": {r.feature: {"state": r.status, "try_number": r.try_number,
                                  "rows": r.rows, "error": r.error} for r in records},
        })  # fmt: skip
    return runs


class FeaturePipelineManager:
    """Creates pipelines (Airflow DAGs) for features and reports their status."""

    def __init__(self, workspace: Workspace):
        self.workspace = workspace
        self.config = workspace.config

    def dags_folder(self, dags_folder: str | None = None) -> str:
        folder = dags_folder or self.config.scheduler.dags_folder
        if not folder:
            raise ConfigError(
                "no DAGs folder: pass --dags-folder DIR (dags_folder=... in Python) or set "
                "dags_folder in [scheduler] of fsql.toml (or FSQL_DAGS_FOLDER)"
            )
        return self.config.resolve_path(folder)

    def deploy_pipeline(
        self,
        feature_ids: Sequence[str] | None = None,
        *,
        dags_folder: str | None = None,
        feature_set: str | None = None,
        name: str | None = None,
        engine: str | None = None,
        schedule: str | None = None,
        start: datetime | None = None,
        retry: RetryPolicy | None = None,
        max_active_runs: int = 1,
        catchup: bool = True,
        checks: Sequence[Check] = (),
        end: datetime | None = None,
    ) -> Deployment:
        """Compile and deploy; what changed. Redeploying an unchanged pipeline writes nothing;
        without ``start`` a redeploy keeps the deployed start date."""

        folder = self.dags_folder(dags_folder)
        registry = self.workspace.registry
        artifact = compile_pipeline(
            self.config, registry, feature_ids, feature_set=feature_set, name=name,
            engine=engine, schedule=schedule, start=start, catchup=catchup, retry=retry,
            max_active_runs=max_active_runs, checks=checks, end=end,
        )  # fmt: skip
        # portable: the repo relative to the DAGs folder, not this machine's absolute path
        artifact = replace(artifact, repo=os.path.relpath(self.config.repo.resolve(),
                                                          Path(folder).resolve()))  # fmt: skip
        if start is None:
            previous = deployed_plan(folder, artifact.dag_id)
            if previous is not None and previous.exists():

                old = load_artifact(previous)
                artifact = replace(artifact, start_date=old.start_date)
        deployment = deploy(artifact, folder)
        recorded = {p.pipeline_id: p.plan_fingerprint for p in deployed_pipelines(registry)}
        if deployment.changed or recorded.get(artifact.pipeline_id) != artifact.fingerprint:
            record_deployment(
                registry, artifact.pipeline_id, folder, artifact.fingerprint, artifact.to_json()
            )
        return deployment

    def create_pipeline(self, feature_ids: Sequence[str] | None = None, **options: Any) -> str:
        """Deploy a pipeline for ``feature_ids`` (and everything they read); its id (the DAG id).

        Options: ``dags_folder``, ``feature_set``, ``name``, ``engine``, ``schedule``,
        ``start``, ``end``, ``retry``, ``max_active_runs``, ``catchup``, ``checks`` (see
        :meth:`deploy_pipeline`).
        """
        return self.deploy_pipeline(feature_ids, **options).pipeline_id

    def get_pipeline_status(self, pipeline_id: str, *, limit: int = 5) -> PipelineStatus:
        """State of the latest runs (Airflow REST API if configured, else fsql's records) plus
        per-feature metrics: freshness, last run with its statistics, check results."""

        registry = self.workspace.registry
        plan = deployed_plan_of(registry, pipeline_id)
        pipeline_id = plan.pipeline_id
        features = [t.feature for t in plan.tasks]
        statuses = feature_status(registry, features=features, pipeline=pipeline_id)
        client = AirflowClient.from_config(self.config)
        if client is not None:
            runs = client.dag_runs(pipeline_id, limit=limit)
            source = "airflow"
        else:
            runs = _fsql_runs(registry, pipeline_id, limit)
            source = "fsql"
        status = runs[0]["state"] if runs else "none"
        return PipelineStatus(pipeline_id, status, source, runs, _metrics(plan, statuses))


def _metrics(plan: PipelineArtifact, statuses: list[FeatureStatus]) -> dict[str, Any]:
    late = [s.freshness.feature for s in statuses if s.freshness.status != "fresh"]
    failed_checks = [f"{c.feature}.{c.name}" for s in statuses for c in s.checks if not c.passed]
    return {
        "engine": plan.engine,
        "schedule": plan.schedule or f"every {plan.interval_seconds}s",
        "features": {s.freshness.feature: s.to_json() for s in statuses},
        "late_features": late,
        "failed_checks": failed_checks,
        "rows_last_runs": sum((s.last_run.rows or 0) for s in statuses if s.last_run),
    }
