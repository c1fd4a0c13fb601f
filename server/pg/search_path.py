"""The session's ``search_path``: which schema an unqualified table name is read from.

PostgreSQL looks an unqualified name up in the session's temporary tables first, then in
each schema of ``search_path`` in order (``"$user"`` only when a schema of that name
exists). fsql does the same on the parsed statement, before anything else sees it
(:func:`qualify_tables`): ``SET search_path TO offline`` makes ``SELECT * FROM
user_features`` read ``offline.user_features``, while a temporary table of that name still
wins. ``current_schema()``, ``current_schemas(bool)`` and ``SHOW search_path`` follow the
setting; ``SET``, ``set_config('search_path', ...)`` and the startup option
``-c search_path=...`` all change it.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

#: schemas every session has, besides the surface's
BUILTIN_SCHEMAS = ("public", "pg_catalog", "information_schema")
DEFAULT_PATH = '"$user", public'

Session = Any


def path_entries(text: str) -> list[str]:
    """The schema names a ``search_path`` value lists, in order (quotes removed; unquoted
    names folded to lower case as PostgreSQL folds identifiers)."""
    names = []
    for raw in text.split(","):
        name = raw.strip()
        if not name:
            continue
        if len(name) >= 2 and name[0] == name[-1] == '"':
            names.append(name[1:-1].replace('""', '"'))
        else:
            names.append(name.lower())
    return names


def existing_schemas(session: Session) -> set[str]:
    """Every schema the session can see: the built-in ones and the surface's."""
    schemas = set(BUILTIN_SCHEMAS)
    relations = session.server.relations
    if relations is not None:
        schemas.update(relations.schemas)
    catalog = session.server.relation_catalog
    if catalog is not None:
        schemas.update(catalog.schemas)
    return schemas


def search_schemas(session: Session) -> list[str]:
    """The schemas of the session's ``search_path`` that exist, in order (``"$user"``
    resolved to the session's user)."""
    existing = existing_schemas(session)
    out = []
    for name in path_entries(session.setting("search_path") or DEFAULT_PATH):
        if name == "$user":
            name = session.user
        if name in existing and name not in out:
            out.append(name)
    return out


def current_schema(session: Session) -> str | None:
    """``current_schema()``: the first existing schema of the path (NULL when none)."""
    schemas = search_schemas(session)
    return schemas[0] if schemas else None


def current_schemas(session: Session, implicit: bool) -> list[str]:
    """``current_schemas(implicit)``: the path's existing schemas, with ``pg_catalog`` in
    front when ``implicit`` (PostgreSQL searches it first unless the path names it)."""
    schemas = search_schemas(session)
    if implicit and "pg_catalog" not in schemas:
        schemas.insert(0, "pg_catalog")
    return schemas


def is_default(session: Session) -> bool:
    """Whether the path resolves as the default one does (only ``public``, where the
    session's own tables live): then no name needs qualifying."""
    return [s for s in search_schemas(session) if s != "pg_catalog"] in ([], ["public"])


def qualify_tables(session: Session, tree: exp.Expression) -> exp.Expression:
    """``tree`` with each unqualified table read from a schema of the surface given that
    schema's name, following the session's search_path (the tree itself when nothing
    changes; a copy otherwise). Names of CTEs, of the session's own (temporary) tables and
    tables a statement creates or writes are left alone, as are names no schema on the path
    has (they keep their usual error)."""
    if is_default(session):
        return tree
    relations = session.server.relations
    catalog = session.server.relation_catalog
    if relations is None and catalog is None:
        return tree
    known = _relations_by_schema(session)
    schemas = [s for s in search_schemas(session) if s != "pg_catalog"]
    searched = schemas[: _until_public(schemas)]
    wanted = {name for schema in searched for name in known.get(schema, ())}
    names = {t.name for t in tree.find_all(exp.Table) if not t.args.get("db")}
    if not names & wanted:
        return tree  # no unqualified name any schema before public has
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    return qualify_tables_in(tree.copy(), known, searched, ctes, _session_tables(session))


def qualify_tables_in(tree: exp.Expression, known: dict[str, set[str]], searched: list[str],
                      ctes: set[str], own: set[str]) -> exp.Expression:
    """:func:`qualify_tables` on a tree it may change in place: ``searched`` are the schemas
    before ``public``, ``own`` the session's own table names."""
    for table in list(tree.find_all(exp.Table)):
        if table.args.get("db") or table.args.get("catalog") or _is_target(table) \
                or not isinstance(table.this, exp.Identifier):
            continue
        name = table.name
        if name.lower() in ctes or name.lower() in own:
            continue
        schema = next((s for s in searched if name in known.get(s, ())), None)
        if schema is not None:
            table.set("db", exp.to_identifier(schema))
    return tree


def _until_public(schemas: list[str]) -> int:
    """How many schemas of the path come before ``public`` (the session's own tables, which
    DuckDB resolves itself)."""
    return schemas.index("public") if "public" in schemas else len(schemas)


def _is_target(table: exp.Table) -> bool:
    """A table the statement creates, inserts into, updates or deletes from."""
    parent = table.parent
    node: exp.Expression = table
    if isinstance(parent, exp.Schema):
        node, parent = parent, parent.parent
    return isinstance(parent, (exp.Create, exp.Insert, exp.Update, exp.Delete,
                               exp.Drop, exp.Alter)) and parent.this is node


def _relations_by_schema(session: Session) -> dict[str, set[str]]:
    catalog = session.server.relation_catalog
    out: dict[str, set[str]] = {}
    if catalog is not None:
        for relation in catalog.relations():
            out.setdefault(relation.schema, set()).add(relation.name)
    return out


def _session_tables(session: Session) -> set[str]:
    """Lower-case names of the session's own tables and views (its DuckDB database)."""
    if not session.has_duckdb:
        return set()
    rows = session.duckdb.execute_sync(
        "SELECT table_name FROM information_schema.tables WHERE table_catalog IN "
        "('memory', 'temp') AND table_schema = 'main'")
    return {str(name).lower() for (name,) in rows}


def apply_search_path(session: Session, tree: exp.Expression) -> exp.Expression:
    """The statement as the session's search_path reads it: unqualified tables qualified
    (:func:`qualify_tables`), and ``current_schema()`` / ``current_schemas(bool)`` with a
    literal argument replaced by their values. Values may be baked into plans: a change of
    search_path empties the session's plan cache (:func:`fsql_server.pg.commands.apply_setting`)."""
    calls = [node for node in tree.find_all(exp.CurrentSchema, exp.CurrentSchemas,
                                            exp.Anonymous)
             if _schema_call(node) is not None]
    if calls:
        tree = tree.copy()
        for node in [n for n in tree.find_all(exp.CurrentSchema, exp.CurrentSchemas,
                                              exp.Anonymous) if _schema_call(n) is not None]:
            name, value = _schema_call_value(session, node)
            target: exp.Expr = node
            if isinstance(node.parent, exp.Dot) and node.parent.expression is node:
                target = node.parent  # pg_catalog.current_schemas(...)
            replacement: exp.Expr = value
            if isinstance(target.parent, exp.Select) and target.arg_key == "expressions":
                replacement = exp.alias_(value, name, quoted=True)
            target.replace(replacement)
    return qualify_tables(session, tree)


def _schema_call(node: exp.Expr) -> str | None:
    """``current_schema`` or ``current_schemas`` (with a literal boolean) when ``node`` calls
    one of them."""
    if isinstance(node, exp.CurrentSchema):
        return "current_schema"
    if isinstance(node, exp.CurrentSchemas):
        return "current_schemas" if isinstance(node.this, exp.Boolean) else None
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "current_schemas":
        args = node.expressions
        return "current_schemas" if len(args) == 1 and isinstance(args[0], exp.Boolean) \
            else None
    return None


def _schema_call_value(session: Session, node: exp.Expr) -> tuple[str, exp.Expr]:
    name = _schema_call(node)
    if name == "current_schema":
        schema = current_schema(session)
        return name, exp.Literal.string(schema) if schema is not None else exp.null()
    arg = node.this if isinstance(node, exp.CurrentSchemas) else node.expressions[0]
    implicit = bool(arg.this) if isinstance(arg, exp.Boolean) else False
    names = current_schemas(session, implicit)
    array = exp.Array(expressions=[exp.Literal.string(s) for s in names])
    return "current_schemas", exp.cast(array, "TEXT[]") if not names else array
