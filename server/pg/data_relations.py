"""The surface's relations in a statement for DuckDB: each ``schema.name`` of the surface
(``offline.f``, ``sources.s``, ``features.e``, ``fsql.t``) becomes a name registered in the
session's database (:meth:`~fsql_server.pg.duckdb_backend.DuckDBBackend.register` gives it the
provider's Arrow object), with the equality filters the statement holds it to
(:mod:`fsql_server.pg.pushdown`) for the schemas whose provider reads less for them.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import NamedTuple

from fsql_server.pg.dialect import keep_joins
from fsql_server.pg.pushdown import Filters, equality_filters
from sqlglot import exp

#: the names of fsql's own objects in a session's database (the registered Arrow relations
#: ``__fsql_<schema>__<name>``, staged COPY data): no catalog view lists them, and a session
#: cannot create a table under such a name (42939)
INTERNAL_PREFIX = "__fsql_"


class DataRef(NamedTuple):
    """What a registered name stands for: the surface's ``schema.name``, with the equality
    filters the statement holds it to (empty: none)."""

    schema: str
    name: str
    filters: Filters = {}


def rewrite_relations(tree: exp.Expression, data_schemas: Collection[str],
                      filtered: Collection[str]) -> dict[str, DataRef]:
    """Replace the surface's tables in ``tree`` by registered names; returns registered name
    → what it stands for. A filtered reading gets a name of its own (``..._2``: a self-join
    reads the relation twice, each with its filters)."""
    relations: dict[str, DataRef] = {}
    for table in list(tree.find_all(exp.Table)):
        schema = table.db.lower()
        if schema not in data_schemas:
            continue
        name = table.name
        alias = f"{INTERNAL_PREFIX}{schema}__{name}"
        filters = equality_filters(
            table, lambda other: is_session_table(other, data_schemas)) \
            if schema in filtered else {}
        if filters:
            alias += f"__{sum(1 for a in relations if a.startswith(alias)) + 1}"
        relations[alias] = DataRef(schema, name, filters)
        new = exp.to_table(alias)
        new.set("this", exp.to_identifier(alias, quoted=True))
        if table.alias:
            new.set("alias", table.args.get("alias"))
        else:
            new.set("alias", exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
        keep_joins(table, new)
        table.replace(new)
    if relations:
        # sources.tx.user_id (SQLAlchemy, pandas) → tx.user_id: the relation's alias
        for column in tree.find_all(exp.Column):
            db = column.args.get("db")
            if db is not None and db.name.lower() in data_schemas:
                column.set("db", None)
    return relations


def is_session_table(table: exp.Table, data_schemas: Collection[str]) -> bool:
    """A table of the session's own: not the surface's (also once renamed to its registered
    ``__fsql_*`` name), not a CTE."""
    if table.db and table.db.lower() in data_schemas or table.catalog \
            or table.name.lower().startswith(INTERNAL_PREFIX):
        return False
    query = table.find_ancestor(exp.Query)
    while query is not None:
        ctes = query.args.get("with_")
        if ctes and any(c.alias_or_name.lower() == table.name.lower() for c in ctes.expressions):
            return False
        query = query.find_ancestor(exp.Query)
    return isinstance(table.this, exp.Identifier)
