"""The offline store: feature timelines as Parquet, on a local directory or ``s3://bucket/prefix``.

Layout (hive-style, partitioned by feature, version and date)::

    <root>/feature=<name>/version=<n>/_manifest.json
    <root>/feature=<name>/version=<n>/date=2024-01-31/part-<run>-<i>.parquet

Readers use **only the files listed in the manifest**, never a directory listing, which is what
makes writes atomic:

1. an engine writes a run's rows into a *staging* directory (local; inside the store's root for
   a local store so that moving is a rename);
2. :meth:`OfflineStore.commit` moves (or uploads) the staged files to new, unique names in the
   date partitions, rewrites the rows of partly-covered dates that fall outside the run's
   interval into a new file, and then replaces the manifest in one atomic step
   (``os.replace`` locally; a single-object PUT on S3);
3. only then does the caller record the interval in the registry's ledger;
4. files no longer listed are deleted last (:meth:`OfflineStore.delete_files`).

A process killed at any moment leaves the old manifest (old data) or the new one (new data),
never a mix; unlisted files left behind by a killed run are never read, and the next commit
to that version removes them. Old versions stay readable until :meth:`drop_version`.
Concurrent commits to one feature version are serialised: locally with a lock file, on S3
(which has no locks) with :attr:`OfflineStore.writer_lock` — the registry's writer lock, shared
by every process using that registry, which :func:`fsql.compute.materialize.materialize` sets.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from fsql.errors import StoreError
from fsql.stores.files import TimelineFiles
from fsql.stores.sources import filesystem_for

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa
    import pyarrow.fs as pafs

    from fsql.config import Config

MANIFEST = "_manifest.json"


@dataclass(frozen=True)
class CommitResult:
    """What one commit made visible."""

    rows: int
    #: store-relative paths of the files now holding the interval's rows
    files: tuple[str, ...]
    #: files the new manifest no longer lists (delete them after the ledger commit)
    obsolete: tuple[str, ...]
    #: the version directory, as a URI (``s3://...`` or a local path)
    location: str


class OfflineStore:
    """Timelines of feature versions on a pyarrow filesystem (local or S3)."""

    def __init__(self, uri: str, filesystem: pafs.FileSystem, root: str):
        self.uri = uri
        self.fs = filesystem
        self.root = root.rstrip("/")
        self.is_local = filesystem.type_name == "local"
        self._remote_staging: str | None = None
        #: serialises commits to one version directory on S3 (which has no locks):
        #: ``writer_lock(name)`` → a context manager, e.g. the registry's
        #: :meth:`~fsql.registry.Registry.writer_lock`, which :func:`fsql.compute.materialize.materialize`
        #: sets. Local stores lock with a file and ignore it.
        self.writer_lock: Callable[[str], AbstractContextManager[Any]] | None = None

    @classmethod
    def from_config(cls, config: Config) -> OfflineStore:
        uri = config.resolve_path(config.offline_store.uri)
        fs, root = filesystem_for(uri, config)
        return cls(uri, fs, root)

    @classmethod
    def open(cls, uri: str, filesystem: pafs.FileSystem | None = None) -> OfflineStore:
        """A store at ``uri`` (``filesystem`` given for S3 endpoints outside a config)."""
        if filesystem is None:
            filesystem, root = filesystem_for(uri)
        else:
            root = uri[len("s3://") :] if uri.startswith("s3://") else uri
        return cls(uri, filesystem, root)

    # -- paths ----------------------------------------------------------------------------

    def version_dir(self, feature: str, version: int) -> str:
        return f"{self.root}/feature={feature}/version={version}"

    def location(self, feature: str, version: int) -> str:
        path = self.version_dir(feature, version)
        return f"s3://{path}" if self.fs.type_name == "s3" else path

    # -- staging --------------------------------------------------------------------------

    def staging_base(self) -> str:
        """The local folder every staging directory is made in: ``_staging`` in a local store,
        one temporary folder per store object for a remote one (removed with it)."""
        if self.is_local:
            base = f"{self.root}/_staging"
            os.makedirs(base, exist_ok=True)
            return base
        if self._remote_staging is None:
            self._remote_staging = tempfile.mkdtemp(prefix="fsql-staging-")
            weakref.finalize(self, shutil.rmtree, self._remote_staging, True)
        return self._remote_staging

    def new_staging_dir(self) -> str:
        """A fresh local directory path (not yet created) an engine writes a run into."""
        return f"{self.staging_base()}/{uuid.uuid4().hex}"

    def discard_staging(self, staging: str) -> None:
        shutil.rmtree(staging, ignore_errors=True)

    def read_staged(
        self, staging: str, schema: pa.Schema, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """The rows an engine staged (before any commit), in the timeline ``schema`` (only
        ``columns`` when given)."""

        files = self.staged_paths(staging)
        if not files:
            empty = schema.empty_table()
            return empty if columns is None else empty.select(list(columns))
        import pyarrow.dataset as ds  # loads pandas when installed: only when data is read

        dataset = ds.dataset(files, schema=schema, format="parquet")
        return dataset.to_table(columns=None if columns is None else list(columns))

    def staged_paths(self, staging: str) -> list[str]:
        """The Parquet files an engine staged (local paths), every date's."""
        return [f for files in _staged_files(staging).values() for f in files]

    def quarantine(
        self, staging: str, feature: str, version: int, start: datetime, end: datetime
    ) -> str:
        """Move refused staged rows to
        ``<root>/_quarantine/feature=…/version=…/<interval>-<id>`` (never read by fsql, kept
        for inspection; delete them by hand). Returns the location."""

        name = f"{_stamp(start)}_{_stamp(end)}-{uuid.uuid4().hex[:8]}"
        target = f"{self.root}/_quarantine/feature={feature}/version={version}/{name}"
        if self.is_local:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(staging, target)
            return target
        try:
            pafs.copy_files(staging, target, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=self.fs)  # fmt: skip
        except OSError as exc:
            raise StoreError(f"cannot keep the refused rows in s3://{target}: {exc}") from exc
        finally:
            self.discard_staging(staging)
        return f"s3://{target}"

    # -- manifest -------------------------------------------------------------------------

    def read_manifest(self, feature: str, version: int) -> dict[str, list[str]]:
        """Date → store-relative file paths of the committed timeline (empty if none)."""

        path = f"{self.version_dir(feature, version)}/{MANIFEST}"
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return {}
        with self.fs.open_input_stream(path) as stream:
            data = json.loads(stream.read().decode())
        return {d: list(files) for d, files in data["partitions"].items()}

    def _write_manifest(self, feature: str, version: int, partitions: dict[str, list[str]]) -> None:
        body = json.dumps(
            {
                "feature": feature,
                "version": version,
                "partitions": dict(sorted(partitions.items())),
            },
            indent=1,
        ).encode()
        path = f"{self.version_dir(feature, version)}/{MANIFEST}"
        if self.is_local:
            tmp = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic: readers see the old or the new manifest
            _fsync_dir(os.path.dirname(path))
        else:
            with self.fs.open_output_stream(path) as out:  # one PUT: atomic on S3
                out.write(body)

    # -- commit ---------------------------------------------------------------------------

    def commit(
        self,
        feature: str,
        version: int,
        staging: str,
        start: datetime,
        end: datetime,
        schema: pa.Schema,
    ) -> CommitResult:
        """Make the staged rows the data of [start, end) for this feature version, atomically.

        ``staging`` holds ``date=YYYY-MM-DD/*.parquet`` written by an engine (feature_time
        within [start, end)). Rows of the affected dates outside [start, end) are kept.
        """

        run = uuid.uuid4().hex[:12]
        vdir = self.version_dir(feature, version)
        staged = _staged_files(staging)
        stray = set(staged) - {d.isoformat() for d in _dates(start, end)}
        if stray:
            raise StoreError(
                f"staged rows for {feature} v{version} fall outside [{start}, {end}): "
                f"dates {sorted(stray)}"
            )
        self.fs.create_dir(vdir, recursive=True)
        with _lock(self, vdir) as lock:
            partitions = self.read_manifest(feature, version)
            new_partitions = dict(partitions)
            obsolete: list[str] = []
            written: list[str] = []
            rows = 0
            for day in _dates(start, end):
                key = day.isoformat()
                old = partitions.get(key, [])
                files: list[str] = []
                if old and not _covers(start, end, day):
                    kept = self._rows_outside(vdir, old, start, end, schema)
                    if kept is not None and kept.num_rows:
                        rel = f"date={key}/part-{run}-keep.parquet"
                        self._write_table(kept, f"{vdir}/{rel}")
                        files.append(rel)
                obsolete.extend(old)
                for i, local in enumerate(staged.get(key, [])):
                    rel = f"date={key}/part-{run}-{i}.parquet"
                    rows += pq.read_metadata(local).num_rows
                    self._put_file(local, f"{vdir}/{rel}")
                    files.append(rel)
                    written.append(rel)
                if files:
                    new_partitions[key] = files
                else:
                    new_partitions.pop(key, None)
            self._write_manifest(feature, version, new_partitions)
            if lock.exclusive:
                # no other writer is inside this directory: what neither manifest lists was
                # left by a killed run (the old manifest's files are deleted by the caller,
                # after its ledger commit)
                self._vacuum(vdir, new_partitions, keep=set(obsolete))
        self.discard_staging(staging)
        return CommitResult(rows, tuple(written), tuple(obsolete), self.location(feature, version))

    def _rows_outside(
        self, vdir: str, files: list[str], start: datetime, end: datetime, schema: pa.Schema
    ) -> pa.Table | None:

        import pyarrow.dataset as ds  # loads pandas when installed: only when data is read

        dataset = ds.dataset([f"{vdir}/{f}" for f in files], schema=schema, filesystem=self.fs)
        ts = pa.timestamp("us", tz="UTC")
        field = pc.field("feature_time")
        outside = (field < pa.scalar(_utc(start), ts)) | (field >= pa.scalar(_utc(end), ts))
        return dataset.to_table(filter=outside)

    def _write_table(self, table: pa.Table, path: str) -> None:

        self.fs.create_dir(os.path.dirname(path), recursive=True)
        tmp = f"{path}.tmp" if self.is_local else path
        pq.write_table(table, tmp, filesystem=self.fs, compression="zstd")
        if self.is_local:
            os.replace(tmp, path)

    def _put_file(self, local: str, path: str) -> None:
        if self.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(local, path)
            return

        pafs.copy_files(
            local, path, source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs
        )

    # -- reading --------------------------------------------------------------------------

    def timeline_files(
        self,
        feature: str,
        version: int,
        schema: pa.Schema,
        intervals: Iterable[tuple[datetime, datetime]] = (),
    ) -> TimelineFiles:
        """The committed files of one feature version (from its manifest)."""
        vdir = self.version_dir(feature, version)
        partitions = self.read_manifest(feature, version)
        paths = tuple(f"{vdir}/{f}" for _, files in sorted(partitions.items()) for f in files)
        return TimelineFiles(
            feature=feature, version=version, paths=paths, filesystem=self.fs, schema=schema,
            intervals=tuple(intervals),
        )  # fmt: skip

    def read_timeline(
        self,
        feature: str,
        version: int,
        schema: pa.Schema,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> pa.Table:
        """The committed rows of one feature version (optionally start ≤ feature_time < end)."""

        files = self.timeline_files(feature, version, schema)
        if not files.paths:
            return schema.empty_table()
        ts = pa.timestamp("us", tz="UTC")
        condition = None
        if start is not None:
            condition = pc.field("feature_time") >= pa.scalar(_utc(start), ts)
        if end is not None:
            upper = pc.field("feature_time") < pa.scalar(_utc(end), ts)
            condition = upper if condition is None else condition & upper
        return files.dataset().to_table(filter=condition)

    # -- housekeeping ---------------------------------------------------------------------

    def delete_files(self, feature: str, version: int, files: Iterable[str]) -> None:
        """Delete files the manifest no longer lists (after the ledger commit)."""
        vdir = self.version_dir(feature, version)
        for rel in files:
            try:
                self.fs.delete_file(f"{vdir}/{rel}")
            except FileNotFoundError:
                pass  # already gone: deleting is idempotent

    def vacuum(self, feature: str, version: int) -> list[str]:
        """Delete files of this version the manifest does not list (left by killed runs).

        Every commit does this under its lock (locally, and on S3 with a ``writer_lock``);
        call it by hand only when no run of this version is in progress."""
        vdir = self.version_dir(feature, version)
        return self._vacuum(vdir, self.read_manifest(feature, version))

    def _vacuum(
        self, vdir: str, partitions: dict[str, list[str]], keep: Iterable[str] = ()
    ) -> list[str]:

        listed = {f for files in partitions.values() for f in files} | set(keep)
        removed = []
        selector = pafs.FileSelector(vdir, recursive=True, allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            rel = info.path[len(vdir) + 1 :]
            if info.type == pafs.FileType.File and rel.startswith("date=") and rel not in listed:
                self.fs.delete_file(info.path)
                removed.append(rel)
        return removed

    def drop_version(self, feature: str, version: int) -> None:
        """Remove one version's timeline entirely (explicit; versions are otherwise kept)."""
        self.fs.delete_dir(self.version_dir(feature, version))

    def versions(self, feature: str) -> list[int]:

        selector = pafs.FileSelector(f"{self.root}/feature={feature}", allow_not_found=True)
        found = []
        for info in self.fs.get_file_info(selector):
            name = info.path.rsplit("/", 1)[-1]
            if info.type == pafs.FileType.Directory and name.startswith("version="):
                found.append(int(name.split("=", 1)[1]))
        return sorted(found)


def _stamp(value: datetime) -> str:
    return _utc(value).strftime("%Y%m%dT%H%M%SZ")


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _dates(start: datetime, end: datetime) -> list[date]:
    """UTC dates of the instants in [start, end)."""
    first = _utc(start).date()
    last = (_utc(end) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _covers(start: datetime, end: datetime, day: date) -> bool:
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return _utc(start) <= day_start and day_start + timedelta(days=1) <= _utc(end)


def _staged_files(staging: str) -> dict[str, list[str]]:
    """``date → [local parquet files]`` in an engine's hive-partitioned output."""
    result: dict[str, list[str]] = {}
    if not os.path.isdir(staging):
        return result
    for entry in sorted(os.listdir(staging)):
        if not entry.startswith("date="):
            continue
        day = entry.split("=", 1)[1]
        files = sorted(
            os.path.join(staging, entry, f)
            for f in os.listdir(os.path.join(staging, entry))
            if f.endswith(".parquet") and not f.startswith((".", "_"))
        )
        if files:
            result[date.fromisoformat(day[:10]).isoformat()] = files
    return result


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _lock:
    """An exclusive lock on one version directory: a lock file locally; on S3 the store's
    :attr:`OfflineStore.writer_lock` (the registry's), else none."""

    def __init__(self, store: OfflineStore, vdir: str):
        self.path = f"{vdir}/_lock" if store.is_local else None
        self.fh: Any = None
        self.held: Any = None
        if not store.is_local and store.writer_lock is not None:
            self.held = store.writer_lock(f"offline-commit {store.uri} {vdir}")

    @property
    def exclusive(self) -> bool:
        """Whether no other writer can be inside this version directory meanwhile."""
        return self.path is not None or self.held is not None

    def __enter__(self) -> _lock:
        if self.path:

            self.fh = open(self.path, "a")  # noqa: SIM115 - held until __exit__
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        elif self.held is not None:
            self.held.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fh is not None:
            self.fh.close()
        elif self.held is not None:
            self.held.__exit__(*exc)
