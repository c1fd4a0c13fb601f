"""A minimal asyncio Redis connection for the online store's async read path.

redis-py's asyncio client spends most of a point read in its own machinery: a pool checkout,
``asyncio.wait_for`` around every send and a timeout context around every reply (measured
here: 170 us for one 10-field ``HMGET`` through ``redis.asyncio.Redis.hmget``, 1.1 ms for 100
replies read one by one on a held connection, against 0.4 ms with the sync client). This
connection (an asyncio protocol) writes a hand-packed request and feeds whatever arrives to
hiredis' C parser until every reply is in, under one timer for the whole exchange.

It only speaks what the reads need (plain TCP or a Unix socket, ``AUTH`` and ``SELECT`` from
the URL, parsed by redis-py's ``parse_url``); :meth:`AsyncResp.supports` says when a URL needs
more (TLS, say), and the store then keeps to redis-py's asyncio client.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from fsql.errors import RespError

__all__ = ["AsyncResp", "RespError"]


def _pack(*words: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode() if isinstance(word, str) else word
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    """Feeds what arrives to hiredis and completes the waiting exchange when its last reply
    is in (no stream buffer, no future per read)."""

    def __init__(self) -> None:
        import hiredis

        self.parser = hiredis.Reader(replyError=RespError)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[list[Any]] | None = None
        self.replies: list[Any] = []
        self.expected = 0
        #: why the connection ended (None while it is open)
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        parser.feed(data)
        waiter = self.waiter
        if waiter is None:
            return
        out = self.replies
        while True:
            reply = parser.gets()
            if reply is False:
                return
            out.append(reply)
            if len(out) == self.expected:
                self.waiter = None
                if not waiter.done():
                    waiter.set_result(out)
                return

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionResetError("connection closed by the server")
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(self.lost)


def _expire(waiter: asyncio.Future[list[Any]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class AsyncResp:
    """One connection; one exchange at a time (the store keeps a free list per event loop).

    Any failure closes it (a late reply must never be read as the next request's); the next
    :meth:`exchange` reconnects."""

    def __init__(self, options: dict[str, Any], timeout: float):
        self.options = options
        self.timeout = timeout
        self._proto: _Protocol | None = None

    @staticmethod
    def parse(url: str) -> dict[str, Any] | None:
        """Connection options for ``url``, or None when it needs more than this speaks."""
        try:
            import hiredis  # noqa: F401 - the C reply parser this connection relies on
            from redis.connection import UnixDomainSocketConnection, parse_url
        except ImportError:
            return None
        options = parse_url(url)
        kind = options.pop("connection_class", None)
        if kind is not None and kind is not UnixDomainSocketConnection:
            return None  # TLS and other transports: redis-py's client
        if set(options) - {"host", "port", "db", "username", "password", "path"}:
            return None  # query options (timeouts, protocol=3...): redis-py's client
        return options

    @property
    def connected(self) -> bool:
        return self._proto is not None and self._proto.lost is None

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        options = self.options
        if "path" in options:
            _transport, proto = await loop.create_unix_connection(_Protocol, options["path"])
        else:
            _transport, proto = await loop.create_connection(
                _Protocol, options.get("host", "localhost"), options.get("port", 6379)
            )
        self._proto = proto
        setup = []
        if options.get("password") is not None:
            user = options.get("username")
            auth = ("AUTH", user, options["password"]) if user else ("AUTH", options["password"])
            setup.append(_pack(*auth))
        if options.get("db"):
            setup.append(_pack("SELECT", str(options["db"])))
        if setup:
            for reply in await self._roundtrip(proto, b"".join(setup), len(setup)):
                if isinstance(reply, RespError):
                    raise reply

    async def exchange(self, payload: bytes, replies: int) -> list[Any]:
        """Send ``payload`` (``replies`` packed commands) and return the replies, error
        replies as :class:`RespError` values. Raises TimeoutError after ``timeout`` seconds
        (connecting and exchanging are timed separately), OSError when the connection fails."""
        try:
            proto = self._proto
            if proto is None or proto.lost is not None:
                async with asyncio.timeout(self.timeout):
                    await self._connect()
                proto = self._proto
                assert proto is not None
            return await self._roundtrip(proto, payload, replies)
        except BaseException:  # timeout, connection lost, cancelled: never reuse the socket
            self.close()
            raise

    async def _roundtrip(self, proto: _Protocol, payload: bytes, replies: int) -> list[Any]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[list[Any]] = loop.create_future()
        proto.waiter, proto.replies, proto.expected = waiter, [], replies
        assert proto.transport is not None
        proto.transport.write(payload)
        timer = loop.call_later(self.timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        """Close the connection. Its event loop may be closed already (a notebook's earlier
        ``asyncio.run``): the socket is then shut down, so Redis drops the client at once."""
        proto, self._proto = self._proto, None
        if proto is not None:
            proto.waiter = None
            transport = proto.transport
            if transport is not None:
                try:
                    transport.close()
                except RuntimeError:  # the loop is closed
                    sock = transport.get_extra_info("socket")
                    if sock is not None:
                        try:
                            sock.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
