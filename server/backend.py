"""The query backend interface: what the protocol layer asks of whatever answers queries.

The protocol layer (:mod:`fsql_server.connection`) only ever sees :class:`Plan` objects: a
statement parsed and planned once, that can say which parameter types it takes and which
columns it returns *without running* (Describe), and that runs with bound parameters (Execute).
The SQL surface (:mod:`fsql_server.surface`) makes plans; backends — the online-store lookup,
the sandboxed DuckDB session, the registry — implement them. A new backend is one new class
implementing :class:`Plan`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fsql_server.errors import PgError
from fsql_server.protocol import Field
from fsql_server.types import PgType

if TYPE_CHECKING:
    from fsql_server.session import Session


@dataclass(frozen=True)
class Column:
    """A result column: its name and the built-in PostgreSQL type it is sent as."""

    name: str
    type: PgType
    typmod: int = -1

    def field(self) -> Field:
        return Field(self.name, self.type.oid, self.type.typlen, self.typmod)


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

    async def materialize(self) -> None:
        """Fetch every remaining chunk into ``rows`` (portals with row limits, cursors)."""
        if self.more is None:
            return
        rows = list(self.rows)
        while chunk := await self.more():
            rows.extend(chunk)
        self.rows = rows
        self.more = None

    async def chunks(self) -> Any:
        """Iterate over ``rows`` and then every further chunk."""
        if self.rows:
            yield self.rows
        while self.more is not None:
            chunk = await self.more()
            if not chunk:
                self.more = None
                break
            yield chunk


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

    @abstractmethod
    def describe(self, session: Session) -> list[Column] | None:
        """The result columns, or None when the statement returns no rows. Never executes."""

    @abstractmethod
    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        """Execute with decoded parameter values. Raise :class:`~fsql_server.errors.PgError`."""


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
