"""The Redis online store: fsql's own RESP client on the hot paths, redis-py for administration.

Key layout (documented in docs/architecture.md, "Online store")::

    fsql:e:{entity}:{entity_key}   HASH  field "{feature}@{version}" → record (codec.py)
    fsql:active                    HASH  field "{feature}" → active version

All features of one entity key live in one hash, so a read of any number of features is one
HMGET, and many keys are read by one Lua script (:data:`_READ_SCRIPT`) that resolves active
versions and HMGETs every key inside Redis — one round trip, executed atomically, so a reader
sees either the old or the new active version of a feature, never a mix.

A store object then reuses the active versions it read, following
:class:`~fsql.stores.online.versions.ActiveVersions` (``version_cache_seconds``, 1 s):
meanwhile reads are plain HMGETs (one per key, all in one round trip), skipping the script.
A switch made by another process reaches such a reader within that time, all at once; a
switch made through the same object (or signalled with :meth:`forget_versions`) at once.
"Not active yet" is never cached, so a feature's first push is visible to every reader
immediately.

The hot paths skip redis-py's per-command machinery (measured in docs/benchmarks.md): reads
and pushes pack their commands into one buffer per round trip (:mod:`fsql.stores.online.resp`)
and send it on the calling thread's own :class:`~fsql.stores.online.resp.SyncConnection`
(sync) or on a :class:`~fsql.stores.online.resp.RespConnection` of the running event loop
(asyncio); a push counts its HSET replies in bulk. Administrative calls (activate, active
versions, deletes) use the redis-py client, and so does everything for URLs that client
does not speak (``rediss://``: TLS).

Every call has a socket timeout (``[online_store] timeout``), so a dead or hung Redis fails
fast with :class:`~fsql.errors.OnlineStoreUnavailable`; a timeout is never retried. A
connection that broke while idle (Redis restarted) is reopened and the exchange sent once
more — reads and HSETs are idempotent — so reads recover by themselves when Redis is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, NoReturn

from fsql.extras import require
from fsql.stores.online.base import FeatureRef, OnlineStore, field_name
from fsql.stores.online.codec import StoredValue, decode_rows
from fsql.stores.online.resp import (
    HsetPacker,
    RedisAddress,
    ReplyCounter,
    RespConnection,
    RespError,
    SyncConnection,
    failed,
    open_connection,
    pack_bulks,
    pack_command,
    pack_hmgets,
    unavailable,
)
from fsql.stores.online.versions import ActiveVersions, CacheSeconds

#: what a raw read returns: (version per feature or None, records per key × feature)
Records = tuple[list[str | None], list[list[bytes | None]]]

PREFIX = "fsql"
ACTIVE_KEY = f"{PREFIX}:active"

# KEYS[1] = the active-version hash, KEYS[2..] = entity hashes; ARGV = feature, pinned, ...
# Returns {versions, values of KEYS[2], values of KEYS[3], ...}.
_READ_SCRIPT = """
local n = #ARGV / 2
local names, fields, versions = {}, {}, {}
for i = 1, n do names[i] = ARGV[2 * i - 1] end
local active = redis.call('HMGET', KEYS[1], unpack(names))
for i = 1, n do
  local v = ARGV[2 * i]
  if v == '' then v = active[i] end
  if v then
    fields[i] = names[i] .. '@' .. v
    versions[i] = v
  else
    fields[i] = '@'
    versions[i] = ''
  end
end
local out = {versions}
for j = 2, #KEYS do out[j] = redis.call('HMGET', KEYS[j], unpack(fields)) end
return out
"""
_READ_SHA = hashlib.sha1(_READ_SCRIPT.encode()).hexdigest()
_LOAD_SCRIPT = pack_command("SCRIPT", "LOAD", _READ_SCRIPT)
_READ = "read from the online store"


def entity_hash_key(entity: str, key: str) -> str:
    return f"{PREFIX}:e:{entity}:{key}"


def entity_hash_prefix(entity: str) -> bytes:
    """What :func:`entity_hash_key` puts ahead of the entity key, encoded."""
    return f"{PREFIX}:e:{entity}:".encode()


class RedisOnlineStore(OnlineStore):
    """Online store in Redis: a hash per entity key, version pointers in ``fsql:active``."""

    scheme: ClassVar[str] = "redis"
    #: how long a reader reuses the active versions it last read (0: resolve on every read);
    #: the instance's :attr:`active` policy holds it
    version_cache_seconds = CacheSeconds()

    def __init__(self, url: str, timeout: float = 1.0):
        self.url = url
        self.timeout = timeout
        self._redis = require("redis", "redis")
        #: the active versions this store read, and the rule for reusing them
        self.active = ActiveVersions()
        #: redis-py, for administration (and every call when the URL needs TLS)
        self._client: Any = None
        self._script: Any = None
        self._async: tuple[asyncio.AbstractEventLoop, Any, Any] | None = None
        #: where fsql's own connections go (None: a URL only redis-py speaks)
        self._address = RedisAddress(url) if RedisAddress.supported(url) else None
        if self._address is not None:
            require("hiredis", "redis")
        #: one connection per thread for sync reads and pushes (see :meth:`_conn`)
        self._local = threading.local()
        self._held: list[SyncConnection] = []
        self._held_lock = threading.Lock()
        #: the asyncio reads' connections, a free list per event loop
        self._resp_loop: asyncio.AbstractEventLoop | None = None
        self._resp_free: list[RespConnection] = []

    # --- clients -------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "health_check_interval": 0,
        }

    def _sync(self) -> tuple[Any, Any]:
        if self._client is None:
            retry = require("redis.retry", "redis").Retry
            no_backoff = require("redis.backoff", "redis").NoBackoff
            self._client = self._redis.Redis.from_url(
                self.url, retry=retry(no_backoff(), 0), **self._options()
            )
            self._script = self._client.register_script(_READ_SCRIPT)
        return self._client, self._script

    def _asyncio(self) -> tuple[Any, Any]:
        """One redis-py asyncio client per event loop (only for URLs fsql's own connections do
        not speak): its connections belong to the loop that opened them, and
        notebooks/scripts may run several loops one after another."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            redis_asyncio = require("redis.asyncio", "redis")
            retry = require("redis.asyncio.retry", "redis").Retry
            no_backoff = require("redis.backoff", "redis").NoBackoff
            client = redis_asyncio.Redis.from_url(
                self.url, retry=retry(no_backoff(), 0), **self._options()
            )
            self._async = (loop, client, client.register_script(_READ_SCRIPT))
        return self._async[1], self._async[2]

    def _conn(self) -> SyncConnection:
        """This thread's own connection, kept for the store's lifetime: no pool checkout,
        retry wrapper or command object per call, which is most of redis-py's per-call cost
        (measured: one 10-field HMGET 35 us this way, 83 us through ``Redis.hmget``; 100 of
        them 0.41 ms, 1.2 ms through a pipeline)."""
        conn: SyncConnection | None = getattr(self._local, "conn", None)
        if conn is None or conn.pid != os.getpid():  # none yet, or inherited across a fork
            assert self._address is not None
            conn = SyncConnection(self._address, self.timeout)
            self._local.conn = conn
            with self._held_lock:
                self._held.append(conn)
        return conn

    def _exchange(self, payload: bytes, replies: int, action: str) -> list[Any]:
        """Send ``payload`` (``replies`` packed commands) and read every reply, in one round
        trip. A connection that broke while idle (Redis restarted) is reopened and the
        exchange sent once more — reads and HSETs are idempotent; a timeout is never
        retried, so a hung Redis fails within ``timeout``. Error replies raise StoreError."""
        conn = self._conn()
        for attempt in (1, 2):
            try:
                out = conn.exchange(payload, replies)
            except TimeoutError as exc:
                conn.close()  # a late reply must never be read as the next one's
                raise unavailable(action, self.url, self.timeout, exc) from None
            except OSError as exc:
                conn.close()
                if attempt == 2:
                    raise unavailable(action, self.url, self.timeout, exc) from None
                continue
            except RespError as exc:  # the login or SELECT refused
                raise failed(action, self.url, exc) from None
            except BaseException:
                conn.close()  # replies may be left unread: never reuse the socket
                raise
            return self._checked(out, action)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _aexchange(self, payload: bytes, replies: int, action: str) -> list[Any]:
        """:meth:`_exchange` on this event loop's connections (a free list: concurrent reads
        each get their own), with the same retry rule."""
        loop = asyncio.get_running_loop()
        if self._resp_loop is not loop:  # connections belong to the loop that opened them
            for old in self._resp_free:
                old.close()
            self._resp_loop, self._resp_free = loop, []
        assert self._address is not None
        free = self._resp_free
        conn = free.pop() if free else None
        for attempt in (1, 2):
            try:
                if conn is None or not conn.usable:
                    conn = None
                    conn = await open_connection(self._address, self.timeout, batched=False)
                out = await conn.request(payload, replies)
            except TimeoutError as exc:  # the connection closed itself
                raise unavailable(action, self.url, self.timeout, exc) from None
            except OSError as exc:
                conn = None
                if attempt == 2:
                    raise unavailable(action, self.url, self.timeout, exc) from None
                continue  # a connection broken while idle (Redis restarted): once more
            except RespError as exc:  # the login or SELECT refused
                raise failed(action, self.url, exc) from None
            except BaseException:  # cancelled: never reuse the socket
                if conn is not None:
                    conn.close()
                raise
            free.append(conn)
            return self._checked(out, action)
        raise AssertionError("unreachable")  # pragma: no cover

    def _checked(self, replies: list[Any], action: str) -> list[Any]:
        """``replies``, or the StoreError for the first error reply among them."""
        for reply in replies:
            if isinstance(reply, RespError):
                if str(reply).startswith("NOSCRIPT"):
                    raise _NoScript(str(reply))
                raise failed(action, self.url, reply) from None
        return replies

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Map redis-py's errors to fsql's (administration, and URLs only redis-py speaks)."""
        try:
            yield
        except self._redis.exceptions.RedisError as exc:
            self._raise(action, exc)

    def _raise(self, action: str, exc: Exception) -> NoReturn:
        errors = self._redis.exceptions
        if isinstance(exc, errors.ConnectionError | errors.TimeoutError):
            raise unavailable(action, self.url, self.timeout, exc) from None
        raise failed(action, self.url, exc) from None

    # --- reads ---------------------------------------------------------------------------------

    @staticmethod
    def _read_args(
        entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        script_keys = [ACTIVE_KEY, *(entity_hash_key(entity, k) for k in keys)]
        args: list[str] = []
        for f in features:
            args += (f.name, f.version or "")
        return script_keys, args

    def _script_request(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> bytes:
        script_keys, args = self._read_args(entity, features, keys)
        return pack_command("EVALSHA", _READ_SHA, str(len(script_keys)), *script_keys, *args)

    @staticmethod
    def _fields(features: Sequence[FeatureRef], versions: Sequence[str | None]) -> list[str]:
        return [
            field_name(f.name, v) if v else "@" for f, v in zip(features, versions, strict=True)
        ]

    def _cached_request(
        self, features: Sequence[FeatureRef]
    ) -> tuple[bytes, int, list[str | None]] | None:
        """The packed field names, their count and the versions to read when every unpinned
        feature's active version is cached (else None: read through the script). Kept per
        ``features`` object (the serving path passes the same list on every call, and
        treats it as immutable) as the :class:`ActiveVersions` plan: saves rebuilding and
        packing the field names on every read."""
        kept = self.active.plan(features)
        if kept is not None:
            request: tuple[bytes, int, list[str | None]] = kept[0]
            return request
        versions = self.active.cached(features)
        if versions is None:
            return None
        request = (pack_bulks(self._fields(features, versions)), len(features), versions)
        self.active.keep(features, versions, request)
        return request

    def _remember(self, features: Sequence[FeatureRef], reply: list[Any]) -> Records:
        """The script's reply as a raw read; the active versions it resolved are cached."""
        versions = reply[0]
        unpinned = [i for i, f in enumerate(features) if f.version is None]
        self.active.learned([features[i].name for i in unpinned], [versions[i] for i in unpinned])
        return [v.decode() if v else None for v in versions], reply[1:]

    def read_records(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> Records:
        if not keys or not features:
            return [None] * len(features), [[None] * len(features) for _ in keys]
        if self._address is None:
            return self._read_records_redis_py(entity, features, keys)
        cached = self._cached_request(features)
        if cached is not None:
            fields, n_fields, versions = cached
            payload = pack_hmgets(entity_hash_prefix(entity), keys, n_fields, fields)
            return versions, self._exchange(payload, len(keys), _READ)
        evalsha = self._script_request(entity, features, keys)
        try:
            (reply,) = self._exchange(evalsha, 1, _READ)
        except _NoScript:
            self._exchange(_LOAD_SCRIPT, 1, "load the online store's read script")
            (reply,) = self._exchange(evalsha, 1, _READ)
        return self._remember(features, reply)

    async def read_async(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> list[list[StoredValue | None]]:
        versions, rows = await self.read_records_async(entity, features, keys)
        return decode_rows(rows, versions)

    async def read_records_async(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> Records:
        if not keys or not features:
            return [None] * len(features), [[None] * len(features) for _ in keys]
        if self._address is None:
            return await self._read_records_redis_py_async(entity, features, keys)
        cached = self._cached_request(features)
        if cached is not None:
            fields, n_fields, versions = cached
            payload = pack_hmgets(entity_hash_prefix(entity), keys, n_fields, fields)
            return versions, await self._aexchange(payload, len(keys), _READ)
        evalsha = self._script_request(entity, features, keys)
        try:
            (reply,) = await self._aexchange(evalsha, 1, _READ)
        except _NoScript:
            await self._aexchange(_LOAD_SCRIPT, 1, "load the online store's read script")
            (reply,) = await self._aexchange(evalsha, 1, _READ)
        return self._remember(features, reply)

    def _read_records_redis_py(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> Records:
        """The sync read through redis-py's client (URLs fsql's connections do not speak)."""
        client, script = self._sync()
        versions = self.active.cached(features)
        with self._errors(_READ):
            if versions is not None:
                fields = self._fields(features, versions)
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.hmget(entity_hash_key(entity, key), fields)
                return versions, pipe.execute()
            script_keys, args = self._read_args(entity, features, keys)
            reply = script(keys=script_keys, args=args)
        return self._remember(features, reply)

    async def _read_records_redis_py_async(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> Records:
        """The async read through redis-py's asyncio client (URLs fsql's connections do not
        speak)."""
        client, script = self._asyncio()
        versions = self.active.cached(features)
        try:
            if versions is not None:
                fields = self._fields(features, versions)
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.hmget(entity_hash_key(entity, key), fields)
                return versions, await pipe.execute()
            script_keys, args = self._read_args(entity, features, keys)
            reply = await script(keys=script_keys, args=args)
        except self._redis.exceptions.RedisError as exc:
            self._raise(_READ, exc)
        return self._remember(features, reply)

    def active_versions(self, features: Sequence[str] | None = None) -> dict[str, str]:
        client, _ = self._sync()
        with self._errors("read the online store's active versions"):
            if features is None:
                raw = client.hgetall(ACTIVE_KEY)
                return {k.decode(): v.decode() for k, v in raw.items()}
            if not features:
                client.ping()
                return {}
            values = client.hmget(ACTIVE_KEY, list(features))
        return {f: v.decode() for f, v in zip(features, values, strict=True) if v is not None}

    def forget_versions(self) -> None:
        self.active.forget()

    # --- writes --------------------------------------------------------------------------------

    def write(
        self, entity: str, feature: str, version: str, keys: Sequence[str], records: Sequence[bytes]
    ) -> None:
        self.write_many(entity, feature, version, [(keys, records)])

    def write_many(
        self, entity: str, feature: str, version: str,
        batches: Iterable[tuple[Sequence[str], Sequence[bytes]]],
    ) -> int:  # fmt: skip
        """Each batch's HSETs packed into one buffer (:class:`HsetPacker`) and sent before
        the previous batch's replies are read, so Redis runs one batch while the next is
        being encoded. The one-line replies are counted on the socket, not parsed one by one."""
        action = f"write {feature} (version {version}) to the online store"
        if self._address is None:
            return self._write_many_redis_py(entity, field_name(feature, version), batches, action)
        packer = HsetPacker(entity_hash_prefix(entity), field_name(feature, version).encode())
        counter = ReplyCounter()
        sent = 0
        for keys, records in batches:  # encoding errors here are not the store's: not mapped
            if not keys:
                continue
            payload = packer.pack(keys, records)
            if sent:  # send this batch, then read the previous one's replies
                self._count_replies(payload, counter, sent, action, retry=False)
                sent += len(keys)
            else:  # the first batch in one round trip: a stale connection shows here
                sent = len(keys)
                self._count_replies(payload, counter, sent, action, retry=True)
        if sent:
            self._count_replies(b"", counter, sent, action, retry=False)
        return sent

    def _count_replies(self, payload: bytes, counter: ReplyCounter, replies: int, action: str,
                       *, retry: bool) -> None:  # fmt: skip
        """Send ``payload`` (if any), then wait until ``replies`` one-line replies arrived in
        all. With ``retry``, a connection that broke while idle (no reply seen yet) is
        reopened and ``payload`` sent once more (HSETs are idempotent); timeouts and other
        failures fail the write."""
        conn = self._conn()
        for attempt in (1, 2):
            try:
                conn.count_replies(payload, counter, replies)
            except TimeoutError as exc:  # the server hangs
                conn.close()
                raise unavailable(action, self.url, self.timeout, exc) from None
            except OSError as exc:
                conn.close()
                if attempt == 2 or not retry or counter.seen:
                    raise unavailable(action, self.url, self.timeout, exc) from None
                continue
            except RespError as exc:  # the login or SELECT refused
                raise failed(action, self.url, exc) from None
            except BaseException:
                conn.close()
                raise
            if counter.error is not None:
                conn.close()  # replies still in flight: never reuse the socket
                raise failed(action, self.url, counter.error_text())
            return

    def _write_many_redis_py(
        self, entity: str, field: str,
        batches: Iterable[tuple[Sequence[str], Sequence[bytes]]], action: str,
    ) -> int:  # fmt: skip
        """The push through redis-py's pipelines (URLs fsql's connections do not speak)."""
        client, _ = self._sync()
        written = 0
        for keys, records in batches:
            if not keys:
                continue
            pipe = client.pipeline(transaction=False)
            for key, record in zip(keys, records, strict=True):
                pipe.hset(entity_hash_key(entity, key), field, record)
            with self._errors(action):
                pipe.execute()
            written += len(keys)
        return written

    async def write_async(
        self, entity: str, feature: str, version: str, keys: Sequence[str], records: Sequence[bytes]
    ) -> None:
        action = f"write {feature} (version {version}) to the online store"
        field = field_name(feature, version)
        if self._address is not None:
            if keys:
                packer = HsetPacker(entity_hash_prefix(entity), field.encode())
                await self._aexchange(packer.pack(keys, records), len(keys), action)
            return
        client, _ = self._asyncio()
        try:
            pipe = client.pipeline(transaction=False)
            for key, record in zip(keys, records, strict=True):
                pipe.hset(entity_hash_key(entity, key), field, record)
            await pipe.execute()
        except self._redis.exceptions.RedisError as exc:
            self._raise(action, exc)

    def activate(self, feature: str, version: str) -> None:
        client, _ = self._sync()
        with self._errors(f"switch {feature} to version {version}"):
            client.hset(ACTIVE_KEY, feature, version)
        self.active.switched(feature, version)

    #: SCAN returns a key twice when the table rehashes while it runs
    keys_may_repeat = True

    def existing_keys(self, entity: str, keys: Sequence[str]) -> list[str]:
        """``EXISTS`` of each key's hash, pipelined (one round trip)."""
        if not keys:
            return []
        client, _ = self._sync()
        with self._errors(f"look up keys of {entity} in the online store"):
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(entity_hash_key(entity, key))
            answers = pipe.execute()
        return [key for key, count in zip(keys, answers, strict=True) if count]

    def entity_keys(self, entity: str, batch: int = 1000) -> Iterator[list[str]]:
        """``SCAN`` over the entity's hashes (a key may come twice when Redis rehashes while
        the scan runs: SCAN's own guarantee); never blocks Redis, as KEYS would."""
        client, _ = self._sync()
        prefix = entity_hash_prefix(entity)
        cursor = 0
        while True:
            with self._errors(f"list the keys of {entity} in the online store"):
                cursor, found = client.scan(
                    cursor, match=f"{PREFIX}:e:{_glob_escape(entity)}:*", count=batch)
            keys = [k[len(prefix):].decode() for k in found if k.startswith(prefix)]
            if keys:
                yield keys
            if int(cursor) == 0:
                return

    def delete_version(self, entity: str, feature: str, version: str) -> int:
        client, _ = self._sync()
        field = field_name(feature, version)
        self.active.forget(feature)
        removed = 0
        with self._errors(f"delete {feature} version {version} from the online store"):
            if client.hget(ACTIVE_KEY, feature) == version.encode():
                client.hdel(ACTIVE_KEY, feature)
            batch: list[bytes] = []
            for key in client.scan_iter(match=f"{PREFIX}:e:{_glob_escape(entity)}:*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    removed += self._hdel_all(client, batch, field)
                    batch = []
            if batch:
                removed += self._hdel_all(client, batch, field)
        return removed

    @staticmethod
    def _hdel_all(client: Any, keys: list[bytes], field: str) -> int:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hdel(key, field)
        return sum(pipe.execute())

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._held_lock:
            held, self._held = self._held, []
            self._local = threading.local()
        for conn in held:
            conn.close()
        free, self._resp_free, self._resp_loop = self._resp_free, [], None
        for resp in free:
            resp.close()
        if self._client is not None:
            self._client.close()
            self._client = self._script = None

    async def aclose(self) -> None:
        self.close()
        if self._async is not None:
            loop, client, _ = self._async
            self._async = None
            if loop is asyncio.get_running_loop():
                await client.aclose()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class _NoScript(Exception):
    """Redis does not have the read script (restarted or flushed): load it and retry."""
