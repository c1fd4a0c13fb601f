"""The query backend interface: what the protocol layer asks of whatever answers queries.

The protocol layer (:mod:`fsql_server.pg.connection`) only ever sees :class:`Plan` objects: a
statement parsed and planned once, that can say which parameter types it takes and which
columns it returns *without running* (Describe), and that runs with bound parameters (Execute).
The router (:mod:`fsql_server.pg.router`) makes plans; backends — the sandboxed DuckDB
session, the catalog emulation, a surface's own plans (:mod:`fsql_server.pg.planner`) —
implement them. A new backend is one new class implementing :class:`Plan`. What a plan can do
beyond running is asked of the plan itself (:attr:`Plan.fast_lookup`), never of its class.

Plans take the :class:`~fsql_server.pg.session.Session` they run in; it is typed ``Any`` here
because the session module is built on this one (a session holds plans and results).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fsql_server.pg.codecs import timestamptz_text_in_zone
from fsql_server.pg.errors import PgError
from fsql_server.pg.protocol import Field
from fsql_server.pg.types import TIMESTAMPTZ, PgType

#: a :class:`fsql_server.pg.session.Session` (see the module docstring)
Session = Any


@dataclass(frozen=True)
class Column:
    """A result column: its name and the built-in PostgreSQL type it is sent as."""

    name: str
    type: PgType
    typmod: int = -1
    #: the table the column is read from and its attribute number (0: an expression)
    table_oid: int = 0
    attnum: int = 0

    def field(self) -> Field:
        return Field(self.name, self.type.oid, self.type.typlen, self.typmod, self.table_oid,
                     self.attnum)


def encoders_for(columns: Sequence[Column], formats: Sequence[int],
                 zone: str | None = None) -> list[Any]:
    """One encoder per column; timestamptz text follows the session's TimeZone."""
    out = []
    for column, fmt in zip(columns, formats, strict=True):
        if fmt:
            out.append(column.type.binary_out)
        elif zone and column.type is TIMESTAMPTZ:
            out.append(timestamptz_text_in_zone(zone))
        else:
            out.append(column.type.text_out)
    return out


@dataclass
class Result:
    """What running a plan produced.

    ``columns`` is None for statements that return no rows (CommandComplete only). ``tag`` is
    the CommandComplete tag without the row count for SELECT-like results (the connection
    appends the number of rows it sent), or the full tag (``INSERT 0 3``, ``SET``) otherwise.
    """

    columns: list[Column] | None
    rows: Sequence[Sequence[Any]] = ()
    tag: str = "SELECT"
    #: append the row count to the tag (SELECT, FETCH, COPY, MOVE)
    counted: bool = True
    #: ParameterStatus messages to send after the command (e.g. a SET of a reported setting)
    reports: list[tuple[str, str]] = field(default_factory=list)
    #: NoticeResponse/WARNING messages to send before CommandComplete
    notices: list[PgError] = field(default_factory=list)
    #: set by COPY ... TO STDOUT: send the rows as CopyData in this format (a CopyFormat)
    copy_out: Any = None
    #: more rows to come: each call returns the next chunk, ``[]`` at the end. Large results
    #: stream chunk by chunk instead of being held in memory at once.
    more: Callable[[], Awaitable[list[Any]]] | None = None

    #: rows of ``rows`` already handed out (a portal or cursor read in pieces)
    offset: int = 0

    async def take(self, limit: int) -> list[Any]:
        """Up to ``limit`` of the rows not handed out yet, fetching further chunks only as the
        limit needs them: a portal or cursor read in pieces holds one chunk at a time."""
        out: list[Any] = []
        while len(out) < limit:
            if self.offset < len(self.rows):
                end = min(len(self.rows), self.offset + limit - len(out))
                out.extend(self.rows[self.offset:end])
                self.offset = end
            elif not await self._next_chunk():
                break
        return out

    async def next_rows(self) -> Sequence[Sequence[Any]] | None:
        """The rows not handed out yet of the current chunk, else the next chunk; None at
        the end."""
        if self.offset >= len(self.rows) and not await self._next_chunk():
            return None
        rows = self.rows[self.offset:] if self.offset else self.rows
        self.offset = len(self.rows)
        return rows

    async def exhausted(self) -> bool:
        """No rows remain (fetches the next chunk to find out when the current one is done)."""
        return self.offset >= len(self.rows) and not await self._next_chunk()

    async def _next_chunk(self) -> bool:
        if self.more is None:
            return False
        chunk = await self.more()
        if not chunk:
            self.more = None
            return False
        self.rows, self.offset = chunk, 0
        return True

    def reader(self, limit: int | None) -> Callable[[], Awaitable[list[Any]]]:
        """A ``more`` function handing out the next rows of this result, ``limit`` rows in
        all (None: every remaining row): FETCH n from a cursor streams through it."""
        left = [limit]

        async def more() -> list[Any]:
            if left[0] is not None and left[0] <= 0:
                return []
            if left[0] is None:
                return list(await self.next_rows() or [])
            rows = await self.take(min(left[0], STREAM_ROWS))
            left[0] -= len(rows)
            return rows

        return more


#: rows a cursor's FETCH hands out per piece
STREAM_ROWS = 10_000


class FastLookup(Protocol):
    """A plan that answers a point lookup: the message loop sends its few rows straight to
    DataRow bytes, and a lane may answer repeats of it without the loop."""

    columns: list[Column]

    async def rows(self, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The result rows for the parameter values."""

    def heavy(self, params: Sequence[Any]) -> bool:
        """True when these parameters make too much work for the event loop (many keys):
        the connection then runs the plan in a thread under the statement timeout."""


class Plan(ABC):
    """One planned statement. Plans are cached and reused: never keep per-execution state."""

    #: PostgreSQL type OIDs of the parameters ($1..$n), as reported by ParameterDescription
    param_types: tuple[PgType, ...] = ()
    #: the CommandComplete tag's first word, e.g. "SELECT", "BEGIN" (for Describe/NoData)
    command: str = "SELECT"
    #: False for statements allowed in a failed transaction (ROLLBACK, COMMIT)
    blocked_in_failed_transaction: bool = True
    #: the statement text it came from (for error positions)
    sql: str = ""
    #: may be kept in the session's plan cache and reused for the same text
    cacheable: bool = True
    #: set when the plan is a point lookup the message loop may answer the short way
    fast_lookup: FastLookup | None = None
    #: its work in threads takes one of the worker's statement slots, waiting its turn when
    #: none is free (:mod:`fsql_server.pg.workers`); False for plans that cost next to nothing
    heavy: bool = True

    @abstractmethod
    def describe(self, session: Session) -> list[Column] | None:
        """The result columns, or None when the statement returns no rows. Never executes."""

    def describe_blocks(self, session: Session) -> bool:
        """True when :meth:`describe` may block (a catalog refresh, a DuckDB query): the
        connection then calls it in a thread. A wrapping plan answers for its ``inner``."""
        inner = getattr(self, "inner", None)
        return isinstance(inner, Plan) and inner.describe_blocks(session)

    @abstractmethod
    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        """Execute with decoded parameter values. Raise :class:`~fsql_server.pg.errors.PgError`."""


class Backend(ABC):
    """A per-session engine that can plan and run general SQL (the DuckDB sandbox)."""

    @abstractmethod
    def plan(self, sql: str, tree: Any, param_oids: Sequence[int]) -> Plan:
        """Plan one statement (``tree`` is its sqlglot AST, PostgreSQL dialect)."""

    @abstractmethod
    def interrupt(self) -> None:
        """Cancel whatever runs now (called from another thread)."""

    @abstractmethod
    def close(self) -> None:
        """Release the engine's resources."""
