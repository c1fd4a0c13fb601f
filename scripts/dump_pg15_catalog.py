"""Dump PostgreSQL 15's built-in catalog rows into server/pg/catalog/pg15_builtin.json.gz.

fsql's catalog emulation answers ``pg_proc``, ``pg_operator``, ``pg_opclass``, ``pg_views``,
``pg_extension`` (and the built-in rows of ``pg_type``, ``pg_class``, ``pg_namespace``,
``pg_roles``, ``pg_description`` ...) with the rows a freshly initialised PostgreSQL 15 has,
so ``\\df``, ``\\do``, pgjdbc's ``getFunctions`` and tab completion see what they would see on
PostgreSQL. Those rows are generated, never typed: this script runs ``initdb`` with Debian's
PostgreSQL 15 binaries (the same server the differential tests start), reads every built-in
row (oid < 16384, PostgreSQL's first user oid), converts the PostgreSQL-only types (``oidvector``,
``int2vector``, ``regproc``, ``aclitem[]``, ``pg_node_tree``) to types DuckDB has, adds the
texts of the functions clients call on those rows (``format_type``, ``pg_get_function_result``,
``pg_get_expr`` of the argument defaults ...) and writes one gzip'd JSON file. Usage, from the repository root::

    python scripts/dump_pg15_catalog.py
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "server" / "pg" / "catalog" / "pg15_builtin.json.gz"

#: PostgreSQL type of a catalog column → (SQL that converts it, DuckDB type)
CONVERSIONS = {
    # oids are INTEGER like the rest of the emulated catalog (built-in oids are < 2^31);
    # regproc columns are the function's oid (the catalog shows its name when selected)
    # oid[] columns are BIGINT[] (sent as int8[]: pgjdbc reads proallargtypes as Long[])
    "oid": ("{c}::int4", "INTEGER"), "regproc": ("{c}::oid::int4", "INTEGER"),
    "int2": ("{c}", "SMALLINT"), "int4": ("{c}", "INTEGER"), "int8": ("{c}", "BIGINT"),
    "float4": ("{c}", "REAL"), "float8": ("{c}", "DOUBLE"), "bool": ("{c}", "BOOLEAN"),
    "name": ("{c}::text", "VARCHAR"), "text": ("{c}", "VARCHAR"), "char": ("{c}::text", "VARCHAR"),
    "oidvector": ("{c}::oid[]::int4[]", "INTEGER[]"),
    "int2vector": ("{c}::int2[]", "SMALLINT[]"),
    "_oid": ("{c}::int8[]", "BIGINT[]"), "_int2": ("{c}", "SMALLINT[]"),
    "_text": ("{c}", "VARCHAR[]"), "_char": ("{c}::text[]", "VARCHAR[]"),
    "_aclitem": ("{c}::text[]", "VARCHAR[]"), "pg_node_tree": ("{c}::text", "VARCHAR"),
    "xid": ("{c}::text::int4", "INTEGER"), "pg_lsn": ("{c}::text", "VARCHAR"),
    "bytea": ("{c}", "BLOB"), "timestamptz": ("{c}::text", "VARCHAR"),
    "_float4": ("{c}", "REAL[]"), "anyarray": ("{c}::text", "VARCHAR"),
}

#: table → (WHERE clause, extra computed columns (name, SQL, DuckDB type))
TABLES: dict[str, tuple[str, list[tuple[str, str, str]]]] = {
    "pg_namespace": ("oid < 16384", []),
    "pg_class": ("oid < 16384 AND relkind IN ('r', 'v', 'p', 'm', 'f', 't', 'i', 'c')", []),
    # the columns, indexes and keys of PostgreSQL's own catalogs (\d pg_class)
    "pg_attribute": ("attrelid < 16384 AND attrelid IN (SELECT oid FROM pg_class WHERE relkind "
                     "IN ('r', 'v', 'p', 'm', 'f', 't', 'i', 'c'))", []),
    "pg_index": ("indexrelid < 16384", [
        ("fsql_def", "pg_get_indexdef(indexrelid)", "VARCHAR")]),
    "pg_constraint": ("oid < 16384", [
        ("fsql_def", "pg_get_constraintdef(oid)", "VARCHAR")]),
    "pg_type": ("oid < 16384", [("fsql_format", "format_type(oid, NULL)", "VARCHAR")]),
    "pg_proc": ("oid < 16384", [
        ("fsql_result", "pg_get_function_result(oid)", "VARCHAR"),
        ("fsql_arguments", "pg_get_function_arguments(oid)", "VARCHAR"),
        ("fsql_identity_arguments", "pg_get_function_identity_arguments(oid)", "VARCHAR"),
        ("fsql_signature", "oid::regprocedure::text", "VARCHAR"),
        # the defaults as pg_get_expr(proargdefaults, 0) prints them (pgcli's function query)
        ("fsql_argdefaults", "pg_get_expr(proargdefaults, 0)", "VARCHAR"),
    ]),
    "pg_operator": ("oid < 16384", [("fsql_code", "oprcode::text", "VARCHAR")]),
    "pg_opclass": ("oid < 16384", []),
    "pg_opfamily": ("oid < 16384", []),
    "pg_am": ("oid < 16384", []),
    "pg_amop": ("oid < 16384", []),
    "pg_language": ("oid < 16384", []),
    "pg_extension": ("true", []),
    "pg_cast": ("oid < 16384", []),
    "pg_collation": ("oid < 16384", []),
    "pg_aggregate": ("aggfnoid < 16384", []),
    "pg_roles": ("oid < 16384", []),
    "pg_auth_members": ("roleid < 16384", []),
    "pg_tablespace": ("oid < 16384", []),
    "pg_description": ("objoid < 16384", []),
    "pg_views": ("schemaname IN ('pg_catalog', 'information_schema')", []),
    "pg_range": ("rngtypid < 16384", []),
    "pg_conversion": ("oid < 16384", []),
    # the extension memberships (\dx+), with the text pg_describe_object gives them
    "pg_depend": ("deptype = 'e'", [
        ("fsql_describe", "pg_describe_object(classid, objid, objsubid)", "VARCHAR")]),
    # empty in a fresh cluster, read by psql's describe commands (\dy, \dF, \des, \drds ...)
    **{table: ("true", []) for table in (
        "pg_event_trigger", "pg_ts_config", "pg_ts_dict", "pg_ts_parser", "pg_ts_template",
        "pg_foreign_data_wrapper", "pg_foreign_server", "pg_user_mapping", "pg_default_acl",
        "pg_db_role_setting", "pg_transform", "pg_largeobject_metadata", "pg_init_privs",
        "pg_subscription", "pg_user_mappings", "pg_statistic_ext", "pg_publication",
        "pg_publication_namespace", "pg_publication_rel", "pg_policy", "pg_trigger",
        "pg_rewrite", "pg_sequence", "pg_enum", "pg_foreign_table", "pg_partitioned_table",
        "pg_inherits", "pg_attrdef", "pg_shdescription")},
}


#: columns dumped as NULL: the views' parse trees (2.9 MB; clients read pg_views.definition)
NULLED = {("pg_rewrite", "ev_action"), ("pg_rewrite", "ev_qual"),
          ("pg_attribute", "attmissingval")}


def column_types(conn: Any, table: str) -> list[tuple[str, str]]:
    """(column, PostgreSQL type name) of a catalog table or view, in order."""
    rows = conn.execute(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum", (f"pg_catalog.{table}",)).fetchall()
    return [(name, typ) for name, typ in rows]


def dump_table(conn: Any, table: str) -> dict[str, Any]:
    where, extra = TABLES[table]
    selects, columns = [], []
    for name, typ in column_types(conn, table):
        if typ not in CONVERSIONS:
            raise SystemExit(f"{table}.{name}: no conversion for PostgreSQL type {typ}")
        sql, duck = CONVERSIONS[typ]
        if (table, name) in NULLED:
            sql = "NULL::text"
        selects.append(f"{sql.format(c=name)} AS {name}")
        columns.append((name, duck))
    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass",
                        (f"pg_catalog.{table}",)).fetchone()[0]
    is_view = kind == "v"
    for name, sql, duck in extra:
        selects.append(f"{sql} AS {name}")
        columns.append((name, duck))
    # physical order (a fresh cluster's): a query without ORDER BY lists rows as PostgreSQL does
    order = "" if is_view else " ORDER BY ctid"
    rows = conn.execute(f"SELECT {', '.join(selects)} FROM pg_catalog.{table} "
                        f"WHERE {where}{order}").fetchall()
    regproc = [name for name, typ in column_types(conn, table) if typ == "regproc"]
    return {"columns": columns, "rows": [list(r) for r in rows], "regproc": regproc}


def main() -> None:
    import psycopg

    sys.path.insert(0, str(ROOT))
    from tests.services.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        with psycopg.connect(server.url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            # int2vector/oidvector columns: subscripts from 0, printed as "1 2"
            vectors = sorted({r[0] for r in conn.execute(
                "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                "WHERE c.relnamespace = 11 AND a.atttypid IN "
                "('int2vector'::regtype, 'oidvector'::regtype)").fetchall()})
            data = {"server_version": version, "vector_columns": vectors,
                    "tables": {table: dump_table(conn, table) for table in TABLES}}
    finally:
        server.stop()
    with gzip.open(OUTPUT, "wt", encoding="utf-8", compresslevel=9) as out:
        # mtime=0 in the header would be nicer; gzip.open has no option, the bytes differ by it
        json.dump(data, out, separators=(",", ":"), sort_keys=True)
    sizes = ", ".join(f"{t} {len(d['rows'])}" for t, d in data["tables"].items())
    print(f"wrote {OUTPUT.relative_to(ROOT)} from PostgreSQL {version}: {sizes}")


if __name__ == "__main__":
    main()
