"""The catalog database's definition: PostgreSQL 15's built-in rows and fsql's tables.

``TABLES`` are the catalog tables fsql fills itself (``pg_namespace``, ``pg_class``,
``pg_attribute``, ``pg_type``, ``pg_description``, ``pg_constraint``, ``pg_index``...) with
PostgreSQL 15's column names; ``VIEWS`` are ``information_schema`` and the other views over
them; ``MACROS`` are the PostgreSQL functions clients call (``fsql_<name>`` in the database).
The built-in rows come from a dump of a real PostgreSQL 15 (scripts/dump_pg15_catalog.py).
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from pathlib import Path
from typing import Any

from fsql_server.pg.catalog.model import (
    OWNER,
)

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
                  "ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                  # PostgreSQL's own definition: tables' indexes, not TOAST tables' (kind t)
                  "WHERE c.relkind IN ('r', 'm', 'p') AND ic.relkind IN ('i', 'I')",
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
    # t: the session's temporary schema (rewrite() passes it; -1 when it has none), p: the
    # schemas searched, in order ('pg_temp' for t): visible when its schema is searched and
    # no relation of that name is in a schema searched before it (PostgreSQL's
    # RelationIsVisible)
    "pg_table_is_visible": "(c, t, p) AS COALESCE((SELECT list_position(p, CASE WHEN "
                           "m_c.relnamespace = t THEN 'pg_temp' ELSE m_n.nspname END) IS NOT "
                           "NULL AND NOT EXISTS (SELECT 1 FROM pg_class m_o JOIN pg_namespace "
                           "m_on ON m_on.oid = m_o.relnamespace WHERE m_o.relname = m_c.relname "
                           "AND list_position(p, CASE WHEN m_o.relnamespace = t THEN 'pg_temp' "
                           "ELSE m_on.nspname END) < list_position(p, CASE WHEN m_c.relnamespace "
                           "= t THEN 'pg_temp' ELSE m_n.nspname END)) FROM pg_class m_c JOIN "
                           "pg_namespace m_n ON m_n.oid = m_c.relnamespace WHERE m_c.oid = c), "
                           "false)",
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
    # a node tree is shown as the text PostgreSQL deparses it to: the built-in functions'
    # argument defaults (pgcli) are dumped with their text; fsql's own trees are text already
    "pg_get_expr": "(e, r, p := false) AS coalesce((SELECT any_value(m_p.fsql_argdefaults) "
                   "FROM fsql_pg_proc m_p WHERE m_p.proargdefaults = e), e)",
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
    # PostgreSQL's pg_get_functiondef (ruleutils.c) from pg_proc, line by line: what \sf prints
    # an aggregate has no definition to print: 42809, as PostgreSQL answers
    "pg_get_functiondef": "(o) AS CASE WHEN (SELECT m_a.prokind FROM fsql_pg_proc m_a WHERE "
                          "m_a.oid = o) = 'a' THEN error('fsql-42809: \"' || (SELECT "
                          "m_a.proname FROM fsql_pg_proc m_a WHERE m_a.oid = o) || '\" is an "
                          "aggregate function') ELSE "
                          "(SELECT 'CREATE OR REPLACE ' || CASE m_p.prokind WHEN 'p' "
                          "THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || m_n.nspname || '.' || "
                          "fsql_quote_ident(m_p.proname) || '(' || m_p.fsql_arguments || ')' || "
                          "chr(10) || CASE WHEN m_p.prokind = 'p' THEN '' ELSE ' RETURNS ' || "
                          "m_p.fsql_result || chr(10) END || ' LANGUAGE ' || CASE m_p.prolang "
                          "WHEN 12 THEN 'internal' WHEN 13 THEN 'c' WHEN 14 THEN 'sql' ELSE "
                          "'plpgsql' END || chr(10) || coalesce(nullif(concat(CASE m_p.prokind "
                          "WHEN 'w' THEN ' WINDOW' END, CASE m_p.provolatile WHEN 'i' THEN "
                          "' IMMUTABLE' WHEN 's' THEN ' STABLE' END, CASE m_p.proparallel WHEN "
                          "'s' THEN ' PARALLEL SAFE' WHEN 'r' THEN ' PARALLEL RESTRICTED' END, "
                          "CASE WHEN m_p.proisstrict THEN ' STRICT' END, CASE WHEN m_p.prosecdef "
                          "THEN ' SECURITY DEFINER' END, CASE WHEN m_p.proleakproof THEN "
                          "' LEAKPROOF' END, CASE WHEN m_p.procost <> CASE WHEN m_p.prolang IN "
                          "(12, 13) THEN 1 ELSE 100 END THEN ' COST ' || "
                          "CAST(m_p.procost AS VARCHAR) END, CASE WHEN m_p.prorows > 0 AND "
                          "m_p.prorows <> 1000 THEN ' ROWS ' || CAST(m_p.prorows AS VARCHAR) "
                          "END, CASE WHEN TRY_CAST(m_p.prosupport AS BIGINT) > 0 THEN "
                          "' SUPPORT ' || (SELECT m_s.proname FROM fsql_pg_proc m_s WHERE "
                          "m_s.oid = m_p.prosupport) END), '') || "
                          "chr(10), '') || 'AS ' || CASE WHEN m_p.probin IS NOT "
                          "NULL AND m_p.probin <> '' THEN '''' || m_p.probin || ''', ' ELSE '' "
                          "END || '$function$' || m_p.prosrc || '$function$' || chr(10) FROM "
                          "fsql_pg_proc m_p JOIN pg_namespace m_n ON m_n.oid = m_p.pronamespace "
                          "WHERE m_p.oid = o AND m_p.prokind <> 'a') END",
    "fsql__pg_expandarray_rows": "(a) AS unnest(list_transform(range(1, len(a) + 1), "
                                 "lambda i: {'x': a[i], 'n': i::INTEGER}))",
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
    "fsql_regproc_strict": "(x) AS CASE WHEN x IS NULL THEN NULL WHEN fsql_regproc(x) IS NULL "
                           "THEN error('fsql-42883: function \"' || x || '\" does not exist') "
                           "ELSE fsql_regproc(x) END",
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
    "_pg_expandarray": "(a) AS SELECT a[i] AS x, i::INTEGER AS n FROM range(1, len(a) + 1) t(i)",
}
RENAMED_FUNCTIONS = {name for name in MACROS if not name.startswith("fsql_")} | {
    "format_type", "pg_get_keywords", "_pg_expandarray"}


def quote_ident(name: str) -> str:
    """An identifier as PostgreSQL's quote_ident writes it."""
    plain = re.fullmatch(r"[a-z_][a-z0-9_$]*", name) and name.upper() not in RESERVED_WORDS
    return name if plain else '"' + name.replace('"', '""') + '"'


#: PostgreSQL 15's reserved keywords (quote_ident quotes them)
RESERVED_WORDS = frozenset("""ALL ANALYSE ANALYZE AND ANY ARRAY AS ASC ASYMMETRIC AUTHORIZATION BINARY
BOTH CASE CAST CHECK COLLATE COLLATION COLUMN CONCURRENTLY CONSTRAINT CREATE CROSS CURRENT_CATALOG
CURRENT_DATE CURRENT_ROLE CURRENT_SCHEMA CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER DEFAULT
DEFERRABLE DESC DISTINCT DO ELSE END EXCEPT FALSE FETCH FOR FOREIGN FREEZE FROM FULL GRANT GROUP
HAVING ILIKE IN INITIALLY INNER INTERSECT INTO IS ISNULL JOIN LATERAL LEADING LEFT LIKE LIMIT
LOCALTIME LOCALTIMESTAMP NATURAL NOT NOTNULL NULL OFFSET ON ONLY OR ORDER OUTER OVERLAPS PLACING
PRIMARY REFERENCES RETURNING RIGHT SELECT SESSION_USER SIMILAR SOME SYMMETRIC SYSTEM_USER TABLE
TABLESAMPLE THEN TO TRAILING TRUE UNION UNIQUE USER USING VARIADIC VERBOSE WHEN WHERE WINDOW
WITH""".split())
