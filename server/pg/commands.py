"""Statements answered from the session itself: transactions, settings, cursors.

PostgreSQL clients send a lot of SQL that is about the *session*, not data: psycopg's
``BEGIN``, pgjdbc's ``SET extra_float_digits = 3``, asyncpg's ``SELECT
set_config('jit', 'off', false)`` and its pool reset (``SELECT pg_advisory_unlock_all(); CLOSE
ALL; UNLISTEN *; RESET ALL``), SQLAlchemy's ``select pg_catalog.version()``. These are answered
here with the results a real PostgreSQL 15 gives, without starting a DuckDB database.

Session functions (``version()``, ``current_setting(...)``, ...) and constant SELECTs are
in :mod:`.session_functions`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
from fsql_server.pg import errors
from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.errors import PgError
from fsql_server.pg.session import (
    CANONICAL,
    DEFAULT_SETTINGS,
    REPORTED,
    Portal,
    PreparedStatement,
    Session,
    parse_duration_ms,
)
from fsql_server.pg.types import (
    TEXT,
)

#: PostgreSQL settings a client may SET; anything else that DuckDB knows is an engine setting
#: (refused with 42501), anything else at all is unknown (42704), as in PostgreSQL.
PG_SETTINGS = {name.lower() for name in DEFAULT_SETTINGS} | {
    "statement_timeout", "lock_timeout", "search_path", "timezone", "datestyle",
    "intervalstyle", "extra_float_digits", "client_min_messages", "log_min_messages",
    "default_transaction_isolation", "default_transaction_deferrable", "transaction_deferrable",
    "enable_seqscan", "enable_indexscan", "enable_bitmapscan", "enable_hashjoin",
    "enable_mergejoin", "enable_nestloop", "random_page_cost", "effective_cache_size",
    "maintenance_work_mem", "temp_buffers", "array_nulls", "backslash_quote",
    "quote_all_identifiers", "xmloption", "gin_fuzzy_search_limit", "trace_notify",
    "session_replication_role", "check_function_bodies", "constraint_exclusion",
    "cursor_tuple_fraction", "from_collapse_limit", "join_collapse_limit", "plan_cache_mode",
    "tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count",
    "idle_in_transaction_session_timeout", "idle_session_timeout", "vacuum_cost_delay",
    "log_statement", "parallel_setup_cost", "max_parallel_workers_per_gather",
}

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$.]*)'
_SET = re.compile(
    rf"^\s*SET\s+(?:(SESSION|LOCAL)\s+)?({_IDENT})\s*(?:=|\bTO\b)\s*(.*?)\s*;?\s*$", re.I | re.S
)
_SET_TIMEZONE = re.compile(r"^\s*SET\s+(?:(SESSION|LOCAL)\s+)?TIME\s+ZONE\s+(.*?)\s*;?\s*$",
                           re.I | re.S)
_SET_TRANSACTION = re.compile(
    r"^\s*SET\s+(?:SESSION\s+CHARACTERISTICS\s+AS\s+)?TRANSACTION\b(.*)$", re.I | re.S
)
_RESET = re.compile(rf"^\s*RESET\s+({_IDENT}|ALL)\s*;?\s*$", re.I)
_SHOW = re.compile(rf"^\s*SHOW\s+({_IDENT}|ALL|TRANSACTION\s+ISOLATION\s+LEVEL|TIME\s+ZONE)"
                   r"\s*;?\s*$", re.I)
_DECLARE = re.compile(
    rf"^\s*DECLARE\s+({_IDENT})\s+((?:BINARY|ASENSITIVE|INSENSITIVE|NO\s+SCROLL|SCROLL|\s)*)"
    r"CURSOR\s+(?:(WITH|WITHOUT)\s+HOLD\s+)?FOR\s+(.*)$",
    re.I | re.S,
)
_FETCH = re.compile(
    rf"^\s*(FETCH|MOVE)\s+(?:(NEXT|FIRST|ALL|FORWARD\s+ALL|FORWARD\s+\d+|FORWARD|\d+|"
    rf"ABSOLUTE\s+-?\d+|RELATIVE\s+-?\d+|PRIOR|LAST|BACKWARD(?:\s+ALL|\s+\d+)?)\s+)?"
    rf"(?:(?:FROM|IN)\s+)?({_IDENT})\s*;?\s*$",
    re.I | re.S,
)
_CLOSE = re.compile(rf"^\s*CLOSE\s+({_IDENT}|ALL)\s*;?\s*$", re.I)
_DEALLOCATE = re.compile(rf"^\s*DEALLOCATE\s+(?:PREPARE\s+)?({_IDENT}|ALL)\s*;?\s*$", re.I)


def unquote_ident(text: str) -> str:
    text = text.strip()
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


def setting_value(text: str) -> str:
    """A SET value as PostgreSQL stores it: quotes removed, lists joined with ', '."""
    parts = []
    for piece in re.findall(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[^,\s][^,]*", text):
        piece = piece.strip()
        if piece.startswith("'"):
            parts.append(piece[1:-1].replace("''", "'"))
        elif piece.startswith('"'):
            parts.append(piece[1:-1])
        else:
            parts.append(piece)
    return ", ".join(parts)


class SessionPlan(Plan):
    """A statement answered from session state by a function ``run(session) -> Result``."""

    heavy = False  # answered on the event loop (fsql_server.pg.workers)

    def __init__(
        self,
        sql: str,
        command: str,
        action: Callable[[Session], Result],
        columns: list[Column] | None = None,
        allowed_when_failed: bool = False,
        cacheable: bool = True,
    ):
        self.sql = sql
        self.command = command
        self.action = action
        self.columns = columns
        self.blocked_in_failed_transaction = not allowed_when_failed
        self.cacheable = cacheable

    def describe(self, session: Session) -> list[Column] | None:
        return self.columns

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        return self.action(session)


def _tag(tag: str, notices: list[PgError] | None = None,
         reports: list[tuple[str, str]] | None = None) -> Result:
    return Result(None, (), tag, counted=False, reports=reports or [], notices=notices or [])


# --------------------------------------------------------------------------------------------
# transactions


def _begin(session: Session) -> Result:
    notices = []
    if session.status != "I":
        notices.append(PgError("25001", "there is already a transaction in progress",
                               severity="WARNING"))
    else:
        session.status = "T"
    return _tag("BEGIN", notices)


def _commit(session: Session) -> Result:
    if session.status == "I":
        return _tag("COMMIT", [PgError("25P01", "there is no transaction in progress",
                                       severity="WARNING")])
    tag = "ROLLBACK" if session.status == "E" else "COMMIT"
    session.end_transaction(commit=tag == "COMMIT")
    return _tag(tag)


def _rollback(session: Session) -> Result:
    if session.status == "I":
        return _tag("ROLLBACK", [PgError("25P01", "there is no transaction in progress",
                                         severity="WARNING")])
    session.end_transaction(commit=False)
    return _tag("ROLLBACK")


def _savepoint(tag: str, recover: bool = False) -> Callable[[Session], Result]:
    def action(session: Session) -> Result:
        if session.status == "I":
            word = "ROLLBACK TO SAVEPOINT" if recover else tag
            raise PgError("25P01", f"{word} can only be used in transaction blocks")
        notices = []
        if recover:
            session.status = "T"
            if session.has_duckdb and session.duckdb.recover():
                notices.append(PgError(
                    "01000", "the transaction's changes to tables were undone",
                    severity="WARNING",
                    detail="fsql's tables have no savepoints: after an error in the block, "
                           "its DuckDB work is rolled back as a whole, not to the savepoint.",
                    hint="Run the block's statements again, or ROLLBACK and start over."))
        return _tag(tag, notices)

    return action


# --------------------------------------------------------------------------------------------
# settings


def _check_settable(name: str) -> None:
    lower = name.lower()
    if lower in PG_SETTINGS or "." in lower:
        return
    if lower in duckdb_settings():
        raise PgError(
            errors.INSUFFICIENT_PRIVILEGE,
            f'permission denied to set parameter "{name}"',
            hint="Engine settings are fixed by the server administrator.",
        )
    raise PgError(errors.UNDEFINED_OBJECT, f'unrecognized configuration parameter "{name}"')


_DUCKDB_SETTINGS: set[str] | None = None


def duckdb_settings() -> set[str]:
    """Names of DuckDB's own settings (read once per process)."""
    global _DUCKDB_SETTINGS
    if _DUCKDB_SETTINGS is None:
        con = duckdb.connect()
        try:
            _DUCKDB_SETTINGS = {r[0].lower() for r in
                                con.execute("SELECT name FROM duckdb_settings()").fetchall()}
        finally:
            con.close()
    return _DUCKDB_SETTINGS


def apply_setting(session: Session, name: str, value: str | None) -> list[tuple[str, str]]:
    """Set (or reset, when ``value`` is None) one setting; returns ParameterStatus reports."""
    _check_settable(name)
    canonical = CANONICAL.get(name.lower(), name.lower())
    reset = value is None or value.upper() == "DEFAULT"
    if value is None or reset:
        value = DEFAULT_SETTINGS.get(canonical, "")
    if canonical == "client_encoding":
        if value.upper().replace("-", "") not in ("UTF8", "UNICODE"):
            raise PgError(errors.FEATURE_NOT_SUPPORTED,
                          f'client encoding "{value}" is not supported: fsql speaks only UTF8',
                          hint="Use client_encoding UTF8.")
        value = "UTF8"
    if canonical == "DateStyle":
        value = _datestyle(value)
    if canonical == "IntervalStyle" and value.lower() != "postgres":
        raise PgError(errors.FEATURE_NOT_SUPPORTED,
                      f'IntervalStyle "{value}" is not supported; fsql prints intervals in the '
                      '"postgres" style')
    if canonical == "statement_timeout":
        value = str(int(parse_duration_ms(value)))
        if not reset:  # the default ("0") means the server's timeout
            _check_timeout_cap(session, int(value))
    if canonical == "TimeZone" and value.upper() in ("UTC", "ETC/UTC", "GMT", "Z", "'UTC'"):
        value = "Etc/UTC" if value.upper() != "UTC" else "UTC"
    session.set_setting(canonical, value)
    if canonical == "search_path":
        forget_plans(session)
    return [(canonical, value)] if canonical in REPORTED else []


def _check_timeout_cap(session: Session, ms: int) -> None:
    """The server's ``[server] statement_timeout`` is a cap: a session may lower its timeout,
    not raise or disable it. As PostgreSQL answers a non-superuser setting a superuser-only
    parameter, raising it is refused with 42501 (a silent clamp would leave the client
    believing a timeout it does not have)."""
    cap = session.server.config.statement_timeout
    if cap and (ms <= 0 or ms > cap * 1000):
        wanted = "no timeout" if ms <= 0 else f"{ms} ms"
        raise PgError(
            errors.INSUFFICIENT_PRIVILEGE,
            f'permission denied to set parameter "statement_timeout" to {wanted}: the '
            f"server's limit is {cap:g} s",
            hint=f"A session may lower statement_timeout (to at most {int(cap * 1000)} ms); "
                 "the server's [server] statement_timeout sets the limit.")


def forget_plans(session: Session) -> None:
    """Drop the session's cached plans: they resolved unqualified names (and
    ``current_schema()``) with the search_path that just changed."""
    session.plan_cache.clear()
    session.literal_templates.clear()


def _datestyle(value: str) -> str:
    parts = [p.strip().upper() for p in value.split(",")]
    if not any(p == "ISO" for p in parts) and parts != [""]:
        raise PgError(errors.FEATURE_NOT_SUPPORTED,
                      f'DateStyle "{value}" is not supported; fsql prints dates in ISO style')
    return "ISO, MDY"


def _show(name: str, display: str = "") -> Callable[[Session], Result]:
    def action(session: Session) -> Result:
        if name == "all":
            rows = sorted(
                ((k, v, "") for k, v in session.settings.items()),
                key=lambda r: r[0].lower(),
            )
            cols = [Column("name", TEXT), Column("setting", TEXT), Column("description", TEXT)]
            return Result(cols, rows, "SHOW", counted=False)
        value = session.setting(name)
        if value is None:
            raise PgError(errors.UNDEFINED_OBJECT, f'unrecognized configuration parameter "{name}"')
        return Result([Column(display or name, TEXT)], [(value,)], "SHOW", counted=False)

    return action


def _reset(name: str) -> Callable[[Session], Result]:
    def action(session: Session) -> Result:
        if name == "all":
            reports = []
            for key, value in DEFAULT_SETTINGS.items():
                if key in ("is_superuser", "session_authorization", "application_name"):
                    continue
                if session.settings.get(key) != value:
                    session.settings[key] = value
                    if key in REPORTED:
                        reports.append((key, value))
                    if key == "search_path":
                        forget_plans(session)
            return _tag("RESET", reports=reports)
        return _tag("RESET", reports=apply_setting(session, name, None))

    return action


def _set(name: str, value: str) -> Callable[[Session], Result]:
    def action(session: Session) -> Result:
        return _tag("SET", reports=apply_setting(session, name, value))

    return action


def _discard(session: Session) -> Result:
    session.statements = {k: v for k, v in session.statements.items() if k == ""}
    session.portals.clear()
    _reset("all")(session)
    return _tag("DISCARD ALL")


def _deallocate(name: str) -> Callable[[Session], Result]:
    def action(session: Session) -> Result:
        if name == "all":
            session.statements = {k: v for k, v in session.statements.items() if k == ""}
            return _tag("DEALLOCATE ALL")
        if name not in session.statements:
            raise PgError(errors.INVALID_SQL_STATEMENT_NAME,
                          f'prepared statement "{name}" does not exist')
        del session.statements[name]
        return _tag("DEALLOCATE")

    return action


# --------------------------------------------------------------------------------------------
# cursors


class DeclarePlan(Plan):
    """``DECLARE name CURSOR FOR query``: run the query into a named portal."""

    cacheable = False

    def __init__(self, sql: str, name: str, query: Plan, hold: bool, binary: bool):
        self.sql = sql
        self.name = name
        self.query = query
        self.hold = hold
        self.binary = binary
        self.command = "DECLARE CURSOR"
        self.param_types = query.param_types
        self.heavy = query.heavy

    def describe(self, session: Session) -> list[Column] | None:
        return None

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        if session.status == "I" and not self.hold:
            raise PgError("25P01", "DECLARE CURSOR can only be used in transaction blocks")
        if self.name in session.portals:
            raise PgError(errors.DUPLICATE_CURSOR, f'cursor "{self.name}" already exists')
        # the rows stay in the engine until fetched (a statement run before all are fetched
        # parks the rest: fsql_server.pg.duckdb_backend.ResultStream)
        result = await self.query.run(session, params)
        statement = PreparedStatement(self.name, self.query.sql, self.query, ())
        fmt = 1 if self.binary else 0
        ncols = len(result.columns or [])
        session.portals[self.name] = Portal(
            self.name, statement, params, [fmt] * ncols, result=result,
            columns=result.columns, hold=self.hold,
        )
        return _tag("DECLARE CURSOR")


class FetchPlan(Plan):
    """``FETCH [FORWARD] [n|ALL|NEXT] FROM name`` and ``MOVE``."""

    cacheable = True

    def __init__(self, sql: str, verb: str, direction: str, name: str):
        self.sql = sql
        self.verb = verb
        self.name = name
        self.command = verb
        direction = " ".join(direction.upper().split())
        if direction in ("", "NEXT", "FORWARD"):
            self.count: int | None = 1
        elif direction in ("ALL", "FORWARD ALL"):
            self.count = None
        elif re.fullmatch(r"(FORWARD )?\d+", direction):
            self.count = int(direction.split()[-1])
        else:
            raise PgError(errors.FEATURE_NOT_SUPPORTED,
                          f"{verb} {direction} is not supported: cursors are forward-only",
                          hint=f"Use {verb} NEXT, {verb} n, {verb} ALL or {verb} FORWARD n.")

    def _portal(self, session: Session) -> Any:
        portal = session.portals.get(self.name)
        if portal is None or portal.result is None:
            raise PgError(errors.INVALID_CURSOR_NAME, f'cursor "{self.name}" does not exist')
        return portal

    def describe(self, session: Session) -> list[Column] | None:
        if self.verb == "MOVE":
            return None
        portal = session.portals.get(self.name)
        return portal.columns if portal is not None else None

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        portal = self._portal(session)
        result: Result = portal.result
        if self.verb == "MOVE":
            moved = 0
            more = result.reader(self.count)
            while rows := await more():
                moved += len(rows)
            portal.position += moved
            return _tag(f"MOVE {moved}")
        # the rows stream from the cursor's result as they are sent (FETCH ALL of a large
        # result never sits in memory at once)
        return Result(portal.columns, (), "FETCH", more=result.reader(self.count))


def _close_cursor(name: str) -> Callable[[Session], Result]:
    def action(session: Session) -> Result:
        if name == "all":
            session.portals = {k: v for k, v in session.portals.items() if k == ""}
            return _tag("CLOSE CURSOR ALL")
        if name not in session.portals:
            raise PgError(errors.INVALID_CURSOR_NAME, f'cursor "{name}" does not exist')
        del session.portals[name]
        return _tag("CLOSE CURSOR")

    return action


# --------------------------------------------------------------------------------------------
# routing


#: plans a statement (the router's plan_statement): DECLARE and COPY plan their query with it
QueryPlanner = Callable[..., "Plan | None"]


def plan_session_command(session: Session, sql: str, words: list[str],
                         plan_query: QueryPlanner,
                         param_oids: Sequence[int] = ()) -> Plan | None:
    """A plan for a session statement, or None when ``sql`` is not one. ``plan_query`` plans
    the query of a ``DECLARE ... CURSOR FOR query`` (passed in: the router calls this) with
    the parameter types the client declared (``param_oids``: psycopg's server-side cursors
    bind ``$1`` as int2/int4/int8 as the value needs)."""
    head = words[0] if words else ""
    second = words[1] if len(words) > 1 else ""
    if head in ("BEGIN", "START"):
        return SessionPlan(sql, "BEGIN", _begin)
    if head in ("COMMIT", "END"):
        return SessionPlan(sql, "COMMIT", _commit, allowed_when_failed=True)
    if head in ("ROLLBACK", "ABORT"):
        if second == "TO":
            return SessionPlan(sql, "ROLLBACK", _savepoint("ROLLBACK", recover=True),
                               allowed_when_failed=True)
        return SessionPlan(sql, "ROLLBACK", _rollback, allowed_when_failed=True)
    if head == "SAVEPOINT":
        return SessionPlan(sql, "SAVEPOINT", _savepoint("SAVEPOINT"))
    if head == "RELEASE":
        return SessionPlan(sql, "RELEASE", _savepoint("RELEASE"))
    if head == "SET":
        return _plan_set(sql)
    if head == "RESET":
        match = _RESET.match(sql)
        if not match:
            raise PgError(errors.SYNTAX_ERROR, "syntax error in RESET: expected RESET name | ALL")
        return SessionPlan(sql, "RESET", _reset(unquote_ident(match.group(1))))
    if head == "SHOW":
        match = _SHOW.match(sql)
        if not match:
            raise PgError(errors.SYNTAX_ERROR, "syntax error in SHOW: expected SHOW name | ALL")
        raw = " ".join(match.group(1).split()).upper()
        name = {"TRANSACTION ISOLATION LEVEL": "transaction_isolation",
                "TIME ZONE": "TimeZone"}.get(raw) or unquote_ident(match.group(1))
        # PostgreSQL names the column after the setting's canonical spelling (DateStyle)
        display = CANONICAL.get(name.lower(), name)
        if name == "all":
            columns = [Column("name", TEXT), Column("setting", TEXT), Column("description", TEXT)]
        else:
            columns = [Column(display, TEXT)]
        return SessionPlan(sql, "SHOW", _show(name, display), columns)
    if head == "DISCARD":
        return SessionPlan(sql, "DISCARD ALL", _discard)
    if head == "DEALLOCATE":
        match = _DEALLOCATE.match(sql)
        if not match:
            raise PgError(errors.SYNTAX_ERROR, "syntax error in DEALLOCATE")
        return SessionPlan(sql, "DEALLOCATE", _deallocate(unquote_ident(match.group(1))),
                           cacheable=False)
    if head in ("LISTEN", "UNLISTEN", "NOTIFY"):
        return SessionPlan(sql, head, lambda s: _tag(head))
    if head == "DECLARE":
        match = _DECLARE.match(sql)
        if not match:
            raise PgError(errors.SYNTAX_ERROR,
                          "syntax error in DECLARE: expected DECLARE name CURSOR FOR query")
        query = plan_query(session, match.group(4), param_oids)
        if query is None:
            raise PgError(errors.SYNTAX_ERROR, "DECLARE CURSOR needs a query")
        hold = (match.group(3) or "").upper() == "WITH"
        binary = "BINARY" in (match.group(2) or "").upper()
        return DeclarePlan(sql, unquote_ident(match.group(1)), query, hold, binary)
    if head in ("FETCH", "MOVE"):
        match = _FETCH.match(sql)
        if not match:
            raise PgError(errors.SYNTAX_ERROR, f"syntax error in {head}")
        return FetchPlan(sql, match.group(1).upper(), match.group(2) or "",
                         unquote_ident(match.group(3)))
    if head == "CLOSE":
        match = _CLOSE.match(sql)
        if not match:
            raise PgError(errors.SYNTAX_ERROR, "syntax error in CLOSE: expected CLOSE name | ALL")
        return SessionPlan(sql, "CLOSE CURSOR", _close_cursor(unquote_ident(match.group(1))),
                           cacheable=False)
    if head in ("PREPARE", "EXECUTE"):
        raise PgError(errors.FEATURE_NOT_SUPPORTED,
                      f"SQL-level {head} is not supported",
                      hint="Use the extended query protocol (every driver's prepared "
                      "statements) instead.")
    return None


def _plan_set(sql: str) -> Plan:
    match = _SET_TIMEZONE.match(sql)
    if match:
        value = setting_value(match.group(2))
        if value.upper() == "LOCAL":
            value = "DEFAULT"
        return SessionPlan(sql, "SET", _set("TimeZone", value))
    if _SET_TRANSACTION.match(sql):
        return SessionPlan(sql, "SET", lambda s: _tag("SET"))
    match = _SET.match(sql)
    if not match:
        if re.match(r"^\s*SET\s+(SESSION\s+)?(AUTHORIZATION|ROLE)\b", sql, re.I):
            raise PgError(errors.INSUFFICIENT_PRIVILEGE,
                          "permission denied: SET ROLE / SESSION AUTHORIZATION is not allowed")
        raise PgError(errors.SYNTAX_ERROR, "syntax error in SET: expected SET name = value")
    name = unquote_ident(match.group(2))
    _check_settable(name)
    return SessionPlan(sql, "SET", _set(name, setting_value(match.group(3))))
