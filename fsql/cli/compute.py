"""Offline-compute commands: ``compile``, ``materialize`` and ``training-set``.

``fsql compile FEATURE`` prints the SQL an engine would run for one feature; ``fsql materialize``
computes feature timelines into the offline store; ``fsql training-set`` joins features to a
spine file point-in-time correctly. Times are ISO dates or datetimes (without a time zone they
are UTC, docs/semantics.md), ``now``, ``today`` or relative to now (``-7d``, ``+1 day``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

import click
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from fsql.cli import CliContext, echo_json, pass_cli
from fsql.cli.context import open_workspace
from fsql.cli.progress import progress_for
from fsql.compile.plan import build_plan
from fsql.compile.sql import timeline_sql
from fsql.compile.target import get_target
from fsql.compute.jobs import materialize_and_record
from fsql.compute.training import read_spine, training_batches, training_set, valid_times
from fsql.errors import ComputeError, InstantSyntaxError
from fsql.intervals import parse_instant
from fsql.serving.checks import training_notices

ENGINES = click.Choice(["duckdb", "spark"])


def parse_time(text: str) -> datetime:
    """An instant from the command line (:func:`fsql.intervals.parse_instant`)."""
    try:
        return parse_instant(text)
    except InstantSyntaxError as exc:
        raise click.BadParameter(str(exc)) from None


class TimeType(click.ParamType):
    name = "TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        return parse_time(str(value))


TIME = TimeType()


@click.command("compile")
@click.argument("feature")
@click.option(
    "--engine", type=ENGINES, default=None, help="Target engine (default: [compute] engine)."
)
@click.option(
    "--start",
    type=TIME,
    default=None,
    help="First instant of the interval (default: the last tick).",
)
@click.option(
    "--end",
    type=TIME,
    default=None,
    help="End of the interval, exclusive (default: one EVERY after --start).",
)
@pass_cli
def compile_command(
    cli: CliContext, feature: str, engine: str | None, start: datetime | None, end: datetime | None
) -> None:
    """Print the SQL that computes FEATURE's timeline for [--start, --end)."""

    target = get_target(engine or cli.config.compute.engine)
    analysis = open_workspace(cli).registry.analysis()
    [name] = analysis.expand([feature])
    resolved = analysis.features[name]
    plan = build_plan(resolved, analysis.features)
    every = resolved.definition.every
    if start is None:
        now = datetime.now(UTC)
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        start = epoch + ((now - epoch) // every) * every
    if end is None:
        end = start + every
    click.echo(f"-- {name}: ticks in [{start.isoformat()}, {end.isoformat()}) on {target.name}")
    click.echo(timeline_sql(plan, target, start, end, pretty=True) + ";")


@click.command("materialize")
@click.argument("features", nargs=-1)
@click.option("--start", type=TIME, required=True,
              help="First instant to compute (ticks ≥ start): a date/time, now, today or -7d.")
@click.option("--end", type=TIME, required=True,
              help="End, exclusive (ticks < end); past now, the last complete tick is the end.")
@click.option("--engine", type=ENGINES, default=None, help="Engine (default: [compute] engine).")
@click.option("--force", is_flag=True, help="Recompute intervals the ledger already has.")
@click.option("--no-online", is_flag=True, help="Do not push latest values to the online store.")
@click.option("--set", "feature_sets", multiple=True, metavar="NAME",
              help="A feature set to materialize (repeatable), like naming it in FEATURES.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per feature.")
@pass_cli
def materialize_command(
    cli: CliContext,
    features: tuple[str, ...],
    start: datetime,
    end: datetime,
    engine: str | None,
    force: bool,
    no_online: bool,
    feature_sets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Compute FEATURES (default: all; feature sets expand) and their inputs for every tick in
    [--start, --end) into the offline store. Only intervals missing from the ledger run.
    Every feature interval computed is recorded as a run (fsql status, fsql.runs)."""

    if end <= start:
        # a mistyped command, not a failed run: refused before anything is recorded
        raise click.BadParameter(
            f"{end.isoformat()} is not after --start {start.isoformat()}; the interval "
            "[--start, --end) is empty (--end is exclusive: --start 2024-01-01 --end 2024-01-02 "
            "computes one day)",
            param_hint="'--end'",
        )
    with progress_for(cli.err) as progress:
        results = materialize_and_record(
            open_workspace(cli), [*features, *feature_sets] or None, start, end, trigger="cli",
            engine=engine, force=force, online=not no_online, progress=progress,
        )  # fmt: skip
    if as_json:
        echo_json([r.to_json() for r in results])
        return
    for r in results:
        if r.intervals:
            click.echo(
                f"{r.feature} v{r.version}: {r.rows} rows, last tick "
                f"{r.last_tick.isoformat() if r.last_tick else '-'} ({r.seconds:.2f}s) → {r.location}"
            )
        else:
            click.echo(f"{r.feature} v{r.version}: up to date")


@click.command("training-set")
@click.option("--spine", "spine_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Parquet or CSV file: entity keys, a time column, labels.")  # fmt: skip
@click.option("--features", "features", multiple=True,
              help="Feature (or feature set) names, comma-separated; repeat to add more.")  # fmt: skip
@click.option("--set", "feature_set", default=None, help="A feature set to add to --features.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Output file: .parquet (Parquet) or .csv (CSV, with a header).")  # fmt: skip
@click.option("--engine", type=ENGINES, default=None, help="Engine (default: [compute] engine).")
@click.option(
    "--time-column", default="event_time", show_default=True, help="The spine's time column."
)
@pass_cli
def training_set_command(
    cli: CliContext,
    spine_path: str,
    features: tuple[str, ...],
    feature_set: str | None,
    out: str,
    engine: str | None,
    time_column: str,
) -> None:
    """Join features to a spine point-in-time correctly and write the result as Parquet (or
    CSV when --out ends in .csv)."""

    names = [f.strip() for value in features for f in value.split(",") if f.strip()]
    if feature_set:
        names.append(feature_set)
    if not names:
        raise ComputeError("name the features: --features f1,f2 and/or --set NAME")
    writer = _writer(out)  # refused before the join runs
    spine = read_spine(spine_path)
    workspace = open_workspace(cli)
    with progress_for(cli.err) as progress:
        if spine.num_rows > workspace.config.compute.stream_training_rows:
            batches = training_batches(
                workspace, spine, names, engine=engine, time_column=time_column,
                progress=progress,
            )  # fmt: skip
        else:  # small enough to hold: the faster whole-table join, written the same way
            whole = training_set(
                workspace, spine, names, engine=engine, time_column=time_column,
                progress=progress,
            )  # fmt: skip
            batches = iter(whole.to_batches()) if whole.num_rows else iter([_empty(whole)])
        rows, columns = write_batches(batches, out, writer)
    for notice in training_notices(workspace, valid_times(spine, time_column), names):
        cli.err.print(f"Warning: {notice.message}", style="yellow", markup=False)
    click.echo(f"{rows} rows × {columns} columns → {out}")


def _empty(table: pa.Table) -> pa.RecordBatch:
    """A table without rows as one empty batch (``to_batches`` gives none: the file still
    gets the columns)."""
    return pa.RecordBatch.from_pylist([], schema=table.schema)


def write_batches(
    batches: Iterator[pa.RecordBatch], out: str, writer: Callable[[str, pa.Schema], Any]
) -> tuple[int, int]:
    """Write ``batches`` to ``out`` as they come (one batch in memory at a time), through a
    file beside it renamed at the end: a failed join leaves no partial ``out``. The number of
    rows and columns written."""
    partial = f"{out}.partial"
    rows = columns = 0
    sink = None
    try:
        for batch in batches:
            if sink is None:
                sink = writer(partial, batch.schema)
                columns = batch.num_columns
            sink.write_batch(batch)
            rows += batch.num_rows
        if sink is not None:
            sink.close()
            sink = None
            os.replace(partial, out)
    finally:
        if sink is not None:
            sink.close()
        if os.path.exists(partial):
            os.remove(partial)
    return rows, columns


def _writer(out: str) -> Callable[[str, pa.Schema], Any]:
    """How to write ``out``, by its extension: Parquet for ``.parquet``/``.pq``, CSV for
    ``.csv`` (with a header); anything else is a usage error (never Parquet bytes in a file
    named .csv)."""
    suffix = PurePath(out).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pq.ParquetWriter
    if suffix == ".csv":
        return pacsv.CSVWriter
    raise click.BadParameter(
        f"{out} ends in {suffix or 'no extension'}; name a .parquet file (Parquet) or a .csv "
        "file (CSV)",
        param_hint="'--out'",
    )


def register(group: click.Group) -> None:
    group.add_command(compile_command)
    group.add_command(materialize_command)
    group.add_command(training_set_command)
