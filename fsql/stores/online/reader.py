"""The server's lookup reader: non-blocking, pipelined across sessions, parsed by hiredis.

``features.<entity>`` lookups are the server's hot path. redis-py's blocking client held the
event loop for a whole round trip per lookup (one lookup in flight per worker) and spent about
100 µs of CPU per call in command packing, its connection pool and its parser. This reader
keeps one :class:`~fsql.stores.online.resp.RespConnection` of its own per worker: every HMGET
asked for in one event-loop iteration — by any number of sessions — goes out in a single
write, and replies are parsed by hiredis and handed back in order.

Reads follow :class:`fsql.stores.online.redis.RedisOnlineStore` exactly: the same keys
(:func:`~fsql.stores.online.redis.entity_hash_key`, :func:`~fsql.stores.online.base.field_name`,
:data:`~fsql.stores.online.redis.ACTIVE_KEY`), the same records
(:func:`~fsql.stores.online.codec.decode_record`; the server serves them through
:class:`fsql.serving.reader.ReadPlan`, as the Python API does), and the same active-version
policy (:class:`~fsql.stores.online.versions.ActiveVersions`). A read whose versions are not
cached costs one extra round trip (an HMGET of ``fsql:active``), so a worker resolves each
feature's version at most once per ``version_cache_seconds``.

Every request has a deadline (``[online_store] timeout``): a Redis that does not answer in time,
refuses the connection or drops it fails the waiting reads with
:class:`~fsql.errors.OnlineStoreUnavailable` (SQLSTATE 58000 on the wire); the next read
connects again, so lookups recover by themselves when Redis is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fsql.config import Config
from fsql.errors import OnlineStoreUnavailable, StoreError
from fsql.secrets import redact
from fsql.stores.online.base import FeatureRef, field_name
from fsql.stores.online.codec import StoredValue, decode_record
from fsql.stores.online.redis import ACTIVE_KEY, entity_hash_key
from fsql.stores.online.resp import (
    RedisAddress,
    RespConnection,
    RespError,
    failed,
    hmget_head,
    open_connection,
    pack_bulks,
    pack_command,
    unavailable,
)
from fsql.stores.online.versions import CACHE_SECONDS, ActiveVersions, CacheSeconds

#: hmget_head: the server's fast lane packs its HMGETs with it (the reader's plans hold the tail)
__all__ = ["RedisLookupReader", "hmget_head"]

_ACTIVE = ACTIVE_KEY.encode()
_READ = "read from the online store"


class RedisLookupReader:
    """Reads feature records for the lookup path (see the module docstring).

    :meth:`read` has the signature and result of :meth:`OnlineStore.read
    <fsql.stores.online.base.OnlineStore.read>`, as a coroutine that never blocks the loop.
    """

    #: how long the reader reuses the active versions it read (its :attr:`active` policy's)
    version_cache_seconds = CacheSeconds()

    def __init__(self, url: str, timeout: float = 1.0,
                 version_cache_seconds: float = CACHE_SECONDS):
        self.address = RedisAddress(url)
        self.timeout = timeout
        #: the active versions this reader read, and the rule for reusing them; plans are
        #: (versions, field names, the HMGET's packed fields)
        self.active = ActiveVersions(version_cache_seconds)
        self._connection: RespConnection | None = None
        self._connecting: asyncio.Future[RespConnection] | None = None

    @classmethod
    def for_store(cls, store: Any) -> RedisLookupReader | None:
        """A reader for ``store`` when it is a Redis online store this reader can reach
        (None for SQLite or TLS: those go through the store's own read)."""
        url = getattr(store, "url", None)
        if getattr(store, "scheme", None) != "redis" or not isinstance(url, str) \
                or not RedisAddress.supported(url):
            return None
        return cls(url, float(getattr(store, "timeout", 1.0)),
                   float(getattr(store, "version_cache_seconds", CACHE_SECONDS)))

    @classmethod
    def for_config(cls, config: Config) -> RedisLookupReader | None:
        """A reader for the online store ``config`` names, when it is a Redis this reader can
        reach (None for SQLite or TLS); its versions are cached as long as the Redis store's
        (:data:`~fsql.stores.online.versions.CACHE_SECONDS`)."""
        url = config.resolve_url(config.online_store.url)
        if not url.startswith(("redis://", "unix://")):
            return None
        return cls(url, float(config.online_store.timeout), CACHE_SECONDS)

    # -- connection ---------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> OnlineStoreUnavailable:
        return unavailable(_READ, self.address.url, self.timeout, exc)

    async def _connect(self) -> RespConnection:
        try:
            return await open_connection(self.address, self.timeout)
        except (OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from None
        except RespError as exc:
            raise StoreError(
                redact(f"could not log in to Redis at {self.address.url}: {exc}")
            ) from None

    async def _ready(self) -> RespConnection:
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        # one connect for every session waiting at this moment
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            connection = await asyncio.shield(connecting)
        finally:
            if self._connecting is connecting and connecting.done():
                self._connecting = None
        self._connection = connection
        return connection

    async def _call(self, packed: bytes, count: int) -> list[Any]:
        """Send ``count`` packed commands as one pipeline and return their replies (error
        replies raise)."""
        connection = await self._ready()
        try:
            replies = await connection.request(packed, count)
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise self._unavailable(exc) from None
        for reply in replies:
            if isinstance(reply, RespError):
                raise failed(_READ, self.address.url, reply)
        return replies

    # -- reads --------------------------------------------------------------------------------

    async def _plan(
        self, features: Sequence[FeatureRef]
    ) -> tuple[list[str | None], list[bytes], bytes]:
        """Versions, field names and the HMGET's packed fields for ``features``. Kept per
        features list as the :class:`ActiveVersions` plan (until the first of its features'
        cached versions expires), so a repeated lookup does one dict lookup here (a list
        with a feature not active yet is never kept)."""
        active = self.active
        kept = active.plan(features)
        if kept is not None:
            plan: tuple[list[str | None], list[bytes], bytes] = kept[0]
            return plan
        versions, missing = active.lookup(features)
        if missing:
            (found,) = await self._call(pack_command("HMGET", _ACTIVE, *missing), 1)
            active.learned(missing, found)
            by_name = dict(zip(missing, found, strict=True))
            for i, ref in enumerate(features):
                if ref.version is None and by_name.get(ref.name):
                    versions[i] = by_name[ref.name].decode()
        fields = [field_name(r.name, v).encode() if v else b"@"
                  for r, v in zip(features, versions, strict=True)]
        plan = (versions, fields, pack_bulks(fields))
        active.keep(features, versions, plan)
        return plan

    def prepared(
        self, features: Sequence[FeatureRef]
    ) -> tuple[RespConnection, list[str | None], bytes, float] | None:
        """What the lookup fast lane (``fsql_server.features.fast_lane``) needs to read ``features``
        without a coroutine: (the open connection, the versions to read, the HMGET's packed
        fields, the monotonic time until which both hold). None when either needs a round
        trip first (not connected, versions not cached): the coroutine path does that."""
        connection = self._connection
        if connection is None or not connection.usable:
            return None
        kept = self.active.plan(features)
        if kept is None:
            return None
        (versions, _fields, tail), fresh_until = kept
        return connection, versions, tail, fresh_until

    async def read_records_async(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> tuple[list[str | None], list[list[bytes | None]]]:
        """The version read for each feature (None: not active yet) and the raw records per
        key × feature — :meth:`OnlineStore.read_records_async
        <fsql.stores.online.base.OnlineStore.read_records_async>`, what
        :class:`fsql.serving.reader.ReadPlan` serves from."""
        if not keys or not features:
            return [None] * len(features), [[None] * len(features) for _ in keys]
        versions, _fields, tail = await self._plan(features)
        count = len(features) + 2
        if len(keys) == 1:
            packed = hmget_head(count, entity_hash_key(entity, keys[0])) + tail
        else:
            packed = b"".join([hmget_head(count, entity_hash_key(entity, k)) + tail
                               for k in keys])
        rows = await self._call(packed, len(keys))
        return versions, rows

    async def read(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> list[list[StoredValue | None]]:
        """Decoded records per key × feature (:meth:`OnlineStore.read
        <fsql.stores.online.base.OnlineStore.read>`); ``None`` where a key has no value."""
        versions, rows = await self.read_records_async(entity, features, keys)
        return [
            [None if rec is None else decode_record(rec, versions[i] or "")
             for i, rec in enumerate(row)]
            for row in rows
        ]

    def forget_versions(self) -> None:
        """Resolve active versions again on the next read."""
        self.active.forget()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.fail(ConnectionError("reader closed"))
            self._connection = None
