"""The Spark engine: runs the Spark SQL that :mod:`fsql.compile` generates for the ``spark``
target, on ``local[N]`` or a real cluster (``spark://host:7077``, ``compute.spark_master``).

Relations are Spark temporary views. How each kind of input is read (no source or timeline
byte passes through the driver):

- local Parquet sources and committed timeline files: read by Spark itself (executors read the
  files, so on a cluster the paths must be visible to every worker: a shared filesystem);
  Parquet nanosecond timestamps (what pandas writes), which Spark cannot read as timestamps,
  are read as integers and converted to microsecond ``TIMESTAMP``;
- CSV sources, and Parquet on S3: the driver lists the files, and tasks read them through
  pyarrow (:mod:`fsql.engines.spark_io`, ``mapInArrow`` over a DataFrame of paths) with the
  DuckDB engine's dataset options: byte-for-byte the same CSV parsing, S3 without extra jars.
  These reads are cached for the run (several features and intervals share one read);
- with ``[compute] spark_s3 = "s3a"``, Parquet on S3 is read by Spark's own reader on
  ``s3a://`` paths (needs ``hadoop-aws`` matching Spark's Hadoop, 3.5.0 for Spark 4.3, and
  the AWS SDK bundle on the cluster's classpath; not available here);
- Arrow tables (training-set spines): ``createDataFrame`` from Arrow.

Every timestamp is normalized to Spark's ``TIMESTAMP`` (an instant) with the session time zone
set to UTC, so naive timestamps are UTC instants, as on DuckDB. Results come back as Arrow via
``DataFrame.toArrow()``; ``write_partitioned`` writes hive-partitioned Parquet with
microsecond timestamps (never Spark's default INT96) and removes Spark's ``_SUCCESS`` and
``.crc`` side files, so the staging directory holds only data files for the store to commit.
On a cluster master the executors cannot see the driver's local staging directory: the
result (change rows) comes back as Arrow and the driver writes the same layout with pyarrow.

pyspark is imported only in this module; without it, :class:`~fsql.errors.MissingExtraError`
says to install ``fsql[spark]``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fsql.compile.target import SPARK, Target
from fsql.engines.base import Engine
from fsql.engines.spark_io import FileScan, s3a_conf, s3a_path
from fsql.errors import ComputeError
from fsql.extras import require
from fsql.secrets import redact
from fsql.stores.files import SourceFiles, TimelineFiles

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from fsql.config import Config

#: Spark SQL settings every fsql session runs with (runtime settings: applied to a reused
#: session too). The generated SQL relies on UTC; INT96 timestamps would not round-trip.
SESSION_SQL_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Parquet TIMESTAMP(NANOS) columns are read as BIGINT nanoseconds and converted by us;
    # without this Spark refuses the file ("Illegal Parquet type: INT64 (TIMESTAMP(NANOS))").
    "spark.sql.legacy.parquet.nanosAsLong": "true",
    "spark.sql.sources.partitionOverwriteMode": "static",
}


T = TypeVar("T")

#: the thread-local properties ``SparkContext.setJobGroup`` sets
_JOB_GROUP_PROPERTIES = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")


def _import_pyspark() -> Any:
    return require("pyspark.sql", "spark")


def default_shuffle_partitions(master: str) -> int:
    """``local[N]`` → 2·N (at least 2); clusters keep a modest 8: fsql's jobs are per feature
    and Spark's default of 200 tiny tasks costs more than it saves at this scale."""
    if master.startswith("local"):
        inner = master[master.find("[") + 1 : master.find("]")] if "[" in master else "1"
        first = inner.split(",")[0].strip()
        cores = (os.cpu_count() or 2) if first in ("*", "") else int(first)
        return max(2, 2 * cores)
    return 8


def build_session(
    master: str,
    *,
    app_name: str = "fsql",
    executor_memory: str | None = None,
    extra_conf: dict[str, str] | None = None,
) -> Any:
    """Start (or reuse) the process's SparkSession for ``master`` with fsql's settings.

    One Python process holds one SparkContext: if a session for another master is already
    running, this raises :class:`ComputeError` instead of silently running on the wrong one.
    """
    sql = _import_pyspark()
    active = _running_session(sql)
    if active is not None:
        running = active.sparkContext.master
        if running != master:
            raise ComputeError(
                f"a Spark session for master {running!r} is already running in this process; "
                f"compute.spark_master is {master!r}. One process can hold one SparkContext: "
                "use the same master, or run fsql in a separate process"
            )
        for key, value in SESSION_SQL_CONF.items():
            active.conf.set(key, value)
        return active
    # Python workers must use this interpreter (the one with fsql's dependencies installed).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        sql.SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(default_shuffle_partitions(master)))
    )
    if master.startswith("local"):
        # Nothing outside this machine needs to reach a local driver.
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    if executor_memory:
        builder = builder.config("spark.executor.memory", executor_memory)
    # Independent features run as concurrent jobs (one thread each): FAIR shares the executors
    # between them (a pool per feature, :meth:`SparkEngine.feature_scope`) instead of FIFO,
    # where a long job would hold every core until it ends.
    builder = builder.config("spark.scheduler.mode", "FAIR")
    for key, value in {**SESSION_SQL_CONF, **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    for key, value in SESSION_SQL_CONF.items():
        session.conf.set(key, value)
    return session


def _running_session(sql: Any) -> Any | None:
    """The process's running SparkSession, if any.

    ``SparkSession.getActiveSession()`` is per thread: from a worker thread (the async API runs
    engines in ``asyncio.to_thread``) it says "none" while the process's SparkContext is running,
    and an engine would then think it started, and later stop, a session it only borrowed.
    """
    active = sql.SparkSession.getActiveSession()
    if active is not None:
        return active
    from pyspark import SparkContext

    # a private attribute, but the only process-wide signal
    if SparkContext._active_spark_context is None:
        return None
    return sql.SparkSession.builder.getOrCreate()


class SparkEngine(Engine):
    """A SparkSession plus the temporary views registered on it."""

    name: ClassVar[str] = "spark"
    target: ClassVar[Target] = SPARK
    #: the features of one level run in threads ([compute] spark_parallel_features), each
    #: submitting its own jobs. What that relies on: PySpark's pinned-thread mode (the
    #: default), where job groups and scheduler pools are local properties of each thread, so
    #: the watcher of one feature's jobs cancels only its group; relations are registered and
    #: dropped (and ``_cached``/``_views`` changed) only between levels, by the calling thread;
    #: every interval writes its own staging directory.
    SUPPORTS_PARALLEL_FEATURES: ClassVar[bool] = True

    def __init__(
        self,
        session: Any,
        *,
        owns_session: bool = False,
        idle_timeout: float | None = 120.0,
        job_timeout: float | None = None,
        s3: str = "pyarrow",
        parallel_features: int = 4,
    ):
        self._sql = _import_pyspark()
        self.session = session
        #: see [compute] spark_idle_timeout / spark_job_timeout and :meth:`_watched`
        self.idle_timeout = idle_timeout
        self.job_timeout = job_timeout
        for key, value in SESSION_SQL_CONF.items():
            session.conf.set(key, value)
        #: stop the session on close: only when this engine started it, never a shared one
        self._owns_session = owns_session
        self._views: set[str] = set()
        #: [compute] spark_s3: "pyarrow" (tasks read S3 through pyarrow) or "s3a" (Spark's
        #: own reader with s3a:// paths; needs hadoop-aws on the cluster's classpath)
        self.s3 = s3
        #: frames read by tasks and cached for the run, by relation (unpersisted on unregister)
        self._cached: dict[str, Any] = {}
        #: executors see the driver's local staging directory only on a local master
        self.shared_staging = str(session.sparkContext.master).startswith("local")
        #: features materialized at once; 1 without pinned threads (PYSPARK_PIN_THREAD=false
        #: shares job groups between Python threads: a cancel could hit another feature)
        self.parallel_features = max(1, parallel_features) if _pinned_threads() else 1
        #: the feature whose jobs the current thread submits (see :meth:`feature_scope`)
        self._scope = threading.local()

    @classmethod
    def from_config(cls, config: Config) -> SparkEngine:
        sql = _import_pyspark()
        started_here = _running_session(sql) is None
        session = build_session(
            config.compute.spark_master, executor_memory=config.compute.executor_memory
        )
        return cls(
            session, owns_session=started_here, idle_timeout=config.compute.spark_idle_timeout,
            job_timeout=config.compute.spark_job_timeout, s3=config.compute.spark_s3,
            parallel_features=config.compute.spark_parallel_features,
        )  # fmt: skip

    # -- relations -------------------------------------------------------------------------

    def register_source(self, relation: str, files: SourceFiles) -> None:
        local = files.local_paths()
        what = f"source {files.name}"
        if not files.paths:
            frame = self._arrow_frame(files.schema.empty_table(), what=what)
        elif files.format == "parquet" and local is not None:
            frame = self._read_parquet(list(local), files.schema, what=what)
        elif files.format == "parquet" and self.s3 == "s3a":
            frame = self._read_parquet_s3a(files.paths, files.filesystem, files.schema, what=what)
        else:  # CSV anywhere (pyarrow's parser, as on DuckDB), Parquet on S3
            scan = FileScan.of(files.format, files.schema, files.filesystem, what)
            frame = self._task_read(relation, files.paths, scan)
        self._create_view(relation, frame)

    def register_timeline(self, relation: str, files: TimelineFiles) -> None:
        local = files.local_paths()
        what = f"timeline of {files.feature} v{files.version}"
        if not files.paths:
            frame = self._arrow_frame(files.schema.empty_table(), what=what)
        elif local is not None:
            frame = self._read_parquet(list(local), files.schema, what=what)
        elif self.s3 == "s3a":
            frame = self._read_parquet_s3a(files.paths, files.filesystem, files.schema, what=what)
        else:
            scan = FileScan.of("parquet", files.schema, files.filesystem, what)
            frame = self._task_read(relation, files.paths, scan)
        self._create_view(relation, frame)

    def _task_read(self, relation: str, paths: tuple[str, ...], scan: FileScan) -> Any:
        """A DataFrame whose tasks read ``paths`` (one file per partition) through pyarrow:
        only the list of paths leaves the driver. Cached for the run (every feature and
        interval reading the relation reuses it; unpersisted when it is unregistered)."""
        types = self._sql.types
        listing = self.session.sparkContext.parallelize(
            [(path,) for path in paths], numSlices=len(paths)
        )
        schema = types.StructType([types.StructField("path", types.StringType(), False)])
        frame = self.session.createDataFrame(listing, schema).mapInArrow(
            scan.read, self._spark_schema(scan.output_schema())
        )
        frame = frame.persist(require("pyspark", "spark").StorageLevel.MEMORY_AND_DISK)
        self._cached[relation] = frame
        return frame

    def s3a_settings(self, filesystem: pafs.FileSystem) -> dict[str, str]:
        """The Hadoop ``fs.s3a.*`` settings (without the ``spark.hadoop.`` prefix) that
        ``spark_s3 = "s3a"`` sets for ``filesystem``."""
        return {k[len("spark.hadoop.") :]: v for k, v in s3a_conf(filesystem).items()}

    def _read_parquet_s3a(
        self, paths: tuple[str, ...], filesystem: pafs.FileSystem, schema: pa.Schema, *,
        what: str,
    ) -> Any:  # fmt: skip
        """Spark's own Parquet reader on ``s3a://`` paths (hadoop-aws on the classpath)."""
        hadoop = self.session.sparkContext._jsc.hadoopConfiguration()
        for key, value in self.s3a_settings(filesystem).items():
            hadoop.set(key, value)
        file_schema = pq.read_schema(paths[0], filesystem=filesystem)
        return self._read_parquet(
            [s3a_path(p) for p in paths], schema, what=what, file_schema=file_schema
        )

    def register_arrow(self, relation: str, table: pa.Table) -> None:
        self._create_view(relation, self._arrow_frame(table, what=f"table {relation}"))

    def unregister(self, relation: str) -> None:
        cached = self._cached.pop(relation, None)
        if cached is not None:
            cached.unpersist()
        if relation in self._views:
            self.session.catalog.dropTempView(relation)
            self._views.discard(relation)

    def _create_view(self, relation: str, frame: Any) -> None:
        self.unregister(relation)
        frame.createOrReplaceTempView(relation)
        self._views.add(relation)

    def _read_parquet(
        self, paths: list[str], schema: pa.Schema, *, what: str,
        file_schema: pa.Schema | None = None,
    ) -> Any:  # fmt: skip
        """Spark reads the files; columns are selected and cast to the declared schema."""

        # The files' own types (from the footer of the first file): which timestamp columns
        # are stored as nanoseconds and so arrive as BIGINT under nanosAsLong.
        file_schema = file_schema if file_schema is not None else pq.read_schema(paths[0])
        try:
            frame = self.session.read.parquet(*paths)
        except Exception as exc:
            hint = ""
            if paths[0].startswith("s3a://"):
                hint = (
                    " ([compute] spark_s3 = \"s3a\" needs the hadoop-aws jar matching Spark's "
                    "Hadoop and the AWS SDK bundle on the cluster's classpath; without them use "
                    "spark_s3 = \"pyarrow\")"
                )
            raise ComputeError(
                f"Spark could not read the {what} ({paths[0]} ...): {redact(_first_line(exc))}"
                f"{hint}"
            ) from exc
        spark_types = self._spark_schema(schema)
        columns = []
        for field in spark_types.fields:
            col = self._sql.functions.col(f"`{field.name}`")
            index = file_schema.get_field_index(field.name)
            stored = file_schema.field(index).type if index >= 0 else None
            if stored is not None and getattr(stored, "unit", None) == "ns":
                # nanoseconds since the epoch → microseconds, flooring toward -inf
                col = self._sql.functions.expr(
                    f"timestamp_micros((`{field.name}` - pmod(`{field.name}`, 1000)) div 1000)"
                )
            columns.append(col.cast(field.dataType).alias(field.name))
        return frame.select(*columns)

    def _arrow_frame(self, table: pa.Table, *, what: str) -> Any:
        """A Spark DataFrame from an Arrow table; naive timestamps become UTC instants."""
        table = _naive_timestamps_as_utc(table)
        schema = self._spark_schema(table.schema)
        try:
            if table.num_rows == 0:
                return self.session.createDataFrame([], schema)
            return self.session.createDataFrame(table, schema=schema)
        except Exception as exc:
            raise ComputeError(f"Spark could not load the {what}: {exc}") from exc

    def _spark_schema(self, schema: pa.Schema) -> Any:
        from pyspark.sql.pandas.types import from_arrow_schema

        # prefer_timestamp_ntz=False: every timestamp is an instant (TIMESTAMP, not _NTZ)
        return from_arrow_schema(schema, prefer_timestamp_ntz=False)

    # -- running SQL -----------------------------------------------------------------------

    def _frame(self, sql: str) -> Any:
        try:
            return self.session.sql(sql)
        except Exception as exc:
            raise ComputeError(f"Spark failed: {_first_line(exc)}\nSQL:\n{sql}") from exc

    def query(self, sql: str) -> pa.Table:
        frame = self._frame(sql)
        table = self._watched(frame.toArrow, sql)
        return _strip_non_null(table)

    def write_partitioned(self, sql: str, directory: str, partition_by: str) -> None:
        """On a local master Spark's writer puts the files into ``directory`` itself; on a
        cluster the executors cannot see the driver's local staging directory, so the result
        (change rows: proportional to what changed, not to the input) comes back as Arrow and
        the driver writes it with pyarrow, in the same layout."""
        frame = self._frame(sql)
        if not self.shared_staging:
            table = _strip_non_null(self._watched(frame.toArrow, sql))
            _write_hive(table, directory, partition_by)
            return
        functions = self._sql.functions
        # one task per partition value → one file per date directory
        writer = (
            frame.repartition(functions.col(partition_by))
            .write.mode("errorifexists")
            .partitionBy(partition_by)
            .option("compression", "zstd")
        )
        self._watched(lambda: writer.parquet(directory), sql)
        _remove_side_files(Path(directory))

    @contextmanager
    def feature_scope(self, feature: str) -> Iterator[None]:
        """This thread's jobs run in the scheduler pool ``fsql-<feature>`` (with
        ``spark.scheduler.mode=FAIR``, set by :func:`build_session`, concurrent features share
        the executors evenly; a FIFO session ignores pools) and are described as the feature's
        (the Spark UI's job list says which feature a job computes)."""
        context = self.session.sparkContext
        context.setLocalProperty("spark.scheduler.pool", f"fsql-{feature}")
        self._scope.feature = feature
        try:
            yield
        finally:
            self._scope.feature = None
            context.setLocalProperty("spark.scheduler.pool", None)

    def _watched(self, action: Callable[[], T], sql: str) -> T:
        """Run ``action`` (which starts Spark jobs) in a job group of its own, watched: when
        no task of the group has run for ``idle_timeout`` seconds (no executor takes them) or
        the group has run ``job_timeout`` seconds, the group is cancelled and a
        :class:`ComputeError` says why — a dead cluster ends in an error, never a hang."""
        context = self.session.sparkContext
        group = f"fsql-{uuid.uuid4().hex[:12]}"
        # what setJobGroup sets, restored afterwards: a description left behind would label
        # this thread's later jobs (e.g. Spark's file listing) as this feature's
        saved = {key: context.getLocalProperty(key) for key in _JOB_GROUP_PROPERTIES}
        feature = getattr(self._scope, "feature", None)
        # a local property of this thread (pinned-thread mode): concurrent features each
        # have their own group, and cancelling one leaves the others running
        context.setJobGroup(
            group, f"fsql: {feature}" if feature else "fsql", interruptOnCancel=True
        )
        stop = threading.Event()
        reason: list[str] = []
        watcher = threading.Thread(
            target=self._watch, args=(context, group, stop, reason), daemon=True,
            name=f"fsql-spark-watch-{group}",
        )  # fmt: skip
        watcher.start()
        try:
            return action()
        except Exception as exc:
            if reason:
                raise ComputeError(f"Spark job cancelled: {reason[0]}\nSQL:\n{sql}") from exc
            raise ComputeError(f"Spark failed: {_first_line(exc)}\nSQL:\n{sql}") from exc
        finally:
            stop.set()
            watcher.join()
            for key, value in saved.items():
                context.setLocalProperty(key, value)

    def _watch(
        self, context: Any, group: str, stop: threading.Event, reason: list[str]
    ) -> None:
        tracker = context.statusTracker()
        started = idle_since = time.monotonic()
        last_done = -1
        while not stop.wait(0.5):
            now = time.monotonic()
            running = done = waiting = 0
            for job in tracker.getJobIdsForGroup(group):
                info = tracker.getJobInfo(job)
                for stage in info.stageIds if info is not None else ():
                    stage_info = tracker.getStageInfo(stage)
                    if stage_info is not None:
                        running += stage_info.numActiveTasks
                        done += stage_info.numCompletedTasks
                        waiting += max(0, stage_info.numTasks - stage_info.numActiveTasks
                                       - stage_info.numCompletedTasks)  # fmt: skip
            # idle: tasks wait and none runs or completes (driver-side work is not idle)
            if running or not waiting or done != last_done:
                idle_since = now
            last_done = done
            if self.job_timeout is not None and now - started > self.job_timeout:
                reason.append(
                    f"it ran longer than {self.job_timeout:g}s ([compute] spark_job_timeout)"
                )
            elif self.idle_timeout is not None and now - idle_since > self.idle_timeout:
                reason.append(
                    f"no task ran for {self.idle_timeout:g}s: the cluster at "
                    f"{context.master} gave it no executor (are its workers up, with free "
                    "cores and memory?); [compute] spark_idle_timeout sets the wait"
                )
            if reason:
                context.cancelJobGroup(group)
                return

    def close(self) -> None:
        for relation in list(self._views):
            self.unregister(relation)
        if self._owns_session:
            self.session.stop()


def _pinned_threads() -> bool:
    """Whether PySpark runs in pinned-thread mode (each Python thread has its own JVM thread,
    so local properties such as the job group are per thread): the default, unless
    ``PYSPARK_PIN_THREAD=false``."""
    from pyspark import SparkContext

    # py4j's ClientServer (pinned threads) rather than its JavaGateway, as pyspark.util checks
    return type(SparkContext._gateway).__name__ == "ClientServer"


def _first_line(exc: BaseException) -> str:
    """Spark errors carry a JVM stack trace after the message; keep the message."""
    text = str(exc).strip()
    return text.split("\n\tat ", 1)[0].split("\nJVM stacktrace:", 1)[0].strip()


def _naive_timestamps_as_utc(table: pa.Table) -> pa.Table:

    fields = []
    changed = False
    for field in table.schema:
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            field = field.with_type(pa.timestamp(field.type.unit, tz="UTC"))
            changed = True
        fields.append(field)
    return table.cast(pa.schema(fields, metadata=table.schema.metadata)) if changed else table


def _strip_non_null(table: pa.Table) -> pa.Table:
    """Spark marks some result columns NOT NULL; DuckDB never does. Results compare equal
    across engines only when the schemas match, so every field is made nullable."""

    if all(field.nullable for field in table.schema):
        return table
    schema = pa.schema([field.with_nullable(True) for field in table.schema], table.schema.metadata)
    return table.cast(schema)


def _write_hive(table: pa.Table, directory: str, partition_by: str) -> None:
    """``table`` as ``directory/<partition_by>=<value>/part-0.parquet``, one file per value,
    the partition column left out of the files (as Spark's ``partitionBy`` writes them)."""
    os.makedirs(directory, exist_ok=False)
    if table.num_rows == 0:
        return
    keys = table.column(partition_by)
    rest = table.drop_columns([partition_by])
    for value in pc.unique(keys).to_pylist():
        part = rest.filter(pc.equal(keys, pa.scalar(value, keys.type)))
        sub = Path(directory) / f"{partition_by}={value}"
        sub.mkdir()
        pq.write_table(part, sub / "part-0.parquet", compression="zstd")


def _remove_side_files(directory: Path) -> None:
    """Spark's committer leaves ``_SUCCESS`` and Hadoop's ``.*.crc`` checksum files next to
    the data; the offline store must see data files only."""
    for path in directory.rglob("*"):
        if path.is_file() and (path.name.startswith(("_", ".")) or path.suffix == ".crc"):
            path.unlink()
