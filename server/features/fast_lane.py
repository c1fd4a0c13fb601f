"""The point-lookup fast lane: lookups answered from the socket callback, without a task.

A connection's messages are served by :class:`~fsql_server.pg.connection.Connection`'s message
loop, a coroutine reading an :class:`asyncio.StreamReader`. For a point lookup on
``features.<entity>`` that loop's machinery — waking the task, the chain of coroutines down
to the Redis reader, a future per read, ``drain`` — cost more CPU than the lookup itself.
The fast lane takes those lookups before they reach the stream:

- :class:`~fsql_server.pg.stream.ClientProtocol` is the connection's protocol. While the message loop is *parked*
  (waiting for input with nothing buffered, nothing unsent, no error to skip past),
  incoming bytes go to :meth:`FastLane.take` first.
- The lane answers a unit of messages itself when it is a lookup whose plan is cached: a
  simple ``Query`` (:func:`~fsql_server.pg.router.cached_lookup`), or ``Bind`` [``Describe``
  portal] ``Execute`` ``Sync`` on a prepared lookup statement, outside a transaction block.
  It queues the HMGET on the worker's Redis connection with a callback, and the callback
  writes the whole answer — the same bytes the message loop would send.
- What a lookup of one shape needs (plan, messages around the rows, encoders, the Redis
  command's fields, the versions read and their TTLs) is kept as a :class:`Route`, so a
  repeat is a dict lookup, the key's conversion and the HMGET. A route lives until the
  versions it reads may have changed (the reader re-resolves them every
  ``version_cache_seconds``), the registry view is due for a check, or the message loop
  handles anything on the connection (which may change the session: ``SET TimeZone``, a new
  ``Parse``): then the next lookup builds it again.
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
from collections.abc import Sequence
from typing import Any, cast

from fsql_server.features.lookup import LookupPlan
from fsql_server.pg import protocol
from fsql_server.pg.backend import FastLookup
from fsql_server.pg.connection import Connection
from fsql_server.pg.router import LITERAL_TAIL, cached_lookup, last_literal, literal_value
from fsql_server.pg.stream import ClientProtocol
from fsql_server.pg.types import PgType

from fsql.serving.reader import ReadPlan
from fsql.stores.online.codec import NO_TTL, serve_records
from fsql.stores.online.reader import hmget_head
from fsql.stores.online.redis import entity_hash_key

_I32 = struct.Struct("!i")
_U16 = struct.Struct("!H")
#: a Bind's parameter count and the first parameter's length
_PARAM = struct.Struct("!hi")
#: the largest unit the lane looks at; longer input goes to the message loop
MAX_UNIT = 16 * 1024
#: stop taking lookups while this much of the answers is still unsent (the loop drains)
MAX_UNSENT = 256 * 1024
_SYNC = b"S\x00\x00\x00\x04"


def _lookup_plan(lookup: FastLookup | None) -> LookupPlan | None:
    """The fsql point lookup behind a plan's ``fast_lookup`` (what the plan says it can do):
    the lane reads what a :class:`~.lookup.LookupPlan` knows (features, key types,
    projection), so it takes fsql's lookups only."""
    return lookup if isinstance(lookup, LookupPlan) else None


class Route:
    """A lookup shape prepared once (see the module docstring): valid while :meth:`usable`."""

    __slots__ = ("before", "binary_key", "catalog", "connection", "count", "deadline",
                 "encoders", "entity", "generation", "group", "key_type", "no_ttl", "plan",
                 "tail", "template", "ttls")

    def __init__(self, plan: LookupPlan, before: bytes, encoders: list[Any]):
        self.plan = plan
        self.before = before
        self.encoders = encoders
        self.key_type: PgType = plan.param_types[0] if plan.param_types else None  # type: ignore[assignment]
        self.catalog = plan.services.catalog
        self.generation = -1
        self.deadline = 0.0
        #: a simple query's text before its literal, and what follows the literal
        self.template = ("", "")
        #: a Bind's parameter arrives in binary format
        self.binary_key = False

    def prepare(self) -> bool:
        """Look up what a read needs now; False when the message loop must do this lookup
        (no Redis reader, versions to resolve, a shape the lane does not take)."""
        plan = self.plan
        services = plan.services
        reader = services.lookup_reader
        if reader is None or not plan.feature_names or len(plan.key_types) != 1:
            return False
        catalog = self.catalog
        read_plan = ReadPlan.for_ids(catalog, plan.feature_names)
        if len(read_plan.groups) != 1:
            return False
        group = read_plan.groups[0]
        found = reader.prepared(group.refs)
        if found is None:
            return False
        self.connection, versions, self.tail, expires = found
        self.group = group
        self.entity = group.entity.name
        self.count = len(group.refs) + 2
        # the TTL of the version actually read (a pinned or not yet switched one may differ)
        self.ttls = [None if o == NO_TTL else -o for o in group.oldest(catalog, versions, 0)]
        #: the oldest feature times when no feature has a TTL (none is ever too old)
        self.no_ttl = [NO_TTL] * len(self.ttls) if all(t is None for t in self.ttls) else None
        self.generation = catalog.generation
        self.deadline = min(expires, time.monotonic() + catalog.refresh_seconds)
        return True

    def usable(self) -> bool:
        return self.generation == self.catalog.generation and time.monotonic() < self.deadline \
            and self.connection.usable

    def send(self, params: list[Any], callback: Any) -> list[Any] | None:
        """Queue the HMGET for ``params``; the entity keys asked for (None: the loop must
        answer, e.g. a NULL key, which matches no row)."""
        keys = self.plan.keys(params)
        if len(keys) != 1:
            return None
        key = self.group.encode_keys(keys)[0]
        self.connection.request_then(
            hmget_head(self.count, entity_hash_key(self.entity, key)) + self.tail, 1, callback)
        return keys

    def answer(self, keys: list[Any], params: list[Any], records: list[Any]) -> bytes:
        """The DataRow(s) and CommandComplete for the records read."""
        now_us = time.time_ns() // 1000
        oldest = self.no_ttl or [NO_TTL if ttl is None else now_us - ttl for ttl in self.ttls]
        values = serve_records(records, oldest, now_us)
        plan = self.plan
        rows: Sequence[Sequence[Any]]
        if not plan.plain:
            rows = plan.project(keys, [values], params)
        else:  # one row, no ORDER BY/LIMIT: the projection without building rows of rows
            full = [keys[0], *values]
            rows = [[full[i] for i in plan.output_positions]]
        encoders = self.encoders
        return b"".join([*(protocol.encode_data_row(row, encoders) for row in rows),
                         protocol.select_complete(len(rows))])


class FastLane:
    """The fast lane of one connection (see the module docstring)."""

    __slots__ = ("busy", "conn", "held", "last_query", "parked", "paused", "protocol", "routes",
                 "served_at")

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
        #: lookup shapes seen on this connection (see :class:`Route`)
        self.routes: dict[Any, Route] = {}
        #: the route of the last simple-protocol lookup (tried first)
        self.last_query: Route | None = None

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
                cast(asyncio.Transport, self.conn.writer.transport).pause_reading()
            return True
        if self.parked and self.start(data):
            return True
        self.parked = False
        self.forget()  # the loop may change the session: routes are made again
        return False

    def start(self, data: bytes | bytearray) -> bool:
        """Begin answering the first unit of ``data`` (the rest is held); False when the
        lane cannot (nothing was done)."""
        try:
            found = self.unit(data)
            if found is None:
                return False
            route, params, end = found
            unit = bytes(data[:end])
            keys: list[Any] | None = None

            def replied(outcome: list[Any] | BaseException) -> None:
                self.answer(route, unit, keys, params, outcome)

            keys = route.send(params, replied)
            if keys is None:
                return False
        except Exception:  # noqa: BLE001 - whatever is odd, the message loop answers it
            return False
        self.busy = True
        if end < len(data):
            self.held += data[end:]
        return True

    def unit(self, data: bytes | bytearray) -> tuple[Route, list[Any], int] | None:
        """The lookup at the start of ``data``: (its route, the parameter values, where the
        unit ends), or None when it is not one the lane answers."""
        conn = self.conn
        session = conn.session
        if session is None or len(data) < 5:
            return None
        kind = data[:1]
        length = _I32.unpack_from(data, 1)[0]
        end = length + 1
        if length < 4 or end > len(data) or end > MAX_UNIT \
                or conn.writer.transport.get_write_buffer_size() > MAX_UNSENT:
            return None
        if kind == b"Q":
            if session.status == "E" or data.find(b"\x00", 5) != end - 1:
                return None
            # the statement as the loop's split_statements leaves a single one
            sql = bytes(data[5 : end - 1]).decode().rstrip().rstrip(";")
            route = self.last_query
            found = None
            if route is not None and sql.startswith(route.template[0]):
                # the shape of the previous query: only its literal needs reading
                tail = LITERAL_TAIL.fullmatch(sql, len(route.template[0]))
                if tail is not None and tail.group(2) == route.template[1]:
                    found = text = tail.group(1)
            if found is None:
                literal = last_literal(sql)
                if literal is None:
                    return None
                template, text = literal
                route = self.routes.get(template)
                if route is None or not route.usable():
                    route = self.query_route(sql, template)
            if route is None or not route.usable():
                return None
            self.last_query = route
            session.statements.pop("", None)
            return route, [literal_value(text, route.key_type)], end
        if kind != b"B" or session.status != "I":
            return None
        return self.bind_unit(data, end)

    def query_route(self, sql: str, template: tuple[str, str]) -> Route | None:
        """The route of a simple-protocol lookup whose only literal is its last one."""
        session = self.conn.session
        assert session is not None
        if template not in session.literal_templates:
            return None  # not a one-literal lookup the session planned
        found = cached_lookup(session, sql)
        if found is None:
            return None
        lookup, params = found
        plan = _lookup_plan(lookup)
        if plan is None or len(params) != 1:
            return None
        description, encoders = self.conn.row_shape(plan.columns, [0] * len(plan.columns))
        route = Route(plan, description, encoders)
        if not route.prepare():
            return None
        route.template = template
        self.routes[template] = route
        return route

    def bind_unit(self, data: bytes | bytearray, end: int) -> tuple[Route, list[Any], int] | None:
        """Bind [Describe portal] Execute Sync on a prepared lookup (see :meth:`unit`). The
        route is found by the Bind's bytes without the parameter's value: the statement name
        and the format codes (checked in full by :func:`protocol.parse_bind` when the route
        was made)."""
        session = self.conn.session
        assert session is not None
        body = bytes(data[5:end])
        if body[:1] != b"\x00":
            return None  # a named portal: the loop keeps it
        pos = body.index(b"\x00", 1) + 1
        n_formats = _U16.unpack_from(body, pos)[0]
        pos += 2 + 2 * n_formats
        n_params, size = _PARAM.unpack_from(body, pos)
        value_at = pos + 6
        if n_params != 1 or size < 0 or value_at + size > len(body):
            return None  # not one parameter, or NULL (matches no key: the loop answers)
        after = end
        describe = data[after : after + 7] == b"D\x00\x00\x00\x06P\x00"
        if describe:
            after += 7
        # Execute of the unnamed portal with any row limit (checked against the rows later)
        if data[after : after + 6] != b"E\x00\x00\x00\x09\x00" or len(data) < after + 15 \
                or data[after + 10 : after + 15] != _SYNC:
            return None
        max_rows = _I32.unpack_from(data, after + 6)[0]
        shape = (body[: pos + 2], body[value_at + size :], describe)
        route = self.routes.get(shape)
        if route is None or not route.usable():
            route = self.bind_route(body, shape)
            if route is None or not route.usable():
                return None
        raw = body[value_at : value_at + size]
        kind = route.key_type
        params = [kind.binary_in(raw) if route.binary_key else kind.text_in(raw)]
        if 0 < max_rows < 2:
            return None  # a row limit a one-row answer could reach: the loop's portal logic
        session.portals.pop("", None)
        return route, params, after + 15

    def bind_route(self, body: bytes, shape: tuple[bytes, bytes, bool]) -> Route | None:
        session = self.conn.session
        assert session is not None
        bind = protocol.parse_bind(body)  # every check of the message loop's Bind
        statement = session.statements.get(bind.statement)
        prepared = statement.plan if statement is not None else None
        plan = _lookup_plan(prepared.fast_lookup if prepared is not None else None)
        if plan is None or plan.stale() or len(plan.param_types) != 1 or len(bind.params) != 1:
            return None
        param_formats = protocol.formats_for(bind.param_formats, 1, "parameter")
        formats = protocol.formats_for(bind.result_formats, len(plan.columns), "result")
        description, encoders = self.conn.row_shape(plan.columns, formats)
        before = protocol.BIND_COMPLETE + (description if shape[2] else b"")
        route = Route(plan, before, encoders)
        if not route.prepare():
            return None
        route.binary_key = param_formats[0] == 1
        self.routes[shape] = route
        return route

    # -- output ---------------------------------------------------------------------------------

    def answer(self, route: Route, unit: bytes, keys: list[Any] | None, params: list[Any],
               outcome: list[Any] | BaseException) -> None:
        """The read for ``unit`` is back: send its answer, then go on with held input."""
        self.busy = False
        conn = self.conn
        writer = conn.writer
        if writer.is_closing():
            self.held.clear()
            return
        if self.paused:
            self.paused = False
            cast(asyncio.Transport, writer.transport).resume_reading()
        data: bytes | None = None
        if keys is not None and not isinstance(outcome, BaseException) \
                and type(outcome[0]) is list:
            try:
                data = self.encode(route, route.answer(keys, params, outcome[0]))
            except Exception:  # noqa: BLE001 - a value that does not encode: the loop says so
                data = None
        if data is None:
            self.fall_back(unit)
            return
        writer.transport.write(data)
        conn.state.fast_lane_lookups += 1
        self.served_at = time.monotonic()
        if self.held:
            held = bytes(self.held)
            self.held.clear()
            if not self.start(held):
                self.fall_back(held)

    def encode(self, route: Route, rows: bytes) -> bytes:
        """The whole answer: what comes before the rows, the rows, ReadyForQuery."""
        session = self.conn.session
        assert session is not None
        # a simple query ends its implicit transaction; so does the Sync after Execute
        if session.portals:
            self.conn.end_implicit_transaction()
        return route.before + rows + protocol.READY[session.status]

    def close(self) -> None:
        """The connection is closing: take no more input (an answer still in flight is
        dropped: its writer is closed)."""
        self.parked = False
        self.held.clear()
        self.forget()
        self.protocol.lane = None

    def fall_back(self, data: bytes | bytearray) -> None:
        """Send ``data`` and everything held to the message loop, in order."""
        if self.held:
            data = bytes(data) + bytes(self.held)
            self.held.clear()
        self.parked = False
        self.forget()
        self.protocol.feed(bytes(data))

    def forget(self) -> None:
        self.routes.clear()
        self.last_query = None
