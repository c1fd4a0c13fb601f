"""The lookup path's own Redis reader: non-blocking, pipelined across sessions, parsed by hiredis.

``features.<entity>`` lookups are the server's hot path. redis-py's blocking client held the
event loop for a whole round trip per lookup (one lookup in flight per worker) and spent about
100 µs of CPU per call in command packing, its connection pool and its parser. This reader is
an :class:`asyncio.Protocol` on one connection of its own per worker: every HMGET asked for in
one event-loop iteration — by any number of sessions — goes out in a single write, and replies
are parsed by ``hiredis.Reader`` and handed back in order.

Reads follow :class:`fsql.stores.online.redis.RedisOnlineStore` exactly: the same keys
(:func:`~fsql.stores.online.redis.entity_hash_key`, :func:`~fsql.stores.online.base.field_name`,
:data:`~fsql.stores.online.redis.ACTIVE_KEY`), the same records
(:func:`~fsql.stores.online.codec.decode_record`; the server serves them through
:class:`fsql.serving.reader.ReadPlan`, as the Python API does), and the same active-version rule: the
versions read from ``fsql:active`` are reused for the store's ``version_cache_seconds``
(1 s), and "not active yet" is never cached, so a first push is visible at once and a switch
within that time. A read whose versions are not cached costs one extra round trip (an HMGET of
``fsql:active``), so a worker resolves each feature's version at most once a second.

Every request has a deadline (``[online_store] timeout``): a Redis that does not answer in time,
refuses the connection or drops it fails the waiting reads with
:class:`~fsql.errors.OnlineStoreUnavailable` (SQLSTATE 58000 on the wire); the next read
connects again, so lookups recover by themselves when Redis is back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from fsql.errors import OnlineStoreUnavailable, StoreError
from fsql.stores.online.base import FeatureRef, field_name
from fsql.stores.online.codec import StoredValue, decode_record
from fsql.stores.online.redis import ACTIVE_KEY, entity_hash_key

_ACTIVE = ACTIVE_KEY.encode()
log = logging.getLogger("fsql.server")


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)


def pack_tail(fields: Sequence[bytes]) -> bytes:
    """The fields of an HMGET, packed as RESP bulk strings (what follows the key)."""
    return b"".join([_bulk(f) for f in fields])


def hmget_head(count: int, key: str) -> bytes:
    """``*count`` HMGET and its key, packed as RESP (the fields follow: :func:`pack_tail`)."""
    data = key.encode()
    return b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n" % (count, len(data), data)


class RedisAddress:
    """Where the reader connects: parsed from a ``redis://`` or ``unix://`` URL (the forms
    redis-py accepts for the online store, without TLS)."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.url = url
        self.unix_path: str | None = None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.db = 0
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        if parts.scheme == "unix":
            self.unix_path = parts.path
            self.db = int(query.get("db", "0") or 0)
        else:
            path = parts.path.strip("/")
            self.db = int(path or query.get("db", "0") or 0)

    @staticmethod
    def supported(url: str) -> bool:
        return urlsplit(url).scheme in ("redis", "unix")


class _Pending:
    """One request: ``count`` replies to collect, sent at ``sent_at``; they go to ``future``,
    or to ``callback`` (the lookup fast lane, :mod:`fsql_server.fast_lane`, which runs without a
    task: the callback gets the replies, or the exception that failed the connection)."""

    __slots__ = ("callback", "count", "future", "replies", "sent_at")

    def __init__(self, future: asyncio.Future[list[Any]] | None, count: int, sent_at: float,
                 callback: Callable[[list[Any] | BaseException], None] | None = None):
        self.future = future
        self.callback = callback
        self.count = count
        self.replies: list[Any] = []
        self.sent_at = sent_at

    def finish(self, outcome: list[Any] | BaseException) -> None:
        callback = self.callback
        if callback is not None:
            try:
                callback(outcome)
            except Exception:  # noqa: BLE001 - one caller's bug must not lose the others' replies
                log.exception("a lookup's reply handler failed")
            return
        future = self.future
        if future is not None and not future.done():
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


class RespConnection(asyncio.Protocol):
    """One Redis connection speaking RESP2: requests are queued and written once per
    event-loop iteration; replies complete the requests in the order they were sent."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, address: str):
        import hiredis

        self.loop = loop
        self.timeout = timeout
        self.address = address
        self.parser = hiredis.Reader()
        self.reply_error = hiredis.ReplyError
        self.transport: asyncio.Transport | None = None
        self.pending: deque[_Pending] = deque()
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.watchdog: asyncio.TimerHandle | None = None
        self.failure: Exception | None = None
        #: writes made so far (each carries every command queued in one loop iteration)
        self.writes = 0

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # an asyncio.Transport, or uvloop's (which does not subclass it)
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.feed(data)
        pending = self.pending
        while True:
            try:
                reply = parser.gets()
            except Exception as exc:  # noqa: BLE001 - hiredis.ProtocolError: the stream is lost
                self.fail(StoreError(f"Redis at {self.address} sent an invalid reply: {exc}"))
                return
            if reply is False:
                return
            if not pending:
                self.fail(StoreError(f"Redis at {self.address} sent a reply nobody asked for"))
                return
            request = pending[0]
            request.replies.append(reply)
            if len(request.replies) == request.count:
                pending.popleft()
                request.finish(request.replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(exc or ConnectionError("Redis closed the connection"))

    # -- requests -----------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        return self.failure is None and self.transport is not None \
            and not self.transport.is_closing()

    def request(self, packed: bytes, count: int) -> asyncio.Future[list[Any]]:
        """Queue ``count`` packed commands; the future gets their ``count`` replies."""
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        if self.failure is not None:
            future.set_exception(self.failure)
            return future
        self._queue(_Pending(future, count, time.monotonic()), packed)
        return future

    def request_then(self, packed: bytes, count: int,
                     callback: Callable[[list[Any] | BaseException], None]) -> None:
        """:meth:`request` without a future: ``callback`` gets the ``count`` replies, or the
        exception that failed the connection (called from the event loop, never inline). The
        connection must be :attr:`usable`."""
        self._queue(_Pending(None, count, time.monotonic(), callback), packed)

    def _queue(self, request: _Pending, packed: bytes) -> None:
        self.pending.append(request)
        self.out.append(packed)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout, self.check_deadline)

    def flush(self) -> None:
        """Write every command queued in this event-loop iteration at once."""
        self.flush_scheduled = False
        if self.out and self.transport is not None and self.failure is None:
            data = b"".join(self.out) if len(self.out) > 1 else self.out[0]
            self.out.clear()
            self.transport.write(data)
            self.writes += 1

    def check_deadline(self) -> None:
        self.watchdog = None
        if not self.pending or self.failure is not None:
            return
        waited = time.monotonic() - self.pending[0].sent_at
        if waited >= self.timeout:
            self.fail(TimeoutError(f"no reply within {self.timeout:g}s"))
            return
        self.watchdog = self.loop.call_later(self.timeout - waited, self.check_deadline)

    def fail(self, exc: Exception) -> None:
        """The connection is unusable: fail every waiting request and close it."""
        if self.failure is None:
            self.failure = exc
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.out.clear()
        while self.pending:
            self.pending.popleft().finish(exc)
        if self.transport is not None:
            self.transport.abort()


class RedisLookupReader:
    """Reads feature records for the lookup path (see the module docstring).

    :meth:`read` has the signature and result of :meth:`OnlineStore.read
    <fsql.stores.online.base.OnlineStore.read>`, as a coroutine that never blocks the loop.
    """

    def __init__(self, url: str, timeout: float = 1.0, version_cache_seconds: float = 1.0):
        self.address = RedisAddress(url)
        self.timeout = timeout
        self.version_cache_seconds = version_cache_seconds
        self._connection: RespConnection | None = None
        self._connecting: asyncio.Future[RespConnection] | None = None
        #: feature → (active version, when it was read)
        self._versions: dict[str, tuple[str, float]] = {}
        #: id(features list) → (the list, valid until, versions, field names, the HMGET's
        #: packed fields); see _plan
        self._plans: dict[
            int, tuple[Sequence[FeatureRef], float, list[str | None], list[bytes], bytes]
        ] = {}

    @classmethod
    def for_store(cls, store: Any) -> RedisLookupReader | None:
        """A reader for ``store`` when it is a Redis online store this reader can reach
        (None for SQLite or TLS: those go through the store's own read)."""
        url = getattr(store, "url", None)
        if getattr(store, "scheme", None) != "redis" or not isinstance(url, str) \
                or not RedisAddress.supported(url):
            return None
        return cls(url, float(getattr(store, "timeout", 1.0)),
                   float(getattr(store, "version_cache_seconds", 1.0)))

    @classmethod
    def for_config(cls, config: Any) -> RedisLookupReader | None:
        """A reader for the online store ``config`` names, when it is a Redis this reader can
        reach (None for SQLite or TLS); the version cache lasts as long as the Redis store's
        (:attr:`RedisOnlineStore.version_cache_seconds
        <fsql.stores.online.redis.RedisOnlineStore.version_cache_seconds>`)."""
        from fsql.stores.online.redis import RedisOnlineStore

        url = config.resolve_url(config.online_store.url)
        if not url.startswith(("redis://", "unix://")):
            return None
        return cls(url, float(config.online_store.timeout),
                   float(RedisOnlineStore.version_cache_seconds))

    # -- connection ---------------------------------------------------------------------------

    def _unavailable(self, exc: BaseException) -> OnlineStoreUnavailable:
        return OnlineStoreUnavailable(
            f"could not read from the online store: Redis at {self.address.url} did not answer "
            f"within {self.timeout:g}s ({exc or type(exc).__name__}); check that redis-server "
            "is running and reachable, or raise [online_store] timeout in fsql.toml"
        )

    async def _connect(self) -> RespConnection:
        loop = asyncio.get_running_loop()
        address = self.address
        where = address.unix_path or f"{address.host}:{address.port}"

        def factory() -> RespConnection:
            return RespConnection(loop, self.timeout, where)

        try:
            if address.unix_path:
                connecting = loop.create_unix_connection(factory, address.unix_path)
            else:
                connecting = loop.create_connection(factory, address.host, address.port)
            _transport, connection = await asyncio.wait_for(connecting, self.timeout)
        except (OSError, TimeoutError) as exc:
            raise self._unavailable(exc) from None
        import hiredis

        setup: list[tuple[Any, ...]] = []
        if address.password is not None:
            setup.append(("AUTH", address.username, address.password) if address.username
                         else ("AUTH", address.password))
        if address.db:
            setup.append(("SELECT", str(address.db)))
        if setup:
            packed = b"".join(hiredis.pack_command(c) for c in setup)
            replies = await self._wait(connection.request(packed, len(setup)))
            for reply in replies:
                if isinstance(reply, connection.reply_error):
                    connection.fail(ConnectionError(str(reply)))
                    raise StoreError(f"could not log in to Redis at {address.url}: {reply}")
        return connection

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

    async def _wait(self, future: asyncio.Future[list[Any]]) -> list[Any]:
        try:
            return await future
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise self._unavailable(exc) from None

    async def _call(self, commands: Sequence[tuple[Any, ...]]) -> list[Any]:
        """Send commands as one pipeline and return their replies (errors raise)."""
        import hiredis

        connection = await self._ready()
        if len(commands) == 1:
            packed = hiredis.pack_command(commands[0])
        else:
            packed = b"".join([hiredis.pack_command(c) for c in commands])
        replies = await self._wait(connection.request(packed, len(commands)))
        for reply in replies:
            if isinstance(reply, connection.reply_error):
                raise StoreError(f"could not read from the online store (Redis at "
                                 f"{self.address.url}): {reply}")
        return replies

    # -- reads --------------------------------------------------------------------------------

    async def _resolve(self, refs: Sequence[FeatureRef]) -> list[str | None]:
        """Each feature's version to read (None when it has no active version yet)."""
        now = time.monotonic()
        keep = self.version_cache_seconds
        cache = self._versions
        versions: list[str | None] = []
        missing: list[str] = []
        for ref in refs:
            if ref.version is not None:
                versions.append(ref.version)
                continue
            cached = cache.get(ref.name)
            if cached is not None and now - cached[1] < keep:
                versions.append(cached[0])
            else:
                versions.append(None)
                missing.append(ref.name)
        if not missing:
            return versions
        (active,) = await self._call([("HMGET", _ACTIVE, *missing)])
        found = dict(zip(missing, active, strict=True))
        now = time.monotonic()
        for i, ref in enumerate(refs):
            if ref.version is None and ref.name in found:
                value = found[ref.name]
                if value is None:
                    continue  # "not active yet" is never cached
                version = value.decode()
                versions[i] = version
                if keep > 0:
                    cache[ref.name] = (version, now)
        return versions

    def _field_names(self, refs: Sequence[FeatureRef],
                     versions: list[str | None]) -> list[bytes]:
        return [field_name(r.name, v).encode() if v else b"@"
                for r, v in zip(refs, versions, strict=True)]

    async def _plan(
        self, features: Sequence[FeatureRef]
    ) -> tuple[list[str | None], list[bytes]]:
        """Versions and field names to read for ``features``. Kept per features list until
        the first of its features' cached versions expires, so a repeated lookup does one
        dict lookup here (a list with a feature not active yet is never kept)."""
        entry = self._plans.get(id(features))
        if entry is not None and entry[0] is features and time.monotonic() < entry[1]:
            return entry[2], entry[3]
        versions = await self._resolve(features)
        fields = self._field_names(features, versions)
        expires = 0.0
        if self.version_cache_seconds > 0 and all(versions):
            cached = [self._versions[f.name][1] for f in features if f.version is None]
            expires = min(cached, default=time.monotonic()) + self.version_cache_seconds
            if len(self._plans) >= 256:
                self._plans.clear()
            self._plans[id(features)] = (features, expires, versions, fields,
                                         pack_tail(fields))
        return versions, fields

    def prepared(
        self, features: Sequence[FeatureRef]
    ) -> tuple[RespConnection, list[str | None], bytes, float] | None:
        """What the lookup fast lane (:mod:`fsql_server.fast_lane`) needs to read ``features``
        without a coroutine: (the open connection, the versions to read, the HMGET's packed
        fields, the monotonic time until which both hold). None when either needs a round
        trip first (not connected, versions not cached): the coroutine path does that."""
        connection = self._connection
        if connection is None or not connection.usable:
            return None
        entry = self._plans.get(id(features))
        if entry is None or entry[0] is not features or time.monotonic() >= entry[1]:
            return None
        return connection, entry[2], entry[4], entry[1]

    async def read_records_async(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> tuple[list[str | None], list[list[bytes | None]]]:
        """The version read for each feature (None: not active yet) and the raw records per
        key × feature — :meth:`OnlineStore.read_records_async
        <fsql.stores.online.base.OnlineStore.read_records_async>`, what
        :class:`fsql.serving.reader.ReadPlan` serves from."""
        if not keys or not features:
            return [None] * len(features), [[None] * len(features) for _ in keys]
        versions, fields = await self._plan(features)
        rows = await self._call([("HMGET", entity_hash_key(entity, k), *fields) for k in keys])
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
        self._versions.clear()
        self._plans.clear()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.fail(ConnectionError("reader closed"))
            self._connection = None
