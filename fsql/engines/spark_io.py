"""Task-side file reading for the Spark engine: the driver lists, the executors read.

The driver turns a :class:`~fsql.stores.files.SourceFiles` or
:class:`~fsql.stores.files.TimelineFiles` into a :class:`FileScan` (paths, format, the declared
Arrow schema and how to open the filesystem) and a one-column DataFrame of paths, one path per
partition; ``mapInArrow`` then runs :meth:`FileScan.read` in the tasks, which open each file
through pyarrow (``S3FileSystem`` or the local filesystem) with exactly the dataset options the
DuckDB engine uses (:meth:`SourceFiles.dataset`: CSV ``ConvertOptions(column_types=schema)``,
the declared schema as the dataset schema), so both engines parse CSV byte-for-byte alike and
no source or timeline byte passes through the driver.

Credentials: an ``S3FileSystem`` built from the default credential chain pickles without keys,
and a worker on another machine may not have the driver's environment. The driver's
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` (when set) are
therefore put into the filesystem options carried by the task closure (pickled with the task,
never in a query plan, a log line or an error message: task errors are passed through
:func:`fsql.secrets.redact` and name only the path).

This module imports no pyspark: its functions run inside Python workers too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs

from fsql.secrets import redact

#: driver environment variables carried to the executors' S3 filesystem (when set)
_AWS_ENV = {
    "access_key": "AWS_ACCESS_KEY_ID",
    "secret_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN",
}


@dataclass(frozen=True)
class FileScan:
    """What a task needs to read files of one source or timeline: picklable, no pyspark."""

    format: Literal["parquet", "csv"]
    schema: pa.Schema
    #: ``("local", {})`` or ``("s3", S3FileSystem options)``
    filesystem: tuple[str, dict[str, Any]] = field(repr=False)
    what: str = ""

    @classmethod
    def of(cls, fmt: Literal["parquet", "csv"], schema: pa.Schema,
           filesystem: pafs.FileSystem, what: str) -> FileScan:  # fmt: skip
        return cls(fmt, schema, filesystem_options(filesystem), what)

    def open_filesystem(self) -> pafs.FileSystem:
        kind, options = self.filesystem
        if kind == "s3":
            return pafs.S3FileSystem(**options)
        return pafs.LocalFileSystem()

    def output_schema(self) -> pa.Schema:
        """The schema of the batches :meth:`read` yields: the declared one with every
        timestamp an instant in microseconds (what Spark's ``TIMESTAMP`` holds)."""
        return pa.schema([pa.field(f.name, _spark_arrow_type(f.type)) for f in self.schema])

    def read(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """``mapInArrow`` function: ``batches`` hold a ``path`` column; yields the rows of every
        file named, cast to :meth:`output_schema`."""
        import pyarrow.dataset as ds  # local: loads pandas when installed

        filesystem = self.open_filesystem()
        target = self.output_schema()
        fmt: Any = "parquet"
        if self.format == "csv":
            fmt = ds.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types=self.schema))
        for batch in batches:
            for path in batch.column("path").to_pylist():
                try:
                    dataset = ds.dataset(
                        [path], schema=self.schema, format=fmt, filesystem=filesystem
                    )
                    for part in dataset.to_batches():
                        yield part.cast(target)
                except Exception as exc:
                    raise RuntimeError(
                        f"fsql could not read {path} ({self.what}): {redact(str(exc))}"
                    ) from None


def filesystem_options(filesystem: pafs.FileSystem) -> tuple[str, dict[str, Any]]:
    """How a task reopens ``filesystem``: the local one, or the S3 one's options with the
    driver's AWS credentials filled in when it was built from the default chain."""
    if filesystem.type_name == "local":
        return ("local", {})
    if filesystem.type_name != "s3":
        raise ValueError(f"the Spark engine reads local or S3 files, not {filesystem.type_name}")
    _, (options,) = filesystem.__reduce__()
    options = dict(options)
    if not options.get("access_key"):
        for key, variable in _AWS_ENV.items():
            if os.environ.get(variable):
                options[key] = os.environ[variable]
    return ("s3", options)


def _spark_arrow_type(arrow: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(arrow):
        return pa.timestamp("us", tz="UTC")
    return arrow


def s3a_path(uri_or_path: str) -> str:
    """``s3://bucket/key`` or ``bucket/key`` (a path inside an ``S3FileSystem``) as the
    ``s3a://`` URI Hadoop's S3A connector reads."""
    if uri_or_path.startswith("s3a://"):
        return uri_or_path
    if uri_or_path.startswith("s3://"):
        return "s3a://" + uri_or_path[len("s3://") :]
    return "s3a://" + uri_or_path.lstrip("/")


def s3a_conf(filesystem: pafs.FileSystem) -> dict[str, str]:
    """The ``spark.hadoop.fs.s3a.*`` settings matching ``filesystem`` (endpoint, region,
    path-style access for a custom endpoint, credentials from the driver's environment)."""
    kind, options = filesystem_options(filesystem)
    if kind != "s3":
        return {}
    conf: dict[str, str] = {}
    prefix = "spark.hadoop.fs.s3a."
    endpoint = options.get("endpoint_override") or ""
    if endpoint:
        scheme = options.get("scheme") or "https"
        conf[prefix + "endpoint"] = f"{scheme}://{endpoint}"
        conf[prefix + "path.style.access"] = "true"
        conf[prefix + "connection.ssl.enabled"] = str(scheme == "https").lower()
    if options.get("region"):
        conf[prefix + "endpoint.region"] = options["region"]
    if options.get("access_key"):
        conf[prefix + "access.key"] = options["access_key"]
        conf[prefix + "secret.key"] = options["secret_key"] or ""
        if options.get("session_token"):
            conf[prefix + "session.token"] = options["session_token"]
            conf[prefix + "aws.credentials.provider"] = (
                "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"
            )
    return conf
