"""Row addresses (``ctid``) on the surface's relations.

A PostgreSQL table has the system column ``ctid``, a row's physical address ``(block,
offset)``. The surface's relations (``features.*``, ``offline.*``, ``sources.*``, ``fsql.*``)
are Arrow streams with no physical layout, so they have no ``ctid``. DuckDB's postgres
extension nevertheless reads a table as ``COPY (SELECT ... FROM t WHERE ctid BETWEEN
'(0,0)'::tid AND '(4294967295,0)'::tid) TO STDOUT (FORMAT binary)``: it splits a scan into
page ranges only when ``pg_class.relpages`` says the table has pages, and fsql's catalog says
0 for these relations, so the one range it sends covers every row (block 4294967295 is
PostgreSQL's invalid block number: no row lies at or past it).

:func:`drop_whole_table_ranges` removes such a condition (a conjunct of a ``WHERE`` over one
of the surface's relations that holds for every row) before anything plans the statement, so
the scan, and a point lookup beside it (``AND user_id = 'u001'``), is planned as if it were
not there. A narrower range names rows by addresses fsql does not have: 0A000, saying so.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from fsql_server.pg import errors
from fsql_server.pg.errors import PgError
from sqlglot import exp

#: the last block number PostgreSQL can address (InvalidBlockNumber is 2**32 - 1)
LAST_BLOCK = 2**32 - 1
_TID = re.compile(r"^\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)\s*$")


def drop_whole_table_ranges(tree: exp.Expression,
                            schemas: Collection[str]) -> exp.Expression:
    """``tree`` without the ``ctid`` conditions that hold for every row of the surface's
    relations (in ``schemas``); a copy when it had any."""
    if not any(_is_ctid(column) for column in tree.find_all(exp.Column)):
        return tree
    tree = tree.copy()
    for select in list(tree.find_all(exp.Select)):
        where = select.args.get("where")
        if where is None or not _reads_one_surface_relation(select, schemas):
            continue
        condition = where.this.unnest()
        conjuncts: list[exp.Expression] = [
            c for c in (condition.flatten(unnest=True) if isinstance(condition, exp.And)
                        else [condition]) if isinstance(c, exp.Expression)]
        kept = [c for c in conjuncts if not _whole_table_range(c)]
        if len(kept) == len(conjuncts):
            continue
        select.set("where", exp.Where(this=exp.and_(*kept)) if kept else None)
    return tree


def _is_ctid(column: exp.Column) -> bool:
    return column.name.lower() == "ctid" and not column.this.args.get("quoted")


def _reads_one_surface_relation(select: exp.Select, schemas: Collection[str]) -> bool:
    """A SELECT over exactly one table, of the surface (``ctid`` names its column then)."""
    source = select.args.get("from_")
    if source is None or select.args.get("joins"):
        return False
    table = source.this
    return isinstance(table, exp.Table) and table.db.lower() in schemas


def _whole_table_range(node: exp.Expression) -> bool:
    """Whether ``node`` is a condition on ``ctid`` alone that every row meets (raises 0A000
    for one that only some rows would meet)."""
    bounds: list[tuple[str, exp.Expression]] = []
    if isinstance(node, exp.Between) and _ctid_column(node.this):
        bounds = [(">=", node.args["low"]), ("<=", node.args["high"])]
    elif isinstance(node, (exp.GTE, exp.GT, exp.LTE, exp.LT)):
        op = {exp.GTE: ">=", exp.GT: ">", exp.LTE: "<=", exp.LT: "<"}[type(node)]
        if _ctid_column(node.this):
            bounds = [(op, node.expression)]
        elif _ctid_column(node.expression):
            flipped = {">=": "<=", ">": "<", "<=": ">=", "<": ">"}[op]
            bounds = [(flipped, node.this)]
    if not bounds:
        return False
    for op, value in bounds:
        tid = _tid(value)
        if tid is None:
            return False  # compared with something else: DuckDB reports it
        block, offset = tid
        lower_ok = op == ">=" and (block, offset) == (0, 0)
        upper_ok = op in ("<=", "<") and block >= LAST_BLOCK
        if not (lower_ok or upper_ok):
            raise PgError(
                errors.FEATURE_NOT_SUPPORTED,
                f"fsql's relations have no row addresses: the condition ctid {op} "
                f"'({block},{offset})' selects part of a table by physical position",
                hint="fsql answers ctid BETWEEN '(0,0)'::tid AND '(4294967295,0)'::tid (the "
                "whole table, as DuckDB's postgres extension asks for it); filter on the "
                "relation's columns instead.")
    return True


def _ctid_column(node: exp.Expression) -> bool:
    return isinstance(node, exp.Column) and _is_ctid(node)


def _tid(node: exp.Expression) -> tuple[int, int] | None:
    """The (block, offset) of a tid literal: ``'(0,0)'`` or ``'(0,0)'::tid``."""
    if isinstance(node, exp.Cast) and node.to.sql().lower() in ("tid", "pg_catalog.tid"):
        node = node.this
    if not (isinstance(node, exp.Literal) and node.is_string):
        return None
    match = _TID.match(node.this)
    return (int(match.group(1)), int(match.group(2))) if match else None
