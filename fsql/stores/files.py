"""The files a computation reads: a source's validated files and a feature's committed
timeline files, each with the pyarrow filesystem they live on.

Stores produce them (:mod:`fsql.stores.sources`, :mod:`fsql.stores.offline`); engines bind them
to relation names (:mod:`fsql.engines`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs


@dataclass(frozen=True)
class SourceFileInfo:
    """One source file as a listing sees it (no content read): path, size and modification
    time tell that it changed; ``min_time``, when known, the least event time in it (Parquet
    row-group statistics of the event-time column: footer metadata, not a scan)."""

    path: str
    size: int
    #: nanoseconds since the epoch (S3: LastModified); None when the filesystem gives none
    modified: int | None
    #: None when unknown (CSV, a Parquet file without statistics on the column, not read)
    min_time: datetime | None = None


@dataclass(frozen=True)
class SourceFiles:
    """The files of one source, validated against its declared schema.

    ``paths`` are paths inside ``filesystem`` (for S3: ``bucket/key``; locally: absolute
    paths). ``schema`` is the declared schema as Arrow types; every file has every declared
    column in a type that casts safely to it (checked by :mod:`fsql.stores.sources`).
    """

    name: str
    format: Literal["parquet", "csv"]
    paths: tuple[str, ...]
    filesystem: pafs.FileSystem
    schema: pa.Schema
    #: ``s3://`` or local URI the source was declared with (for messages and Spark)
    uri: str = ""
    #: each path's listing entry, in the order of ``paths`` (what the ledger records)
    files: tuple[SourceFileInfo, ...] = ()

    def local_paths(self) -> tuple[str, ...] | None:
        """The paths as local file paths, or ``None`` when the files are not local."""
        if self.filesystem.type_name == "local":
            return self.paths
        return None

    def dataset(self) -> Any:
        """A :class:`pyarrow.dataset.Dataset` over the files with the declared schema."""
        import pyarrow.dataset as ds  # loads pandas when installed: only when data is read

        fmt: Any = "parquet"
        if self.format == "csv":
            fmt = ds.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types=self.schema))
        return ds.dataset(
            list(self.paths), schema=self.schema, format=fmt, filesystem=self.filesystem
        )


@dataclass(frozen=True)
class TimelineFiles:
    """Committed timeline files of one feature version (from the store's manifest).

    Columns: the entity key columns, ``feature_time`` (UTC tick) and one value column named
    after the feature. ``schema`` is given so that an empty timeline still has its columns.
    """

    feature: str
    version: int
    paths: tuple[str, ...]
    filesystem: pafs.FileSystem
    schema: pa.Schema
    #: merged materialized intervals ``[(start, end), ...]`` (UTC datetimes)
    intervals: tuple[tuple[Any, Any], ...] = field(default=())

    def local_paths(self) -> tuple[str, ...] | None:
        if self.filesystem.type_name == "local":
            return self.paths
        return None

    def dataset(self) -> Any:
        import pyarrow.dataset as ds  # loads pandas when installed: only when data is read

        return ds.dataset(
            list(self.paths), schema=self.schema, format="parquet", filesystem=self.filesystem
        )
