"""Write the compatibility table of docs/clients.md from the catalog tests' results.

Runs ``pytest tests/catalog`` with a JUnit report, groups the outcomes by client and operation
(each differential test compares fsql with a real PostgreSQL 15), and replaces the text between
the ``compat-table`` markers of docs/clients.md. Usage, from the repository root::

    python -m tests.catalog.compat_table
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "clients.md"
BEGIN, END = "<!-- compat-table:begin -->", "<!-- compat-table:end -->"

#: tests that only check fsql (the others compare with PostgreSQL 15)
FSQL_ONLY = ("test_psql_sees_a_feature_applied", "test_psql_du_lists_the_users", "test_catalog_answers_follow_the_registry",
             "test_pandas_read_sql_table", "test_polars_read_database_uri",
             "test_catalog_queries_join_fsql_data", "test_rebuild_reads_no_history")

#: test (function name, or prefix of a parametrized one) → (client, operation)
OPERATIONS = [
    ("test_psql_describe_equals_postgres", "psql",
     "`\\dn`, `\\dt`, `\\d`, `\\d+` (fsql's tables and PostgreSQL's catalogs), `\\dp`, "
     "`\\dS`, `\\dv`, `\\df`, `\\df+`, `\\do`, "
     "`\\du`, `\\dT`, `\\dC`, `\\dA`, `\\dL`, `\\dx`, `\\dx+`, `\\db`, `\\dF*`, `\\dO`, "
     "`\\dD`, `\\dc`, `\\dy`, `\\des`, `\\dR*`, `\\dX`, ... (corpus/psql.txt)"),
    ("test_psql_dt_all_equals_postgres", "psql",
     "`\\dt *.*` (one difference: fsql's relations have no TOAST tables)"),
    ("test_psql_l_and_conninfo_equal_postgres", "psql",
     "`\\l`, `\\conninfo` (one database, `fsql`, in PostgreSQL's row format)"),
    ("test_psql_temporary_tables_equal_postgres", "psql",
     "temporary tables (spines) in `pg_temp_N`: `\\dt`, `\\d`, `::regclass`, "
     "information_schema"),
    ("test_temporary_tables_of_two_sessions_equal_postgres", "any (psycopg)",
     "two sessions' temporary tables: pg_class, pg_table_is_visible, information_schema, "
     "to_regclass"),
    ("test_psql_tab_completion_equals_postgres", "psql",
     "tab completion typed in a terminal (corpus/psql_completion.txt)"),
    ("test_psql_sees_a_feature_applied", "psql", "a feature applied while connected shows up"),
    ("test_psql_du_lists_the_users", "psql", "`\\du` lists the users connected now"),
    ("test_captured_catalog_query_equals_postgres[psql", "psql",
     "captured psql 15 `\\d` queries"),
    ("test_inspector_equals_postgres[psycopg2", "SQLAlchemy 2 (psycopg2)",
     "inspector: schemas, tables, columns, pk, fk, indexes, unique, has_table, comments"),
    ("test_inspector_equals_postgres[asyncpg", "SQLAlchemy 2 (asyncpg)",
     "inspector: schemas, tables, columns, pk, fk, indexes, unique, has_table, comments"),
    ("test_inspector_equals_postgres[psycopg]", "SQLAlchemy 2 (psycopg)",
     "inspector: schemas, tables, columns, pk, fk, indexes, unique, has_table, comments"),
    ("test_captured_catalog_query_equals_postgres[sqlalchemy", "SQLAlchemy 2 (psycopg)",
     "captured connect probes and reflection queries"),
    ("test_pandas_read_sql_table", "pandas", "`read_sql_table` through SQLAlchemy"),
    ("test_database_metadata_equals_postgres", "pgjdbc",
     "DatabaseMetaData: getTables, getColumns, getPrimaryKeys, getIndexInfo, getFunctions, "
     "getFunctionColumns, getProcedures, getProcedureColumns, getImportedKeys, "
     "getExportedKeys, getTableTypes, ResultSetMetaData, getTypeInfo (corpus/pgjdbc.txt)"),
    ("test_captured_catalog_query_equals_postgres[pgjdbc", "pgjdbc",
     "captured DatabaseMetaData queries"),
    ("test_asyncpg_catalog_queries", "asyncpg", "catalog queries with parameters"),
    ("test_adbc_get_objects_equals_postgres", "ADBC (adbc-driver-postgresql)",
     "`adbc_get_objects` (schemas, tables, columns, constraints), `adbc_get_table_schema`"),
    ("test_polars_read_database_uri", "polars", "`read_database_uri` (ADBC engine)"),
    ("test_connectorx_read_sql_equals_postgres", "connectorx",
     "`read_sql` with protocol binary, cursor, simple, csv"),
    ("test_connectorx_partitioned_and_catalog_reads_equal_postgres", "connectorx",
     "partitioned and multi-query reads, multi-row results, a catalog query, polars "
     "`engine=\"connectorx\"`"),
    ("test_catalog_query_equals_postgres", "any (psycopg)",
     "functions, casts, views, PostgreSQL's built-in rows (pg_proc, pg_operator, pg_opclass, "
     "pg_views, pg_extension, pg_cast, pg_type), int2vector/oidvector and regproc columns, "
     "`SELECT *` on catalogs (corpus/functions.sql)"),
    ("test_catalog_answers_follow_the_registry", "any (psycopg)",
     "catalog follows CREATE/DROP FEATURE at once"),
    ("test_catalog_queries_join_fsql_data", "any (psycopg)",
     "catalog queries joined with offline/sources/fsql data; online and session tables "
     "refused with 0A000"),
    ("test_unknown_names_in_reg_casts_fail_as_in_postgres", "any (psycopg)",
     "`'x'::regclass`/`::regtype` of an unknown name: 42P01/42704 with PostgreSQL's message; "
     "`to_regclass` NULL"),
    ("test_rebuild_reads_no_history", "server", "a catalog rebuild reads no run history"),
]

#: what the tests do not reach (shown as not yet supported)
NOT_YET = [
    ("psql", "`\\dt+`/`\\d+` sizes are 0 bytes"),
]


def run_tests() -> dict[str, list[tuple[str, bool]]]:
    """Outcomes by test function: [(parameter id, passed)]."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={report}", "tests/catalog"], cwd=ROOT, check=False)
        tree = ET.parse(report)
    outcomes: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for case in tree.iter("testcase"):
        name = case.get("name", "")
        failed = any(child.tag in ("failure", "error", "skipped") for child in case)
        outcomes[name].append((name, not failed))
    return outcomes


def table(outcomes: dict[str, list[tuple[str, bool]]]) -> str:
    rows = ["| client | operation | result |", "| --- | --- | --- |"]
    for prefix, client, operation in OPERATIONS:
        cases = [ok for name, results in outcomes.items() if name.startswith(prefix)
                 for _n, ok in results]
        if not cases:
            status = "not run"
        elif all(cases):
            status = "works" if prefix in FSQL_ONLY else "equal to PostgreSQL 15"
            if len(cases) > 1:
                status += f" ({len(cases)} checks)"
        else:
            status = f"FAILS ({cases.count(False)} of {len(cases)})"
        rows.append(f"| {client} | {operation} | {status} |")
    for client, what in NOT_YET:
        rows.append(f"| {client} | {what} | not yet supported |")
    return "\n".join(rows)


def main() -> None:
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:start] + "\n" + table(run_tests()) + "\n" + text[end:])


if __name__ == "__main__":
    main()
