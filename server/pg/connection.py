"""One client connection: after startup (:mod:`.startup`), the simple and extended protocols.

The message loop never lets one client hurt another: every message length is checked before
anything is allocated, a message that does not parse ends only this connection (FATAL 08P01),
an error in a statement becomes an ErrorResponse and the session goes on, and a client that
vanishes is noticed as a closed stream and cleaned up. Output is buffered and written on
Sync, Flush, ReadyForQuery or when the buffer grows large, as PostgreSQL does (asyncpg and
pg8000 send Flush and wait for the answers pending so far).
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from fsql_server.pg import errors, protocol
from fsql_server.pg.backend import Column, Plan, Result, encoders_for
from fsql_server.pg.binding import BIND_IN_THREAD, bind_values, declared_types
from fsql_server.pg.copy import CopyInPlan, encode_copy_rows
from fsql_server.pg.errors import PgError
from fsql_server.pg.extended import (
    check_statement_size,
    describe_blocks,
    describe_target,
    plan_piece,
    plan_to_describe,
)
from fsql_server.pg.nesting import stack_depth_error
from fsql_server.pg.protocol import BindMsg
from fsql_server.pg.router import LiteralBoundPlan, split_statements
from fsql_server.pg.session import Portal, PreparedStatement, Session
from fsql_server.pg.startup import MAX_STARTUP, Fatal, Handshake
from fsql_server.pg.state import ServerState
from fsql_server.pg.stream import ClientProtocol, Lane
from fsql_server.pg.types import PgType
from fsql_server.pg.workers import CURRENT_JOB, take_turns

log = logging.getLogger("fsql.server")

T = TypeVar("T")

FLUSH_AT = 256 * 1024
READ_SIZE = 256 * 1024
#: message types whose size is bounded by the server's max_message_size (queries, data)
LARGE_MESSAGES = frozenset((b"Q", b"P", b"B", b"d", b"F"))
#: every other frontend message is small; PostgreSQL bounds them the same way
SMALL_MESSAGES = frozenset((b"D", b"E", b"C", b"S", b"H", b"X", b"c", b"f", b"p"))


PLAN_IN_THREAD = 16 * 1024  # statements this long (characters) are planned in a thread

READY = protocol.READY
_MESSAGE_HEADER = struct.Struct("!ci")
#: frontend message type → the largest length accepted (0: the server's max_message_size)
_MESSAGE_LIMITS = {**dict.fromkeys(LARGE_MESSAGES, 0), **dict.fromkeys(SMALL_MESSAGES, MAX_STARTUP)}


class Connection(Handshake):
    """Serves one client from startup to Terminate (or until it goes away)."""

    def __init__(self, state: ServerState, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, protocol_: ClientProtocol | None = None):
        self.state = state
        #: the connection's protocol, which may put a lane in front of the stream
        self.stream_protocol = protocol_
        self.lane: Lane | None = None
        self.reader = reader
        self.writer = writer
        self.out = bytearray()
        #: frontend bytes read but not yet parsed into messages (after startup)
        self.inbuf = bytearray()
        self.inpos = 0
        self.session: Session | None = None
        self.skip_until_sync = False
        self.running: asyncio.Task[Result] | None = None
        #: set by a CancelRequest for the running statement (None between statements)
        self.cancel_event: asyncio.Event | None = None
        self.deadline: float | None = None  # loop time the running statement times out
        self.tls = False
        self.counted = False
        #: counted in the worker's connections (see ServerState.connection_opened)
        self.opened = False
        #: RowDescription and value encoders per result shape (see :meth:`row_shape`)
        self._shapes: dict[int, tuple[Any, tuple[int, ...], str | None, bytes, list[Any]]] = {}

    # -- I/O ----------------------------------------------------------------------------------

    async def maybe_flush(self) -> None:
        if len(self.out) >= FLUSH_AT:
            await self.flush()

    # -- lifecycle ----------------------------------------------------------------------------

    async def serve(self) -> None:
        self.state.connection_opened()
        self.opened = True
        try:
            # like PostgreSQL's authentication_timeout: a client that connects and never
            # completes startup does not hold a slot forever
            started = await asyncio.wait_for(self.startup(), self.state.startup_timeout)
            if started:
                open_lane = self.state.open_lane
                if self.stream_protocol is not None and self.state.config.fast_lane \
                        and open_lane is not None:
                    # the surface says whether this connection gets a lane (fsql's: lookups
                    # on Redis, fsql_server.features.fast_lane)
                    self.lane = self.stream_protocol.lane = open_lane(self, self.stream_protocol)
                await self.message_loop()
        except (Fatal, PgError) as failure:
            error = failure.error if isinstance(failure, Fatal) else failure
            error.severity = "FATAL"
            try:
                self.send_error(error)
                await self.flush()
            except (ConnectionError, OSError):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, OSError, asyncio.CancelledError,
                TimeoutError):
            pass
        except Exception:  # noqa: BLE001 - a bug must end one connection, never the server
            log.exception("unexpected error in connection; closing it")
            try:
                self.send_error(PgError(errors.INTERNAL_ERROR, "internal error in fsql server",
                                        severity="FATAL"))
                await self.flush()
            except (ConnectionError, OSError):
                pass
        finally:
            await self.close()

    async def close(self) -> None:
        if self.opened:
            self.opened = False
            self.state.connection_closed()
        if self.lane is not None:
            self.lane.close()
            self.lane = None
        if self.counted:
            self.state.active -= 1
            self.counted = False
        try:
            self.writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass
        if self.session is not None:
            self.state.unregister(self.session.pid)
            self.interrupt_engines()
            session, self.session = self.session, None
            CURRENT_JOB.set(None)  # closing never waits for a statement slot
            catalog = self.state.catalog_backend
            try:
                loop = asyncio.get_running_loop()
                if catalog is not None:
                    await loop.run_in_executor(None, catalog.close_session, session.pid)
                if session.has_duckdb:
                    await loop.run_in_executor(None, session.close)
            except Exception:  # noqa: BLE001 - closing must never take the server down
                log.exception("could not close a session's DuckDB database")

    # -- message loop -------------------------------------------------------------------------

    async def read_message(self) -> tuple[bytes, bytes]:
        """The next frontend message (type, body). Input is read in large pieces and split
        here: one read usually brings a whole Bind/Execute/Sync batch, instead of two small
        reads per message. The header is checked before the body is waited for. Messages are
        taken from ``inbuf`` at the offset ``inpos``; the buffer is compacted only when more
        input is read."""
        buffer = self.inbuf
        while True:
            pos = self.inpos
            if len(buffer) - pos >= 5:
                kind, length = _MESSAGE_HEADER.unpack_from(buffer, pos)
                limit = _MESSAGE_LIMITS.get(kind)
                if limit is None:
                    raise Fatal(PgError(errors.PROTOCOL_VIOLATION,
                                        f"invalid frontend message type {kind[0]}"))
                if limit == 0:
                    limit = self.state.max_message_size
                if length < 4 or length > limit:
                    raise Fatal(PgError(
                        errors.PROTOCOL_VIOLATION,
                        f"invalid message length {length} for message type {kind!r}",
                        hint=f"The largest message of this type accepted is {limit} bytes."))
                end = pos + length + 1
                if len(buffer) >= end:
                    body = bytes(buffer[pos + 5 : end])
                    if end == len(buffer):
                        buffer.clear()
                        self.inpos = 0
                    else:
                        self.inpos = end
                    return kind, body
            if pos:
                del buffer[:pos]
                self.inpos = 0
            chunk = await self.read_more(buffer)
            if not chunk:
                raise ConnectionError("client closed the connection")
            buffer += chunk

    async def read_more(self, buffer: bytearray) -> bytes:
        """The next piece of input. While the loop waits here with nothing buffered or
        unsent, the fast lane may answer lookups (activity for the idle timeout)."""
        lane = self.lane
        parked = lane is not None and not buffer and not self.out and not self.skip_until_sync
        idle = self.state.config.idle_timeout
        try:
            if lane is not None:
                lane.parked = parked
            if not idle or buffer or self.out:
                return await self.reader.read(READ_SIZE)
            while True:
                try:
                    return await asyncio.wait_for(self.reader.read(READ_SIZE), idle)
                except TimeoutError:
                    quiet = time.monotonic() - lane.served_at if lane is not None else idle
                    if quiet >= idle:
                        raise Fatal(PgError(
                            errors.IDLE_SESSION_TIMEOUT,
                            "terminating connection due to idle-session timeout")) from None
                    idle = self.state.config.idle_timeout - quiet
        finally:
            if lane is not None:
                lane.parked = False

    async def message_loop(self) -> None:
        handlers = {b"P": self.on_parse, b"E": self.on_execute, b"B": self.on_large_bind,
                    b"D": self.on_describe_in_thread}
        #: handlers that never wait: called without a coroutine per message
        immediate = {b"B": self.on_bind, b"D": self.on_describe, b"C": self.on_close}
        while True:
            kind, body = await self.read_message()
            if kind == b"X":
                return
            if kind == b"Q":
                await self.on_query(body)
                continue
            if kind == b"S":
                self.skip_until_sync = False
                self.end_implicit_transaction()
                self.send(READY[self.session_status()])
                await self.flush()
                continue
            if kind == b"H":
                await self.flush()
                continue
            if kind in (b"d", b"c", b"f"):
                continue  # copy messages after a failed COPY are ignored, as in PostgreSQL
            handler = immediate.get(kind)
            if kind == b"B" and len(body) >= BIND_IN_THREAD or kind == b"D" and \
                    describe_blocks(self.session, body):  # type: ignore[arg-type]
                handler = None  # in a thread, under the timeout
            waiting = handlers.get(kind) if handler is None else None
            if handler is None and waiting is None:
                raise Fatal(PgError(errors.PROTOCOL_VIOLATION,
                                    f"invalid frontend message type {kind[0]}"))
            if self.skip_until_sync:
                continue
            try:
                if waiting is not None:
                    await waiting(body)
                elif handler is not None:
                    handler(body)
            except PgError as error:
                if error.code == errors.PROTOCOL_VIOLATION and not error.session_kept:
                    raise Fatal(error) from None
                self.fail(error)
            except RecursionError:
                self.fail(stack_depth_error())
            if len(self.out) >= FLUSH_AT:
                await self.flush()

    def session_zone(self) -> str | None:
        """The session's TimeZone when it is not UTC (None: the plain UTC encoders)."""
        if self.session is None:
            return None
        zone = self.session.settings.get("TimeZone", "Etc/UTC")
        return None if zone.upper() in ("UTC", "ETC/UTC", "GMT", "Z") else zone

    def session_status(self) -> str:
        return self.session.status if self.session is not None else "I"

    def end_implicit_transaction(self) -> None:
        session = self.session
        if session is not None and session.status == "I":
            session.end_transaction()

    def fail(self, error: PgError) -> None:
        """An error in the extended protocol: report it and skip to the next Sync."""
        self.send_error(error)
        self.skip_until_sync = True
        if self.session is not None and self.session.status == "T":
            self.session.status = "E"

    # -- simple query -------------------------------------------------------------------------

    async def on_query(self, body: bytes) -> None:
        session = self.session
        assert session is not None
        try:
            sql = protocol.parse_query(body)
        except PgError as error:
            raise Fatal(error) from None
        session.statements.pop("", None)
        try:
            check_statement_size(body, self.state.config.max_statement_bytes)
            pieces = split_statements(sql)
        except PgError as error:
            self.send_error(error)
            pieces = None
        if pieces == []:
            self.send(protocol.EMPTY_QUERY)
        for piece, offset in pieces or []:
            self.start_statement()
            try:
                plan = await self.plan(piece)
                if plan is None:
                    continue
                if plan.param_types:
                    # PostgreSQL: a simple query has no parameters to bind ($1 is unbound)
                    raise PgError(errors.UNDEFINED_PARAMETER, "there is no parameter $1",
                                  hint="Parameters ($1, $2, ...) need the extended query "
                                       "protocol (a driver's prepared statements); in a "
                                       "simple query write the values as literals.")
                self.check_failed_transaction(plan)
                if isinstance(plan, CopyInPlan):
                    await self.copy_in(plan)
                    continue
                if type(plan) is LiteralBoundPlan and (inner := plan.inner.fast_lookup) is not None:
                    # the point-lookup fast path (literals bound to a shared plan)
                    rows = await inner.rows(plan.bound_values())
                    self.send(self.row_shape(inner.columns, [0] * len(inner.columns))[0])
                    self.send_lookup_rows(inner.columns, (), rows)
                    continue
                result = await self.run_plan(plan, ())
                columns = result.columns
                if columns is not None and result.copy_out is None:
                    self.send(self.row_shape(columns, [0] * len(columns))[0])
                await self.send_result(result, [0] * len(columns or []), 0, 0)
            except PgError as error:
                if error.position is not None:
                    error.position += len(sql[:offset])
                self.send_error(error)
                if session.status == "T":
                    session.status = "E"
                break
            finally:
                self.cancel_event = None
        self.end_implicit_transaction()
        self.send(READY[session.status])
        await self.flush()

    async def plan(self, sql: str, param_oids: Sequence[int] = ()) -> Plan | None:
        """Parse and plan a statement; a long one (a huge ``IN (...)`` list: seconds) in a
        thread within the statement timeout, so the worker's other sessions go on."""
        session = self.session
        assert session is not None
        if len(sql) < PLAN_IN_THREAD:
            return plan_piece(session, sql, param_oids)
        parse_only = self.cancel_event is None  # a Parse message: its own timeout
        if parse_only:
            self.start_statement()
        try:
            return await self.bounded(session.threads.run(plan_piece, session, sql, param_oids))
        finally:
            if parse_only:
                self.cancel_event = None

    def check_failed_transaction(self, plan: Plan) -> None:
        session = self.session
        if session is not None and session.status == "E" and plan.blocked_in_failed_transaction:
            raise PgError(errors.IN_FAILED_TRANSACTION,
                          "current transaction is aborted, commands ignored until end of "
                          "transaction block")

    def start_statement(self) -> None:
        """A statement starts: its timeout counts from now, a CancelRequest now cancels it."""
        session = self.session
        assert session is not None
        timeout = session.statement_timeout()
        take_turns(session.pid, None)  # light until its plan says otherwise
        self.cancel_event = asyncio.Event()
        self.deadline = asyncio.get_running_loop().time() + timeout if timeout else None

    async def run_plan(self, plan: Plan, params: Sequence[Any]) -> Result:
        """Run a plan under the statement timeout, answering CancelRequest with 57014."""
        session = self.session
        assert session is not None
        take_turns(session.pid, plan)
        lookup = plan.fast_lookup
        if not getattr(plan, "interruptible", True) and (
                lookup is None or not lookup.heavy(params)):
            return await plan.run(session, params)
        return await self.bounded(plan.run(session, params))

    async def bounded(self, work: Awaitable[T]) -> T:
        """Await ``work`` (a plan, a chunk of rows) within the statement's deadline; a
        CancelRequest or the timeout interrupts DuckDB (the thread stops) and raises 57014."""
        session = self.session
        assert session is not None
        if self.cancel_event is None:
            self.start_statement()
        assert self.cancel_event is not None
        task = asyncio.ensure_future(work)
        cancel_wait = asyncio.ensure_future(self.cancel_event.wait())
        self.running = task
        loop = asyncio.get_running_loop()
        deadline = self.deadline
        gone = False
        done: set[asyncio.Future[Any]] = set()
        try:
            while True:
                # wake up every second to notice a client that went away mid-query: its
                # query is interrupted instead of running on for nobody
                wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - loop.time()))
                done, _ = await asyncio.wait(
                    {task, cancel_wait}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if task in done or cancel_wait in done or (
                        deadline is not None and loop.time() >= deadline):
                    break
                if self.reader.at_eof() or self.writer.is_closing():
                    gone = True
                    break
        finally:
            self.running = None
            cancel_wait.cancel()
        if task in done:
            return task.result()
        reason = "user request" if self.cancel_event.is_set() else "statement timeout"
        self.interrupt_engines()
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, PgError, Exception):  # noqa: BLE001 - being cancelled
            pass
        if gone:
            raise ConnectionError("client closed the connection while its statement ran")
        raise PgError(errors.QUERY_CANCELED, f"canceling statement due to {reason}")

    def interrupt_engines(self) -> None:
        """Interrupt the session's DuckDB work: its database and its catalog connection."""
        session = self.session
        if session is None:
            return
        if session.has_duckdb:
            session.duckdb.interrupt()
        catalog = self.state.catalog_backend
        if catalog is not None:
            catalog.interrupt_session(session.pid)

    def cancel(self) -> None:
        """CancelRequest for this session (called from another connection's task)."""
        if self.cancel_event is not None:
            self.cancel_event.set()
            if self.running is not None:
                self.interrupt_engines()

    async def send_result(
        self, result: Result, formats: Sequence[int], max_rows: int, start: int
    ) -> int:
        """Send notices, rows (at most ``max_rows``; 0 = all, fetched chunk by chunk as they
        are sent) and CommandComplete, or PortalSuspended when rows remain; ``start`` + sent."""
        for notice in result.notices:
            self.send(protocol.notice_response(notice.fields()))
        columns = result.columns
        if result.copy_out is not None and columns is not None:
            fmt = result.copy_out
            self.send(protocol.copy_response(b"H", fmt.binary, len(columns)))
            count = 0
            first = True
            async for rows in self.streamed(result):
                for data in encode_copy_rows(columns, rows, fmt, self.session_zone(),
                                             header=first, trailer=False):
                    self.send(protocol.copy_data(data))
                    await self.maybe_flush()
                first = False
                count += len(rows)
            for data in encode_copy_rows(columns, [], fmt, self.session_zone(), header=first,
                                         trailer=True):
                self.send(protocol.copy_data(data))
            self.send(protocol.COPY_DONE)
            self.send(protocol.command_complete(f"COPY {count}"))
            return count
        if columns is None:
            self.send(protocol.command_complete(result.tag))
            for name, value in result.reports:
                self.send(protocol.parameter_status(name, value))
            return start
        encoders = self.row_shape(columns, formats)[1]
        if max_rows <= 0:
            sent = 0
            async for chunk in self.streamed(result):
                await self.send_rows(chunk, 0, len(chunk), encoders)
                sent += len(chunk)
            suspended = False
        else:
            rows = await self.bounded(result.take(max_rows))
            await self.send_rows(rows, 0, len(rows), encoders)
            sent = len(rows)
            suspended = sent == max_rows and not await self.bounded(result.exhausted())
        if suspended:
            self.send(protocol.PORTAL_SUSPENDED)
        else:
            tag = f"{result.tag} {sent}" if result.counted else result.tag
            self.send(protocol.command_complete(tag))
            for name, value in result.reports:
                self.send(protocol.parameter_status(name, value))
        return start + sent

    def send_lookup_rows(self, columns: list[Column], formats: Sequence[int],
                         rows: Sequence[Sequence[Any]]) -> None:
        """All rows of a point lookup (a handful) and CommandComplete, encoded in one go."""
        encoders = self.row_shape(columns, protocol.formats_for(formats, len(columns),
                                                                "result"))[1]
        encode_row = protocol.encode_data_row
        out = self.out
        for i, row in enumerate(rows):
            try:
                out += encode_row(row, encoders)
            except PgError:
                raise
            except Exception as exc:  # noqa: BLE001 - a value that cannot be encoded
                raise PgError(errors.DATA_EXCEPTION, f"cannot send row {i}: {exc}") from None
        out += protocol.select_complete(len(rows))

    async def send_rows(self, rows: Sequence[Sequence[Any]], start: int, end: int,
                        encoders: list[Any]) -> None:
        encode_row = protocol.encode_data_row
        out = self.out
        for i in range(start, end):
            try:
                out += encode_row(rows[i], encoders)
            except PgError:
                raise
            except Exception as exc:  # noqa: BLE001 - a value that cannot be encoded
                raise PgError(errors.DATA_EXCEPTION, f"cannot send row {i}: {exc}") from None
            if len(out) >= FLUSH_AT:
                await self.flush()
                await asyncio.sleep(0)  # other sessions' turn between chunks of a big result

    async def streamed(self, result: Result) -> Any:
        """The result's remaining rows, chunk by chunk, each fetch :meth:`bounded`."""
        while (chunk := await self.bounded(result.next_rows())) is not None:
            yield chunk

    async def copy_in(self, plan: CopyInPlan) -> None:
        """COPY FROM STDIN: CopyInResponse, collect CopyData until CopyDone, load."""
        session = self.session
        assert session is not None
        columns = plan.target_columns(session)
        self.send(protocol.copy_response(b"G", plan.format.binary, len(columns)))
        await self.flush()
        chunks: list[bytes] = []
        size = 0
        failure: PgError | None = None
        while True:
            kind, body = await self.read_message()
            if kind == b"d":
                size += len(body)
                if size > self.state.max_copy_size:
                    failure = PgError(errors.PROGRAM_LIMIT_EXCEEDED,
                                      f"COPY data exceeds {self.state.max_copy_size} bytes")
                    chunks = []
                elif failure is None:
                    chunks.append(body)
            elif kind == b"c":
                break
            elif kind == b"f":
                reason = body.rstrip(b"\x00").decode(errors="replace")
                failure = PgError(errors.QUERY_CANCELED, f"COPY from stdin failed: {reason}")
                break
            elif kind in (b"H", b"S"):
                continue
            elif kind == b"X":
                raise ConnectionError("client terminated during COPY")
            else:
                raise Fatal(PgError(errors.PROTOCOL_VIOLATION,
                                    f"unexpected message type {kind!r} during COPY from stdin"))
        if failure is not None:
            raise failure
        take_turns(session.pid, plan)
        loop = asyncio.get_running_loop()
        count = await loop.run_in_executor(None, plan.load, session, b"".join(chunks))
        self.send(protocol.command_complete(f"COPY {count}"))

    # -- extended query -----------------------------------------------------------------------

    async def on_parse(self, body: bytes) -> None:
        session = self.session
        assert session is not None
        check_statement_size(body, self.state.config.max_statement_bytes)
        msg = protocol.parse_parse(body)
        if msg.name and msg.name in session.statements:
            raise PgError(errors.DUPLICATE_PREPARED_STATEMENT,
                          f'prepared statement "{msg.name}" already exists')
        plan = await self.plan(msg.sql, msg.param_oids)
        planned = plan.param_types if plan is not None else ()
        session.statements[msg.name] = PreparedStatement(
            msg.name, msg.sql, plan, declared_types(msg.param_oids, planned), msg.param_oids,
            session.settings.get("search_path", ""))
        self.send(protocol.PARSE_COMPLETE)

    def on_bind(self, body: bytes) -> None:
        msg, statement, formats, planned = self.bind_target(body)
        params = bind_values(msg.params, statement.param_types, formats, planned)
        self.open_portal(msg, statement, params)

    async def on_large_bind(self, body: bytes) -> None:
        """A Bind over BIND_IN_THREAD bytes (``key = ANY($1)`` with 200,000 keys): its
        parameters are decoded in a thread, within the statement timeout, which goes on
        counting through the portal's Execute (the whole bound statement is bounded)."""
        self.start_statement()
        try:
            msg, statement, formats, planned = self.bind_target(body)
            params = await self.bounded(self.session.threads.run(  # type: ignore[union-attr]
                bind_values, msg.params, statement.param_types, formats, planned))
            self.open_portal(msg, statement, params).deadline = self.deadline
        finally:
            self.cancel_event = None

    def bind_target(self, body: bytes) -> tuple[BindMsg, PreparedStatement, Sequence[int],
                                                 Sequence[PgType]]:
        """A Bind's message, its statement (re-planned after a search_path change), the
        parameters' formats and the types the plan takes, checked."""
        session = self.session
        assert session is not None
        msg = protocol.parse_bind(body)
        statement = session.statements.get(msg.statement)
        if statement is None:
            raise PgError(errors.INVALID_SQL_STATEMENT_NAME,
                          f'prepared statement "{msg.statement}" does not exist')
        plan = statement.plan
        if plan is not None and statement.search_path != session.settings.get("search_path"):
            plan = statement.plan = self.replan(statement)
        oids = statement.param_types
        if len(msg.params) != len(oids):
            raise PgError(errors.PROTOCOL_VIOLATION,
                          f"bind message supplies {len(msg.params)} parameters, but prepared "
                          f'statement "{msg.statement}" requires {len(oids)}',
                          session_kept=True)
        if plan is not None:
            self.check_failed_transaction(plan)
        formats = protocol.formats_for(msg.param_formats, len(msg.params), "parameter")
        if msg.portal and msg.portal in session.portals:
            raise PgError(errors.DUPLICATE_CURSOR, f'cursor "{msg.portal}" already exists')
        return msg, statement, formats, plan.param_types if plan is not None else ()

    def open_portal(self, msg: BindMsg, statement: PreparedStatement,
                    params: list[Any]) -> Portal:
        session = self.session
        assert session is not None
        portal = session.portals[msg.portal] = Portal(msg.portal, statement, params,
                                                      msg.result_formats)
        self.send(protocol.BIND_COMPLETE)
        return portal

    def replan(self, statement: PreparedStatement) -> Any:
        """A prepared statement planned again after the session's search_path changed
        (PostgreSQL re-plans too: an unqualified name may now be another table)."""
        session = self.session
        assert session is not None
        plan = plan_piece(session, statement.sql, statement.declared)
        statement.search_path = session.settings.get("search_path", "")
        return plan

    def on_describe(self, body: bytes) -> None:
        statement, portal = self.describe_target(body)
        plan = plan_to_describe(statement, portal)
        self.send_description(statement, portal,
                              plan.describe(self.session) if plan is not None else None)

    async def on_describe_in_thread(self, body: bytes) -> None:
        """A Describe whose plan refreshes the catalog or asks DuckDB for its columns
        (:func:`.extended.describe_blocks`): described in a thread, within the statement
        timeout, so a slow catalog build does not hold up the other sessions."""
        session = self.session
        statement, portal = self.describe_target(body)
        plan = plan_to_describe(statement, portal)
        assert plan is not None and session is not None
        self.start_statement()
        try:
            columns = await self.bounded(session.threads.run(plan.describe, session))
        finally:
            self.cancel_event = None
        self.send_description(statement, portal, columns)

    def describe_target(self, body: bytes) -> tuple[PreparedStatement | None, Portal | None]:
        session = self.session
        assert session is not None
        statement, portal = describe_target(session, body)
        if statement is not None and statement.plan is not None and \
                statement.search_path != session.settings.get("search_path"):
            statement.plan = self.replan(statement)
        return statement, portal

    def send_description(self, statement: PreparedStatement | None, portal: Portal | None,
                         columns: list[Column] | None) -> None:
        """ParameterDescription and RowDescription (statement) or RowDescription (portal)."""
        if statement is not None:
            self.send(protocol.parameter_description(statement.param_types))
            self.send_row_description(columns, [])
            return
        assert portal is not None
        if columns is not None:
            portal.columns = columns
        self.send_row_description(portal.columns, portal.result_formats)

    def send_row_description(self, columns: list[Column] | None, formats: Sequence[int]) -> None:
        if columns is None:
            self.send(protocol.NO_DATA)
            return
        fmts = protocol.formats_for(formats, len(columns), "result")
        self.send(self.row_shape(columns, fmts)[0])

    def row_shape(self, columns: list[Column], formats: Sequence[int]) -> tuple[bytes, list[Any]]:
        """The RowDescription message and the value encoders for ``columns`` sent in
        ``formats``. Cached per columns list: a cached plan hands out the same list on every
        execution, so a repeated lookup builds neither again (the entry keeps the list alive,
        so its id cannot be reused by another list while cached)."""
        zone = self.session_zone()
        fmts = tuple(formats)
        entry = self._shapes.get(id(columns))
        if entry is not None and entry[0] is columns and entry[1] == fmts and entry[2] == zone:
            return entry[3], entry[4]
        description = protocol.row_description([c.field() for c in columns], fmts)
        encoders = encoders_for(columns, fmts, zone)
        if len(self._shapes) >= 64:
            self._shapes.clear()
        self._shapes[id(columns)] = (columns, fmts, zone, description, encoders)
        return description, encoders

    async def on_execute(self, body: bytes) -> None:
        self.start_statement()
        try:
            await self.execute_portal(body)
        finally:
            self.cancel_event = None

    async def execute_portal(self, body: bytes) -> None:
        session = self.session
        assert session is not None
        name, max_rows = protocol.parse_execute(body)
        portal = session.portals.get(name)
        if portal is None:
            raise PgError(errors.INVALID_CURSOR_NAME, f'portal "{name}" does not exist')
        plan = portal.statement.plan
        if plan is None:
            self.send(protocol.EMPTY_QUERY)
            return
        take_turns(session.pid, plan)  # a portal read in pieces: later chunks take turns too
        if portal.result is None:
            self.check_failed_transaction(plan)
            if isinstance(plan, CopyInPlan):
                await self.copy_in(plan)
                portal.done = True
                portal.result = Result(None, (), "COPY", counted=False)
                return
            lookup = plan.fast_lookup
            if lookup is not None and not lookup.heavy(portal.params):
                # the point-lookup fast path: rows straight to DataRow bytes
                rows = await lookup.rows(portal.params)
                portal.columns = lookup.columns
                portal.result = Result(lookup.columns, rows, "SELECT")
                if max_rows <= 0 or max_rows >= len(rows):
                    self.send_lookup_rows(lookup.columns, portal.result_formats, rows)
                    portal.position = len(rows)
                    portal.done = True
                    return
            else:
                if portal.deadline is not None:  # the Bind's time counts (on_large_bind)
                    self.deadline = min(self.deadline or portal.deadline, portal.deadline)
                portal.result = await self.run_plan(plan, portal.params)
                portal.columns = portal.result.columns
        elif portal.done:
            result = portal.result
            tag = f"{result.tag} 0" if result.counted and result.columns is not None else \
                result.tag
            self.send(protocol.command_complete(tag))
            return
        formats = protocol.formats_for(portal.result_formats, len(portal.columns or []),
                                       "result")
        result = portal.result
        portal.position = await self.send_result(result, formats, max_rows, portal.position)
        if result.columns is None or (result.more is None and result.offset >= len(result.rows)):
            portal.done = True

    def on_close(self, body: bytes) -> None:
        session = self.session
        assert session is not None
        kind, name = protocol.parse_target(body, "Close")
        if kind == "S":
            session.statements.pop(name, None)
        else:
            session.portals.pop(name, None)
        self.send(protocol.CLOSE_COMPLETE)
