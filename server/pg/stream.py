"""A client connection's asyncio protocol: the stream's, with an optional lane in front of it.

The message loop (:mod:`fsql_server.pg.connection`) reads an :class:`asyncio.StreamReader`. A
surface may put a *lane* in front of that stream (fsql's lookup fast lane,
:mod:`fsql_server.features.fast_lane`): every read of the socket is offered to the lane first,
and what it does not take goes to the stream unchanged. The wire layer only knows the
:class:`Lane` protocol below.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Lane(Protocol):
    """What the message loop needs of a lane in front of its stream."""

    #: the message loop waits for input with nothing buffered, unsent or to skip
    parked: bool
    #: monotonic time of the lane's last answer (the idle timeout counts from it too)
    served_at: float

    def take(self, data: bytes) -> bool:
        """Called with every read of the socket: True when the lane took ``data``."""

    def close(self) -> None:
        """The connection is closing: take no more input."""


class ClientProtocol(asyncio.StreamReaderProtocol):
    """A client connection's protocol: the stream's, with the lane (if any) in front of it."""

    lane: Lane | None = None

    def __init__(self, reader: asyncio.StreamReader, connected: Any,
                 loop: asyncio.AbstractEventLoop):
        super().__init__(reader, connected, loop=loop)
        #: the stream (a worker adopting a connection feeds it the StartupMessage read
        #: by the worker that accepted it: fsql_server.pg.balance)
        self.reader = reader

    def data_received(self, data: bytes) -> None:
        lane = self.lane
        if lane is None or not lane.take(data):
            super().data_received(data)

    def feed(self, data: bytes) -> None:
        """Hand input to the message loop (the stream)."""
        super().data_received(data)
