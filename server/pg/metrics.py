"""``/metrics``: Prometheus-format pipeline metrics over HTTP, inside the server process.

A deliberately minimal HTTP/1.x responder on ``[server] metrics_port`` (``fsql serve
--metrics-port``): ``GET /metrics`` answers 200 with :func:`fsql.compute.monitor.
prometheus_metrics` as ``text/plain; version=0.0.4``; any other path is 404, any other method
on ``/metrics`` 405. One request per connection (``Connection: close``), a request head of at
most :data:`MAX_REQUEST` bytes, read within :data:`REQUEST_TIMEOUT` seconds. The registry read
runs in a worker thread, so a scrape never holds up the Postgres sessions of the event loop.
With several workers, only worker 0 listens (the socket is bound once, before forking).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

log = logging.getLogger("fsql.server.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: the longest request head (request line and headers) accepted
MAX_REQUEST = 8192
#: seconds a client has to send its request head
REQUEST_TIMEOUT = 10.0
PATH = "/metrics"


def response(status: int, reason: str, body: bytes, content_type: str = "text/plain",
             extra: tuple[str, ...] = (), head_only: bool = False) -> bytes:
    """One complete HTTP/1.1 response that closes the connection."""
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", "Connection: close", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 render: Callable[[], str]) -> None:
    """Answer one request on one connection, then close it."""
    try:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except asyncio.LimitOverrunError:
            writer.write(response(431, "Request Header Fields Too Large",
                                  f"request head longer than {MAX_REQUEST} bytes\n".encode()))
            await linger(reader, writer)
            return
        except (asyncio.IncompleteReadError, TimeoutError):
            return  # the client went away or never finished its request
        writer.write(await answer(head, render))
    except (ConnectionError, OSError):
        return
    finally:
        try:
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        writer.close()


async def linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send the response and FIN, then read and drop what the client still sends (a bounded
    amount, briefly): closing with unread input would reset the connection, and the client
    could lose the response."""
    await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    dropped = 0
    try:
        while dropped < 16 * MAX_REQUEST:
            chunk = await asyncio.wait_for(reader.read(MAX_REQUEST), 2.0)
            if not chunk:
                return
            dropped += len(chunk)
    except (TimeoutError, ConnectionError, OSError):
        return


async def answer(head: bytes, render: Callable[[], str]) -> bytes:
    """The response to one request head."""
    request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        return response(400, "Bad Request", b"expected: GET /metrics HTTP/1.1\n")
    method, target, _version = parts
    path = target.split("?", 1)[0]
    if path != PATH:
        return response(404, "Not Found", f"not found: {path}; metrics are at {PATH}\n".encode())
    if method not in ("GET", "HEAD"):
        return response(405, "Method Not Allowed", f"{PATH} answers GET\n".encode(),
                        extra=("Allow: GET, HEAD",))
    loop = asyncio.get_running_loop()
    try:
        text = await loop.run_in_executor(None, render)
    except Exception as exc:  # noqa: BLE001 - a scrape error must not stop the listener
        log.exception("rendering /metrics failed")
        return response(500, "Internal Server Error",
                        f"fsql could not read its registry: {type(exc).__name__}: {exc}\n"
                        .encode())
    return response(200, "OK", text.encode(), CONTENT_TYPE, head_only=method == "HEAD")


async def start(sock: socket.socket, render: Callable[[], str]) -> asyncio.Server:
    """Serve ``/metrics`` on the listening socket ``sock`` until the returned server closes."""

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle(reader, writer, render)

    return await asyncio.start_server(on_connect, sock=sock, limit=MAX_REQUEST)
