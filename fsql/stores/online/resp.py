"""A minimal asyncio Redis connection for the online store's async read path.

redis-py's asyncio client spends most of a point read in its own machinery: a pool checkout,
``asyncio.wait_for`` around every send and a timeout context around every reply (measured
here: 170 us for one 10-field ``HMGET`` through ``redis.asyncio.Redis.hmget``, 1.1 ms for 100
replies read one by one on a held connection, against 0.4 ms with the sync client). This
connection writes a hand-packed request and feeds whatever arrives to hiredis' C parser until
every reply is in, under one timer for the whole exchange.

It only speaks what the reads need (plain TCP or a Unix socket, ``AUTH`` and ``SELECT`` from
the URL, parsed by redis-py's ``parse_url``); :meth:`AsyncResp.supports` says when a URL needs
more (TLS, say), and the store then keeps to redis-py's asyncio client.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["AsyncResp", "RespError"]


class RespError(Exception):
    """An error reply from Redis (``-ERR ...``); its text is the message."""


def _pack(*words: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        data = word.encode() if isinstance(word, str) else word
        out += (b"$%d\r\n" % len(data), data, b"\r\n")
    return b"".join(out)


class AsyncResp:
    """One connection; one exchange at a time (the store keeps a free list per event loop).

    Any failure closes it (a late reply must never be read as the next request's); the next
    :meth:`exchange` reconnects."""

    def __init__(self, options: dict[str, Any], timeout: float):
        self.options = options
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser: Any = None

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
        return self._writer is not None

    async def _connect(self) -> None:
        import hiredis

        options = self.options
        if "path" in options:
            opened = asyncio.open_unix_connection(options["path"])
        else:
            opened = asyncio.open_connection(options.get("host", "localhost"),
                                             options.get("port", 6379))  # fmt: skip
        self._reader, self._writer = await opened
        self._parser = hiredis.Reader(replyError=RespError)
        setup = []
        if options.get("password") is not None:
            user = options.get("username")
            auth = ("AUTH", user, options["password"]) if user else ("AUTH", options["password"])
            setup.append(_pack(*auth))
        if options.get("db"):
            setup.append(_pack("SELECT", str(options["db"])))
        if setup:
            for reply in await self._roundtrip(b"".join(setup), len(setup)):
                if isinstance(reply, RespError):
                    raise reply

    async def exchange(self, payload: bytes, replies: int) -> list[Any]:
        """Send ``payload`` (``replies`` packed commands) and return the replies, error
        replies as :class:`RespError` values. Raises TimeoutError after ``timeout`` seconds
        for the whole exchange (connecting included), OSError when the connection fails."""
        try:
            async with asyncio.timeout(self.timeout):
                if self._writer is None:
                    await self._connect()
                return await self._roundtrip(payload, replies)
        except BaseException:  # timeout, connection lost, cancelled: never reuse the socket
            self.close()
            raise

    async def _roundtrip(self, payload: bytes, replies: int) -> list[Any]:
        assert self._writer is not None and self._reader is not None
        self._writer.write(payload)
        parser = self._parser
        read = self._reader.read
        out: list[Any] = []
        while True:
            reply = parser.gets()
            if reply is False:
                chunk = await read(1 << 16)
                if not chunk:
                    raise ConnectionResetError("connection closed by the server")
                parser.feed(chunk)
                continue
            out.append(reply)
            if len(out) == replies:
                return out

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = self._parser = None
