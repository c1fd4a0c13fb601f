"""Answer catalog queries from PostgreSQL-shaped catalog tables in a private DuckDB database.

The database holds ``pg_namespace``, ``pg_class``, ``pg_attribute``, ``pg_type``,
``pg_description``, ``pg_constraint``, ``pg_index`` (and the empty catalogs psql and drivers
join against) with PostgreSQL 15's column names, filled from :mod:`.model` and rebuilt when
the registry changes, so a feature applied while a client is connected is in its next answer.
``information_schema.tables/columns/schemata`` are views over them. PostgreSQL functions the
clients call are macros (``fsql_<name>``); a query is rewritten with sqlglot before it runs:
catalog tables lose their schema, casts to ``regclass``/``regtype``/``regnamespace`` become
macro calls, ``OPERATOR(pg_catalog.~)`` becomes a regular expression match and ``COLLATE
pg_catalog.default`` disappears. The rest is :class:`~fsql_server.pg.duckdb_backend.DuckDBBackend`
(parameter typing, Describe, streaming).
"""

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from fsql_server.pg import errors
from fsql_server.pg.backend import Column, Plan, Result
from fsql_server.pg.catalog.model import (
    OWNER,
    OWNER_OID,
    CatalogColumn,
    Relation,
    object_oid,
)
from fsql_server.pg.duckdb_backend import DuckDBBackend
from fsql_server.pg.errors import PgError
from fsql_server.pg.planner import DataRelations, RelationCatalog
from fsql_server.pg.session import DEFAULT_SETTINGS, Session
from fsql_server.pg.types import pg_type_for_duckdb
from sqlglot import exp

#: PostgreSQL 15's built-in catalog rows, dumped by scripts/dump_pg15_catalog.py
BUILTIN_FILE = Path(__file__).with_name("pg15_builtin.json.gz")
#: oids from here on are fsql's (PostgreSQL's first user oid is 16384; 16383 is fsql's owner)
FIRST_FSQL_OID = 16383


@functools.cache
def _builtin_file() -> dict[str, Any]:
    with gzip.open(BUILTIN_FILE, "rt", encoding="utf-8") as data:
        return json.load(data)


def builtin_catalog() -> dict[str, dict[str, Any]]:
    """table → {"columns": [[name, DuckDB type]], "rows": [[...]], "regproc": [column]}:
    PostgreSQL 15's rows."""
    return _builtin_file()["tables"]


@functools.cache
def vector_columns() -> frozenset[str]:
    """Catalog columns of type int2vector/oidvector (``pg_index.indkey``,
    ``pg_proc.proargtypes``): subscripts start at 0 and the text form is ``1 2``."""
    return frozenset(_builtin_file()["vector_columns"])


@functools.cache
def regproc_columns() -> frozenset[str]:
    """The catalog columns of type ``regproc`` (a function's oid, shown as its name)."""
    return frozenset(c for table in builtin_catalog().values() for c in table["regproc"])


@functools.cache
def builtin_function_oid(name: str) -> int:
    """The oid of a built-in function with a unique name (``record_in`` → 2290)."""
    table = builtin_catalog()["pg_proc"]
    names = [c for c, _t in table["columns"]]
    column, oid = names.index("proname"), names.index("oid")
    oids = [row[oid] for row in table["rows"] if row[column] == name]
    assert len(oids) == 1, f"{name} is not one function"
    return oids[0]


@functools.cache
def system_relation_oids() -> dict[str, int]:
    """PostgreSQL's own catalog tables and views (pg_catalog): name → oid (``tableoid``)."""
    table = builtin_catalog()["pg_class"]
    names = [c for c, _t in table["columns"]]
    oid, relname, ns = names.index("oid"), names.index("relname"), names.index("relnamespace")
    return {row[relname]: row[oid] for row in table["rows"] if row[ns] == 11}


def builtin_namespaces() -> dict[str, int]:
    """PostgreSQL's own schemas: name → oid (pg_catalog, pg_toast, public, information_schema)."""
    table = builtin_catalog()["pg_namespace"]
    return {row[1]: row[0] for row in table["rows"]}


#: table definitions: PostgreSQL 15's columns (the ones clients read), DuckDB types; the
#: tables of builtin_catalog() are defined by the dump (all their columns)
TABLES = {
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
    "pg_description": "objoid INTEGER, classoid INTEGER, objsubid INTEGER, description VARCHAR",
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
    "pg_database": (
        "oid INTEGER, datname VARCHAR, datdba INTEGER, encoding INTEGER,"
        " datlocprovider VARCHAR, datistemplate BOOLEAN, datallowconn BOOLEAN,"
        " datconnlimit INTEGER, datcollate VARCHAR, datctype VARCHAR, daticulocale VARCHAR,"
        " datcollversion VARCHAR, dattablespace INTEGER, datacl VARCHAR[]"),
    # the sessions that ran a catalog statement (their last one), kept while they are open
    "pg_stat_activity": (
        "datid INTEGER, datname VARCHAR, pid INTEGER, leader_pid INTEGER, usesysid INTEGER,"
        " usename VARCHAR, application_name VARCHAR, client_addr VARCHAR,"
        " client_hostname VARCHAR, client_port INTEGER, backend_start TIMESTAMPTZ,"
        " xact_start TIMESTAMPTZ, query_start TIMESTAMPTZ, state_change TIMESTAMPTZ,"
        " wait_event_type VARCHAR, wait_event VARCHAR, state VARCHAR, backend_xid VARCHAR,"
        " backend_xmin VARCHAR, query_id BIGINT, query VARCHAR, backend_type VARCHAR"),
    "pg_settings": "name VARCHAR, setting VARCHAR, unit VARCHAR, category VARCHAR,"
                   " short_desc VARCHAR, context VARCHAR, vartype VARCHAR, source VARCHAR",
}
#: tables with fsql's own columns (``fsql_*``: texts of functions PostgreSQL computes): the
#: rows live in ``fsql_<table>``, and ``<table>`` is a view of PostgreSQL's columns only
#: (``SELECT *`` shows what PostgreSQL shows)
WITH_INTERNAL_COLUMNS = ("pg_constraint", "pg_index", "pg_proc", "pg_type", "pg_operator",
                         "pg_depend")


def stored(table: str) -> str:
    """The table that holds a catalog's rows (``fsql_pg_proc`` for ``pg_proc``)."""
    return f"fsql_{table}" if table in WITH_INTERNAL_COLUMNS else table


#: views over those tables
VIEWS = {
    "pg_user": "SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb, "
               "rolsuper AS usesuper, rolreplication AS userepl, rolbypassrls AS usebypassrls, "
               "'********' AS passwd, rolvaliduntil AS valuntil, rolconfig AS useconfig "
               "FROM pg_roles WHERE rolcanlogin",
    "pg_tables": "SELECT n.nspname AS schemaname, c.relname AS tablename, "
                 "r.rolname AS tableowner, NULL::VARCHAR AS tablespace, "
                 "c.relhasindex AS hasindexes, c.relhasrules AS hasrules, "
                 "c.relhastriggers AS hastriggers, c.relrowsecurity AS rowsecurity "
                 "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "LEFT JOIN pg_roles r ON r.oid = c.relowner WHERE c.relkind IN ('r', 'p')",
    "pg_matviews": "SELECT NULL::VARCHAR AS schemaname, NULL::VARCHAR AS matviewname "
                   "WHERE false",
    "pg_indexes": "SELECT n.nspname AS schemaname, c.relname AS tablename, "
                  "ic.relname AS indexname, NULL::VARCHAR AS tablespace, i.fsql_def AS indexdef "
                  "FROM fsql_pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_class ic "
                  "ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace",
    "information_schema__schemata": (
        "SELECT 'fsql' AS catalog_name, nspname AS schema_name, '" + OWNER + "' AS "
        "schema_owner, NULL::VARCHAR AS default_character_set_catalog, NULL::VARCHAR AS "
        "default_character_set_schema, NULL::VARCHAR AS default_character_set_name, "
        "NULL::VARCHAR AS sql_path FROM pg_namespace"),
    "information_schema__tables": (
        "SELECT 'fsql' AS table_catalog, n.nspname AS table_schema, c.relname AS table_name, "
        "CASE WHEN n.nspname LIKE 'pg\\_temp\\_%' ESCAPE '\\' THEN 'LOCAL TEMPORARY' "
        "WHEN c.relkind = 'v' THEN 'VIEW' WHEN c.relkind = 'f' THEN 'FOREIGN' "
        "ELSE 'BASE TABLE' END AS table_type, "
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
    # t: the session's temporary schema (rewrite() passes it; -1 when it has none)
    "pg_table_is_visible": "(c, t) AS COALESCE((SELECT m_c.relnamespace IN (11, 2200, t) "
                           "FROM pg_class m_c WHERE m_c.oid = c), false)",
    "pg_type_is_visible": "(t) AS (SELECT m_t.typnamespace IN (11, 2200) FROM pg_type m_t "
                          "WHERE m_t.oid = t)",
    "pg_collation_is_visible": "(t) AS (SELECT m_c.collnamespace IN (11, 2200) FROM "
                               "pg_collation m_c WHERE m_c.oid = t)",
    "pg_function_is_visible": "(t) AS (SELECT m_p.pronamespace IN (11, 2200) FROM pg_proc m_p "
                              "WHERE m_p.oid = t)",
    "pg_operator_is_visible": "(t) AS (SELECT m_o.oprnamespace IN (11, 2200) FROM "
                              "pg_operator m_o WHERE m_o.oid = t)",
    "pg_opclass_is_visible": "(t) AS (SELECT m_o.opcnamespace IN (11, 2200) FROM "
                             "pg_opclass m_o WHERE m_o.oid = t)",
    "pg_opfamily_is_visible": "(t) AS (SELECT m_o.opfnamespace IN (11, 2200) FROM "
                              "pg_opfamily m_o WHERE m_o.oid = t)",
    "format_type": "(t, m) AS CASE WHEN t IS NULL THEN NULL WHEN t = 0 THEN '-' ELSE "
                   "COALESCE((SELECT m_t.fmt FROM "
                   "fsql_type_names m_t WHERE m_t.oid = t), '???') END",
    "obj_description": "(o, c := NULL) AS (SELECT m_d.description FROM pg_description m_d "
                       "WHERE m_d.objoid = o AND m_d.objsubid = 0 AND (c IS NULL OR "
                       "m_d.classoid = fsql_regclass(c, -1)))",
    "col_description": "(o, n) AS (SELECT m_d.description FROM pg_description m_d WHERE "
                       "m_d.objoid = o AND m_d.objsubid = n AND m_d.classoid = 1259)",
    "shobj_description": "(o, c) AS (SELECT m_d.description FROM pg_shdescription m_d "
                         "WHERE m_d.objoid = o)",
    "pg_get_expr": "(e, r, p := false) AS e",
    "pg_get_indexdef": "(i, c := 0, p := false) AS CASE WHEN c = 0 THEN (SELECT m_x.fsql_def "
                       "FROM fsql_pg_index m_x WHERE m_x.indexrelid = i) ELSE (SELECT m_a.attname "
                       "FROM pg_index m_x JOIN pg_attribute m_a ON m_a.attrelid = m_x.indrelid "
                       "AND m_a.attnum = m_x.indkey[c] WHERE m_x.indexrelid = i) END",
    "pg_get_constraintdef": "(o, p := false) AS (SELECT m_k.fsql_def FROM fsql_pg_constraint m_k "
                            "WHERE m_k.oid = o)",
    "pg_relation_is_publishable": "(r) AS false",
    "pg_get_function_result": "(o) AS (SELECT m_p.fsql_result FROM fsql_pg_proc m_p "
                              "WHERE m_p.oid = o)",
    "pg_get_function_arguments": "(o) AS (SELECT m_p.fsql_arguments FROM fsql_pg_proc m_p "
                                 "WHERE m_p.oid = o)",
    "pg_get_function_identity_arguments": "(o) AS (SELECT m_p.fsql_identity_arguments FROM "
                                          "fsql_pg_proc m_p WHERE m_p.oid = o)",
    "pg_get_function_sqlbody": "(o) AS (SELECT m_p.prosqlbody FROM pg_proc m_p "
                               "WHERE m_p.oid = o)",
    "pg_get_functiondef": "(o) AS NULL::VARCHAR",
    "fsql__pg_expandarray_rows": "(a) AS unnest(list_transform(range(1, len(a) + 1), "
                                 "lambda i: {'x': a[i], 'n': i}))",
    "pg_get_statisticsobjdef_columns": "(o) AS NULL::VARCHAR",
    "pg_statistics_obj_is_visible": "(o) AS true",
    "getdatabaseencoding": "() AS 'UTF8'",
    "pg_char_to_encoding": "(e) AS CASE WHEN e = 'UTF8' THEN 6 WHEN e = 'SQL_ASCII' THEN 0 "
                           "ELSE -1 END",
    "pg_describe_object": "(c, o, s) AS (SELECT m_d.fsql_describe FROM fsql_pg_depend m_d "
                          "WHERE m_d.classid = c AND m_d.objid = o AND m_d.objsubid = s)",
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
    "to_regclass": "(x) AS fsql_regclass(x, -1)",
    "current_setting": "(x, m := false) AS (SELECT m_s.setting FROM pg_settings m_s "
                       "WHERE lower(m_s.name) = lower(x))",
    "to_regtype": "(x) AS fsql_regtype(x)",
    "quote_ident": "(x) AS CASE WHEN regexp_full_match(x, '[a-z_][a-z0-9_$]*') AND upper(x) "
                   "NOT IN (SELECT unnest(fsql_reserved())) THEN x "
                   "ELSE '\"' || replace(x, '\"', '\"\"') || '\"' END",
    # search order: the temporary schema, pg_catalog, public (PostgreSQL's for relations)
    "fsql_regclass": "(x, t) AS CASE WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN "
                     "TRY_CAST(x AS INTEGER) ELSE (SELECT m_c.oid FROM pg_class m_c JOIN "
                     "pg_namespace m_n ON m_n.oid = m_c.relnamespace WHERE (m_c.relname = "
                     "replace(x, '\"', '') AND m_n.oid IN (11, 2200, t)) OR m_n.nspname || '.' "
                     "|| m_c.relname = replace(x, '\"', '') ORDER BY m_n.oid <> t, m_n.oid "
                     "LIMIT 1) END",
    # a name that is no relation/type is an error, as in PostgreSQL (CatalogPlan turns the
    # "fsql-<SQLSTATE>: " prefix into the SQLSTATE); to_regclass/to_regtype give NULL
    "fsql_regclass_strict": "(x, t) AS CASE WHEN x IS NULL THEN NULL WHEN fsql_regclass(x, t) "
                            "IS NULL THEN error('fsql-42P01: relation \"' || x || '\" does not "
                            "exist') ELSE fsql_regclass(x, t) END",
    "fsql_regtype_strict": "(x) AS CASE WHEN x IS NULL THEN NULL WHEN fsql_regtype(x) IS NULL "
                           "THEN error('fsql-42704: type \"' || x || '\" does not exist') "
                           "ELSE fsql_regtype(x) END",
    "fsql_regclass_name": "(o, t) AS (SELECT CASE WHEN m_c.relnamespace IN (11, 2200, t) THEN "
                          "fsql_quote_ident(m_c.relname) ELSE fsql_quote_ident(m_n.nspname) || "
                          "'.' || fsql_quote_ident(m_c.relname) END FROM pg_class m_c JOIN "
                          "pg_namespace m_n ON m_n.oid = m_c.relnamespace WHERE m_c.oid = o)",
    "fsql_regtype": "(x) AS CASE WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN "
                    "TRY_CAST(x AS INTEGER) ELSE (SELECT m_t.oid FROM fsql_type_names m_t WHERE "
                    "m_t.fmt = lower(x) OR m_t.typname = lower(replace(x, 'pg_catalog.', '')) "
                    "LIMIT 1) END",
    "fsql_regproc_name": "(o) AS CASE WHEN TRY_CAST(o AS INTEGER) IS NULL THEN o::VARCHAR "
                         "WHEN TRY_CAST(o AS INTEGER) = 0 THEN '-' ELSE COALESCE((SELECT "
                         "CASE WHEN m_p.pronamespace IN (11, 2200) THEN m_p.proname ELSE "
                         "m_n.nspname || '.' || m_p.proname END FROM pg_proc m_p JOIN "
                         "pg_namespace m_n ON m_n.oid = m_p.pronamespace WHERE m_p.oid = "
                         "TRY_CAST(o AS INTEGER)), o::VARCHAR) END",
    "fsql_regproc": "(x) AS CASE WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN "
                    "TRY_CAST(x AS INTEGER) WHEN x = '-' THEN 0 ELSE (SELECT min(m_p.oid) FROM "
                    "pg_proc m_p JOIN pg_namespace m_n ON m_n.oid = m_p.pronamespace WHERE "
                    "m_p.proname = x OR m_n.nspname || '.' || m_p.proname = x) END",
    "fsql_regprocedure_name": "(o) AS CASE WHEN TRY_CAST(o AS INTEGER) = 0 THEN '-' ELSE "
                              "COALESCE((SELECT m_p.fsql_signature FROM fsql_pg_proc m_p WHERE "
                              "m_p.oid = TRY_CAST(o AS INTEGER)), o::VARCHAR) END",
    "fsql_regprocedure": "(x) AS CASE WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN "
                         "TRY_CAST(x AS INTEGER) ELSE (SELECT m_p.oid FROM fsql_pg_proc m_p WHERE "
                         "replace(m_p.fsql_signature, ' ', '') = replace(replace(x, "
                         "'pg_catalog.', ''), ' ', '')) END",
    "fsql_regrole": "(x) AS CASE WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN "
                    "TRY_CAST(x AS INTEGER) ELSE (SELECT m_r.oid FROM pg_roles m_r WHERE "
                    "m_r.rolname = replace(x, '\"', '')) END",
    "fsql_regnamespace": "(x) AS CASE WHEN TRY_CAST(x AS INTEGER) IS NOT NULL THEN "
                         "TRY_CAST(x AS INTEGER) ELSE (SELECT m_n.oid FROM pg_namespace m_n "
                         "WHERE m_n.nspname = replace(x, '\"', '')) END",
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

    def __init__(self, relation_catalog: RelationCatalog | None,
                 provider: DataRelations | None = None):
        super().__init__(provider=provider, threads=1)
        #: the surface's relations (None: only PostgreSQL's own and the sessions' tables)
        self.relation_catalog = relation_catalog
        self._current: Any = None
        self._refresh_lock = threading.Lock()
        #: session pid → the ddl_generation its temporary tables were listed at
        self._temp_listed: dict[int, int] = {}
        #: the users of the sessions that ran catalog statements (login roles in pg_roles)
        self._users: set[str] = set()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:  # type: ignore[has-type]
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
        source = self.relation_catalog
        current = source.version() if source is not None else {}
        with self._refresh_lock:
            new_user = session.user not in self._users
            self._users.add(session.user)
            if current is not self._current or self._con is None:
                relations = source.relations() if source is not None else []
                schemas = source.schemas if source is not None else {}
                with self._lock:
                    _fill_relations(self.con, relations, schemas, sorted(self._users))
                self._current = current
            elif new_user:
                with self._lock:
                    ensure_role(self.con, session.user)
            self._refresh_temp(session)

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
        generation = session.ddl_generation if session.has_duckdb else -1
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
    """The session's temporary tables (``CREATE TEMP TABLE``) as catalog relations of the
    schema ``pg_temp_<pid>``, columns typed as the session's DuckDB database has them."""
    backend = session.duckdb
    with backend._lock:
        rows = backend.con.execute(
            "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
            "WHERE database_name = 'temp' ORDER BY table_name, column_index").fetchall()
    tables: dict[str, list[CatalogColumn]] = {}
    for table, column, data_type, nullable in rows:
        tables.setdefault(table, []).append(
            CatalogColumn(column, pg_type_for_duckdb(data_type), not_null=not nullable))
    schema = f"pg_temp_{session.pid}"
    return [Relation(schema, name, columns) for name, columns in tables.items()]


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


def _insert_relations(con: duckdb.DuckDBPyConnection, relations: list[Relation], ns: int,
                      temporary_owner: str | None = None) -> None:
    """pg_class, pg_type, pg_attribute, pg_description, pg_index and pg_constraint rows of
    ``relations`` in the schema ``ns`` (for a session's temporary tables: its schema is
    created first, and the tables are the session user's)."""
    temporary = temporary_owner is not None
    owner = role_oid(temporary_owner) if temporary_owner is not None else OWNER_OID
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
    if schema in ("pg_catalog", "") and (name in TABLES or name in VIEWS
                                          or name in builtin_catalog()):
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


#: reg* type → (macro from a name to the oid, macro from the oid to the name)
_REG_FUNCTIONS = {
    "regclass": ("fsql_regclass", "fsql_regclass_name"),
    "regtype": ("fsql_regtype", "fsql_format_type"),
    "regnamespace": ("fsql_regnamespace", "fsql_regnamespace_name"),
    "regproc": ("fsql_regproc", "fsql_regproc_name"),
    "regprocedure": ("fsql_regprocedure", "fsql_regprocedure_name"),
    "regrole": ("fsql_regrole", "fsql_pg_get_userbyid"),
}


#: macros that take the session's temporary schema as their last argument
_TEMP_AWARE = frozenset(("fsql_regclass", "fsql_regclass_strict", "fsql_regclass_name",
                         "fsql_pg_table_is_visible"))

#: PostgreSQL's names of types in a cast's output column name (``x::int`` is ``int4``)
_PG_TYPE_NAMES = {"int": "int4", "integer": "int4", "bigint": "int8", "smallint": "int2",
                  "boolean": "bool", "double precision": "float8", "real": "float4"}


def pg_output_name(node: exp.Expression) -> str | None:
    """The name PostgreSQL gives an unaliased select-list expression (``x::text`` → text,
    ``f(x)`` → f, ``a ~ b`` → ?column?); None for a column or ``*`` (named as they are)."""
    if isinstance(node, (exp.Column, exp.Star)):
        return None
    name, _strength = _figure_colname(node)
    return name or "?column?"


def _figure_colname(node: exp.Expression) -> tuple[str | None, int]:
    """PostgreSQL's FigureColnameInternal: (name, strength); a column or function name (2)
    beats a cast's type name (1)."""
    while isinstance(node, (exp.Paren, exp.Dot)):
        node = node.this if isinstance(node, exp.Paren) else node.expression  # pg_catalog.f()
    if isinstance(node, exp.Column):
        return node.name, 2
    if isinstance(node, exp.Bracket):  # indkey[0] is named after the array
        return _figure_colname(node.this)
    if isinstance(node, exp.Cast):
        name, strength = _figure_colname(node.this)
        if strength > 1:
            return name, strength
        user = _user_type_name(node.to)
        typ = user or node.to.sql(dialect="postgres").lower().split("(")[0]
        return _PG_TYPE_NAMES.get(typ, typ).split(".")[-1], 1
    if isinstance(node, (exp.Binary, exp.Unary, exp.Predicate)):
        return None, 0
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower(), 2
    if isinstance(node, exp.Case):
        return "case", 1
    if isinstance(node, exp.Array):
        return "array", 1
    if isinstance(node, exp.Func):
        return node.sql_name().lower(), 2
    return None, 0


def rewrite(tree: exp.Expression, temp_namespace: int = -1, database: str = "fsql",
            user: str = OWNER, pid: int = 0) -> exp.Expression:
    """The catalog query as DuckDB runs it against the catalog database (``temp_namespace``:
    the oid of the session's temporary schema, -1 for none; ``database`` and ``user``: the
    session's, for ``current_database()`` and ``current_user``)."""
    tree = tree.copy()
    if isinstance(tree, exp.Select):
        # name the select list as PostgreSQL would, before the rewrites change it
        for projection in list(tree.expressions):
            name = pg_output_name(projection)
            if name is not None and not isinstance(projection, exp.Alias):
                projection.replace(exp.alias_(projection.copy(), name, quoted=True))
    session_values = {exp.CurrentDatabase: database, exp.CurrentCatalog: database,
                      exp.CurrentUser: user, exp.SessionUser: user}
    for func in list(tree.find_all(exp.Anonymous)):
        if str(func.this).lower() == "pg_backend_pid" and not func.expressions:
            backend_pid = func.parent if isinstance(func.parent, exp.Dot) else func
            backend_pid.replace(exp.Literal.number(pid))
    for value in list(tree.find_all(*session_values)):
        if value.parent is not None or value is not tree:
            value.replace(exp.Literal.string(session_values[type(value)]))
    for schemas in list(tree.find_all(exp.CurrentSchemas)):
        schemas.replace(exp.Anonymous(this="current_schemas",
                                      expressions=[schemas.this or exp.true()]))
    for func in list(tree.find_all(exp.Anonymous)):
        # to_regclass(x) is x::regclass that gives NULL instead of an error
        target = {"to_regclass": "regclass", "to_regtype": "regtype"}.get(str(func.this).lower())
        if target and func.expressions:
            lenient = exp.Cast(this=func.expressions[0], to=exp.DataType(
                this=exp.DType.USERDEFINED, kind=exp.to_identifier(target)))
            lenient.meta["fsql_lenient"] = True  # NULL for an unknown name, not an error
            func.replace(lenient)
    _replace_tableoid(tree)
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
            if name in ("information_schema__tables", "information_schema__columns"):
                # PostgreSQL's information_schema hides other sessions' temporary tables
                mine = f"pg_temp_{pid}"
                visible = exp.select("*").from_(name).where(
                    f"table_schema NOT LIKE 'pg\\_temp\\_%' ESCAPE '\\' "
                    f"OR table_schema = '{mine}'", dialect="duckdb")
                table.replace(exp.Subquery(this=visible, alias=alias or exp.TableAlias(
                    this=exp.to_identifier(table.name))))
                continue
            table.replace(new)
    # pg_catalog.pg_class.relname → pg_class.relname
    for column in list(tree.find_all(exp.Column)):
        if column.args.get("db") is not None and column.args["db"].name.lower() in (
                "pg_catalog", "information_schema"):
            column.set("db", None)
        if column.args.get("catalog") is not None:
            column.set("catalog", None)
    for like in list(tree.find_all(exp.Like, exp.ILike)):
        # PostgreSQL's LIKE escapes with a backslash unless told otherwise (psql's completion
        # queries send 'pg\_get\_%'); DuckDB's has no escape character by default
        if not isinstance(like.parent, exp.Escape):
            like.replace(exp.Escape(this=like.copy(), expression=exp.Literal.string("\\")))
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
        to_oid, name_of = _REG_FUNCTIONS[reg]
        if reg in ("regclass", "regtype") and not cast.meta.get("fsql_lenient"):
            to_oid += "_strict"
        call = to_oid if is_text else name_of
        args = [inner] if call != "fsql_format_type" else [inner, exp.Null()]
        replacement = exp.Anonymous(this=call, expressions=args)
        parent = cast.parent
        if is_text and isinstance(parent, exp.Cast) and parent.to.is_type(
                exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.NAME):
            # 'features.user'::regclass::text is the name again, normalized
            extra = [exp.Null()] if reg == "regtype" else []
            replacement = exp.Anonymous(this=name_of, expressions=[replacement, *extra])
        if is_text and isinstance(parent, exp.Cast) and _user_type_name(parent.to) == "oid":
            parent.replace(replacement)
        else:
            cast.replace(replacement)
    for data_type in list(tree.find_all(exp.DataType)):
        user_type = _user_type_name(data_type)
        if user_type is not None and _reg_type(data_type) is None:
            data_type.replace(exp.DataType.build("BIGINT" if user_type == "oid" else user_type,
                                                 dialect="postgres"))
        elif data_type.sql(dialect="postgres").upper() == "OID":
            data_type.replace(exp.DataType.build("BIGINT"))
    _expand_stars(tree)
    _rewrite_vectors(tree)
    regprocs = regproc_columns()
    for column in list(tree.find_all(exp.Column)):
        # a regproc column in a select list is shown as the function's name
        parent = column.parent
        if column.name.lower() in regprocs and isinstance(parent, exp.Select) and any(
                column is e for e in parent.expressions):
            column.replace(exp.alias_(exp.Anonymous(this="fsql_regproc_name",
                                                    expressions=[column.copy()]),
                                      column.name))
        elif column.name.lower() in regprocs and (isinstance(parent, exp.Alias) and isinstance(
                parent.parent, exp.Select) or isinstance(parent, exp.Cast) and parent.to.is_type(
                exp.DType.TEXT, exp.DType.VARCHAR, exp.DType.NAME)):
            # oprcode AS x, oprcode::text: the name
            column.replace(exp.Anonymous(this="fsql_regproc_name", expressions=[column.copy()]))
    for func in list(tree.find_all(exp.Anonymous)):
        name = str(func.this).lower()
        if name == "_pg_expandarray" and func.find_ancestor(exp.Table) is None:
            # in a select list: one row per element, as a (x, n) record
            func.set("this", "fsql__pg_expandarray_rows")
        elif name in _CATALOG_FUNCTIONS:
            func.set("this", f"fsql_{name}")
        if str(func.this) in _TEMP_AWARE:
            func.append("expressions", exp.Literal.number(temp_namespace))
        elif name == "json_build_object":
            func.set("this", "json_object")
    for dot in list(tree.find_all(exp.Dot)):
        if isinstance(dot.this, exp.Identifier) and dot.this.name.lower() in (
                "pg_catalog", "information_schema") and isinstance(dot.expression, exp.Func):
            dot.replace(dot.expression)
    return tree


@functools.cache
def catalog_columns(table: str) -> tuple[str, ...]:
    """PostgreSQL's columns of a catalog table fsql holds (empty for views and unknowns)."""
    if table in TABLES:
        names = [c.split()[0] for c in TABLES[table].split(",")]
    elif table in builtin_catalog():
        names = [c for c, _t in builtin_catalog()[table]["columns"]]
    else:
        return ()
    return tuple(n for n in names if not n.startswith("fsql_"))


def _expand_stars(tree: exp.Expression) -> None:
    """``SELECT *`` / ``SELECT t.*`` over catalog tables with regproc or int2vector/oidvector
    columns (``pg_type``, ``pg_index``, ``pg_proc``, ...) lists the columns, so that those
    columns are shown as PostgreSQL shows them (function names, ``1 2``)."""
    for select in list(tree.find_all(exp.Select)):
        sources: list[tuple[str, str]] = []  # (alias, catalog table) in FROM/JOIN order
        first = select.args.get("from_") or select.args.get("from")
        tables: list[exp.Expression] = [first.this] if first is not None else []
        tables += [j.this for j in select.args.get("joins") or []]
        for table in tables:
            name = catalog_table_name(table) if isinstance(table, exp.Table) else None
            if name is None or not catalog_columns(name):
                sources.append(("", ""))
                continue
            sources.append((table.alias_or_name, name))
        special = regproc_columns() | vector_columns()
        for projection in list(select.expressions):
            if isinstance(projection, exp.Star):
                chosen = sources
            elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
                chosen = [s for s in sources if s[0].lower() == projection.table.lower()]
            else:
                continue
            if not chosen or any(not name for _a, name in chosen) or not any(
                    c in special for _a, name in chosen for c in catalog_columns(name)):
                continue
            columns = [exp.column(c, table=alias) for alias, name in chosen
                       for c in catalog_columns(name)]
            projection.replace(columns[0])
            parent_list = select.expressions
            index = next(i for i, e in enumerate(parent_list) if e is columns[0])
            select.set("expressions", [*parent_list[:index], *columns,
                                       *parent_list[index + 1:]])


def _is_vector(node: exp.Expression) -> bool:
    return isinstance(node, exp.Column) and node.name.lower() in vector_columns()


def _rewrite_vectors(tree: exp.Expression) -> None:
    """int2vector/oidvector columns are DuckDB lists here: ``indkey[0]`` (PostgreSQL's
    subscripts start at 0) is the list's first element, ``generate_subscripts(indkey, 1)``
    counts from 0, ``array_upper``/``array_lower`` say so, and a vector in a select list is
    printed as PostgreSQL prints it (``1 2``, what pgjdbc parses)."""
    for bracket in list(tree.find_all(exp.Bracket)):
        if _is_vector(bracket.this) and bracket.expressions:
            index = bracket.expressions[0]
            bracket.set("expressions", [exp.Add(this=index.copy(),
                                                expression=exp.Literal.number(1))])
    for func in list(tree.find_all(exp.Func)):
        args = [func.this, *func.expressions] if isinstance(func, exp.Anonymous) else [
            func.this]
        name = (str(func.this) if isinstance(func, exp.Anonymous) else func.sql_name()).lower()
        vector = next((a for a in (func.expressions if isinstance(func, exp.Anonymous)
                                   else args) if isinstance(a, exp.Expression)
                       and _is_vector(a)), None)
        if vector is None:
            continue
        if name == "generate_subscripts":
            func.replace(exp.Paren(this=exp.Sub(this=func.copy(),
                                                expression=exp.Literal.number(1))))
        elif name == "array_upper":
            func.replace(exp.Sub(this=exp.Anonymous(this="len", expressions=[vector.copy()]),
                                 expression=exp.Literal.number(1)))
        elif name == "array_lower":
            func.replace(exp.Literal.number(0))
    select = tree if isinstance(tree, exp.Select) else None
    for projection in list(select.expressions if select is not None else []):
        target = projection.this if isinstance(projection, exp.Alias) else projection
        if _is_vector(target):
            text = exp.Anonymous(this="array_to_string",
                                 expressions=[target.copy(), exp.Literal.string(" ")])
            if isinstance(projection, exp.Alias):
                target.replace(text)
            else:
                projection.replace(exp.alias_(text, target.name))


def _replace_tableoid(tree: exp.Expression) -> None:
    """``c.tableoid`` (the system column: the oid of the catalog a row is in) → that oid."""
    columns = [c for c in tree.find_all(exp.Column) if c.name.lower() == "tableoid"]
    if not columns:
        return
    oids = system_relation_oids()
    by_alias: dict[str, int] = {}
    for table in tree.find_all(exp.Table):
        name = table.name.lower()
        if catalog_table_name(table) is not None and name in oids:
            by_alias[(table.alias_or_name or name).lower()] = oids[name]
    for column in columns:
        qualifier = column.table.lower()
        oid = by_alias.get(qualifier) if qualifier else (
            next(iter(by_alias.values())) if len(by_alias) == 1 else None)
        if oid is not None:
            column.replace(exp.Literal.number(oid))


def plan_catalog(session: Session, sql: str, tree: exp.Expression,
                 param_oids: Sequence[int]) -> Plan | None:
    """A plan over the catalog database for a catalog query, None for any other statement."""
    if not is_catalog_query(tree):
        return None
    relations = session.server.relations
    check_data_tables(tree, relations.schemas if relations is not None else ())
    backend = catalog_backend(session)
    temp = temp_namespace_oid(session.pid)  # fixed per session, listed once it has tables
    rewritten = rewrite(tree, temp, session.database, session.user, session.pid)
    plan = backend.plan(sql, rewritten, _array_parameters(tree, param_oids))
    return CatalogPlan(backend, plan)


def check_data_tables(tree: exp.Expression, data_schemas: Sequence[str]) -> None:
    """A catalog query may join the surface's data tables (``data_schemas``: fsql's
    ``offline.*``, ``sources.*`` and ``fsql.*``, registered in the catalog database like in a
    session's); other tables (fsql's ``features.*``, the session's own) live elsewhere: 0A000
    that says how to get the same answer."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or catalog_table_name(table) is not None:
            continue
        schema, name = table.db.lower(), table.name
        if schema in data_schemas or (not schema and name.lower() in ctes):
            continue
        what = f"{schema}.{name}" if schema else name
        raise PgError(
            errors.FEATURE_NOT_SUPPORTED,
            f"a catalog query (one reading pg_catalog or information_schema) cannot also read "
            f"{what}",
            hint=f"Catalog queries can join {_listed(data_schemas)} tables; read "
                 f"{what} in a statement of its own.")


def _listed(schemas: Sequence[str]) -> str:
    """``a.*, b.* and c.*``"""
    names = [f"{s}.*" for s in schemas] or ["no other"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


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
    backend = state.catalog_backend
    if backend is None:
        backend = CatalogBackend(state.relation_catalog, state.relations)
        state.catalog_backend = backend
    assert isinstance(backend, CatalogBackend)
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
        try:
            return self.inner.describe(session)
        except PgError as error:
            raise _with_sqlstate(error) from None

    async def run(self, session: Session, params: Sequence[Any]) -> Result:
        self.backend.refresh(session)
        self.backend.record_activity(session, self.sql)
        try:
            return await self.inner.run(session, params)
        except PgError as error:
            raise _with_sqlstate(error) from None


_SQLSTATE_MESSAGE = re.compile(r"fsql-([0-9A-Z]{5}): (.*)", re.S)


def _with_sqlstate(error: PgError) -> PgError:
    """An error a catalog macro raised on purpose (``fsql-42P01: relation "x" does not
    exist``) with its SQLSTATE and PostgreSQL's message; any other error as it is."""
    match = _SQLSTATE_MESSAGE.search(error.message)
    if match is None:
        return error
    return PgError(match.group(1), match.group(2).strip())
