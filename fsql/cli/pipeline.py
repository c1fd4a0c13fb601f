"""Pipeline commands: ``fsql pipeline create``, ``fsql pipeline status`` and ``fsql status``.

``pipeline create`` writes an Airflow DAG file and its compiled plan into a DAGs folder
(docs/pipelines.md); ``pipeline status`` reports one pipeline's latest runs and metrics;
``status`` is the monitoring table of every feature: freshness, last run, checks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from fsql.cli import CliContext, data_row, echo_json, pass_cli, print_table, styled
from fsql.cli.context import open_workspace
from fsql.compute.late_data import detect_late_data
from fsql.compute.monitor import feature_status
from fsql.compute.runs import deployed_pipelines
from fsql.errors import InstantSyntaxError
from fsql.extras import require
from fsql.intervals import format_interval, parse_instant
from fsql.pipelines.artifact import PipelineArtifact, RetryPolicy, load_artifact
from fsql.pipelines.manager import FeaturePipelineManager, deployed_plan_of
from fsql.secrets import redact

if TYPE_CHECKING:
    from fsql.compute.monitor import FeatureStatus

STATUS_STYLE = {"fresh": "green", "late": "yellow", "stale": "yellow", "never": "dim"}
RUN_STYLE = {"success": "green", "failed": "bold red", "running": "cyan", "skipped": "dim"}


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_instant(value)
    except InstantSyntaxError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@click.group()
def pipeline() -> None:
    """Schedule feature materialization with Airflow: create DAGs, list them, report status."""


@pipeline.command("create")
@click.argument("features", nargs=-1)
@click.option(
    "--set", "feature_set", metavar="NAME", help="Schedule the features of a feature set."
)
@click.option(
    "--dags-folder",
    type=click.Path(file_okay=False),
    help="Airflow's DAGs folder to write into (default: [scheduler] dags_folder).",
)
@click.option(
    "--engine",
    type=click.Choice(["duckdb", "spark"]),
    help="Engine the tasks run on (default: [compute] engine); spark submits to "
    "[compute] spark_master.",
)
@click.option(
    "--schedule",
    metavar="CRON",
    help="Cron schedule (UTC) instead of the one derived from the features' EVERY.",
)
@click.option("--name", help="Pipeline name (the DAG id is fsql_<name>).")
@click.option(
    "--start",
    metavar="DATE",
    help="First data interval's start: runs from here on are backfilled (catchup). "
    "Default: the interval that just closed.",
)
@click.option(
    "--end",
    metavar="DATE",
    help="No run after this instant: the last data interval ends here (a bounded backfill "
    "with --start). Default: none.",
)
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True,
              help="Retries per task, with exponential backoff.")  # fmt: skip
@click.option("--retry-delay", type=click.FloatRange(0), default=60.0, show_default=True,
              metavar="SECONDS", help="Delay before the first retry (doubles each retry).")  # fmt: skip
@click.option("--task-timeout", type=click.FloatRange(min=1), default=7200.0, show_default=True,
              metavar="SECONDS", help="How long one try of a task may run before it fails.")  # fmt: skip
@click.option("--max-active-runs", type=click.IntRange(1), default=1, show_default=True,
              help="DAG runs allowed at once.")  # fmt: skip
@click.option("--no-catchup", is_flag=True, help="Do not backfill intervals missed since --start.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_cli
def create(
    cli: CliContext,
    features: tuple[str, ...],
    feature_set: str | None,
    dags_folder: str | None,
    engine: str | None,
    schedule: str | None,
    name: str | None,
    start: str | None,
    end: str | None,
    retries: int,
    retry_delay: float,
    task_timeout: float,
    max_active_runs: int,
    no_catchup: bool,
    as_json: bool,
) -> None:
    """Write an Airflow DAG that materializes FEATURES (default: all) and their inputs.

    One task per feature, edges from the lineage graph, scheduled by the features' EVERY. Running
    it again with unchanged definitions changes nothing; a new feature version updates the DAG.
    """

    if schedule is not None:
        # a cron schedule is checked (and later run) with croniter, part of the airflow extra
        require("croniter", "airflow")
    manager = FeaturePipelineManager(open_workspace(cli))
    deployment = manager.deploy_pipeline(
        list(features) or None,
        dags_folder=dags_folder,
        feature_set=feature_set,
        name=name,
        engine=engine,
        schedule=schedule,
        start=_parse_time(start, "--start"),
        end=_parse_time(end, "--end"),
        retry=RetryPolicy(retries=retries, delay_seconds=retry_delay, timeout_seconds=task_timeout),
        max_active_runs=max_active_runs,
        catchup=not no_catchup,
    )
    artifact = load_artifact(deployment.plan_file)
    if as_json:
        echo_json({**deployment.to_json(), "plan": artifact.to_json()})
        return
    out = cli.out
    if not deployment.changed:
        out.print(f"Pipeline {deployment.pipeline_id} is up to date: nothing written.", markup=False)
        return
    verb = "Updated" if deployment.previous else "Created"
    out.print(Text.assemble(f"{verb} pipeline ", styled(deployment.pipeline_id, "bold")))
    out.print(f"  DAG file: {deployment.dag_file}", markup=False)
    out.print(f"  plan:     {deployment.plan_file}", markup=False)
    schedule_text = artifact.schedule or f"every {artifact.interval_seconds}s"
    out.print(
        f"  schedule: {schedule_text} (UTC), from {artifact.start_date.isoformat()}"
        + (f" to {artifact.end_date.isoformat()}" if artifact.end_date else "") + ", "
        f"catchup {'on' if artifact.catchup else 'off'}, engine {artifact.engine}",
        markup=False,
    )
    out.print(
        f"  Runs before {artifact.start_date.isoformat()} do nothing: Airflow runs no task for "
        "an earlier logical date (`airflow dags test` of one reports success having run "
        "none), and a task run directly for an earlier interval is refused; compute earlier "
        "ticks with `fsql materialize --start ... --end ...` or create the pipeline with an "
        "earlier --start.",
        markup=False,
    )
    old = {t.feature: t.version for t in deployment.previous.tasks} if deployment.previous else {}

    table = Table(box=None, pad_edge=False)
    for column in ("task", "version", "every", "upstream", "checks"):
        table.add_column(column)
    for task in artifact.tasks:
        version = f"v{task.version}"
        if task.feature in old and old[task.feature] != task.version:
            version = f"v{old[task.feature]} → v{task.version}"
        elif deployment.previous and task.feature not in old:
            version += " (new)"

        data_row(
            table, task.task_id, version, format_interval(task.every),
            ", ".join(task.upstream) or "-", str(len(task.checks)),
        )  # fmt: skip
    print_table(out, table)


@pipeline.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the pipelines as JSON.")
@pass_cli
def pipeline_ls(cli: CliContext, as_json: bool) -> None:
    """The pipelines deployed from this registry: id, features, schedule, DAGs folder."""

    registry = open_workspace(cli).registry
    deployed = deployed_pipelines(registry)
    rows: list[dict[str, Any]] = []
    for item in deployed:
        plan = PipelineArtifact.from_json(item.plan)
        rows.append({
            "pipeline_id": item.pipeline_id,
            "features": [f"{t.feature}@{t.version}" for t in plan.tasks],
            "schedule": plan.schedule or f"every {plan.interval_seconds}s",
            "engine": plan.engine,
            "start_date": plan.start_date.isoformat(),
            "dags_folder": item.dags_folder,
            "plan_fingerprint": item.plan_fingerprint,
            "deployed_at": item.deployed_at.isoformat(),
            "deployed_by": item.deployed_by,
        })  # fmt: skip
    if as_json:
        echo_json(rows)
        return
    if not rows:
        cli.out.print("No pipelines deployed yet: `fsql pipeline create` makes one.", markup=False)
        return

    table = Table(box=None, pad_edge=False)
    for column in ("pipeline", "tasks", "schedule", "engine", "dags folder", "deployed"):
        table.add_column(column)
    for row in rows:
        data_row(
            table, row["pipeline_id"], str(len(row["features"])), row["schedule"], row["engine"],
            row["dags_folder"], row["deployed_at"][:19].replace("T", " "),
        )  # fmt: skip
    print_table(cli.out, table)


@pipeline.command("status")
@click.argument("pipeline_id")
@click.option("--limit", type=click.IntRange(1), default=5, show_default=True,
              help="How many of the latest runs to show.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_cli
def pipeline_status(cli: CliContext, pipeline_id: str, limit: int, as_json: bool) -> None:
    """Latest runs of PIPELINE_ID (from Airflow's API if configured, else fsql's records) and
    each feature's freshness, last run and checks."""

    status = FeaturePipelineManager(open_workspace(cli)).get_pipeline_status(pipeline_id, limit=limit)
    if as_json:
        echo_json(status.to_json())
        return
    out = cli.out
    style = RUN_STYLE.get(status.status, "")
    out.print(Text.assemble(
        f"Pipeline {status.pipeline_id}: ", styled(status.status, style),
        f" (runs from {status.source})",
    ))  # fmt: skip
    for run in status.runs:
        tasks = ", ".join(f"{k}={v['state']}" for k, v in run["tasks"].items())
        start, end = run["data_interval_start"], run["data_interval_end"]
        # a manual or externally triggered run has no data interval of its own: say so
        interval = f"[{start}, {end})" if start and end else "(no data interval: manual run)"
        out.print(f"  {run['run_id']}  {interval}  {run['state']}  {tasks}", markup=False)


def _age(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    seconds = int((now - when).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def _status_row(item: FeatureStatus, now: datetime) -> list[Any]:
    f = item.freshness
    fresh_style = STATUS_STYLE.get(f.status, "")
    freshness = f"stale: {f.stale_reason}" if f.stale_reason else f.status
    if f.behind not in (None, 0):
        freshness += f" ({f.behind} behind)"
    run = item.last_run
    if run is None:
        last_run = Text("-")
    else:
        run_style = RUN_STYLE.get(run.status, "")
        last_run = Text.assemble(
            styled(run.status, run_style), f" {_age(run.finished_at or run.started_at, now)}"
        )
    checks = styled(item.checks_summary, "")
    if any(not c.passed and c.severity == "error" for c in item.checks):
        checks.stylize("red")
    elif any(not c.passed for c in item.checks):
        checks.stylize("yellow")
    return [
        f.feature,
        f"v{f.version}",
        f.last_tick.strftime("%Y-%m-%d %H:%M") if f.last_tick else "-",
        styled(freshness, fresh_style),
        last_run,
        str(run.rows) if run and run.rows is not None else "-",
        checks,
    ]


@click.command("status")
@click.option("--pipeline", "pipeline_id", help="Only runs of this pipeline count as 'last run'.")
@click.option(
    "--at",
    "at",
    metavar="TIME",
    help="Judge freshness as of this UTC time instead of now (e.g. 2024-03-23T06:00).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@pass_cli
def status(cli: CliContext, pipeline_id: str | None, at: str | None, as_json: bool) -> None:
    """Every feature's freshness, last run and checks (from the registry's run records).

    With --pipeline, only that pipeline's features, and only its runs count as 'last run'.
    Sources are listed first to detect late data: a materialized feature whose source got a
    file (or a changed one) since is 'stale: source changed'."""

    now = _parse_time(at, "--at") or datetime.now(UTC)
    registry = open_workspace(cli).registry
    features = None
    if pipeline_id is not None:

        features = [t.feature for t in deployed_plan_of(registry, pipeline_id).tasks]
        pipeline_id = deployed_plan_of(registry, pipeline_id).pipeline_id
    detect_late_data(open_workspace(cli), features, on_error=lambda source, exc: cli.err.print(
        redact(f"Warning: cannot check source {source} for late data: {exc}"), markup=False,
    ))  # fmt: skip
    rows = feature_status(registry, now, features=features, pipeline=pipeline_id)
    if as_json:
        echo_json({"now": now.isoformat(), "features": [r.to_json() for r in rows]})
        return
    if not rows:
        cli.out.print("No features in the registry yet: run `fsql apply` first.")
        return

    table = Table(box=None, pad_edge=False)
    for column in ("feature", "version", "last tick", "freshness", "last run", "rows", "checks"):
        table.add_column(column)
    for item in rows:
        data_row(table, *_status_row(item, datetime.now(UTC)))
    print_table(cli.out, table)


def register(group: click.Group) -> None:
    group.add_command(pipeline)
    group.add_command(status)
