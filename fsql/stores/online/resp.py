"""fsql's one Redis client: RESP packing, the URL parser and the connections, sync and asyncio.

redis-py's per-command machinery (pool checkout, retry wrapper, command objects, a timeout
context around every reply) costs more than Redis spends answering a point read: measured,
one 10-field ``HMGET`` took 35 us packed by hand against 83 us through ``Redis.hmget``, and
170 us through ``redis.asyncio``. So the read and push paths of the online store
(:mod:`fsql.stores.online.redis`) and the server's lookup reader
(:mod:`fsql.stores.online.reader`) speak RESP2 themselves, through this module:

- :class:`RedisAddress` parses ``redis://[[user]:password@]host[:port][/db]`` and
  ``unix:///path.sock[?db=N]``; :meth:`RedisAddress.supported` says when a URL needs more
  (``rediss://``: TLS), and then the store keeps to redis-py's public API;
- :func:`pack_command`, :func:`pack_bulks`, :func:`hmget_head`, :func:`pack_hmgets` and
  :class:`HsetPacker` pack commands into one buffer per round trip;
- :class:`SyncConnection` is a blocking socket (one per thread of the store) and
  :class:`RespConnection` an :class:`asyncio.Protocol` that writes every command queued in one
  event-loop iteration at once (:func:`open_connection` connects, logs in and selects the
  database); both parse replies with hiredis' C parser, error replies as
  :class:`~fsql.errors.RespError` values.

redis-py stays for administration (activating versions, deletes, scans), where its public
API serves. hiredis comes with ``fsql[redis]``, imported through :func:`fsql.extras.require`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from fsql.errors import OnlineStoreUnavailable, RespError, StoreError
from fsql.extras import require
from fsql.secrets import redact

__all__ = [
    "HsetPacker",
    "RedisAddress",
    "ReplyCounter",
    "RespConnection",
    "RespError",
    "SyncConnection",
    "failed",
    "hmget_head",
    "open_connection",
    "pack_bulks",
    "pack_command",
    "pack_hmgets",
    "unavailable",
]

log = logging.getLogger("fsql.server")


# --- addresses ---------------------------------------------------------------------------------


class RedisAddress:
    """Where to connect, parsed from a ``redis://`` or ``unix://`` URL (the forms redis-py
    accepts for the online store, without TLS); query options other than ``db`` are ignored.

    >>> a = RedisAddress("redis://user:p%40ss@db.example:6380/4")
    >>> (a.host, a.port, a.db, a.username, a.password)
    ('db.example', 6380, 4, 'user', 'p@ss')
    """

    __slots__ = ("db", "host", "password", "port", "unix_path", "url", "username")

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.url = url
        self.unix_path: str | None = None
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 6379
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        if parts.scheme == "unix":
            self.unix_path = parts.path
            self.db = int(query.get("db", "0") or 0)
        else:
            path = parts.path.strip("/")
            self.db = int(path or query.get("db", "0") or 0)

    @staticmethod
    def supported(url: str) -> bool:
        """True when this module's connections speak ``url`` (not TLS: ``rediss://``)."""
        return urlsplit(url).scheme in ("redis", "unix")

    @property
    def where(self) -> str:
        """``host:port`` or the socket's path, for messages."""
        return self.unix_path or f"{self.host}:{self.port}"

    def setup(self) -> list[bytes]:
        """The commands a new connection sends first: ``AUTH`` and ``SELECT``, as needed."""
        commands: list[bytes] = []
        if self.password is not None:
            if self.username:
                commands.append(pack_command("AUTH", self.username, self.password))
            else:
                commands.append(pack_command("AUTH", self.password))
        if self.db:
            commands.append(pack_command("SELECT", str(self.db)))
        return commands


def unavailable(
    action: str, url: str, timeout: float, exc: BaseException
) -> OnlineStoreUnavailable:
    """The error for a Redis that refused, dropped or did not answer a request in time."""
    return OnlineStoreUnavailable(redact(
        f"could not {action}: Redis at {url} did not answer within {timeout:g}s "
        f"({exc or type(exc).__name__}); check that redis-server is running and reachable, "
        "or raise [online_store] timeout in fsql.toml"
    ))


def failed(action: str, url: str, exc: BaseException | str) -> StoreError:
    """The error for a request Redis answered with an error (an error reply, a bad login)."""
    return StoreError(redact(f"could not {action} (Redis at {url}): {exc}"))


# --- packing -----------------------------------------------------------------------------------


def pack_bulks(words: Iterable[str | bytes]) -> bytes:
    """RESP bulk strings for ``words``: the arguments of a command, packed."""
    out: list[bytes] = []
    for word in words:
        data = word.encode() if isinstance(word, str) else word
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


def pack_command(*words: str | bytes) -> bytes:
    """One command, packed as RESP.

    >>> pack_command("HGET", "h", b"f")
    b'*3\\r\\n$4\\r\\nHGET\\r\\n$1\\r\\nh\\r\\n$1\\r\\nf\\r\\n'
    """
    return b"*%d\r\n" % len(words) + pack_bulks(words)


def hmget_head(count: int, key: str) -> bytes:
    """``*count`` HMGET and its key, packed (the fields follow, packed by :func:`pack_bulks`)."""
    data = key.encode()
    return b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n" % (count, len(data), data)


def pack_hmgets(prefix: bytes, keys: Sequence[str], n_fields: int, fields: bytes) -> bytes:
    """One ``HMGET prefix+key fields...`` per key, in one buffer (``fields``: the
    ``n_fields`` field names already packed by :func:`pack_bulks`)."""
    head = b"*%d\r\n$5\r\nHMGET\r\n" % (n_fields + 2)
    parts: list[bytes] = []
    for key in keys:
        name = prefix + key.encode()
        parts += (head, b"$%d\r\n" % len(name), name, b"\r\n", fields)
    return b"".join(parts)


class HsetPacker:
    """``HSET prefix+key field record`` for many keys and one field, packed by the batch.

    The pieces ahead of a key and of a record are kept by length, so each command costs one
    encode and two dict lookups (redis-py's pipeline spent more time building command objects
    than Redis spent running them)."""

    __slots__ = ("fields", "heads", "middle", "prefix")

    def __init__(self, prefix: bytes, field: bytes):
        self.prefix = prefix
        self.middle = b"\r\n$%d\r\n%s\r\n" % (len(field), field)
        #: "*4 HSET $n prefix" by the length n of the key
        self.heads: dict[int, bytes] = {}
        #: "field $m" by the length m of the record
        self.fields: dict[int, bytes] = {}

    def pack(self, keys: Sequence[str], records: Sequence[bytes]) -> bytes:
        prefix = self.prefix
        heads = self.heads
        fields = self.fields
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
                mid = fields[m] = self.middle + b"$%d\r\n" % m
            add((head, data, mid, record, b"\r\n"))
        return b"".join(parts)


def _reply_parser() -> Any:
    """hiredis' C reply parser, error replies as :class:`RespError` values."""
    return require("hiredis", "redis").Reader(replyError=RespError)


# --- blocking connections ----------------------------------------------------------------------


class ReplyCounter:
    """Counts one-line replies (``:1``, ``-ERR ...``) as they arrive, across batches, and
    keeps the first error reply. Integer replies never hold a ``-``; error replies start
    with one. (A push counts its HSET replies this way instead of parsing them one by one.)"""

    __slots__ = ("error", "last", "seen")

    def __init__(self) -> None:
        self.seen = 0
        self.last = b""
        self.error: bytearray | None = None

    def wait(self, sock: socket.socket, replies: int) -> None:
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


class SyncConnection:
    """One blocking connection; every socket operation times out after ``timeout`` seconds.

    It connects on first use. Any failure leaves it to the caller to :meth:`close` it (a late
    reply must never be read as the next request's); the next exchange connects again.
    Raises TimeoutError when Redis does not answer in time, another OSError when the
    connection fails, :class:`RespError` when Redis refuses the login or ``SELECT``."""

    __slots__ = ("address", "parser", "pid", "sock", "timeout")

    def __init__(self, address: RedisAddress, timeout: float):
        self.address = address
        self.timeout = timeout
        #: the process that opened it (a forked child opens its own)
        self.pid = os.getpid()
        self.sock: socket.socket | None = None
        self.parser: Any = None

    def _connect(self) -> socket.socket:
        address = self.address
        if address.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(address.unix_path)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((address.host, address.port), self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.parser = sock, _reply_parser()
        setup = address.setup()
        if setup:
            for reply in self._roundtrip(sock, b"".join(setup), len(setup)):
                if isinstance(reply, RespError):
                    self.close()
                    raise reply
        return sock

    def exchange(self, payload: bytes, replies: int) -> list[Any]:
        """Send ``payload`` (``replies`` packed commands) and return every reply, error
        replies as :class:`RespError` values (the connection stays in step)."""
        sock = self.sock or self._connect()
        return self._roundtrip(sock, payload, replies)

    def _roundtrip(self, sock: socket.socket, payload: bytes, replies: int) -> list[Any]:
        sock.sendall(payload)
        parser = self.parser
        out: list[Any] = []
        while True:
            reply = parser.gets()
            while reply is not False:
                out.append(reply)
                if len(out) == replies:
                    return out
                reply = parser.gets()
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionResetError("connection closed by the server")
            parser.feed(chunk)

    def count_replies(self, payload: bytes, counter: ReplyCounter, replies: int) -> None:
        """Send ``payload`` (if any), then wait until ``replies`` one-line replies arrived
        in all (``counter`` keeps count across calls)."""
        sock = self.sock or self._connect()
        if payload:
            sock.sendall(payload)
        counter.wait(sock, replies)

    def close(self) -> None:
        sock, self.sock, self.parser = self.sock, None, None
        if sock is not None:
            try:
                sock.close()
            except OSError:  # pragma: no cover - closing a socket the kernel already dropped
                pass


# --- asyncio connections -----------------------------------------------------------------------


class _Pending:
    """One request: ``count`` replies to collect, sent at ``sent_at``; they go to ``future``,
    or to ``callback`` (the server's lookup fast lane, which runs without a task: the callback
    gets the replies, or the exception that failed the connection)."""

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
        if future is not None and not future.done():  # a cancelled caller's replies: dropped
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


class RespConnection(asyncio.Protocol):
    """One Redis connection speaking RESP2: requests are queued and written once per
    event-loop iteration (the lookups of many sessions share one write); replies complete
    the requests in the order they were sent. Any failure — no reply within ``timeout``,
    the connection lost, a reply nobody asked for — fails every waiting request and closes
    the connection (:attr:`usable` turns False).

    Unless ``batched`` is False: then each request is written at once (one caller at a time,
    like the online store's asyncio reads, gains nothing from waiting for the loop's turn)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, address: str,
                 batched: bool = True):
        self.loop = loop
        self.timeout = timeout
        self.address = address
        self.batched = batched
        self.parser = _reply_parser()
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
        """Queue ``count`` packed commands; the future gets their ``count`` replies (error
        replies as :class:`RespError` values), or the exception that failed the connection."""
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
        if not self.batched and self.transport is not None:
            self.transport.write(packed)
            self.writes += 1
        else:
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

    def close(self) -> None:
        """Close the connection, from its event loop or after that loop closed (a notebook's
        earlier ``asyncio.run``): the socket is then shut down, so Redis drops the client at
        once."""
        if self.loop.is_closed():
            self.failure = self.failure or ConnectionError("connection closed")
            self.pending.clear()
            transport = self.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return
        self.fail(ConnectionError("connection closed"))


async def open_connection(
    address: RedisAddress, timeout: float, *, batched: bool = True
) -> RespConnection:
    """A connected, logged-in :class:`RespConnection` to ``address`` on the running loop
    (``batched``: see :class:`RespConnection`).

    Connecting and the login are timed separately (``timeout`` each). Raises TimeoutError or
    another OSError when Redis cannot be reached, :class:`RespError` when it refuses the
    login or the database."""
    loop = asyncio.get_running_loop()

    def factory() -> RespConnection:
        return RespConnection(loop, timeout, address.where, batched)

    async with asyncio.timeout(timeout):
        if address.unix_path:
            _transport, connection = await loop.create_unix_connection(factory, address.unix_path)
        else:
            _transport, connection = await loop.create_connection(
                factory, address.host, address.port
            )
    setup = address.setup()
    if setup:
        try:
            replies = await connection.request(b"".join(setup), len(setup))
        except BaseException:
            connection.close()
            raise
        for reply in replies:
            if isinstance(reply, RespError):
                connection.fail(ConnectionError(str(reply)))
                raise reply
    return connection
