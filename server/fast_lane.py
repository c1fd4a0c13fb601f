"""The point-lookup fast lane: lookups answered from the socket callback, without a task.

A connection's messages are served by :class:`~fsql_server.connection.Connection`'s message
loop, a coroutine reading an :class:`asyncio.StreamReader`. For a point lookup on
``features.<entity>`` that loop's machinery — waking the task, the chain of coroutines down
to the Redis reader, a future per read, ``drain`` — cost more CPU than the lookup itself.
The fast lane takes those lookups before they reach the stream:

- :class:`ClientProtocol` is the connection's protocol. While the message loop is *parked*
  (waiting for input with nothing buffered, nothing unsent, no error to skip past),
  incoming bytes go to :meth:`FastLane.take` first.
- The lane answers a unit of messages itself when it is a lookup whose plan is cached: a
  simple ``Query`` (:func:`~fsql_server.surface.cached_lookup`), or ``Bind`` [``Describe``
  portal] ``Execute`` ``Sync`` on a prepared lookup statement, outside a transaction block.
  It queues the read on the worker's Redis reader with a callback
  (:meth:`LookupPlan.submit <fsql_server.fsql_surface.LookupPlan.submit>`), and the callback
  writes the whole answer — the same bytes the message loop would send.
- Anything else, or anything unusual on the way (a plan not cached or stale, versions to
  resolve, Redis down, a value that does not convert, a unit split across reads), goes to
  the message loop unchanged, in order: the lane *falls back* by feeding those bytes to
  the stream, and the full path answers them (errors included) exactly as before. Input
  that arrives while a lookup waits for Redis is held and handled after its answer, so
  replies never overtake each other.

The lane never changes what a client sees; it only skips work. Session state a lookup
would touch is kept the same way: a simple query drops the unnamed statement, a Bind
replaces the unnamed portal and the Sync ends the implicit transaction (which removes it).
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import TYPE_CHECKING, Any

from fsql_server import protocol
from fsql_server.fsql_surface import LookupPlan
from fsql_server.surface import cached_lookup

if TYPE_CHECKING:
    from fsql_server.connection import Connection

_I32 = struct.Struct("!i")
#: the largest unit the lane looks at; longer input goes to the message loop
MAX_UNIT = 16 * 1024
#: stop taking lookups while this much of the answers is still unsent (the loop drains)
MAX_UNSENT = 256 * 1024
_SYNC = b"S\x00\x00\x00\x04"


class ClientProtocol(asyncio.StreamReaderProtocol):
    """A client connection's protocol: the stream's, with the fast lane in front of it."""

    lane: FastLane | None = None

    def data_received(self, data: bytes) -> None:
        lane = self.lane
        if lane is None or not lane.take(data):
            super().data_received(data)

    def feed(self, data: bytes) -> None:
        """Hand input to the message loop (the stream)."""
        super().data_received(data)


class _Unit:
    """One lookup the lane answers: the bytes it came in, what goes before and after its
    rows, and how to encode them."""

    __slots__ = ("before", "columns", "data", "formats", "max_rows")

    def __init__(self, data: bytes, before: bytes, columns: Any, formats: list[int],
                 max_rows: int = 0):
        self.data = data
        self.before = before
        self.columns = columns
        self.formats = formats
        #: Execute's row limit (0: none); a lookup with more rows is left to the loop
        self.max_rows = max_rows


class FastLane:
    """The fast lane of one connection (see the module docstring)."""

    __slots__ = ("busy", "conn", "held", "parked", "paused", "protocol", "served_at")

    def __init__(self, conn: Connection, protocol_: ClientProtocol):
        self.conn = conn
        self.protocol = protocol_
        #: the message loop waits for input with nothing buffered or unsent
        self.parked = False
        #: a lookup waits for Redis; input is held until it is answered
        self.busy = False
        self.held = bytearray()
        #: reading is paused until the lookup in flight is answered (see :meth:`take`)
        self.paused = False
        #: monotonic time of the last answer (the idle timeout counts from it too)
        self.served_at = 0.0

    # -- input ----------------------------------------------------------------------------------

    def take(self, data: bytes) -> bool:
        """Called with every read of the socket: True when the lane took ``data`` (answered
        it, or holds it behind a lookup in flight); False sends it to the message loop."""
        if self.busy:
            self.held += data
            if len(self.held) > MAX_UNSENT and not self.paused:
                # a client pipelining faster than Redis answers: stop reading until the
                # lookup in flight is answered (flow control, as the stream would)
                self.paused = True
                self.conn.writer.transport.pause_reading()
            return True
        if not self.parked:
            return False
        if self.start(data):
            return True
        self.parked = False
        return False

    def start(self, data: bytes | bytearray) -> bool:
        """Begin answering the first unit of ``data`` (the rest is held); False when the
        lane cannot (nothing was done)."""
        try:
            found = self.unit(data)
        except Exception:  # noqa: BLE001 - whatever is odd, the message loop answers it
            return False
        if found is None:
            return False
        unit, plan, params, end = found
        try:
            submitted = plan.submit(params, lambda outcome: self.answer(unit, outcome))
        except Exception:  # noqa: BLE001 - e.g. a key that does not convert: the loop says so
            return False
        if not submitted:
            return False
        self.busy = True
        if end < len(data):
            self.held += data[end:]
        return True

    def unit(self, data: bytes | bytearray) -> tuple[_Unit, LookupPlan, Any, int] | None:
        """The lookup at the start of ``data``: (unit, plan, parameter values, where the
        unit ends), or None when it is not one the lane answers."""
        conn = self.conn
        session = conn.session
        if session is None or len(data) < 5 or conn.writer.transport.get_write_buffer_size() \
                > MAX_UNSENT:
            return None
        kind = data[:1]
        length = _I32.unpack_from(data, 1)[0]
        end = length + 1
        if length < 4 or end > len(data) or end > MAX_UNIT:
            return None
        if kind == b"Q":
            if session.status == "E" or data.find(b"\x00", 5) != end - 1:
                return None
            sql = bytes(data[5 : end - 1]).decode()
            found = cached_lookup(session, sql)
            if found is None:
                return None
            plan, params = found
            assert isinstance(plan, LookupPlan)
            columns = plan.columns
            formats = [0] * len(columns)
            before = conn.row_shape(columns, formats)[0]
            session.statements.pop("", None)
            return _Unit(bytes(data[:end]), before, columns, formats), plan, params, end
        if kind != b"B" or session.status != "I":
            return None
        bind = protocol.parse_bind(bytes(data[5:end]))
        if bind.portal:
            return None
        statement = session.statements.get(bind.statement)
        lookup = statement.plan if statement is not None else None
        if not isinstance(lookup, LookupPlan) or type(lookup) is not LookupPlan \
                or lookup.stale():
            return None
        types = lookup.param_types
        if len(bind.params) != len(types):
            return None
        pos = end
        describe = False
        if data[pos : pos + 1] == b"D":
            if data[pos : pos + 7] != b"D\x00\x00\x00\x06P\x00":
                return None
            describe = True
            pos += 7
        # Execute of the unnamed portal with no row limit (or one the lookup cannot reach)
        if data[pos : pos + 6] != b"E\x00\x00\x00\x09\x00" or len(data) < pos + 15:
            return None
        max_rows = _I32.unpack_from(data, pos + 6)[0]
        pos += 10
        if data[pos : pos + 5] != _SYNC:
            return None
        end = pos + 5
        in_formats = protocol.formats_for(bind.param_formats, len(bind.params), "parameter")
        params = [
            None if raw is None else (t.binary_in(raw) if fmt else t.text_in(raw))
            for raw, t, fmt in zip(bind.params, types, in_formats, strict=True)
        ]
        columns = lookup.columns
        formats = protocol.formats_for(bind.result_formats, len(columns), "result")
        before = protocol.BIND_COMPLETE
        if describe:
            before += conn.row_shape(columns, formats)[0]
        session.portals.pop("", None)
        unit = _Unit(bytes(data[:end]), before, columns, formats, max(max_rows, 0))
        return unit, lookup, params, end

    # -- output ---------------------------------------------------------------------------------

    def answer(self, unit: _Unit, outcome: list[tuple[Any, ...]] | BaseException) -> None:
        """The read for ``unit`` is back: send its answer, then go on with held input."""
        self.busy = False
        conn = self.conn
        writer = conn.writer
        if writer.is_closing():
            self.held.clear()
            return
        if self.paused:
            self.paused = False
            writer.transport.resume_reading()
        data: bytes | None = None
        if not isinstance(outcome, BaseException) and not (
            unit.max_rows and len(outcome) > unit.max_rows
        ):
            try:
                data = self.encode(unit, outcome)
            except Exception:  # noqa: BLE001 - a value that does not encode: the loop says so
                data = None
        if data is None:
            self.fall_back(unit.data)
            return
        writer.write(data)
        conn.state.fast_lane_lookups += 1
        self.served_at = time.monotonic()
        if self.held:
            held = bytes(self.held)
            self.held.clear()
            if not self.start(held):
                self.fall_back(held)

    def encode(self, unit: _Unit, rows: list[tuple[Any, ...]]) -> bytes:
        conn = self.conn
        session = conn.session
        assert session is not None
        encoders = conn.row_shape(unit.columns, unit.formats)[1]
        encode_row = protocol.encode_data_row
        out = [unit.before]
        for row in rows:
            out.append(encode_row(row, encoders))
        out.append(protocol.select_complete(len(rows)))
        # a simple query ends its implicit transaction; so does the Sync after Execute
        conn.end_implicit_transaction()
        out.append(protocol.READY[session.status])
        return b"".join(out)

    def close(self) -> None:
        """The connection is closing: take no more input (an answer still in flight is
        dropped: its writer is closed)."""
        self.parked = False
        self.held.clear()
        self.protocol.lane = None

    def fall_back(self, data: bytes | bytearray) -> None:
        """Send ``data`` and everything held to the message loop, in order."""
        if self.held:
            data = bytes(data) + bytes(self.held)
            self.held.clear()
        self.parked = False
        self.protocol.feed(bytes(data))

