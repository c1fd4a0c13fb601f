"""Write the compatibility table and the corpus table of docs/clients.md from test results.

Runs ``pytest tests/catalog`` and the real-client tests of tests/server (``CLIENT_TESTS``: node,
ODBC, pgjdbc idioms, pgcli, Spark and the differential corpus) with a JUnit report, groups the
outcomes by client and operation (each differential test compares fsql with a real PostgreSQL
15; a strict xfail is a known failure with its issue) and replaces the text between the
``compat-table`` and ``corpus-table`` markers of docs/clients.md. Usage, from the repository
root::

    python -m tests.catalog.compat_table
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "clients.md"
BEGIN, END = "<!-- compat-table:begin -->", "<!-- compat-table:end -->"
CORPUS_BEGIN, CORPUS_END = "<!-- corpus-table:begin -->", "<!-- corpus-table:end -->"
CLIENT_TESTS = ["tests/server/test_clients_node.py", "tests/server/test_clients_odbc.py",
                "tests/server/test_clients_jdbc.py", "tests/server/test_clients_pgcli.py",
                "tests/server/test_clients_spark.py", "tests/server/test_clients_duckdb.py",
                "tests/server/test_corpus.py"]

#: tests that only check fsql (the others compare with PostgreSQL 15)
FSQL_ONLY = ("test_psql_sees_a_feature_applied", "test_psql_du_lists_the_users", "test_catalog_answers_follow_the_registry",
             "test_pandas_read_sql_table", "test_polars_read_database_uri",
             "test_catalog_queries_join_fsql_data", "test_rebuild_reads_no_history",
             "test_internal_names_cannot_be_created")

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
    ("test_node_client_equals_postgres[pg-", "node-postgres (npm pg)",
     "lookups, parameters, `IN ($1, $2)`, `= ANY($1)`, scans, offline/sources reads, errors, "
     "temporary tables, types"),
    ("test_node_client_equals_postgres[postgres-", "postgres.js (npm postgres)",
     "lookups, tagged-template parameters, `sql(list)` in `IN`, scans, offline/sources reads, "
     "errors, the insert helper"),
    ("test_psqlodbc_equals_postgres", "psqlODBC (unixODBC, pyodbc)",
     "a query with `?`, `IN (?,?)`, SQLTables, SQLColumns, SQLStatistics, SQLPrimaryKeys, "
     "SQLForeignKeys"),
    ("test_pgjdbc_prepared_idioms_equal_postgres", "pgjdbc",
     "PreparedStatement `IN (?,?)`, `executeBatch` into a temporary table, scans and "
     "`WHERE 1=0` probes of `features.user`"),
    ("test_pgcli_equals_postgres", "pgcli (in tmux)",
     "completion of a table name and a column name, `\\dt features.*`, `\\d features.user`"),
    ("test_spark_jdbc_equals_postgres", "Spark 4.3 (JDBC data source)",
     "`dbtable` reads of `features.user` and `sources.orders`, `query`, a partitioned read of "
     "`offline.*`, a JDBC write read back by Spark"),
    ("test_spark_jdbc_write_is_read_back", "Spark 4.3 (JDBC data source)",
     "a JDBC write (`overwrite` from two tasks' connections, then `append`) read back by "
     "psycopg on another connection, listed in `public`"),
    ("test_duckdb_postgres_extension_equals_postgres", "DuckDB 1.4 postgres extension",
     "`ATTACH ... (TYPE postgres)`, its table list, reads of `sources.*`, `offline.*`, "
     "`features.user`, `postgres_query`, its `ctid BETWEEN` scan filter"),
    ("test_ctid_ranges_on_fsql_relations", "any (psycopg)",
     "`ctid BETWEEN '(0,0)'::tid AND '(4294967295,0)'::tid` in a COPY (a narrower range: "
     "0A000)"),
    ("test_internal_relations_are_in_no_catalog_view", "psql",
     "after reads of `sources.*`, `offline.*`, `features.*`: `\\dt`, pg_class, pg_attribute, "
     "information_schema list no internal relation"),
    ("test_visibility_follows_search_path", "psql",
     "`SET search_path` then `\\dt` and `pg_table_is_visible` (a temporary table shadowing a "
     "table of the path)"),
    ("test_internal_names_cannot_be_created", "any (psycopg)",
     "a table named `__fsql_*` is refused (42939)"),
    ("test_pg_indexes_equals_postgres", "any (psycopg)",
     "pg_indexes (no TOAST tables' indexes) with their definitions"),
    ("test_function_argument_defaults_equal_postgres", "any (psycopg)",
     "`pg_get_expr(proargdefaults, 0)` of the built-in functions"),
    ("test_row_descriptions_name_the_source_columns", "corpus (every client below)",
     "RowDescription's table OID and attribute number of each column"),
    ("test_corpus_statement", "corpus (every client below)",
     "the statements real clients send, replayed (see \"Differential corpus\")"),
]

#: what the tests do not reach (shown as not yet supported)
NOT_YET = [
    ("psql", "`\\dt+`/`\\d+` sizes are 0 bytes"),
]


def run_tests() -> tuple[dict[str, list[tuple[str, str]]], dict[str, str]]:
    """Outcomes by test name: [(name, "passed" | "xfailed" | "failed")], and the corpus
    statements' outcomes (equal, catalog_types, rows_vary, different) by statement id."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        corpus = Path(tmp) / "corpus.json"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={report}", "tests/catalog", *CLIENT_TESTS],
                       cwd=ROOT, check=False,
                       env={**os.environ, "FSQL_CORPUS_REPORT": str(corpus)})
        tree = ET.parse(report)
        properties = json.loads(corpus.read_text()) if corpus.exists() else {}
    outcomes: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for case in tree.iter("testcase"):
        name = case.get("name", "")
        tags = {child.tag: child for child in case}
        if "skipped" in tags and tags["skipped"].get("type") == "pytest.xfail":
            result = "xfailed"
        elif any(tag in tags for tag in ("failure", "error", "skipped")):
            result = "failed"
        else:
            result = "passed"
        outcomes[name].append((name, result))
    return outcomes, properties


def table(outcomes: dict[str, list[tuple[str, str]]]) -> str:
    rows = ["| client | operation | result |", "| --- | --- | --- |"]
    for prefix, client, operation in OPERATIONS:
        cases = [result for name, results in outcomes.items() if name.startswith(prefix)
                 for _n, result in results]
        failed, known = cases.count("failed"), cases.count("xfailed")
        if not cases:
            status = "not run"
        elif failed:
            status = f"FAILS ({failed} of {len(cases)})"
        elif not known:
            status = "works" if prefix in FSQL_ONLY else "equal to PostgreSQL 15"
            if len(cases) > 1:
                status += f" ({len(cases)} checks)"
        else:
            status = (f"equal to PostgreSQL 15 in {len(cases) - known} of {len(cases)}; "
                      f"{known} known failing (issue #14)")
        rows.append(f"| {client} | {operation} | {status} |")
    for client, what in NOT_YET:
        rows.append(f"| {client} | {what} | not yet supported |")
    return "\n".join(rows)


def corpus_table(outcomes: dict[str, list[tuple[str, str]]], properties: dict[str, str]) -> str:
    """Per client of the corpus: statements, equal, deliberately different (on purpose, rows
    that vary by nature, catalog column types), known failing, failing."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, results in outcomes.items():
        if not name.startswith("test_corpus_statement["):
            continue
        statement_id = name.removeprefix("test_corpus_statement[").removesuffix("]")
        client = statement_id.split(":", 1)[0]
        for _n, result in results:
            kind = {"xfailed": "known", "failed": "failing"}.get(result)
            if kind is None:
                kind = "equal" if properties.get(statement_id) == "equal" else "deliberate"
            counts[client][kind] += 1
            counts[client]["total"] += 1
    rows = ["| client | statements | equal | deliberately different | known failing "
            "(issue #14) | failing |", "| --- | --- | --- | --- | --- | --- |"]
    total: dict[str, int] = defaultdict(int)
    for client in sorted(counts):
        c = counts[client]
        for key, value in c.items():
            total[key] += value
        rows.append(f"| {client} | {c['total']} | {c['equal']} | {c['deliberate']} | "
                    f"{c['known']} | {c['failing']} |")
    rows.append(f"| **all** | {total['total']} | {total['equal']} | {total['deliberate']} | "
                f"{total['known']} | {total['failing']} |")
    return "\n".join(rows)


def replace(text: str, begin: str, end: str, body: str) -> str:
    start, stop = text.index(begin) + len(begin), text.index(end)
    return text[:start] + "\n" + body + "\n" + text[stop:]


def main() -> None:
    outcomes, properties = run_tests()
    text = replace(DOC.read_text(), BEGIN, END, table(outcomes))
    text = replace(text, CORPUS_BEGIN, CORPUS_END, corpus_table(outcomes, properties))
    DOC.write_text(text)


if __name__ == "__main__":
    main()
