"""The Redis online store (redis-py; hiredis-parsed asyncio connections for the async API).

Key layout (documented in docs/architecture.md, "Online store")::

    fsql:e:{entity}:{entity_key}   HASH  field "{feature}@{version}" → record (codec.py)
    fsql:active                    HASH  field "{feature}" → active version

All features of one entity key live in one hash, so a read of any number of features is one
HMGET, and many keys are read by one Lua script (:data:`_READ_SCRIPT`) that resolves active
versions and HMGETs every key inside Redis — one round trip, executed atomically, so a reader
sees either the old or the new active version of a feature, never a mix.

A store object then reuses the active versions it read for ``version_cache_seconds`` (1 s):
meanwhile reads are plain HMGETs (one per key, all in one round trip), skipping the script.
A switch made by another process reaches such a reader within that time, all at once; a
switch made through the same object (or signalled with :meth:`forget_versions`) at once.
"Not active yet" is never cached, so a feature's first push is visible to every reader
immediately.

The hot paths skip redis-py's per-command machinery (measured in docs/benchmarks.md): reads
and pushes pack their commands by hand into one buffer per round trip and send it on the
calling thread's own redis-py connection (sync) or on an :class:`~fsql.stores.online.resp.
AsyncResp` connection of the running event loop (asyncio); a push counts its HSET replies in
bulk. Administrative calls (activate, active versions, deletes) use the redis-py client.

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
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, NoReturn

from fsql.errors import MissingExtraError, OnlineStoreUnavailable, StoreError
from fsql.stores.online.base import FeatureRef, OnlineStore, field_name
from fsql.stores.online.codec import StoredValue, decode_rows
from fsql.stores.online.resp import AsyncResp, RespError

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


def entity_hash_key(entity: str, key: str) -> str:
    return f"{PREFIX}:e:{entity}:{key}"


def _import_redis() -> Any:
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is in the test environment
        raise MissingExtraError("redis", "redis") from None
    return redis


class RedisOnlineStore(OnlineStore):
    """Online store in Redis: a hash per entity key, version pointers in ``fsql:active``."""

    scheme: ClassVar[str] = "redis"
    #: how long a reader reuses the active versions it last read (0: resolve on every read)
    version_cache_seconds: float = 1.0

    def __init__(self, url: str, timeout: float = 1.0):
        self.url = url
        self.timeout = timeout
        self._redis = _import_redis()
        self._client: Any = None
        self._script: Any = None
        self._async: tuple[asyncio.AbstractEventLoop, Any, Any] | None = None
        #: feature → (active version, when it was read); see version_cache_seconds
        self._versions: dict[str, tuple[str, float]] = {}
        #: bumped whenever a cached active version changes (see _cached_request)
        self._generation = 0
        self._requests: dict[int, tuple[Any, ...]] = {}
        #: one redis-py connection per thread for reads and pushes (see :meth:`_conn`)
        self._local = threading.local()
        self._held: list[Any] = []
        self._held_lock = threading.Lock()
        #: the asyncio reads' connections (fsql.stores.online.resp), per event loop
        self._resp_options = AsyncResp.parse(url)
        self._resp_loop: asyncio.AbstractEventLoop | None = None
        self._resp_free: list[Any] = []

    # --- clients -------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        return {
            "socket_timeout": self.timeout,
            "socket_connect_timeout": self.timeout,
            "health_check_interval": 0,
        }

    def _sync(self) -> tuple[Any, Any]:
        if self._client is None:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._client = self._redis.Redis.from_url(
                self.url, retry=Retry(NoBackoff(), 0), **self._options()
            )
            self._script = self._client.register_script(_READ_SCRIPT)
        return self._client, self._script

    def _conn(self) -> Any:
        """This thread's own redis-py connection, kept for the store's lifetime.

        Reads and pushes send hand-packed commands on it and read the replies with redis-py's
        parser (hiredis): no pool checkout, retry wrapper or command object per call, which
        is most of redis-py's per-call cost (measured: one 10-field HMGET 35 us this way,
        83 us through ``Redis.hmget``; 100 of them 0.41 ms, 1.2 ms through a pipeline)."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.pid != os.getpid():  # none yet, or inherited across a fork
            pool = self._sync()[0].connection_pool
            conn = pool.connection_class(**pool.connection_kwargs)
            self._local.conn = conn
            with self._held_lock:
                self._held.append(conn)
        return conn

    def _exchange(self, payload: bytes, replies: int, action: str) -> list[Any]:
        """Send ``payload`` (``replies`` packed commands) and read every reply, in one round
        trip. A connection that broke while idle (Redis restarted) is reopened and the
        exchange sent once more — reads and HSETs are idempotent; a timeout is never
        retried, so a hung Redis fails within ``timeout``. Error replies raise StoreError."""
        errors = self._redis.exceptions
        conn = self._conn()
        for attempt in (1, 2):
            try:
                conn.send_packed_command((payload,), check_health=False)
                read = conn.read_response
                return [read() for _ in range(replies)]
            except errors.TimeoutError as exc:
                conn.disconnect()  # a late reply must never be read as the next one's
                self._raise(action, exc)
            except errors.ConnectionError as exc:
                conn.disconnect()
                if attempt == 2:
                    self._raise(action, exc)
            except errors.NoScriptError:
                conn.disconnect()
                raise
            except errors.RedisError as exc:
                conn.disconnect()  # replies may be left unread: never reuse the socket
                self._raise(action, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _asyncio(self) -> tuple[Any, Any]:
        """One asyncio client per event loop: redis.asyncio connections belong to the loop
        that opened them, and notebooks/scripts may run several loops one after another."""
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            client = Redis.from_url(self.url, retry=Retry(NoBackoff(), 0), **self._options())
            self._async = (loop, client, client.register_script(_READ_SCRIPT))
        return self._async[1], self._async[2]

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except self._redis.exceptions.RedisError as exc:
            self._raise(action, exc)

    def _raise(self, action: str, exc: Exception) -> NoReturn:
        errors = self._redis.exceptions
        if isinstance(exc, errors.ConnectionError | errors.TimeoutError):
            raise OnlineStoreUnavailable(
                f"could not {action}: Redis at {self.url} did not answer within "
                f"{self.timeout:g}s ({exc}); check that redis-server is running and reachable, "
                "or raise [online_store] timeout in fsql.toml"
            ) from None
        raise StoreError(f"could not {action} (Redis at {self.url}): {exc}") from None

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

    def _cached_fields(
        self, features: Sequence[FeatureRef]
    ) -> tuple[list[str], list[str | None]] | None:
        """Fields and versions to read when every unpinned feature's active version was seen
        less than :attr:`version_cache_seconds` ago; else None (read through the script)."""
        if self.version_cache_seconds <= 0:
            return None
        now = time.monotonic()
        fields: list[str] = []
        versions: list[str | None] = []
        cache = self._versions
        for f in features:
            version = f.version
            if version is None:
                cached = cache.get(f.name)
                if cached is None or now - cached[1] >= self.version_cache_seconds:
                    return None
                version = cached[0]
            fields.append(f"{f.name}@{version}" if version else "@")
            versions.append(version)
        return fields, versions

    def _cached_request(
        self, features: Sequence[FeatureRef]
    ) -> tuple[bytes, int, list[str | None]] | None:
        """:meth:`_cached_fields` with the fields already packed, kept per ``features``
        object (the serving path passes the same list on every call, and treats it as
        immutable) until the soonest of its features' cached versions expires or any cached
        version changes. Saves rebuilding and packing the field names on every read."""
        if self.version_cache_seconds <= 0:
            return None
        now = time.monotonic()
        entry = self._requests.get(id(features))
        if (
            entry is not None
            and entry[0] is features
            and entry[1] == self._generation
            and now < entry[2]
        ):
            return entry[3], entry[4], entry[5]
        generation = self._generation
        cached = self._cached_fields(features)
        if cached is None:
            return None
        fields, versions = cached
        blob = _pack_args(fields)
        seen = [self._versions.get(f.name, ("", 0.0))[1] for f in features if f.version is None]
        fresh_until = min(seen, default=now) + self.version_cache_seconds
        if len(self._requests) >= 256:  # callers building a new list per read: stay small
            self._requests.clear()
        self._requests[id(features)] = (
            features, generation, fresh_until, blob, len(fields), versions,
        )  # fmt: skip
        return blob, len(fields), versions

    def _remember(self, features: Sequence[FeatureRef], reply: list[Any]) -> None:
        now = time.monotonic()
        for f, version in zip(features, reply[0], strict=True):
            if f.version is None and version:  # "not active yet" is never cached
                text = version.decode()
                old = self._versions.get(f.name)
                if old is None or old[0] != text:
                    self._generation += 1
                self._versions[f.name] = (text, now)

    def read(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> list[list[StoredValue | None]]:
        versions, rows = self.read_records(entity, features, keys)
        return decode_rows(rows, versions)

    def read_records(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> Records:
        if not keys or not features:
            return [None] * len(features), [[None] * len(features) for _ in keys]
        cached = self._cached_request(features)
        if cached is not None:
            blob, n_fields, versions = cached
            payload = _hmgets(entity, blob, n_fields, keys)
            return versions, self._exchange(payload, len(keys), "read from the online store")
        script_keys, args = self._read_args(entity, features, keys)
        words = [ACTIVE_KEY, *script_keys[1:], *args]
        try:
            reply = self._evalsha(len(script_keys), words)
        except self._redis.exceptions.NoScriptError:
            load = _pack_command("SCRIPT", "LOAD", _READ_SCRIPT)
            self._exchange(load, 1, "load the online store's read script")
            reply = self._evalsha(len(script_keys), words)
        self._remember(features, reply)
        return [v.decode() if v else None for v in reply[0]], reply[1:]

    def _evalsha(self, n_keys: int, words: list[str]) -> Any:
        payload = _pack_command("EVALSHA", _READ_SHA, str(n_keys), *words)
        return self._exchange(payload, 1, "read from the online store")[0]

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
        if self._resp_options is None:
            return await self._read_records_redis_py(entity, features, keys)
        action = "read from the online store"
        cached = self._cached_request(features)
        if cached is not None:
            blob, n_fields, versions = cached
            payload = _hmgets(entity, blob, n_fields, keys)
            return versions, await self._aexchange(payload, len(keys), action)
        script_keys, args = self._read_args(entity, features, keys)
        evalsha = _pack_command("EVALSHA", _READ_SHA, str(len(script_keys)), *script_keys, *args)
        try:
            (reply,) = await self._aexchange(evalsha, 1, action)
        except _NoScript:
            load = _pack_command("SCRIPT", "LOAD", _READ_SCRIPT)
            await self._aexchange(load, 1, "load the online store's read script")
            (reply,) = await self._aexchange(evalsha, 1, action)
        self._remember(features, reply)
        return [v.decode() if v else None for v in reply[0]], reply[1:]

    async def _aexchange(self, payload: bytes, replies: int, action: str) -> list[Any]:
        """:meth:`_exchange` on this event loop's :class:`AsyncResp` connections (a free
        list: concurrent reads each get their own), with the same retry rule."""
        loop = asyncio.get_running_loop()
        if self._resp_loop is not loop:  # connections belong to the loop that opened them
            for old in self._resp_free:
                old.close()
            self._resp_loop, self._resp_free = loop, []
        free = self._resp_free
        conn = free.pop() if free else AsyncResp(self._resp_options or {}, self.timeout)
        errors = self._redis.exceptions
        for attempt in (1, 2):
            try:
                out = await conn.exchange(payload, replies)
            except TimeoutError:
                free.append(conn)
                self._raise(action, errors.TimeoutError(f"Timeout reading from {self.url}"))
            except (OSError, RespError) as exc:
                if attempt == 1 and not isinstance(exc, RespError):
                    continue  # a connection broken while idle (Redis restarted): once more
                free.append(conn)
                error = errors.ConnectionError if isinstance(exc, OSError) else errors.RedisError
                self._raise(action, error(f"{exc} ({self.url})"))
            free.append(conn)
            for reply in out:
                if isinstance(reply, RespError):
                    if str(reply).startswith("NOSCRIPT"):
                        raise _NoScript(str(reply))
                    self._raise(action, errors.ResponseError(str(reply)))
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read_records_redis_py(
        self, entity: str, features: Sequence[FeatureRef], keys: Sequence[str]
    ) -> Records:
        """The async read through redis-py's asyncio client (URLs AsyncResp does not speak)."""
        client, script = self._asyncio()
        cached = self._cached_fields(features)
        try:
            if cached is not None:
                fields, versions = cached
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.hmget(f"{PREFIX}:e:{entity}:{key}", fields)
                return versions, await pipe.execute()
            script_keys, args = self._read_args(entity, features, keys)
            reply = await script(keys=script_keys, args=args)
        except self._redis.exceptions.RedisError as exc:
            self._raise("read from the online store", exc)
        self._remember(features, reply)
        return [v.decode() if v else None for v in reply[0]], reply[1:]

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
        self._versions.clear()
        self._generation += 1

    # --- writes --------------------------------------------------------------------------------

    def write(
        self, entity: str, feature: str, version: str, keys: Sequence[str], records: Sequence[bytes]
    ) -> None:
        self.write_many(entity, feature, version, [(keys, records)])

    def write_many(
        self, entity: str, feature: str, version: str,
        batches: Iterable[tuple[Sequence[str], Sequence[bytes]]],
    ) -> int:  # fmt: skip
        """Each batch's HSETs packed by hand into one buffer (redis-py's pipeline spent more
        time building command objects than Redis spent running them) and sent before the
        previous batch's replies are read, so Redis runs one batch while the next is being
        encoded. The one-line replies are counted on the socket, not parsed one by one."""
        action = f"write {feature} (version {version}) to the online store"
        field = field_name(feature, version).encode()
        middle = b"\r\n$%d\r\n%s\r\n" % (len(field), field)
        prefix = f"{PREFIX}:e:{entity}:".encode()
        # Pieces by length: "*4 HSET $n fsql:e:entity:" ahead of a key, "field $m" ahead of
        # a record; each command then costs one encode and two dict lookups.
        heads: dict[int, bytes] = {}
        fields: dict[int, bytes] = {}
        counter = _LineCounter()
        sent = 0
        for keys, records in batches:  # encoding errors here are not the store's: not mapped
            if not keys:
                continue
            parts: list[bytes] = []
            add = parts.extend
            for key, record in zip(keys, records, strict=True):
                data = key.encode()
                n = len(prefix) + len(data)
                head = heads.get(n)
                if head is None:
                    head = heads[n] = b"*4\r\n$4\r\nHSET\r\n$%d\r\n%s" % (n, prefix)
                m = len(record)
                mid = fields.get(m)
                if mid is None:
                    mid = fields[m] = middle + b"$%d\r\n" % m
                add((head, data, mid, record, b"\r\n"))
            if sent:  # send this batch, then read the previous one's replies
                self._lines(b"".join(parts), counter, sent, action, retry=False)
                sent += len(keys)
            else:  # the first batch in one round trip: a stale connection shows here
                sent = len(keys)
                self._lines(b"".join(parts), counter, sent, action, retry=True)
        if sent:
            self._lines(b"", counter, sent, action, retry=False)
        return sent

    def _lines(self, payload: bytes, counter: _LineCounter, replies: int, action: str, *,
               retry: bool) -> None:  # fmt: skip
        """Send ``payload`` (if any), then wait until ``replies`` one-line replies arrived in
        all. With ``retry``, a connection that broke while idle (no reply seen yet) is
        reopened and ``payload`` sent once more (HSETs are idempotent); timeouts and other
        failures fail the write."""
        errors = self._redis.exceptions
        conn = self._conn()
        for attempt in (1, 2):
            try:
                if getattr(conn, "_sock", None) is None:
                    conn.connect()
                sock = conn._sock
                if payload:
                    sock.sendall(payload)
                counter.wait(sock, replies)
            except TimeoutError:  # socket.timeout: the server hangs
                conn.disconnect()
                self._raise(action, errors.TimeoutError(f"Timeout reading from {self.url}"))
            except errors.TimeoutError as exc:
                conn.disconnect()
                self._raise(action, exc)
            except (OSError, errors.ConnectionError) as exc:
                conn.disconnect()
                if attempt == 2 or not retry or counter.seen:
                    if not isinstance(exc, errors.RedisError):
                        exc = errors.ConnectionError(f"Error talking to {self.url}: {exc}")
                    self._raise(action, exc)
                continue
            if counter.error is not None:
                conn.disconnect()  # replies still in flight: never reuse the socket
                self._raise(action, errors.ResponseError(counter.error_text()))
            return

    async def write_async(
        self, entity: str, feature: str, version: str, keys: Sequence[str], records: Sequence[bytes]
    ) -> None:
        client, _ = self._asyncio()
        field = field_name(feature, version)
        try:
            pipe = client.pipeline(transaction=False)
            for key, record in zip(keys, records, strict=True):
                pipe.hset(entity_hash_key(entity, key), field, record)
            await pipe.execute()
        except self._redis.exceptions.RedisError as exc:
            self._raise(f"write {feature} (version {version}) to the online store", exc)

    def activate(self, feature: str, version: str) -> None:
        client, _ = self._sync()
        with self._errors(f"switch {feature} to version {version}"):
            client.hset(ACTIVE_KEY, feature, version)
        self._versions[feature] = (version, time.monotonic())
        self._generation += 1

    def delete_version(self, entity: str, feature: str, version: str) -> int:
        client, _ = self._sync()
        field = field_name(feature, version)
        self._versions.pop(feature, None)
        self._generation += 1
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
            conn.disconnect()
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


def _hmgets(entity: str, fields: bytes, n_fields: int, keys: Sequence[str]) -> bytes:
    """One ``HMGET entity-hash fields...`` per key, packed into one buffer (``fields``: the
    field names already packed, :func:`_pack_args`)."""
    prefix = f"{PREFIX}:e:{entity}:".encode()
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (n_fields + 2)
    parts: list[bytes] = []
    for key in keys:
        name = prefix + key.encode()
        parts += (head, b"$%d\r\n" % len(name), name, b"\r\n", fields)
    return b"".join(parts)


def _pack_args(words: Sequence[str]) -> bytes:
    """RESP bulk strings for ``words`` (the tail of a hand-packed command)."""
    out: list[bytes] = []
    for word in words:
        data = word.encode()
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


def _pack_command(*words: str) -> bytes:
    return b"*%d\r\n" % len(words) + _pack_args(words)


class _LineCounter:
    """Counts one-line replies (``:1``, ``-ERR ...``) as they arrive, across batches, and
    keeps the first error reply. Integer replies never hold a ``-``; error replies start
    with one."""

    __slots__ = ("seen", "last", "error")

    def __init__(self) -> None:
        self.seen = 0
        self.last = b""
        self.error: bytearray | None = None

    def wait(self, sock: Any, replies: int) -> None:
        """Read until ``replies`` replies arrived in all (or an error reply is in)."""
        while self.seen < replies and self.error is None:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionResetError("connection closed by the server")
            self.seen += chunk.count(b"\r\n") + (self.last == b"\r" and chunk[:1] == b"\n")
            self.last = chunk[-1:]
            if b"-" in chunk:
                self.error = bytearray(chunk[chunk.index(b"-") :])
        while self.error is not None and b"\r\n" not in self.error:  # the rest of its line
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionResetError("connection closed by the server")
            self.error += chunk

    def error_text(self) -> str:
        error = self.error or bytearray(b"-")
        return bytes(error[1 : error.find(b"\r\n")]).decode(errors="replace")
