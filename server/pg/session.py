"""Per-connection state: settings, prepared statements, portals, transaction status.

A :class:`Session` is what plans see when they run (``SET`` changes its settings, ``DECLARE``
adds a portal, ``BEGIN`` changes its transaction status). The protocol handling itself is in
:mod:`fsql_server.pg.connection`.

Lifetimes follow PostgreSQL: the unnamed statement lives until the next Parse of the unnamed
statement or the next simple Query; named statements until Close or the end of the session;
the unnamed portal until the next Bind of it or the end of the transaction; named portals
(and cursors from DECLARE) until Close/CLOSE or the end of the transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.duckdb_backend import DuckDBBackend
from fsql_server.pg.errors import INVALID_PARAMETER_VALUE, PgError
from fsql_server.pg.state import ServerState

T = TypeVar("T")

SERVER_VERSION = "15.6 (fsql)"
VERSION_STRING = (
    "PostgreSQL 15.6 (fsql 0.1.0) on x86_64-pc-linux-gnu, compiled by fsql, 64-bit"
)

#: settings reported to the client with ParameterStatus at startup and whenever they change
REPORTED = (
    "application_name", "client_encoding", "DateStyle", "default_transaction_read_only",
    "in_hot_standby", "integer_datetimes", "IntervalStyle", "is_superuser", "server_encoding",
    "server_version", "session_authorization", "standard_conforming_strings", "TimeZone",
)

#: the defaults a real PostgreSQL 15 reports, plus the settings clients SET or SHOW
DEFAULT_SETTINGS: dict[str, str] = {
    "application_name": "",
    "client_encoding": "UTF8",
    "DateStyle": "ISO, MDY",
    "default_transaction_read_only": "off",
    "in_hot_standby": "off",
    "integer_datetimes": "on",
    "IntervalStyle": "postgres",
    "is_superuser": "off",
    "server_encoding": "UTF8",
    "server_version": SERVER_VERSION,
    "server_version_num": "150006",
    "session_authorization": "",
    "standard_conforming_strings": "on",
    "TimeZone": "Etc/UTC",
    "extra_float_digits": "1",
    "search_path": '"$user", public',
    "statement_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
    "idle_session_timeout": "0",
    "lock_timeout": "0",
    "default_transaction_isolation": "read committed",
    "transaction_isolation": "read committed",
    "transaction_read_only": "off",
    "max_identifier_length": "63",
    "jit": "off",
    "bytea_output": "hex",
    "client_min_messages": "notice",
    "max_index_keys": "32",
    "block_size": "8192",
    "lc_collate": "C.UTF-8",
    "lc_ctype": "C.UTF-8",
    "lc_messages": "C.UTF-8",
    "lc_monetary": "C.UTF-8",
    "lc_numeric": "C.UTF-8",
    "lc_time": "C.UTF-8",
    "synchronous_commit": "on",
    "row_security": "on",
    "geqo": "on",
    "work_mem": "4MB",
    "timezone_abbreviations": "Default",
    "escape_string_warning": "on",
    "default_text_search_config": "pg_catalog.english",
    "max_connections": "100",
}

#: lower-case name → canonical spelling (settings are case-insensitive)
CANONICAL = {name.lower(): name for name in DEFAULT_SETTINGS}


@dataclass
class PreparedStatement:
    """A parsed and planned statement kept under a name (``""`` is the unnamed one)."""

    name: str
    sql: str
    plan: Plan | None  # None for an empty query
    param_types: tuple[int, ...]
    #: the types the client declared in Parse (0: unspecified)
    declared: tuple[int, ...] = ()
    #: the search_path the plan resolved names with (a change re-plans, as in PostgreSQL)
    search_path: str = ""


class ThreadWork:
    """A session's work in the worker's statement threads, one job at a time. Work that is
    not interruptible (decoding a big Bind, parsing a long statement, a lookup of many keys)
    keeps its thread past the statement timeout that abandoned it; the session's next job
    waits for it (within its own timeout), so however often one session times out it holds
    at most one thread, and the pool (max_connections + 8) always has threads for the
    others."""

    def __init__(self) -> None:
        self.idle: asyncio.Event | None = None  # set when the last job's thread is free

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.idle is not None:
            await self.idle.wait()
        loop = asyncio.get_running_loop()
        idle = self.idle = asyncio.Event()

        def work() -> T:
            try:
                return fn(*args)
            finally:
                loop.call_soon_threadsafe(idle.set)

        return await loop.run_in_executor(None, work)


@dataclass
class Portal:
    """A bound statement: parameters, result formats, and the rows not sent yet."""

    name: str
    statement: PreparedStatement
    params: Sequence[Any]
    result_formats: Sequence[int]
    result: Result | None = None
    position: int = 0
    columns: list[Column] | None = None
    #: a cursor opened by DECLARE (survives COMMIT when WITH HOLD)
    hold: bool = False
    #: text formats for DECLAREd cursors fetched through the simple protocol
    done: bool = False
    #: the statement's deadline (event-loop time) when its Bind was decoded in a thread
    deadline: float | None = None


@dataclass
class Session:
    """All state of one client connection."""

    server: ServerState
    user: str
    database: str
    pid: int
    secret: int
    settings: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SETTINGS))
    statements: dict[str, PreparedStatement] = field(default_factory=dict)
    portals: dict[str, Portal] = field(default_factory=dict)
    #: 'I' idle, 'T' in a transaction block, 'E' in a failed transaction block
    status: str = "I"
    can_define: bool = False
    #: plans by exact statement text (and parameter types), most recently used last
    plan_cache: OrderedDict[tuple[str, tuple[int, ...]], Plan] = field(
        default_factory=OrderedDict
    )
    #: (text before, text after) the last literal of simple-protocol lookups whose only
    #: literal is that one → the plan-cache key of their normalized text (see
    #: :func:`fsql_server.pg.router.plan_statement`)
    literal_templates: dict[tuple[str, str], tuple[str, tuple[int, ...]]] = field(
        default_factory=dict
    )
    #: bumped by every CREATE/DROP/ALTER in the session's DuckDB (cached plans re-describe)
    ddl_generation: int = 0
    #: lower-case table name → the types its columns were declared with (CREATE TABLE t
    #: (...)), which DuckDB does not keep (jsonb, varchar(n)): see fsql_server.pg.origins
    declared_tables: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    #: the session's uninterruptible work in threads, one job at a time (see ThreadWork)
    threads: ThreadWork = field(default_factory=ThreadWork)
    _duckdb: DuckDBBackend | None = None

    PLAN_CACHE_SIZE = 512

    @property
    def duckdb(self) -> DuckDBBackend:
        """This session's sandboxed DuckDB database (created on first use)."""
        if self._duckdb is None:
            self._duckdb = DuckDBBackend(
                self.server.relations,
                threads=self.server.duckdb_threads,
                memory_limit=self.server.duckdb_memory_limit,
                user_db=self.server.user_database(self.user),
            )
        return self._duckdb

    @property
    def has_duckdb(self) -> bool:
        return self._duckdb is not None

    def setting(self, name: str) -> str | None:
        canonical = CANONICAL.get(name.lower(), name.lower())
        return self.settings.get(canonical)

    def set_setting(self, name: str, value: str) -> str:
        """Store a setting under its canonical name; returns that name."""
        canonical = CANONICAL.get(name.lower(), name.lower())
        self.settings[canonical] = value
        return canonical

    def statement_timeout(self) -> float:
        """Seconds (0 = none): the session's ``statement_timeout`` or the server's, whichever
        is lower (the server's is a cap: fsql_server.pg.commands refuses raising it)."""
        value = parse_duration_ms(self.settings.get("statement_timeout", "0")) / 1000
        cap = self.server.config.statement_timeout
        return min(value, cap) if value and cap else value or cap

    def cached_plan(self, key: tuple[str, tuple[int, ...]]) -> Plan | None:
        plan = self.plan_cache.get(key)
        if plan is not None:
            self.plan_cache.move_to_end(key)
        return plan

    def cache_plan(self, key: tuple[str, tuple[int, ...]], plan: Plan) -> None:
        self.plan_cache[key] = plan
        if len(self.plan_cache) > self.PLAN_CACHE_SIZE:
            self.plan_cache.popitem(last=False)

    def tables_generation(self) -> int:
        """Grows whenever the tables this session sees may have changed: its own DDL, or
        DDL and commits of the user's sessions (shared tables)."""
        shared = self._duckdb.user_db if self._duckdb is not None else None
        return self.ddl_generation + (shared.generation if shared is not None else 0)

    def declared(self) -> dict[str, list[tuple[str, Any]]]:
        """The declared column types of the tables the session sees by name: the user's
        shared tables', then its own temporary tables' (which hide shared ones)."""
        shared = self._duckdb.user_db if self._duckdb is not None else None
        if shared is None:
            return self.declared_tables
        return {**shared.declared_tables, **self.declared_tables}

    def end_transaction(self, commit: bool = True) -> None:
        """COMMIT/ROLLBACK or the end of an implicit transaction: portals go away, the
        DuckDB transaction of the block (if any) commits or rolls back."""
        self.status = "I"
        for name in [n for n, p in self.portals.items() if not p.hold]:
            del self.portals[name]
        if self._duckdb is not None:
            self._duckdb.finish(commit)

    def close(self) -> None:
        if self._duckdb is not None:
            self._duckdb.close()
            if self._duckdb.user_db is not None:
                self.server.user_databases.release(self.user)
            self._duckdb = None

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


def parse_duration_ms(text: str) -> float:
    """A PostgreSQL time setting (``5000``, ``'5s'``, ``'2min'``, ``'100ms'``) in milliseconds."""
    text = str(text).strip().strip("'").strip().lower()
    units = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000, "us": 0.001}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            number = text[: -len(unit)].strip()
            try:
                return float(number) * units[unit]
            except ValueError:
                break
    try:
        return float(text)
    except ValueError:
        raise PgError(INVALID_PARAMETER_VALUE, f'invalid value for a time setting: "{text}"',
                      hint='Use a number of milliseconds or a unit: "5s", "2min", "100ms".'
                      ) from None
