"""The online store interface: every backend (SQLite, Redis) implements :class:`OnlineStore`.

The data model is the same in every backend: for each entity (``user``) and entity key
(``user_123``) the store holds one record per *feature version* — the field ``name@version``
(e.g. ``user_purchase_30d@3``) — and, separately, the *active* version of each feature. A read
names features (optionally pinned to a version); unpinned names resolve to the active version
in the same atomic read, so a push of a new version becomes visible all at once when
:meth:`OnlineStore.activate` flips the pointer after the last record is written.

Reads return :class:`~fsql.stores.online.codec.StoredValue` (value, feature_time, version) or
``None``; applying TTLs is the caller's job (:func:`serve`), so the store stays a dumb,
fast key-value layer.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from fsql.stores.online.codec import StoredValue, decode_rows, to_micros

__all__ = [
    "AsyncRecordReader", "FeatureRef", "OnlineStore", "StoredValue", "field_name", "serve",
    "serve_micros",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class FeatureRef:
    """A feature to read: its name and a pinned version (``None``: the active version)."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> FeatureRef:
        """``"f"`` → active version of ``f``; ``"f@3"`` → version 3."""
        name, sep, version = text.partition("@")
        return cls(name, version if sep else None)


class AsyncRecordReader(Protocol):
    """What an asyncio read plan reads through: an :class:`OnlineStore`, or the server's
    lookup reader (:class:`~fsql.stores.online.reader.RedisLookupReader`), which has only
    the read path."""

    async def read_records_async(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> tuple[list[str | None], list[list[bytes | None]]]: ...


def field_name(feature: str, version: str) -> str:
    """The per-version field a record lives under: ``feature@version``."""
    return f"{feature}@{version}"


def serve(stored: StoredValue | None, ttl: timedelta | None, now: datetime) -> Any:
    """The value to serve at ``now``: NULL when absent, when written back by the compute
    cache and expired, or when older than the feature's TTL (``now − feature_time > ttl``)
    — exactly the point-in-time rule of docs/semantics.md."""
    return serve_micros(stored, None if ttl is None else ttl // _MICROSECOND, to_micros(now))


def serve_micros(stored: StoredValue | None, ttl_us: int | None, now_us: int) -> Any:
    """:func:`serve` with times in microseconds (the hot path of reads)."""
    if stored is None:
        return None
    expires = stored.expires_at_us
    if expires is not None and now_us >= expires:
        return None
    if ttl_us is not None and now_us - stored.feature_time_us > ttl_us:
        return None
    return stored.value


_MICROSECOND = timedelta(microseconds=1)


class OnlineStore(ABC):
    """Latest feature values per entity key, with versions side by side.

    Sync methods for scripts and the materializer; ``*_async`` twins for the asyncio API.
    Errors: :class:`~fsql.errors.OnlineStoreUnavailable` when the backend cannot be reached
    within ``timeout`` seconds, :class:`~fsql.errors.StoreError` for any other failure.
    """

    #: the backend's name in messages and ``fsql.toml`` URLs
    scheme: ClassVar[str]
    #: True when reads by another process see complete batches while a push writes
    concurrent_readers: ClassVar[bool] = True

    url: str
    timeout: float

    # --- reads -------------------------------------------------------------------------------

    def read(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> list[list[StoredValue | None]]:
        """Records for ``keys`` (encoded entity keys) × ``features``, in that order, in one
        round trip. Unpinned features resolve to their active version atomically with the
        read; a feature with no active version reads as ``None``."""
        versions, rows = self.read_records(entity, features, keys)
        return decode_rows(rows, versions)

    async def read_async(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> list[list[StoredValue | None]]:
        return await asyncio.to_thread(self.read, entity, features, keys)

    @abstractmethod
    def read_records(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> tuple[list[str | None], list[list[bytes | None]]]:
        """:meth:`read` without decoding, for the serving hot path: the version read for
        each feature (None: it has no active version) and the raw records per key ×
        feature (see :func:`~fsql.stores.online.codec.serve_records`). Same round trip and
        atomicity as :meth:`read`."""

    async def read_records_async(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> tuple[list[str | None], list[list[bytes | None]]]:
        return await asyncio.to_thread(self.read_records, entity, features, keys)

    def entity_keys(self, entity: str, batch: int = 1000) -> Iterator[list[str]]:
        """Every encoded key of ``entity`` that holds a value (of any feature or version),
        in batches of about ``batch``: what a scan of ``features.<entity>`` reads (the
        server's relation), without holding all keys at once."""
        raise NotImplementedError(f"the {self.scheme} online store cannot list its keys")
        yield []  # pragma: no cover - makes this a generator

    #: whether :meth:`entity_keys` may give a key more than once in one listing (Redis's SCAN
    #: does while its table rehashes): a reader that needs each key once removes repeats
    keys_may_repeat: bool = False

    def existing_keys(self, entity: str, keys: Sequence[str]) -> list[str]:
        """Those of ``keys`` (encoded) that hold a value of ``entity`` (of any feature or
        version), in the order given: the keys :meth:`entity_keys` would list among them, read
        without listing the others (a scan of ``features.<entity>`` filtered on its key)."""
        raise NotImplementedError(f"the {self.scheme} online store cannot look keys up")

    @abstractmethod
    def active_versions(self, features: Sequence[str] | None = None) -> dict[str, str]:
        """The active version of each feature (all features when ``features`` is None)."""

    def forget_versions(self) -> None:
        """Drop any cached view of the active versions (after another store object — e.g. a
        materialize run — switched versions), so the next read resolves them afresh."""
        return None

    # --- writes ------------------------------------------------------------------------------

    @abstractmethod
    def write(
        self, entity: str, feature: str, version: str, keys: Sequence[str], records: Sequence[bytes]
    ) -> None:
        """Write one batch of encoded records (see :mod:`~fsql.stores.online.codec`) for one
        feature version, replacing what those keys held for it. Does not change which
        version is active."""

    def write_many(
        self, entity: str, feature: str, version: str,
        batches: Iterable[tuple[Sequence[str], Sequence[bytes]]],
    ) -> int:  # fmt: skip
        """:meth:`write` for a stream of ``(keys, records)`` batches (the push); returns the
        records written. A backend may overlap one batch's round trip with the encoding of
        the next (Redis does); memory stays bounded by a batch or two."""
        written = 0
        for keys, records in batches:
            if keys:
                self.write(entity, feature, version, keys, records)
                written += len(keys)
        return written

    async def write_async(
        self, entity: str, feature: str, version: str, keys: Sequence[str], records: Sequence[bytes]
    ) -> None:
        await asyncio.to_thread(self.write, entity, feature, version, keys, records)

    @abstractmethod
    def activate(self, feature: str, version: str) -> None:
        """Make ``version`` the one unpinned reads of ``feature`` see — one atomic switch."""

    @abstractmethod
    def delete_version(self, entity: str, feature: str, version: str) -> int:
        """Remove every record of one feature version (and its pointer if it was active).
        Returns the number of records removed."""

    # --- lifecycle ---------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise :class:`~fsql.errors.OnlineStoreUnavailable` unless the store answers."""
        self.active_versions([])

    def close(self) -> None:
        """Release connections (the store can be used again afterwards: it reconnects)."""
        return None

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
