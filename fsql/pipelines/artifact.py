"""The compiled plan artifact: everything a generated DAG needs, frozen into one JSON file.

``fsql pipeline create`` resolves the features (sets expanded, inputs added, versions pinned)
against the registry once and writes the result next to the DAG file. Airflow parses DAG files
often and in many processes; reading one small JSON file keeps that cheap and independent of
the registry and the SQL files, and pins exactly which feature versions the DAG materializes.

The file name carries the artifact's fingerprint (``fsql_<name>.plan-<fp>.json``), and the DAG
file names the plan it belongs to: deploying writes the new plan first, then replaces the DAG
file atomically, so a parser never sees a DAG file with a plan of another deploy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from fsql.errors import FsqlError
from fsql.language.checks import Check

FORMAT_VERSION = 1
PLAN_SUFFIX = ".json"

Engine = Literal["duckdb", "spark"]


@dataclass(frozen=True)
class FeatureTask:
    """One task of a pipeline: materialize one feature version for a run's interval."""

    feature: str
    version: int
    fingerprint: str
    #: the feature's cadence (EVERY) in seconds; its ticks are whole multiples since the epoch
    every_seconds: int
    #: features of this pipeline this one reads (its upstream tasks)
    upstream: tuple[str, ...] = ()
    description: str | None = None
    entity: str = ""
    online: bool = True
    checks: tuple[Check, ...] = ()

    @property
    def every(self) -> timedelta:
        return timedelta(seconds=self.every_seconds)

    @property
    def task_id(self) -> str:
        return task_id_for(self.feature)

    def to_json(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "version": self.version,
            "fingerprint": self.fingerprint,
            "every_seconds": self.every_seconds,
            "upstream": list(self.upstream),
            "description": self.description,
            "entity": self.entity,
            "online": self.online,
            "checks": [c.to_json() for c in self.checks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureTask:
        return cls(
            feature=data["feature"],
            version=int(data["version"]),
            fingerprint=data["fingerprint"],
            every_seconds=int(data["every_seconds"]),
            upstream=tuple(data.get("upstream", ())),
            description=data.get("description"),
            entity=data.get("entity", ""),
            online=bool(data.get("online", True)),
            checks=tuple(Check.from_json(c) for c in data.get("checks", ())),
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Airflow retries: ``retries`` more tries, the delay doubling from ``delay_seconds`` up to
    ``max_delay_seconds``; each try may run ``timeout_seconds`` (the task's
    ``execution_timeout``: a hung engine or a cluster without executors fails the try, which is
    then retried, instead of holding the slot forever)."""

    retries: int = 2
    delay_seconds: float = 60.0
    exponential_backoff: bool = True
    max_delay_seconds: float = 1800.0
    timeout_seconds: float = 7200.0

    def to_json(self) -> dict[str, Any]:
        return {
            "retries": self.retries,
            "delay_seconds": self.delay_seconds,
            "exponential_backoff": self.exponential_backoff,
            "max_delay_seconds": self.max_delay_seconds,
            "timeout_seconds": self.timeout_seconds,
        }


@dataclass(frozen=True)
class PipelineArtifact:
    """A pipeline: its schedule, the stores it writes and one task per feature.

    ``schedule`` is a cron expression (``CronDataIntervalTimetable``) or, when the cadence has
    no exact cron form (e.g. every 2 days, counted from the epoch), ``None`` with
    ``interval_seconds`` set (a fixed-delta timetable anchored at ``start_date``, itself on a
    tick). Either way every run has a real data interval [start, end), also for manual runs and
    ``airflow dags test``.

    ``config`` holds the store settings the pipeline was created with (``fsql.toml`` shaped:
    registry, offline_store, online_store, compute; paths inside the repo relative to it);
    ``FSQL_*`` variables in the worker's environment still override them. ``repo`` is written
    relative to the DAGs folder (``..`` for the default ``<repo>/dags``), so a plan pins no
    absolute path of the machine that wrote it; ``FSQL_REPO`` on a worker overrides it.
    """

    name: str
    repo: str
    engine: Engine
    tasks: tuple[FeatureTask, ...]
    schedule: str | None
    interval_seconds: int | None
    start_date: datetime
    catchup: bool = True
    #: no run after this instant (Airflow's end_date: the last data interval ends here)
    end_date: datetime | None = None
    max_active_runs: int = 1
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    tags: tuple[str, ...] = ()
    feature_set: str | None = None
    config: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def dag_id(self) -> str:
        return dag_id_for(self.name)

    @property
    def pipeline_id(self) -> str:
        """The id users and the API see (the Airflow DAG id)."""
        return self.dag_id

    def task(self, feature: str) -> FeatureTask:
        for task in self.tasks:
            if task.feature == feature:
                return task
        raise FsqlError(
            f"pipeline {self.pipeline_id} has no task for feature {feature}; it has "
            f"{', '.join(t.feature for t in self.tasks)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "name": self.name,
            "pipeline_id": self.pipeline_id,
            "repo": self.repo,
            "engine": self.engine,
            "schedule": self.schedule,
            "interval_seconds": self.interval_seconds,
            "start_date": self.start_date.isoformat(),
            **({"end_date": self.end_date.isoformat()} if self.end_date else {}),
            "catchup": self.catchup,
            "max_active_runs": self.max_active_runs,
            "retry": self.retry.to_json(),
            "tags": list(self.tags),
            "feature_set": self.feature_set,
            "config": {k: dict(v) for k, v in self.config.items()},
            "tasks": [t.to_json() for t in self.tasks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PipelineArtifact:
        if data.get("format_version") != FORMAT_VERSION:
            raise FsqlError(
                f"plan format {data.get('format_version')!r} is not supported by this fsql "
                f"(expected {FORMAT_VERSION}); run `fsql pipeline create` again"
            )
        return cls(
            name=data["name"],
            repo=data["repo"],
            engine=data["engine"],
            tasks=tuple(FeatureTask.from_json(t) for t in data["tasks"]),
            schedule=data.get("schedule"),
            interval_seconds=data.get("interval_seconds"),
            start_date=datetime.fromisoformat(data["start_date"]),
            end_date=datetime.fromisoformat(data["end_date"]) if data.get("end_date") else None,
            catchup=bool(data.get("catchup", True)),
            max_active_runs=int(data.get("max_active_runs", 1)),
            retry=RetryPolicy(**data.get("retry", {})),
            tags=tuple(data.get("tags", ())),
            feature_set=data.get("feature_set"),
            config=data.get("config", {}),
        )

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n"

    @property
    def fingerprint(self) -> str:
        """Hash of the whole plan: equal plans deploy as a no-op."""
        return hashlib.sha256(self.dumps().encode()).hexdigest()[:12]

    def plan_filename(self) -> str:
        return f"{self.dag_id}.plan-{self.fingerprint}{PLAN_SUFFIX}"


def load_artifact(path: str | Path) -> PipelineArtifact:
    """Read a plan file; a clear error when it is missing or not a plan."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FsqlError(
            f"pipeline plan {path} is missing; the DAG file and its plan are written together "
            "by `fsql pipeline create`: run it again"
        ) from None
    except json.JSONDecodeError as exc:
        raise FsqlError(f"pipeline plan {path} is not valid JSON ({exc})") from None
    artifact = PipelineArtifact.from_json(data)
    if not os.path.isabs(artifact.repo):
        # written relative to the DAGs folder (portable plans): resolve against this file
        repo = os.path.normpath(os.path.join(path.parent.resolve(), artifact.repo))
        artifact = dataclasses.replace(artifact, repo=repo)
    return artifact


_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def dag_id_for(name: str) -> str:
    """``fsql_<name>``, with characters Airflow does not allow in ids replaced by ``_``."""
    return "fsql_" + _UNSAFE.sub("_", name)


def task_id_for(feature: str) -> str:
    return _UNSAFE.sub("_", feature)
