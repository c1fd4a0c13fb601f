"""Answer catalog queries from PostgreSQL-shaped catalog tables in a private DuckDB database.

The database holds ``pg_namespace``, ``pg_class``, ``pg_attribute``, ``pg_type``,
``pg_description``, ``pg_constraint``, ``pg_index`` (and the empty catalogs psql and drivers
join against) with PostgreSQL 15's column names, filled from :mod:`.model` and rebuilt when
the registry changes, so a feature applied while a client is connected is in its next answer.
``information_schema.tables/columns/schemata`` are views over them. PostgreSQL functions the
clients call are macros (``fsql_<name>``); a query is rewritten with sqlglot before it runs:
catalog tables lose their schema, casts to ``regclass``/``regtype``/``regnamespace`` become
macro calls, ``OPERATOR(pg_catalog.~)`` becomes a regular expression match and ``COLLATE
pg_catalog.default`` disappears. The rest is :class:`~fsql_server.duckdb_backend.DuckDBBackend`
(parameter typing, Describe, streaming).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from fsql_server import errors
from fsql_server.backend import Column, Plan, Result
from fsql_server.catalog.model import OWNER, OWNER_OID, SCHEMAS, Relation, build_relations
from fsql_server.duckdb_backend import DuckDBBackend
from fsql_server.errors import PgError
from fsql_server.introspection import regtype_name
from fsql_server.types import TYPES
from sqlglot import exp

if TYPE_CHECKING:
    import duckdb
    from fsql_server.fsql_surface import Services
    from fsql_server.session import Session

#: name → (oid, kind) of PostgreSQL's own catalog relations clients refer to by name
SYSTEM_RELATIONS = {
    "pg_type": 1247, "pg_attribute": 1249, "pg_proc": 1255, "pg_class": 1259,
    "pg_database": 1262, "pg_namespace": 2615, "pg_constraint": 2606, "pg_index": 2610,
    "pg_description": 2609, "pg_am": 2601, "pg_attrdef": 2604, "pg_inherits": 2611,
    "pg_trigger": 2620, "pg_rewrite": 2618, "pg_collation": 3456, "pg_tablespace": 1213,
    "pg_authid": 1260, "pg_opclass": 2616, "pg_sequence": 2224, "pg_policy": 3256,
    "pg_statistic_ext": 3381, "pg_publication": 6104, "pg_publication_namespace": 6237,
    "pg_publication_rel": 6106, "pg_extension": 3079, "pg_enum": 3501, "pg_range": 3541,
    "pg_foreign_table": 3118, "pg_partitioned_table": 3350, "pg_operator": 2617,
    "pg_depend": 2608, "pg_settings": 0, "pg_roles": 0, "pg_user": 0, "pg_shdescription": 2396,
    "pg_stat_activity": 0, "pg_views": 0, "pg_tables": 0, "pg_matviews": 0, "pg_indexes": 0,
    "pg_foreign_server": 1417, "pg_foreign_data_wrapper": 2328, "pg_event_trigger": 3466,
    "pg_aggregate": 2600, "pg_cast": 2605, "pg_language": 2612,
}
NAMESPACES = {"pg_catalog": 11, "public": 2200, "information_schema": 13183}

#: table definitions: PostgreSQL 15's columns (the ones clients read), DuckDB types
TABLES = {
    "pg_namespace": "oid INTEGER, nspname VARCHAR, nspowner INTEGER, nspacl VARCHAR[]",
    "pg_class": (
        "oid INTEGER, relname VARCHAR, relnamespace INTEGER, reltype INTEGER, reloftype INTEGER,"
        " relowner INTEGER, relam INTEGER, relfilenode INTEGER, reltablespace INTEGER,"
        " relpages INTEGER, reltuples REAL, relallvisible INTEGER, reltoastrelid INTEGER,"
        " relhasindex BOOLEAN, relisshared BOOLEAN, relpersistence VARCHAR, relkind VARCHAR,"
        " relnatts SMALLINT, relchecks SMALLINT, relhasrules BOOLEAN, relhastriggers BOOLEAN,"
        " relhassubclass BOOLEAN, relrowsecurity BOOLEAN, relforcerowsecurity BOOLEAN,"
        " relispopulated BOOLEAN, relreplident VARCHAR, relispartition BOOLEAN,"
        " relrewrite INTEGER, relfrozenxid INTEGER, relminmxid INTEGER, relacl VARCHAR[],"
        " reloptions VARCHAR[], relpartbound VARCHAR"),
    "pg_attribute": (
        "attrelid INTEGER, attname VARCHAR, atttypid INTEGER, attstattarget INTEGER,"
        " attlen SMALLINT, attnum SMALLINT, attndims INTEGER, attcacheoff INTEGER,"
        " atttypmod INTEGER, attbyval BOOLEAN, attalign VARCHAR, attstorage VARCHAR,"
        " attcompression VARCHAR, attnotnull BOOLEAN, atthasdef BOOLEAN, atthasmissing BOOLEAN,"
        " attidentity VARCHAR, attgenerated VARCHAR, attisdropped BOOLEAN, attislocal BOOLEAN,"
        " attinhcount INTEGER, attcollation INTEGER, attacl VARCHAR[], attoptions VARCHAR[],"
        " attfdwoptions VARCHAR[]"),
    "pg_type": (
        "oid INTEGER, typname VARCHAR, typnamespace INTEGER, typowner INTEGER, typlen SMALLINT,"
        " typbyval BOOLEAN, typtype VARCHAR, typcategory VARCHAR, typispreferred BOOLEAN,"
        " typisdefined BOOLEAN, typdelim VARCHAR, typrelid INTEGER, typsubscript VARCHAR,"
        " typelem INTEGER, typarray INTEGER, typinput VARCHAR, typoutput VARCHAR,"
        " typreceive VARCHAR, typsend VARCHAR, typbasetype INTEGER, typtypmod INTEGER,"
        " typndims INTEGER, typcollation INTEGER, typnotnull BOOLEAN, typdefault VARCHAR"),
    "pg_description": "objoid INTEGER, classoid INTEGER, objsubid INTEGER, description VARCHAR",
    "pg_shdescription": "objoid INTEGER, classoid INTEGER, description VARCHAR",
    "pg_constraint": (
        "oid INTEGER, conname VARCHAR, connamespace INTEGER, contype VARCHAR,"
        " condeferrable BOOLEAN, condeferred BOOLEAN, convalidated BOOLEAN, conrelid INTEGER,"
        " contypid INTEGER, conindid INTEGER, conparentid INTEGER, confrelid INTEGER,"
        " confupdtype VARCHAR, confdeltype VARCHAR, confmatchtype VARCHAR, conislocal BOOLEAN,"
        " coninhcount INTEGER, connoinherit BOOLEAN, conkey SMALLINT[], confkey SMALLINT[],"
        " conbin VARCHAR, fsql_def VARCHAR"),
    "pg_index": (
        "indexrelid INTEGER, indrelid INTEGER, indnatts SMALLINT, indnkeyatts SMALLINT,"
        " indisunique BOOLEAN, indnullsnotdistinct BOOLEAN, indisprimary BOOLEAN,"
        " indisexclusion BOOLEAN, indimmediate BOOLEAN, indisclustered BOOLEAN,"
        " indisvalid BOOLEAN, indcheckxmin BOOLEAN, indisready BOOLEAN, indislive BOOLEAN,"
        " indisreplident BOOLEAN, indkey SMALLINT[], indcollation INTEGER[],"
        " indclass INTEGER[], indoption SMALLINT[], indexprs VARCHAR, indpred VARCHAR,"
        " fsql_def VARCHAR"),
    "pg_am": "oid INTEGER, amname VARCHAR, amhandler VARCHAR, amtype VARCHAR",
    "pg_database": (
        "oid INTEGER, datname VARCHAR, datdba INTEGER, encoding INTEGER,"
        " datlocprovider VARCHAR, datistemplate BOOLEAN, datallowconn BOOLEAN,"
        " datconnlimit INTEGER, datcollate VARCHAR, datctype VARCHAR, daticulocale VARCHAR,"
        " datcollversion VARCHAR, dattablespace INTEGER, datacl VARCHAR[]"),
    "pg_roles": (
        "oid INTEGER, rolname VARCHAR, rolsuper BOOLEAN, rolinherit BOOLEAN,"
        " rolcreaterole BOOLEAN, rolcreatedb BOOLEAN, rolcanlogin BOOLEAN,"
        " rolreplication BOOLEAN, rolconnlimit INTEGER, rolvaliduntil TIMESTAMPTZ,"
        " rolbypassrls BOOLEAN, rolconfig VARCHAR[]"),
    "pg_attrdef": "oid INTEGER, adrelid INTEGER, adnum SMALLINT, adbin VARCHAR",
    "pg_collation": "oid INTEGER, collname VARCHAR, collnamespace INTEGER",
    "pg_inherits": "inhrelid INTEGER, inhparent INTEGER, inhseqno INTEGER,"
                   " inhdetachpending BOOLEAN",
    "pg_policy": "oid INTEGER, polname VARCHAR, polrelid INTEGER, polcmd VARCHAR,"
                 " polpermissive BOOLEAN, polroles INTEGER[], polqual VARCHAR,"
                 " polwithcheck VARCHAR",
    "pg_statistic_ext": "oid INTEGER, stxrelid INTEGER, stxname VARCHAR, stxnamespace INTEGER,"
                        " stxowner INTEGER, stxstattarget INTEGER, stxkeys SMALLINT[],"
                        " stxkind VARCHAR[]",
    "pg_publication": "oid INTEGER, pubname VARCHAR, pubowner INTEGER, puballtables BOOLEAN,"
                      " pubinsert BOOLEAN, pubupdate BOOLEAN, pubdelete BOOLEAN,"
                      " pubtruncate BOOLEAN, pubviaroot BOOLEAN",
    "pg_publication_namespace": "oid INTEGER, pnpubid INTEGER, pnnspid INTEGER",
    "pg_publication_rel": "oid INTEGER, prpubid INTEGER, prrelid INTEGER, prqual VARCHAR,"
                          " prattrs SMALLINT[]",
    "pg_trigger": "oid INTEGER, tgrelid INTEGER, tgparentid INTEGER, tgname VARCHAR,"
                  " tgfoid INTEGER, tgtype SMALLINT, tgenabled VARCHAR, tgisinternal BOOLEAN",
    "pg_rewrite": "oid INTEGER, rulename VARCHAR, ev_class INTEGER, ev_type VARCHAR,"
                  " ev_enabled VARCHAR, is_instead BOOLEAN",
    "pg_sequence": "seqrelid INTEGER, seqtypid INTEGER, seqstart BIGINT, seqincrement BIGINT,"
                   " seqmax BIGINT, seqmin BIGINT, seqcache BIGINT, seqcycle BOOLEAN",
    "pg_tablespace": "oid INTEGER, spcname VARCHAR, spcowner INTEGER",
    "pg_opclass": "oid INTEGER, opcmethod INTEGER, opcname VARCHAR, opcnamespace INTEGER,"
                  " opcdefault BOOLEAN, opcintype INTEGER",
    "pg_proc": "oid INTEGER, proname VARCHAR, pronamespace INTEGER, proowner INTEGER,"
               " prokind VARCHAR, prorettype INTEGER, proargtypes INTEGER[],"
               " proretset BOOLEAN, prosrc VARCHAR",
    "pg_extension": "oid INTEGER, extname VARCHAR, extowner INTEGER, extnamespace INTEGER,"
                    " extversion VARCHAR",
    "pg_enum": "oid INTEGER, enumtypid INTEGER, enumsortorder REAL, enumlabel VARCHAR",
    "pg_range": "rngtypid INTEGER, rngsubtype INTEGER, rngmultitypid INTEGER",
    "pg_foreign_table": "ftrelid INTEGER, ftserver INTEGER, ftoptions VARCHAR[]",
    "pg_partitioned_table": "partrelid INTEGER, partstrat VARCHAR, partnatts SMALLINT",
    "pg_settings": "name VARCHAR, setting VARCHAR, unit VARCHAR, category VARCHAR,"
                   " short_desc VARCHAR, context VARCHAR, vartype VARCHAR, source VARCHAR",
    "pg_depend": "classid INTEGER, objid INTEGER, objsubid INTEGER, refclassid INTEGER,"
                 " refobjid INTEGER, refobjsubid INTEGER, deptype VARCHAR",
    "pg_operator": "oid INTEGER, oprname VARCHAR, oprnamespace INTEGER, oprleft INTEGER,"
                   " oprright INTEGER, oprresult INTEGER",
}
#: views over those tables
VIEWS = {
    "pg_user": "SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb, "
               "rolsuper AS usesuper FROM pg_roles",
    "pg_tables": "SELECT n.nspname AS schemaname, c.relname AS tablename, "
                 "'" + OWNER + "' AS tableowner, NULL::VARCHAR AS tablespace, "
                 "c.relhasindex AS hasindexes, false AS hasrules, false AS hastriggers, "
                 "false AS rowsecurity FROM pg_class c JOIN pg_namespace n "
                 "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')",
    "pg_views": "SELECT NULL::VARCHAR AS schemaname, NULL::VARCHAR AS viewname, "
                "NULL::VARCHAR AS viewowner, NULL::VARCHAR AS definition WHERE false",
    "pg_matviews": "SELECT NULL::VARCHAR AS schemaname, NULL::VARCHAR AS matviewname "
                   "WHERE false",
    "pg_indexes": "SELECT n.nspname AS schemaname, c.relname AS tablename, "
                  "ic.relname AS indexname, NULL::VARCHAR AS tablespace, i.fsql_def AS indexdef "
                  "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic "
                  "ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace",
    "pg_stat_activity": "SELECT NULL::INTEGER AS pid, NULL::VARCHAR AS datname, "
                        "NULL::VARCHAR AS usename, NULL::VARCHAR AS query WHERE false",
    "information_schema__schemata": (
        "SELECT 'fsql' AS catalog_name, nspname AS schema_name, '" + OWNER + "' AS "
        "schema_owner, NULL::VARCHAR AS default_character_set_catalog, NULL::VARCHAR AS "
        "default_character_set_schema, NULL::VARCHAR AS default_character_set_name, "
        "NULL::VARCHAR AS sql_path FROM pg_namespace"),
    "information_schema__tables": (
        "SELECT 'fsql' AS table_catalog, n.nspname AS table_schema, c.relname AS table_name, "
        "CASE WHEN n.nspname IN ('pg_catalog', 'information_schema') THEN 'SYSTEM VIEW' "
        "WHEN c.relkind = 'v' THEN 'VIEW' ELSE 'BASE TABLE' END AS table_type, "
        "NULL::VARCHAR AS self_referencing_column_name, NULL::VARCHAR AS reference_generation, "
        "NULL::VARCHAR AS user_defined_type_catalog, NULL::VARCHAR AS user_defined_type_schema, "
        "NULL::VARCHAR AS user_defined_type_name, 'NO' AS is_insertable_into, "
        "'NO' AS is_typed, NULL::VARCHAR AS commit_action FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'v', 'p')"),
    "information_schema__columns": (
        "SELECT 'fsql' AS table_catalog, n.nspname AS table_schema, c.relname AS table_name, "
        "a.attname AS column_name, a.attnum::INTEGER AS ordinal_position, "
        "NULL::VARCHAR AS column_default, CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END "
        "AS is_nullable, fsql_information_type(a.atttypid) AS data_type, "
        "NULL::INTEGER AS character_maximum_length, NULL::INTEGER AS numeric_precision, "
        "NULL::INTEGER AS numeric_scale, NULL::INTEGER AS datetime_precision, "
        "'fsql' AS udt_catalog, 'pg_catalog' AS udt_schema, t.typname AS udt_name, "
        "'NO' AS is_identity, 'NEVER' AS is_generated, 'NO' AS is_updatable "
        "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n "
        "ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attnum > 0 AND c.relkind IN ('r', 'v', 'p')"),
}

#: the functions clients call, as macros; the rewrite renames ``name(...)`` to ``fsql_name``
MACROS = {
    "pg_get_userbyid": "(r) AS COALESCE((SELECT m_r.rolname FROM pg_roles m_r WHERE m_r.oid = r),"
                       " 'unknown (OID=' || r || ')')",
    "pg_table_is_visible": "(c) AS COALESCE((SELECT m_c.relnamespace IN (11, 2200) FROM "
                           "pg_class m_c WHERE m_c.oid = c), false)",
    "pg_type_is_visible": "(t) AS true",
    "pg_collation_is_visible": "(t) AS true",
    "pg_function_is_visible": "(t) AS true",
    "format_type": "(t, m) AS CASE WHEN t IS NULL THEN NULL ELSE COALESCE((SELECT m_t.fmt FROM "
                   "fsql_type_names m_t WHERE m_t.oid = t), '???') END",
    "obj_description": "(o, c := NULL) AS (SELECT m_d.description FROM pg_description m_d "
                       "WHERE m_d.objoid = o AND m_d.objsubid = 0 AND (c IS NULL OR "
                       "m_d.classoid = fsql_regclass(c)))",
    "col_description": "(o, n) AS (SELECT m_d.description FROM pg_description m_d WHERE "
                       "m_d.objoid = o AND m_d.objsubid = n AND m_d.classoid = 1259)",
    "shobj_description": "(o, c) AS (SELECT m_d.description FROM pg_shdescription m_d "
                         "WHERE m_d.objoid = o)",
    "pg_get_expr": "(e, r, p := false) AS e",
    "pg_get_indexdef": "(i, c := 0, p := false) AS CASE WHEN c = 0 THEN (SELECT m_x.fsql_def "
                       "FROM pg_index m_x WHERE m_x.indexrelid = i) ELSE (SELECT m_a.attname "
                       "FROM pg_index m_x JOIN pg_attribute m_a ON m_a.attrelid = m_x.indrelid "
                       "AND m_a.attnum = m_x.indkey[c] WHERE m_x.indexrelid = i) END",
    "pg_get_constraintdef": "(o, p := false) AS (SELECT m_k.fsql_def FROM pg_constraint m_k "
                            "WHERE m_k.oid = o)",
    "pg_relation_is_publishable": "(r) AS false",
    "pg_get_function_result": "(o) AS NULL::VARCHAR",
    "pg_get_function_arguments": "(o) AS NULL::VARCHAR",
    "pg_get_function_identity_arguments": "(o) AS NULL::VARCHAR",
    "fsql__pg_expandarray_rows": "(a) AS unnest(list_transform(range(1, len(a) + 1), "
                                 "lambda i: {'x': a[i], 'n': i}))",
    "pg_get_statisticsobjdef_columns": "(o) AS NULL::VARCHAR",
    "pg_get_viewdef": "(o, p := false) AS NULL::VARCHAR",
    "pg_get_serial_sequence": "(t, c) AS NULL::VARCHAR",
    "pg_get_partkeydef": "(o) AS NULL::VARCHAR",
    "pg_tablespace_location": "(o) AS ''",
    "pg_encoding_to_char": "(e) AS CASE WHEN e = 6 THEN 'UTF8' ELSE 'SQL_ASCII' END",
    "has_table_privilege": "(a, b := NULL, c := NULL) AS true",
    "has_schema_privilege": "(a, b := NULL, c := NULL) AS true",
    "has_database_privilege": "(a, b := NULL, c := NULL) AS true",
    "has_any_column_privilege": "(a, b := NULL, c := NULL) AS true",
    "has_column_privilege": "(a, b := NULL, c := NULL, d := NULL) AS true",
    "pg_has_role": "(a, b := NULL, c := NULL) AS true",
    "pg_total_relation_size": "(o) AS 0::BIGINT",
    "pg_relation_size": "(o, f := 'main') AS 0::BIGINT",
    "pg_table_size": "(o) AS 0::BIGINT",
    "pg_database_size": "(o) AS 0::BIGINT",
    "pg_size_pretty": "(s) AS s || ' bytes'",
    "current_schemas": "(b) AS CASE WHEN b THEN ['pg_catalog', 'public'] ELSE ['public'] END",
    "array_upper": "(a, d) AS CASE WHEN len(a) = 0 THEN NULL ELSE len(a) END",
    "array_lower": "(a, d) AS CASE WHEN len(a) = 0 THEN NULL ELSE 1 END",
    "to_regclass": "(x) AS fsql_regclass(x)",
    "current_setting": "(x, m := false) AS (SELECT m_s.setting FROM pg_settings m_s "
                       "WHERE lower(m_s.name) = lower(x))",
    "to_regtype": "(x) AS fsql_regtype(x)",
    "quote_ident": "(x) AS CASE WHEN regexp_full_match(x, '[a-z_][a-z0-9_$]*') AND upper(x) "
                   "NOT IN (SELECT unnest(fsql_reserved())) THEN x "
                   "ELSE '\"' || replace(x, '\"', '\"\"') || '\"' END",
    "fsql_regclass": "(x) AS CASE WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN "
                     "TRY_CAST(x AS INTEGER) ELSE (SELECT m_c.oid FROM pg_class m_c JOIN "
                     "pg_namespace m_n ON m_n.oid = m_c.relnamespace WHERE (m_c.relname = "
                     "replace(x, '\"', '') AND m_n.oid IN (11, 2200)) OR m_n.nspname || '.' || "
                     "m_c.relname = replace(x, '\"', '') ORDER BY m_n.oid LIMIT 1) END",
    "fsql_regclass_name": "(o) AS (SELECT CASE WHEN m_c.relnamespace IN (11, 2200) THEN "
                          "fsql_quote_ident(m_c.relname) ELSE fsql_quote_ident(m_n.nspname) || "
                          "'.' || fsql_quote_ident(m_c.relname) END FROM pg_class m_c JOIN "
                          "pg_namespace m_n ON m_n.oid = m_c.relnamespace WHERE m_c.oid = o)",
    "fsql_regtype": "(x) AS CASE WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN "
                    "TRY_CAST(x AS INTEGER) ELSE (SELECT m_t.oid FROM fsql_type_names m_t WHERE "
                    "m_t.fmt = lower(x) OR m_t.typname = lower(replace(x, 'pg_catalog.', '')) "
                    "LIMIT 1) END",
    "fsql_regnamespace_name": "(o) AS (SELECT m_n.nspname FROM pg_namespace m_n "
                              "WHERE m_n.oid = o)",
    "fsql_information_type": "(t) AS (SELECT CASE WHEN m_t.typname LIKE '\\_%' ESCAPE '\\' "
                             "THEN 'ARRAY' ELSE m_t.fmt END FROM fsql_type_names m_t "
                             "WHERE m_t.oid = t)",
}
TABLE_MACROS = {
    # DuckDB's parser is PostgreSQL's (libpg_query): the same keywords and categories
    "pg_get_keywords": "() AS SELECT keyword_name AS word, CASE keyword_category WHEN "
                       "'reserved' THEN 'R' WHEN 'unreserved' THEN 'U' WHEN 'column_name' THEN "
                       "'C' ELSE 'T' END AS catcode, CASE keyword_category WHEN 'reserved' THEN "
                       "'reserved' WHEN 'unreserved' THEN 'unreserved' WHEN 'column_name' THEN "
                       "'unreserved (cannot be function or type name)' ELSE "
                       "'reserved (can be function or type name)' END AS catdesc "
                       "FROM duckdb_keywords() ORDER BY 1",
    "_pg_expandarray": "(a) AS SELECT a[i] AS x, i AS n FROM range(1, len(a) + 1) t(i)",
}
_RENAMED = {name for name in MACROS if not name.startswith("fsql_")} | {
    "format_type", "pg_get_keywords", "_pg_expandarray"}


def quote_ident(name: str) -> str:
    """An identifier as PostgreSQL's quote_ident writes it."""
    plain = re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name.upper() not in _RESERVED
    return name if plain else '"' + name.replace('"', '""') + '"'


#: PostgreSQL 15's reserved keywords (quote_ident quotes them)
_RESERVED = frozenset("""ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC AUTHORIZATION BINARY
BOTH CASE CAST CHECK COLLATE COLLATION COLUMN CONCURRENTLY CONSTRAINT CREATE CROSS CURRENT_CATALOG
CURRENT_DATE CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DEFAULT
DEFERRABLE DESC DISTINCT DO ELSE END EXCEPT FALSE FETCH FOR FOREIGN FREEZE FROM FULL GRANT GROUP
HAVING ILIKE IN INITIALLY INNER INTERSECT INTO IS ISNULL JOIN LATERAL LEADING LEFT LIKE LIMIT
LOCALTIME LOCALTIMESTAMP NATURAL NOT NOTNULL NULL OFFSET ON ONLY OR ORDER OUTER OVERLAPS PLACING
PRIMARY REFERENCES RETURNING RIGHT SELECT SESSION_USER SIMILAR SOME SYMMETRIC SYSTEM_USER TABLE
TABLESAMPLE THEN TO TRAILING TRUE UNION UNIQUE USER USING VARIADIC VERBOSE WHEN WHERE WINDOW
WITH""".split())


class CatalogBackend(DuckDBBackend):
    """The catalog database of one server process (shared by its sessions, one statement at a
    time), refreshed from the registry before each catalog statement."""

    def __init__(self, services: Services | None):
        super().__init__(provider=None, threads=1)
        self.services = services
        self._current: Any = None
        self._refresh_lock = threading.Lock()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:  # type: ignore[has-type]
            import duckdb

            con = duckdb.connect(":memory:")
            con.execute("SET threads = 1")
            for name, columns in TABLES.items():
                con.execute(f"CREATE TABLE {name} ({columns})")
            con.execute("CREATE TABLE fsql_type_names (oid INTEGER, typname VARCHAR, "
                        "fmt VARCHAR)")
            con.executemany("INSERT INTO fsql_type_names VALUES (?, ?, ?)", [
                (oid, t.name, regtype_name(oid)) for oid, t in sorted(TYPES.items())])
            words = ", ".join(f"'{w}'" for w in sorted(_RESERVED))
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
            self._con = con
        return self._con

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
        current = self.services.catalog.current() if self.services is not None else {}
        with self._refresh_lock:
            if current is self._current and self._con is not None:
                return
            relations = build_relations(self.services) if self.services is not None else []
            with self._lock:
                _fill_relations(self.con, relations, session)
            self._current = current


def _fill_static(con: duckdb.DuckDBPyConnection) -> None:
    """The rows that never change: types, access methods, PostgreSQL's own relations."""
    rows = []
    for oid, t in sorted(TYPES.items()):
        category = "A" if t.elem_oid else {"bool": "B", "text": "S", "varchar": "S",
                                             "name": "S", "bpchar": "S"}.get(t.name, "U")
        rows.append((oid, t.name, 11, 10, t.typlen, t.typlen in (1, 2, 4, 8), "b", category,
                     False, True, ",", 0, None, t.elem_oid or 0, t.array_oid or 0,
                     f"{t.name}in", f"{t.name}out", f"{t.name}recv", f"{t.name}send", 0, -1, 0,
                     100 if t.name in ("text", "varchar", "bpchar", "name") else 0, False,
                     None))
    con.executemany(f"INSERT INTO pg_type VALUES ({', '.join('?' * 25)})", rows)
    con.execute("INSERT INTO pg_am VALUES (2, 'heap', 'heap_tableam_handler', 't'), "
                "(403, 'btree', 'bthandler', 'i')")
    con.execute("INSERT INTO pg_collation VALUES (100, 'default', 11), (950, 'C', 11)")
    con.execute("INSERT INTO pg_tablespace VALUES (1663, 'pg_default', 10)")
    from fsql_server.session import DEFAULT_SETTINGS

    settings = {**DEFAULT_SETTINGS, "default_table_access_method": "heap"}
    con.executemany("INSERT INTO pg_settings VALUES (?, ?, NULL, 'fsql', '', 'user', "
                    "'string', 'default')", sorted(settings.items()))


def _fill_relations(con: duckdb.DuckDBPyConnection, relations: list[Relation],
                    session: Session) -> None:
    for table in ("pg_namespace", "pg_class", "pg_attribute", "pg_description",
                  "pg_constraint", "pg_index", "pg_database", "pg_roles"):
        con.execute(f"DELETE FROM {table}")
    con.execute("DELETE FROM pg_type WHERE typrelid <> 0")
    public_acl = ["pg_database_owner=UC/pg_database_owner", "=U/pg_database_owner"]
    namespaces = [(oid, name, 6171 if name == "public" else 10,
                   public_acl if name == "public" else None)
                  for name, oid in NAMESPACES.items()]
    namespaces += [(oid, name, OWNER_OID, None) for name, (oid, _) in SCHEMAS.items()]
    con.executemany("INSERT INTO pg_namespace VALUES (?, ?, ?, ?)", namespaces)
    descriptions = [(oid, 2615, 0, comment) for oid, comment in SCHEMAS.values()]
    descriptions.append((2200, 2615, 0, "standard public schema"))
    classes, attributes, types, constraints, indexes = [], [], [], [], []

    def pg_class(oid: int, name: str, ns: int, reltype: int, kind: str, natts: int,
                 hasindex: bool, am: int, owner: int) -> tuple[Any, ...]:
        return (oid, name, ns, reltype, 0, owner, am, oid, 0, 0, -1.0, 0, 0, hasindex, False,
                "p", kind, natts, 0, False, False, False, False, False, True, "d", False, 0,
                0, 0, None, None, None)

    for name, oid in SYSTEM_RELATIONS.items():
        if oid:
            classes.append(pg_class(oid, name, 11, 0, "r", 0, False, 2, 10))
    for rel in relations:
        ns = SCHEMAS[rel.schema][0]
        classes.append(pg_class(rel.oid, rel.name, ns, rel.type_oid, "r", len(rel.columns),
                                bool(rel.primary_key), 2, OWNER_OID))
        types.append((rel.type_oid, rel.name, ns, OWNER_OID, -1, False, "c", "C", False, True,
                      ",", rel.oid, None, 0, 0, "record_in", "record_out", "record_recv",
                      "record_send", 0, -1, 0, 0, False, None))
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
            classes.append(pg_class(rel.index_oid, rel.pkey_name, ns, 0, "i", len(keys), False,
                                    403, OWNER_OID))
            indexes.append((rel.index_oid, rel.oid, len(keys), len(keys), True, False, True,
                            False, True, False, True, False, True, True, False, keys,
                            [0] * len(keys), [0] * len(keys), [0] * len(keys), None, None,
                            f"CREATE UNIQUE INDEX {quote_ident(rel.pkey_name)} ON {table} "
                            f"USING btree ({columns})"))
            constraints.append((rel.constraint_oid, rel.pkey_name, ns, "p", False, False, True,
                                rel.oid, 0, rel.index_oid, 0, 0, " ", " ", " ", True, 0, True,
                                keys, None, None, f"PRIMARY KEY ({columns})"))
    con.executemany(f"INSERT INTO pg_class VALUES ({', '.join('?' * 33)})", classes)
    if attributes:
        con.executemany(f"INSERT INTO pg_attribute VALUES ({', '.join('?' * 25)})", attributes)
    if types:
        con.executemany(f"INSERT INTO pg_type VALUES ({', '.join('?' * 25)})", types)
    if constraints:
        con.executemany(f"INSERT INTO pg_constraint VALUES ({', '.join('?' * 22)})",
                        constraints)
        con.executemany(f"INSERT INTO pg_index VALUES ({', '.join('?' * 22)})", indexes)
    con.executemany("INSERT INTO pg_description VALUES (?, ?, ?, ?)", descriptions)
    con.execute("INSERT INTO pg_database VALUES (16390, 'fsql', ?, 6, 'c', false, true, -1, "
                "'C.UTF-8', 'C.UTF-8', NULL, NULL, 1663, NULL)", [OWNER_OID])
    roles = {"postgres": 10, "pg_database_owner": 6171, OWNER: OWNER_OID}
    roles.setdefault(session.user, OWNER_OID + 1)
    con.executemany("INSERT INTO pg_roles VALUES (?, ?, false, true, false, false, true, "
                    "false, -1, NULL, false, NULL)",
                    [(oid, name) for name, oid in roles.items() if oid])


# --------------------------------------------------------------------------------------------
# routing and rewriting

_CATALOG_FUNCTIONS = frozenset(_RENAMED)
#: functions that make a statement a catalog query (the others are only renamed inside one)
_ROUTING_FUNCTIONS = _CATALOG_FUNCTIONS - {
    "current_setting", "array_upper", "array_lower", "quote_ident"}


def catalog_table_name(table: exp.Table) -> str | None:
    """The catalog database's name for a table reference, or None when it is not a catalog
    table (``pg_catalog.pg_class`` and bare ``pg_class`` → ``pg_class``;
    ``information_schema.tables`` → ``information_schema__tables``)."""
    schema = table.db.lower()
    name = table.name.lower()
    if schema == "information_schema":
        return f"information_schema__{name}"
    if schema in ("pg_catalog", "") and (name in TABLES or name in VIEWS):
        return name
    return None


def is_catalog_query(tree: exp.Expression) -> bool:
    """A SELECT that reads the catalog (tables, catalog functions or reg* casts)."""
    if not isinstance(tree, (exp.Query,)):
        return False
    for node in tree.walk():
        if isinstance(node, exp.Table) and catalog_table_name(node) is not None:
            return True
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in _ROUTING_FUNCTIONS:
            return True
        if isinstance(node, exp.DataType) and _reg_type(node) is not None:
            return True
        if isinstance(node, exp.CurrentSchemas):
            return True
    return False


def _user_type_name(data_type: exp.DataType) -> str | None:
    kind = data_type.args.get("kind")
    if data_type.this == exp.DType.USERDEFINED and kind is not None:
        return kind.sql().split(".")[-1].lower().strip('"')
    return None


def _reg_type(data_type: exp.DataType) -> str | None:
    name = _user_type_name(data_type) or data_type.sql(dialect="postgres").lower()
    return name if name in ("regclass", "regtype", "regnamespace", "regproc",
                            "regprocedure", "regrole") else None


def rewrite(tree: exp.Expression) -> exp.Expression:
    """The catalog query as DuckDB runs it against the catalog database."""
    tree = tree.copy()
    for schemas in list(tree.find_all(exp.CurrentSchemas)):
        schemas.replace(exp.Anonymous(this="current_schemas",
                                      expressions=[schemas.this or exp.true()]))
    for func in list(tree.find_all(exp.Anonymous)):
        # to_regclass(x) is x::regclass that gives NULL instead of an error
        target = {"to_regclass": "regclass", "to_regtype": "regtype"}.get(str(func.this).lower())
        if target and func.expressions:
            func.replace(exp.Cast(this=func.expressions[0], to=exp.DataType(
                this=exp.DType.USERDEFINED, kind=exp.to_identifier(target))))
    for table in list(tree.find_all(exp.Table)):
        name = catalog_table_name(table)
        if name is None and table.db.lower() == "pg_catalog":
            table.set("db", None)  # pg_catalog.generate_series(...)
        if name is not None:
            new = exp.to_table(name)
            alias = table.args.get("alias")
            if alias is None and table.db:
                # columns may still say pg_catalog.pg_class.relname: keep the bare name usable
                alias = exp.TableAlias(this=exp.to_identifier(table.name))
            if alias is not None:
                new.set("alias", alias)
            table.replace(new)
    # pg_catalog.pg_class.relname → pg_class.relname
    for column in list(tree.find_all(exp.Column)):
        if column.args.get("db") is not None and column.args["db"].name.lower() in (
                "pg_catalog", "information_schema"):
            column.set("db", None)
        if column.args.get("catalog") is not None:
            column.set("catalog", None)
    for collate in list(tree.find_all(exp.Collate)):
        collate.replace(collate.this)
    for node in list(tree.find_all(exp.Operator)):
        op = str(node.args.get("operator")).split(".")[-1].strip()
        left, right = node.this, node.expression
        if isinstance(right, exp.Collate):
            right = right.this
        replacement: exp.Expression
        if op == "~":
            replacement = exp.RegexpLike(this=left, expression=right)
        elif op == "!~":
            replacement = exp.not_(exp.RegexpLike(this=left, expression=right))
        elif op == "~~":
            replacement = exp.Like(this=left, expression=right)
        elif op == "=":
            replacement = exp.EQ(this=left, expression=right)
        elif op == "<>":
            replacement = exp.NEQ(this=left, expression=right)
        else:
            continue
        node.replace(replacement)
    for cast in list(tree.find_all(exp.Cast)):
        # CAST($2::REGCLASS AS REGCLASS) (SQLAlchemy over asyncpg) is one cast
        reg = _reg_type(cast.to)
        if reg is not None and isinstance(cast.this, exp.Cast) and _reg_type(
                cast.this.to) == reg:
            cast.replace(cast.this)
    for cast in list(tree.find_all(exp.Cast)):
        reg = _reg_type(cast.to)
        inner = cast.this
        if reg is None:
            continue
        is_text = (isinstance(inner, exp.Literal) and inner.is_string) or isinstance(
            inner, (exp.Parameter, exp.Placeholder))
        if reg == "regclass":
            call = "fsql_regclass" if is_text else "fsql_regclass_name"
        elif reg == "regtype":
            call = "fsql_regtype" if is_text else "fsql_format_type"
        elif reg == "regnamespace":
            call = "fsql_regnamespace_name"
        else:
            cast.replace(inner)
            continue
        args = [inner] if call != "fsql_format_type" else [inner, exp.Null()]
        replacement = exp.Anonymous(this=call, expressions=args)
        parent = cast.parent
        if is_text and isinstance(parent, exp.Cast) and parent.to.is_type(
                exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.NAME):
            # 'features.user'::regclass::text is the name again, normalized
            name_of = "fsql_regclass_name" if reg == "regclass" else "fsql_format_type"
            extra = [exp.Null()] if reg == "regtype" else []
            replacement = exp.Anonymous(this=name_of, expressions=[replacement, *extra])
        if is_text and isinstance(parent, exp.Cast) and _user_type_name(parent.to) == "oid":
            parent.replace(replacement)
        else:
            cast.replace(replacement)
    for data_type in list(tree.find_all(exp.DataType)):
        user = _user_type_name(data_type)
        if user is not None and _reg_type(data_type) is None:
            data_type.replace(exp.DataType.build("BIGINT" if user == "oid" else user,
                                                 dialect="postgres"))
        elif data_type.sql(dialect="postgres").upper() == "OID":
            data_type.replace(exp.DataType.build("BIGINT"))
    for func in list(tree.find_all(exp.Anonymous)):
        name = str(func.this).lower()
        if name == "_pg_expandarray" and func.find_ancestor(exp.Table) is None:
            # in a select list: one row per element, as a (x, n) record
            func.set("this", "fsql__pg_expandarray_rows")
        elif name in _CATALOG_FUNCTIONS:
            func.set("this", f"fsql_{name}")
        elif name == "json_build_object":
            func.set("this", "json_object")
    for dot in list(tree.find_all(exp.Dot)):
        if isinstance(dot.this, exp.Identifier) and dot.this.name.lower() in (
                "pg_catalog", "information_schema") and isinstance(dot.expression, exp.Func):
            dot.replace(dot.expression)
    return tree


def plan_catalog(session: Session, sql: str, tree: exp.Expression,
                 param_oids: Sequence[int]) -> Plan | None:
    """A plan over the catalog database for a catalog query, None for any other statement."""
    if not is_catalog_query(tree):
        return None
    backend = catalog_backend(session)
    plan = backend.plan(sql, rewrite(tree), _array_parameters(tree, param_oids))
    return CatalogPlan(backend, plan)


def _array_parameters(tree: exp.Expression, param_oids: Sequence[int]) -> list[int]:
    """``relkind = ANY($2)`` (ADBC's get_objects): a parameter compared with ANY is an array
    (text[], 1009) unless the client declared an array type itself."""
    oids = list(param_oids)
    for node in tree.find_all(exp.Any):
        param = node.this.unnest() if isinstance(node.this, exp.Paren) else node.this
        if isinstance(param, exp.Parameter):
            index = int(param.this.name if isinstance(param.this, exp.Expression)
                        else param.this) - 1
            oids += [0] * (index + 1 - len(oids))
            if oids[index] in (0, 25, 705, 1043):
                oids[index] = 1009
    return oids


def catalog_backend(session: Session) -> CatalogBackend:
    """The server process's catalog database (created on first use)."""
    state = session.server
    backend = getattr(state, "catalog_backend", None)
    if backend is None:
        backend = CatalogBackend(getattr(state, "services", None))
        state.catalog_backend = backend
    return backend


class CatalogPlan(Plan):
    """A catalog statement: refresh the catalog from the registry, then run on it."""

    interruptible = True

    def __init__(self, backend: CatalogBackend, inner: Plan):
        self.backend = backend
        self.inner = inner
        self.sql = inner.sql
        self.param_types = inner.param_types
        self.command = inner.command

    def describe(self, session: Session) -> list[Column] | None:
        self.backend.refresh(session)
        return self.inner.describe(session)

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        self.backend.refresh(session)
        return await self.inner.run(session, params)
