"""Session functions (``version()``, ``current_setting``, ``set_config``, ...) and SELECTs
made only of constants and such functions.

A SELECT without FROM of constants and session functions is evaluated here in Python
(:func:`plan_constant_select`: no DuckDB database is ever opened for it, as drivers send
such statements on connect). In a statement that does go to DuckDB, each session-function
call becomes a parameter bound to its value at run time (:func:`plan_on_duckdb`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from fsql_server.pg import errors
from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.colnames import name_select_lists, output_name
from fsql_server.pg.commands import apply_setting
from fsql_server.pg.errors import PgError
from fsql_server.pg.origins import (
    DeclaringPlan,
    DescribedPlan,
    declared_columns,
    numeric_aggregates,
    origins,
    refine,
)
from fsql_server.pg.search_path import current_schema
from fsql_server.pg.session import (
    VERSION_STRING,
    Session,
)
from fsql_server.pg.types import (
    BOOL,
    INT4,
    INT8,
    NUMERIC,
    TEXT,
    TIMESTAMPTZ,
    PgType,
    sql_type_to_pg,
    type_by_oid,
)
from sqlglot import exp


def _current_setting(session: Session, args: list[Any]) -> Any:
    if not args or args[0] is None:
        return None
    value = session.setting(str(args[0]))
    if value is None:
        if len(args) > 1 and args[1]:
            return None
        raise PgError(errors.UNDEFINED_OBJECT,
                      f'unrecognized configuration parameter "{args[0]}"')
    return value


def _set_config(session: Session, args: list[Any]) -> Any:
    if len(args) != 3:
        raise PgError(errors.UNDEFINED_FUNCTION, "set_config(name, value, is_local) takes three "
                      "arguments")
    name, value = str(args[0]), "" if args[1] is None else str(args[1])
    apply_setting(session, name, value)
    return session.setting(name)


#: function name → (result type, evaluator(session, args))
SESSION_FUNCTIONS: dict[str, tuple[PgType, Callable[[Session, list[Any]], Any]]] = {
    "version": (TEXT, lambda s, a: VERSION_STRING),
    "current_setting": (TEXT, _current_setting),
    "set_config": (TEXT, _set_config),
    "pg_backend_pid": (INT4, lambda s, a: s.pid),
    "pg_advisory_unlock_all": (TEXT, lambda s, a: ""),
    "pg_is_in_recovery": (BOOL, lambda s, a: False),
    "current_database": (TEXT, lambda s, a: s.database),
    "current_catalog": (TEXT, lambda s, a: s.database),
    "current_schema": (TEXT, lambda s, a: current_schema(s)),
    "current_user": (TEXT, lambda s, a: s.user),
    "session_user": (TEXT, lambda s, a: s.user),
    "user": (TEXT, lambda s, a: s.user),
    "current_role": (TEXT, lambda s, a: s.user),
    "inet_server_port": (INT4, lambda s, a: s.server.port),
    "txid_current": (INT8, lambda s, a: 1),
}

_NODE_FUNCTIONS = {
    exp.CurrentVersion: "version", exp.CurrentUser: "current_user",
    exp.CurrentDatabase: "current_database", exp.CurrentSchema: "current_schema",
    exp.SessionUser: "session_user",
}
_NODE_FUNCTIONS.update({
    cls: name for cls, name in (
        (getattr(exp, "CurrentCatalog", None), "current_catalog"),
        (getattr(exp, "CurrentRole", None), "current_role"),
    ) if cls is not None
})


def session_function(node: exp.Expression) -> tuple[str, list[exp.Expression]] | None:
    """(name, argument nodes) when ``node`` calls a session function."""
    for cls, name in _NODE_FUNCTIONS.items():
        if type(node) is cls:
            return name, []
    if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Expression):
        if str(node.this.name).lower() == "pg_catalog":
            return session_function(node.expression)
    if isinstance(node, exp.Anonymous):
        name = str(node.this).lower()
        if name in SESSION_FUNCTIONS:
            return name, list(node.expressions)
    return None


class ConstantSelectPlan(Plan):
    """``SELECT`` of constants and session functions, evaluated in Python."""

    heavy = False  # evaluated in Python (fsql_server.pg.workers)

    def __init__(self, sql: str, items: list[tuple[str, PgType, Callable[..., Any]]],
                 param_types: tuple[PgType, ...], tree: exp.Expression | None = None):
        self.sql = sql
        self.items = items
        self.param_types = param_types
        self.command = "SELECT"
        self.cacheable = True
        columns = [Column(name, kind) for name, kind, _ in items]
        # casts carry their type modifiers (2.25::numeric(10,2)), as in PostgreSQL
        found = origins(None, tree) if tree is not None else None
        self.columns = refine(columns, found) if found is not None and len(found) == len(
            columns) else columns

    def describe(self, session: Session) -> list[Column] | None:
        return self.columns

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        row = tuple(fn(session, params) for _, _, fn in self.items)
        return Result(self.describe(session), [row], "SELECT")


class _NotConstant(Exception):
    """The expression needs a real engine."""


def _literal(node: exp.Literal) -> tuple[PgType, Any]:
    if node.is_string:
        return TEXT, node.this
    text = node.this
    if re.fullmatch(r"-?\d+", text):
        value = int(text)
        return (INT4 if -(2**31) <= value < 2**31 else INT8), value
    return NUMERIC, Decimal(text)


def _compile_constant(node: exp.Expression, param_types: list[PgType | None]
                      ) -> tuple[PgType, Callable[..., Any]]:
    if isinstance(node, exp.Alias):
        return _compile_constant(node.this, param_types)
    if isinstance(node, exp.Paren):
        return _compile_constant(node.this, param_types)
    if isinstance(node, exp.Literal):
        kind, value = _literal(node)
        return kind, lambda s, p: value
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal):
        kind, value = _literal(node.this)
        return kind, lambda s, p: -value
    if isinstance(node, exp.Boolean):
        value = bool(node.this)
        return BOOL, lambda s, p: value
    if isinstance(node, exp.Null):
        return TEXT, lambda s, p: None
    if isinstance(node, exp.Parameter):
        idx = int(node.this.name if isinstance(node.this, exp.Expression) else node.this) - 1
        while len(param_types) <= idx:
            param_types.append(None)
        if param_types[idx] is None:
            param_types[idx] = TEXT
        kind = param_types[idx] or TEXT
        return kind, lambda s, p: p[idx] if idx < len(p) else None
    if isinstance(node, exp.Cast):
        target = sql_type_to_pg(node.to.sql(dialect="postgres"))
        if isinstance(node.this, exp.Parameter):
            idx = int(node.this.this.name) - 1
            while len(param_types) <= idx:
                param_types.append(None)
            if param_types[idx] is None or param_types[idx] is TEXT:
                param_types[idx] = target
        _, inner = _compile_constant(node.this, param_types)

        def cast(s: Session, p: Sequence[Any]) -> Any:
            value = inner(s, p)
            if value is None:
                return None
            return target.text_in(target.text_out(value)) if not isinstance(value, str) \
                else target.text_in(value.encode())

        return target, cast
    call = session_function(node)
    if call:
        name, arg_nodes = call
        kind, fn = SESSION_FUNCTIONS[name]
        args = [_compile_constant(a, param_types)[1] for a in arg_nodes]
        return kind, lambda s, p: fn(s, [a(s, p) for a in args])
    if isinstance(node, exp.CurrentTimestamp) or (
        isinstance(node, exp.Anonymous) and str(node.this).lower() == "now"
    ):
        return TIMESTAMPTZ, lambda s, p: s.now()
    raise _NotConstant


def plan_constant_select(
    session: Session, sql: str, tree: exp.Expression, param_oids: Sequence[int]
) -> Plan | None:
    """A Python-evaluated plan for ``SELECT <constants/session functions>`` (no FROM)."""
    if not isinstance(tree, exp.Select) or any(
        tree.args.get(k) for k in ("from_", "joins", "where", "group", "having", "order", "with_",
                                   "limit", "offset", "distinct")
    ):
        return None
    param_types: list[PgType | None] = [type_by_oid(o) if o and o != 705 else None
                                        for o in param_oids]
    items = []
    try:
        for projection in tree.expressions:
            kind, fn = _compile_constant(projection, param_types)
            items.append((output_name(projection), kind, fn))
    except _NotConstant:
        return None
    return ConstantSelectPlan(sql, items, tuple(t or TEXT for t in param_types), tree)


# --------------------------------------------------------------------------------------------
# DuckDB


class SessionValuesPlan(Plan):
    """A DuckDB plan whose session-function calls became extra trailing parameters."""

    def __init__(self, inner: Plan, n_client: int, extras: list[tuple[str, list[Any]]]):
        self.inner = inner
        self.sql = inner.sql
        self.command = inner.command
        self.param_types = inner.param_types[:n_client]
        self.n_client = n_client
        self.extras = extras
        self.cacheable = True

    def describe(self, session: Session) -> list[Column] | None:
        return self.inner.describe(session)

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        values = list(params) + [
            SESSION_FUNCTIONS[name][1](session, args) for name, args in self.extras
        ]
        return await self.inner.run(session, values)


def plan_on_duckdb(
    session: Session, sql: str, tree: exp.Expression, param_oids: Sequence[int]
) -> Plan:
    """Plan a statement on the session's DuckDB, with PostgreSQL column names and session
    functions bound at run time, and result columns described as PostgreSQL would
    (:mod:`.origins`: table OIDs, attribute numbers, type modifiers)."""
    written = tree
    tree = tree.copy()
    name_select_lists(tree)
    numeric_aggregates(session, tree)
    existing = [int(p.this.name) for p in tree.find_all(exp.Parameter)
                if isinstance(p.this, exp.Expression) and p.this.name.isdigit()]
    n_client = max([len(param_oids), *existing]) if existing or param_oids else 0
    extras: list[tuple[str, list[Any]]] = []
    for node in list(tree.walk()):
        call = session_function(node) if isinstance(node, exp.Expression) else None
        if call is None or node.root() is not tree:
            continue  # (the f() of a pg_catalog.f() already replaced)
        name, args = call
        if not all(isinstance(a, exp.Literal) for a in args):
            continue
        extras.append((name, [a.this for a in args]))
        index = n_client + len(extras)
        kind = SESSION_FUNCTIONS[name][0]
        param = exp.Parameter(this=exp.Literal.number(index))
        cast_to = {TEXT.oid: "VARCHAR", INT4.oid: "INTEGER", INT8.oid: "BIGINT",
                   BOOL.oid: "BOOLEAN"}[kind.oid]
        node.replace(exp.cast(param, cast_to))
    oids = list(param_oids) + [0] * (n_client - len(param_oids))
    oids += [SESSION_FUNCTIONS[name][0].oid for name, _ in extras]
    plan: Plan = session.duckdb.plan(sql, tree, oids)
    if extras:
        plan = SessionValuesPlan(plan, n_client, extras)
    declared = declared_columns(written)
    if declared is not None:
        return DeclaringPlan(plan, *declared)
    if isinstance(written, exp.Query):
        return DescribedPlan(plan, written)
    return plan
