"""Pieces of the extended protocol kept out of the connection's message loop: planning one
statement (nesting checked first) and finding what a Describe describes.

Describing a plan may cost a catalog refresh (building the catalog database takes seconds
the first time) or a DuckDB query for the result's columns: :func:`describe_blocks` says
so, and the connection then describes in a thread within the statement timeout, as it runs
an Execute, instead of on the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fsql_server.pg import errors, protocol
from fsql_server.pg.backend import Plan
from fsql_server.pg.errors import PgError
from fsql_server.pg.nesting import check_nesting, stack_depth_error
from fsql_server.pg.router import plan_statement
from fsql_server.pg.session import Portal, PreparedStatement, Session


def plan_piece(session: Session, sql: str, param_oids: Sequence[int] = ()) -> Any:
    """The router's plan for one statement, its nesting checked first (54001 instead of a
    RecursionError, see :mod:`.nesting`)."""
    check_nesting(sql)
    try:
        return plan_statement(session, sql, param_oids)
    except RecursionError:
        raise stack_depth_error() from None


def check_statement_size(text: bytes, limit: int) -> None:
    """54000 for a statement over ``[server] max_statement_bytes`` (``limit``), before any
    scanning or parsing: what one statement may cost the worker's event loop is bounded."""
    if limit and len(text) > limit:
        raise PgError(errors.PROGRAM_LIMIT_EXCEEDED, f"statement is too long ({len(text)} bytes)",
                      hint=f"The largest statement accepted is {limit} bytes "
                           "([server] max_statement_bytes).")


def describe_target(session: Session, body: bytes
                    ) -> tuple[PreparedStatement | None, Portal | None]:
    """The prepared statement (``S``) or the portal (``P``) a Describe names (one of the
    two), or the error PostgreSQL sends when it does not exist."""
    kind, name = protocol.parse_target(body, "Describe")
    if kind == "S":
        statement = session.statements.get(name)
        if statement is None:
            raise PgError(errors.INVALID_SQL_STATEMENT_NAME,
                          f'prepared statement "{name}" does not exist')
        return statement, None
    portal = session.portals.get(name)
    if portal is None:
        raise PgError(errors.INVALID_CURSOR_NAME, f'portal "{name}" does not exist')
    return None, portal


def plan_to_describe(statement: PreparedStatement | None, portal: Portal | None) -> Plan | None:
    """The plan whose columns a Describe needs (None: nothing to compute)."""
    if statement is not None:
        return statement.plan
    assert portal is not None
    if portal.columns is None and portal.result is None:
        return portal.statement.plan
    return None


def describe_blocks(session: Session, body: bytes) -> bool:
    """Whether answering this Describe may block (a catalog refresh, a DuckDB query): the
    connection then describes in a thread. A Describe that fails to find its target does
    not: the loop reports the error."""
    try:
        plan = plan_to_describe(*describe_target(session, body))
    except PgError:
        return False
    return plan is not None and plan.describe_blocks(session)
