"""The catalog database of one server process: a private DuckDB database filled from the
definitions (:mod:`.tables`) and the surface's relations (:mod:`.model`), rebuilt when they
change, so a relation created while a client is connected is in its next answer; each
session's temporary tables are listed in its ``pg_temp_N`` schema.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa
from fsql_server.pg import errors
from fsql_server.pg.catalog.model import (
    OWNER,
    OWNER_OID,
    CatalogColumn,
    Relation,
    SharedRelation,
    object_oid,
)
from fsql_server.pg.catalog.tables import (
    FIRST_FSQL_OID,
    MACROS,
    RESERVED_WORDS,
    TABLE_MACROS,
    TABLES,
    VIEWS,
    builtin_catalog,
    builtin_function_oid,
    quote_ident,
    stored,
)
from fsql_server.pg.data_relations import INTERNAL_PREFIX
from fsql_server.pg.duckdb_backend import DuckDBBackend
from fsql_server.pg.errors import PgError
from fsql_server.pg.planner import DataRelations, RelationCatalog
from fsql_server.pg.session import DEFAULT_SETTINGS, Session
from fsql_server.pg.types import pg_type_for_duckdb
from fsql_server.pg.user_tables import UserDatabase

#: the oid of PostgreSQL's schema public (the users' shared tables are listed there)
PUBLIC_OID = 2200


class CatalogBackend(DuckDBBackend):
    """The catalog database of one server process (shared by its sessions, one statement at a
    time), refreshed from the registry before each catalog statement."""

    def __init__(self, relation_catalog: RelationCatalog | None,
                 provider: DataRelations | None = None):
        super().__init__(provider=provider, threads=1)
        #: the surface's relations (None: only PostgreSQL's own and the sessions' tables)
        self.relation_catalog = relation_catalog
        self._current: Any = None
        self._refresh_lock = threading.Lock()
        #: session pid → the ddl_generation its temporary tables were listed at
        self._temp_listed: dict[int, int] = {}
        #: user → (the generation of the user's database, its shared tables) listed
        self._shared_listed: dict[str, tuple[int, list[SharedRelation]]] = {}
        #: the login roles in pg_roles: the configured users and the users of the open
        #: sessions that ran catalog statements (a name that connected under trust and left
        #: is not kept)
        self._users: set[str] = set()
        #: session pid → its user, for the open sessions that ran catalog statements
        self._session_users: dict[int, str] = {}
        #: session pid → the session's connection to this database
        self._sessions: dict[int, SessionCatalog] = {}

    def _connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(":memory:")
        con.execute("SET threads = 1")
        builtin = builtin_catalog()
        definitions = dict(TABLES)
        for name, table in builtin.items():
            if name not in TABLES:
                definitions[name] = ", ".join(f"{c} {t}" for c, t in table["columns"])
        for name, columns in definitions.items():
            con.execute(f"CREATE TABLE {stored(name)} ({columns})")
            if stored(name) != name:
                public = [c.split()[0] for c in columns.split(",")
                          if not c.split()[0].startswith("fsql_")]
                con.execute(f"CREATE VIEW {name} AS SELECT {', '.join(public)} "
                            f"FROM {stored(name)}")
        con.execute("CREATE VIEW fsql_type_names AS SELECT oid, typname, fsql_format AS fmt "
                    "FROM fsql_pg_type")
        words = ", ".join(f"'{w}'" for w in sorted(RESERVED_WORDS))
        con.execute(f"CREATE MACRO fsql_reserved() AS [{words}]")
        order = sorted(MACROS, key=lambda n: (n != "quote_ident", not n.startswith("fsql_")))
        for name in order:
            body = MACROS[name]
            macro = name if name.startswith("fsql_") else f"fsql_{name}"
            con.execute(f"CREATE MACRO {macro}{body}")
        for name, body in TABLE_MACROS.items():
            con.execute(f"CREATE MACRO fsql_{name}{body.split(' AS ', 1)[0]} AS TABLE "
                        f"{body.split(' AS ', 1)[1]}")
        for name, body in VIEWS.items():
            con.execute(f"CREATE VIEW {name} AS {body}")
        _fill_static(con)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con

    def for_session(self, session: Session) -> SessionCatalog:
        """The session's own connection to the catalog database (made on first use)."""
        found = self._sessions.get(session.pid)
        if found is None:
            found = self._sessions[session.pid] = SessionCatalog(self)
        return found

    def interrupt_session(self, pid: int) -> None:
        """Interrupt the catalog statement session ``pid`` runs (its timeout, a cancel)."""
        found = self._sessions.get(pid)
        if found is not None:
            found.interrupt()

    def close_session(self, pid: int) -> None:
        """The session ended: close its connection (waits for a statement still running
        there, so call :meth:`interrupt_session` first)."""
        found = self._sessions.pop(pid, None)
        if found is not None:
            found.close()

    def refresh(self, session: Session) -> None:
        """Rebuild the fsql relations when the registry changed since the last statement
        (a failure is this statement's error, the session goes on)."""
        try:
            self._refresh(session)
        except PgError:
            raise
        except Exception as exc:  # noqa: BLE001 - registry and engine errors map to SQLSTATEs
            raise PgError(errors.INTERNAL_ERROR, f"the catalog could not be built: {exc}",
                          hint="Check the repository with fsql plan.") from None

    def _refresh(self, session: Session) -> None:
        source = self.relation_catalog
        current = source.version() if source is not None else {}
        with self._refresh_lock:
            removed = self._refresh_users(session)
            if current is not self._current or self._con is None:
                relations = source.relations() if source is not None else []
                schemas = source.schemas if source is not None else {}
                with self._lock:
                    _fill_relations(self.con, relations, schemas, sorted(self._users))
                self._current = current
                self._shared_listed.clear()  # _fill_relations removed their rows
            elif removed is not None:
                self._apply_roles(removed)
            self._refresh_temp(session)
            if self._refresh_shared(session):
                self._refresh_owners(session)

    def _refresh_users(self, session: Session) -> set[str] | None:
        """Bring the login roles up to date; the users no longer listed when they changed
        (None when they did not)."""
        live = live_session_pids(session)
        self._session_users[session.pid] = session.user
        if live is not None:
            for pid in [p for p in self._session_users if p not in live]:
                del self._session_users[pid]
            for pid in [p for p in self._sessions if p not in live]:
                self.close_session(pid)
        # the owners of shared tables stay (their tables outlive their sessions)
        owners = {user for user, (_g, tables) in self._shared_listed.items() if tables}
        users = {u.name for u in session.server.config.users} | set(
            self._session_users.values()) | owners
        if users == self._users:
            return None
        removed, self._users = self._users - users, users
        return removed

    def record_activity(self, session: Session, sql: str) -> None:
        """This session's row of ``pg_stat_activity`` (state active, this statement): the
        other sessions' rows say idle, with the last statement they ran here."""
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            con = self.con
            con.execute("UPDATE pg_stat_activity SET state = 'idle' WHERE state = 'active'")
            started = con.execute("SELECT backend_start FROM pg_stat_activity WHERE pid = ?",
                                  [session.pid]).fetchone()
            con.execute("DELETE FROM pg_stat_activity WHERE pid = ?", [session.pid])
            con.execute(
                "INSERT INTO pg_stat_activity (datid, datname, pid, usesysid, usename, "
                "application_name, backend_start, query_start, state_change, state, query, "
                "backend_type) SELECT 16390, ?, ?, (SELECT oid FROM pg_roles WHERE rolname = ?),"
                " ?, ?, ?, ?, ?, 'active', ?, 'client backend'",
                [session.database, session.pid, session.user, session.user,
                 session.setting("application_name") or "", started[0] if started else now,
                 now, now, sql])

    def _refresh_temp(self, session: Session) -> None:
        """List the session's temporary tables in its ``pg_temp_N`` schema (as PostgreSQL
        does: every session's temporary tables are in pg_class, each session sees its own
        through ``pg_table_is_visible``), and drop the listings of ended sessions."""
        live = live_session_pids(session)
        generation = session.tables_generation() if session.has_duckdb else -1
        stale = [pid for pid in self._temp_listed if live is not None and pid not in live]
        if self._temp_listed.get(session.pid) == generation and not stale:
            return
        relations = session_temp_relations(session) if session.has_duckdb else []
        with self._lock:
            if stale:
                marks = ", ".join("?" * len(stale))
                self.con.execute(f"DELETE FROM pg_stat_activity WHERE pid IN ({marks})", stale)
            for pid in [*stale, session.pid]:
                _clear_temp(self.con, pid)
                self._temp_listed.pop(pid, None)
            if relations:
                _insert_relations(self.con, relations, temp_namespace_oid(session.pid),
                                  temporary_owner=session.user)
            self._temp_listed[session.pid] = generation

    def _refresh_owners(self, session: Session) -> None:
        """Shared tables were listed again: their owners are login roles (added, or gone
        with their last table when no session of theirs is open)."""
        removed = self._refresh_users(session)
        if removed is not None:
            self._apply_roles(removed)

    def _apply_roles(self, removed: set[str]) -> None:
        """pg_roles without the ``removed`` users, with every current one."""
        with self._lock:
            for user in removed:
                self.con.execute("DELETE FROM pg_roles WHERE rolname = ? AND oid >= ?",
                                 [user, FIRST_FSQL_OID])
            for user in sorted(self._users):
                ensure_role(self.con, user)

    def _refresh_shared(self, session: Session) -> bool:
        """List the users' shared tables (plain ``CREATE TABLE``, fsql_server.pg.user_tables)
        in ``public``, owned by their user, as PostgreSQL lists every table (another user
        sees the names, never the rows: a name resolves in the user's own database only)."""
        databases = session.server.user_databases
        present = databases.all() if databases is not None else []
        changed = False
        users = {database.user for database in present}
        for user in [u for u in self._shared_listed if u not in users]:
            # the user's database is gone (no session, no table): so are its listings
            with self._lock:
                _clear_shared(self.con, self._shared_listed.pop(user)[1])
            changed = True
        for database in present:
            generation = database.generation
            listed = self._shared_listed.get(database.user)
            if listed is not None and listed[0] == generation:
                continue
            relations = shared_relations(database)
            with self._lock:
                if listed is not None:
                    _clear_shared(self.con, listed[1])
                if relations:
                    _insert_relations(self.con, relations, PUBLIC_OID,
                                      shared_owner=database.user)
            self._shared_listed[database.user] = (generation, relations)
            changed = True
        return changed


class SessionCatalog(DuckDBBackend):
    """One session's connection to the catalog database (a DuckDB cursor of it): catalog
    statements of several sessions run side by side, and a statement timeout or cancel
    interrupts only the session's own (one shared connection let a heavy catalog join hold
    every session's catalog queries behind it)."""

    def __init__(self, shared: CatalogBackend):
        super().__init__(provider=shared.provider, threads=1)
        self.shared = shared

    def _connect(self) -> duckdb.DuckDBPyConnection:
        with self.shared._lock:
            return self.shared.con.cursor()


def live_session_pids(session: Session) -> set[int] | None:
    """The pids of the server process's open sessions, None when there is no server (a
    session built directly, as in unit tests)."""
    server = session.server
    if server is None:
        return None
    return {*server.session_pids(), session.pid}


def temp_namespace_oid(pid: int) -> int:
    """The oid of a session's temporary schema ``pg_temp_<pid>``."""
    return object_oid(f"pg_temp_{pid}")


def session_temp_relations(session: Session) -> list[Relation]:
    """The session's tables (``CREATE TEMP TABLE``, ``CREATE TABLE``) as catalog relations of the
    schema ``pg_temp_<pid>``, columns typed as the session's DuckDB database has them. fsql's
    own objects there (the Arrow relations a statement registered, ``__fsql_*``) are not the
    session's tables: no catalog view lists them."""
    backend = session.duckdb
    # a plain CREATE TABLE lives in the user's database (``memory``) when the session has
    # one (shared_relations lists those); without one (a backend of its own) it is the
    # session's, listed here; a temporary table hides a plain one of the same name
    databases = "('temp')" if backend.user_db is not None else "('temp', 'memory')"
    with backend._lock:
        rows = backend.con.execute(
            "SELECT database_name, table_name, column_name, data_type, is_nullable "
            f"FROM duckdb_columns() WHERE database_name IN {databases} "
            "AND schema_name = 'main' AND NOT starts_with(table_name, ?) "
            "ORDER BY database_name = 'temp' DESC, table_name, column_index",
            [INTERNAL_PREFIX]).fetchall()
    tables: dict[str, list[CatalogColumn]] = {}
    owner: dict[str, str] = {}
    for database, table, column, data_type, nullable in rows:
        if owner.setdefault(table, database) != database:
            continue
        tables.setdefault(table, []).append(
            CatalogColumn(column, pg_type_for_duckdb(data_type), not_null=not nullable))
    schema = f"pg_temp_{session.pid}"
    return [Relation(schema, name, columns) for name, columns in tables.items()]


def shared_relations(database: UserDatabase) -> list[SharedRelation]:
    """A user's shared tables as catalog relations of ``public`` owned by the user."""
    tables: dict[str, list[CatalogColumn]] = {}
    for table, column, data_type, nullable in database.tables():
        if table.startswith(INTERNAL_PREFIX):
            continue
        tables.setdefault(table, []).append(
            CatalogColumn(column, pg_type_for_duckdb(data_type), not_null=not nullable))
    return [SharedRelation("public", name, columns, owner=database.user)
            for name, columns in tables.items()]


def _clear_shared(con: duckdb.DuckDBPyConnection, relations: list[SharedRelation]) -> None:
    classes = [r.oid for r in relations]
    types = [oid for r in relations for oid in (r.type_oid, r.array_type_oid)]
    if not classes:
        return
    marks = ", ".join("?" * len(classes))
    con.execute(f"DELETE FROM pg_attribute WHERE attrelid IN ({marks})", classes)
    con.execute(f"DELETE FROM pg_class WHERE oid IN ({marks})", classes)
    con.execute(f"DELETE FROM fsql_pg_type WHERE oid IN ({', '.join('?' * len(types))})", types)


def _clear_temp(con: duckdb.DuckDBPyConnection, pid: int) -> None:
    ns = temp_namespace_oid(pid)
    con.execute("DELETE FROM pg_attribute WHERE attrelid IN (SELECT oid FROM pg_class "
                "WHERE relnamespace = ?)", [ns])
    con.execute("DELETE FROM fsql_pg_type WHERE typnamespace = ?", [ns])
    con.execute("DELETE FROM pg_class WHERE relnamespace = ?", [ns])
    con.execute("DELETE FROM pg_namespace WHERE oid = ?", [ns])


def _insert_dicts(con: duckdb.DuckDBPyConnection, table: str,
                  rows: list[dict[str, Any]]) -> None:
    """Insert rows given as column → value (the other columns are NULL)."""
    if not rows:
        return
    names = list(rows[0])
    con.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                    f"({', '.join('?' * len(names))})", [[r[n] for n in names] for r in rows])


def _fill_static(con: duckdb.DuckDBPyConnection) -> None:
    """The rows that never change: PostgreSQL 15's built-in rows (types, functions,
    operators, access methods, its own relations and views, roles, descriptions) and the
    settings."""
    for name, table in builtin_catalog().items():
        if not table["rows"]:
            continue
        names = [c for c, _t in table["columns"]]
        data = pa.table({c: [row[i] for row in table["rows"]] for i, c in enumerate(names)})
        if name in TABLES:  # fsql's definition: the columns both have
            mine = {r[0] for r in con.execute(f"DESCRIBE {stored(name)}").fetchall()}
            names = [c for c in names if c in mine]
        con.register("fsql_builtin_rows", data)
        columns = ", ".join(names)
        con.execute(f"INSERT INTO {stored(name)} ({columns}) SELECT {columns} "
                    "FROM fsql_builtin_rows")
        con.unregister("fsql_builtin_rows")
    settings = {**DEFAULT_SETTINGS, "default_table_access_method": "heap"}
    con.executemany("INSERT INTO pg_settings VALUES (?, ?, NULL, 'fsql', '', 'user', "
                    "'string', 'default')", sorted(settings.items()))


def _pg_class(oid: int, name: str, ns: int, reltype: int, kind: str, natts: int,
              hasindex: bool, am: int, owner: int, persistence: str = "p") -> tuple[Any, ...]:
    # a table never analyzed has reltuples -1; a new btree index has its metapage
    pages, tuples = (1, 0.0) if kind == "i" else (0, -1.0)
    return (oid, name, ns, reltype, 0, owner, am, oid, 0, pages, tuples, 0, 0, hasindex, False,
            persistence, kind, natts, 0, False, False, False, False, False, True, "d", False,
            0, 0, 0, None, None, None)


def _fill_relations(con: duckdb.DuckDBPyConnection, relations: list[Relation],
                    schemas: Mapping[str, tuple[int, str]], users: Sequence[str]) -> None:
    """Replace fsql's rows (schemas, relations, roles, the database) by ``relations`` in
    ``schemas`` (name → oid, comment)."""
    first = FIRST_FSQL_OID  # temporary schemas stay: _clear_temp replaces them
    con.execute("DELETE FROM pg_namespace WHERE oid >= ? AND nspname NOT LIKE 'pg\\_temp\\_%' "
                "ESCAPE '\\'", [first])
    con.execute("DELETE FROM pg_class WHERE oid >= ? AND relpersistence <> 't'", [first])
    con.execute("DELETE FROM pg_attribute WHERE attrelid NOT IN (SELECT oid FROM pg_class)")
    con.execute("DELETE FROM fsql_pg_type WHERE oid >= ? AND typrelid NOT IN "
                "(SELECT oid FROM pg_class) AND typcategory <> 'A'", [first])
    con.execute("DELETE FROM fsql_pg_type WHERE oid >= ? AND typcategory = 'A' AND typelem "
                "NOT IN (SELECT oid FROM fsql_pg_type)", [first])
    for table, column in (("pg_description", "objoid"), ("pg_constraint", "oid"),
                          ("pg_index", "indexrelid"), ("pg_database", "oid"),
                          ("pg_roles", "oid")):
        con.execute(f"DELETE FROM {stored(table)} WHERE {column} >= ?", [first])
    con.executemany("INSERT INTO pg_namespace (oid, nspname, nspowner, nspacl) "
                    "VALUES (?, ?, ?, ?)",
                    [(oid, name, OWNER_OID, None) for name, (oid, _) in schemas.items()])
    con.executemany("INSERT INTO pg_description VALUES (?, 2615, 0, ?)",
                    [(oid, comment) for oid, comment in schemas.values()])
    by_schema: dict[str, list[Relation]] = {}
    for rel in relations:
        by_schema.setdefault(rel.schema, []).append(rel)
    for schema, rels in by_schema.items():
        _insert_relations(con, rels, schemas[schema][0])
    con.execute("INSERT INTO pg_database VALUES (16390, 'fsql', ?, 6, 'c', false, true, -1, "
                "'C', 'C', NULL, NULL, 1663, NULL)", [OWNER_OID])  # byte order, as DuckDB sorts
    # fsql owns the relations and cannot log in (like a role made with CREATE ROLE)
    _insert_dicts(con, "pg_roles", [_role(OWNER, login=False)])
    for user in users:
        ensure_role(con, user)


def role_oid(user: str) -> int:
    """The oid of a role: PostgreSQL's own (postgres is 10), fsql's owner, or one derived
    from a session user's name."""
    if user == OWNER:
        return OWNER_OID
    roles = builtin_catalog()["pg_roles"]
    names = [c for c, _t in roles["columns"]]
    builtin = {row[names.index("rolname")]: row[names.index("oid")] for row in roles["rows"]}
    return builtin.get(user) or object_oid(f"role {user}")


def _role(user: str, login: bool = True) -> dict[str, Any]:
    return {"oid": role_oid(user), "rolname": user, "rolcanlogin": login, "rolsuper": False,
            "rolinherit": True, "rolcreaterole": False, "rolcreatedb": False,
            "rolreplication": False, "rolconnlimit": -1, "rolpassword": "********",
            "rolbypassrls": False}


def ensure_role(con: duckdb.DuckDBPyConnection, user: str) -> None:
    """A session's user as an ordinary login role in ``pg_roles`` (once)."""
    exists = con.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", [user]).fetchone()
    if not exists:
        _insert_dicts(con, "pg_roles", [_role(user)])


def _insert_relations(con: duckdb.DuckDBPyConnection, relations: Sequence[Relation], ns: int,
                      temporary_owner: str | None = None,
                      shared_owner: str | None = None) -> None:
    """pg_class, pg_type, pg_attribute, pg_description, pg_index and pg_constraint rows of
    ``relations`` in the schema ``ns`` (for a session's temporary tables: its schema is
    created first, and the tables are the session user's; a user's shared tables are the
    user's)."""
    temporary = temporary_owner is not None
    owner_name = temporary_owner or shared_owner
    owner = role_oid(owner_name) if owner_name is not None else OWNER_OID
    if temporary and relations:
        con.execute("INSERT INTO pg_namespace (oid, nspname, nspowner) VALUES (?, ?, ?)",
                    [ns, relations[0].schema, owner])
    classes, attributes, types, descriptions, constraints, indexes = [], [], [], [], [], []
    for rel in relations:
        classes.append(_pg_class(rel.oid, rel.name, ns, rel.type_oid, "r", len(rel.columns),
                                 bool(rel.primary_key), 2, owner, "t" if temporary else "p"))
        qualified = quote_ident(rel.name) if temporary else (
            f"{quote_ident(rel.schema)}.{quote_ident(rel.name)}")
        types.append({
            "oid": rel.type_oid, "typname": rel.name, "typnamespace": ns, "typowner": owner,
            "typlen": -1, "typbyval": False, "typtype": "c", "typcategory": "C",
            "typispreferred": False, "typisdefined": True, "typdelim": ",",
            "typrelid": rel.oid, "typsubscript": 0, "typelem": 0,
            "typarray": rel.array_type_oid,
            "typinput": builtin_function_oid("record_in"),
            "typoutput": builtin_function_oid("record_out"),
            "typreceive": builtin_function_oid("record_recv"),
            "typsend": builtin_function_oid("record_send"), "typmodin": 0, "typmodout": 0,
            "typanalyze": 0,
            "typalign": "d", "typstorage": "x", "typnotnull": False, "typbasetype": 0,
            "typtypmod": -1, "typndims": 0, "typcollation": 0, "fsql_format": qualified})
        types.append({
            "oid": rel.array_type_oid, "typname": f"_{rel.name}", "typnamespace": ns,
            "typowner": owner, "typlen": -1, "typbyval": False, "typtype": "b",
            "typcategory": "A", "typispreferred": False, "typisdefined": True, "typdelim": ",",
            "typrelid": 0, "typsubscript": builtin_function_oid("array_subscript_handler"),
            "typelem": rel.type_oid, "typarray": 0,
            "typinput": builtin_function_oid("array_in"),
            "typoutput": builtin_function_oid("array_out"),
            "typreceive": builtin_function_oid("array_recv"),
            "typsend": builtin_function_oid("array_send"), "typmodin": 0, "typmodout": 0,
            "typanalyze": builtin_function_oid("array_typanalyze"), "typalign": "d",
            "typstorage": "x", "typnotnull": False, "typbasetype": 0, "typtypmod": -1,
            "typndims": 0, "typcollation": 0, "fsql_format": f"{qualified}[]"})
        if rel.comment:
            descriptions.append((rel.oid, 1259, 0, rel.comment))
        for number, col in enumerate(rel.columns, start=1):
            collation = 100 if col.type.name in ("text", "varchar", "bpchar", "name") else 0
            attributes.append((
                rel.oid, col.name, col.type.oid, -1, col.type.typlen, number, 0, -1,
                col.typmod, col.type.typlen in (1, 2, 4, 8),
                {8: "d", 2: "s", 1: "c"}.get(col.type.typlen, "i"),
                "p" if col.type.typlen > 0 else "x", "", col.not_null,
                False, False, "", "", False, True, 0, collation, None, None, None))
            if col.comment:
                descriptions.append((rel.oid, 1259, number, col.comment))
        if rel.primary_key:
            names = [c.name for c in rel.columns]
            keys = [names.index(k) + 1 for k in rel.primary_key]
            columns = ", ".join(quote_ident(k) for k in rel.primary_key)
            table = f"{quote_ident(rel.schema)}.{quote_ident(rel.name)}"
            classes.append(_pg_class(rel.index_oid, rel.pkey_name, ns, 0, "i", len(keys),
                                     False, 403, owner))
            for number, key in enumerate(rel.primary_key, start=1):
                # the index's own columns, as PostgreSQL lists them (psqlODBC's
                # SQLPrimaryKeys and psql's \d <table>_pkey join pg_attribute on the index)
                col = rel.columns[names.index(key)]
                attributes.append((
                    rel.index_oid, col.name, col.type.oid, -1, col.type.typlen, number, 0, -1,
                    col.typmod, col.type.typlen in (1, 2, 4, 8),
                    {8: "d", 2: "s", 1: "c"}.get(col.type.typlen, "i"),
                    "p" if col.type.typlen > 0 else "x", "", False,
                    False, False, "", "", False, True, 0,
                    100 if col.type.name in ("text", "varchar", "bpchar", "name") else 0,
                    None, None, None))
            indexes.append((rel.index_oid, rel.oid, len(keys), len(keys), True, False, True,
                            False, True, False, True, False, True, True, False, keys,
                            [0] * len(keys), [0] * len(keys), [0] * len(keys), None, None,
                            f"CREATE UNIQUE INDEX {quote_ident(rel.pkey_name)} ON {table} "
                            f"USING btree ({columns})"))
            constraints.append((rel.constraint_oid, rel.pkey_name, ns, "p", False, False, True,
                                rel.oid, 0, rel.index_oid, 0, 0, " ", " ", " ", True, 0, True,
                                keys, None, None, f"PRIMARY KEY ({columns})"))
    if classes:
        con.executemany(f"INSERT INTO pg_class VALUES ({', '.join('?' * 33)})", classes)
    if attributes:
        con.executemany(f"INSERT INTO pg_attribute VALUES ({', '.join('?' * 25)})", attributes)
    _insert_dicts(con, stored("pg_type"), types)
    if constraints:
        con.executemany(f"INSERT INTO {stored('pg_constraint')} VALUES "
                        f"({', '.join('?' * 22)})", constraints)
        con.executemany(f"INSERT INTO {stored('pg_index')} VALUES ({', '.join('?' * 22)})",
                        indexes)
    if descriptions:
        con.executemany("INSERT INTO pg_description VALUES (?, ?, ?, ?)", descriptions)


# --------------------------------------------------------------------------------------------
# routing and rewriting
