"""fsql's own tables and statements on the wire (filled in below as the stages land)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fsql_server import errors
from fsql_server.backend import Plan
from fsql_server.errors import PgError

if TYPE_CHECKING:
    from fsql_server.session import Session


def plan_lookup(session: Session, sql: str, tree: Any, param_oids: Sequence[int]) -> Plan | None:
    return None


def prepare_for_duckdb(session: Session, tree: Any) -> None:
    return None


def plan_definition(session: Session, sql: str) -> Plan:
    raise PgError(errors.FEATURE_NOT_SUPPORTED, "definitions over the wire are not available yet")


def attach_services(state: Any, config: Any) -> None:
    return None
