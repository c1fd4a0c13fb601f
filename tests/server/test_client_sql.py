"""Client SQL idioms that fsql used to refuse, each run against fsql and a real PostgreSQL 15
holding the same temporary table, compared by column names and rows.

The idioms: placeholders separated only by punctuation (pgjdbc's ``IN (?,?)`` and batch
``VALUES (?,?)``, psycopg 3, postgres.js), PostgreSQL array literals and array parameters on
the DuckDB path (psycopg 3 and Django bind lists that way), psqlODBC's parenthesized joins
and ``'...'::name`` in its catalog queries, pgcli's ``proallargtypes::regtype[]`` and its
``relkind = ANY(%s)`` listing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server]

TABLE = "clients_t"
ROWS = [(1, "a", 1.5), (2, "b", None), (3, "c d", 2.25), (4, None, 0.0)]


def _setup(conn: psycopg.Connection) -> None:
    conn.execute(f"CREATE TEMP TABLE {TABLE} (id INTEGER, name TEXT, score DOUBLE PRECISION)")
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO {TABLE} VALUES (%s, %s, %s)", ROWS)
    conn.execute("CREATE TEMP TABLE clients_sink (id INTEGER, name TEXT)")


@pytest.fixture(scope="module")
def both(fsql_server: FsqlServer, postgres_url: str
         ) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """(fsql, PostgreSQL 15) sessions holding the same temporary tables."""
    with psycopg.connect(fsql_server.dsn(), autocommit=True) as fsql, \
            psycopg.connect(postgres_url, autocommit=True) as pg:
        for conn in (fsql, pg):
            _setup(conn)
        yield fsql, pg


def _answer(conn: psycopg.Connection, sql: str, params: Any,
            prepare: bool | None) -> tuple[list[str], list[tuple[Any, ...]]]:
    cur = conn.execute(sql, params, prepare=prepare)
    return [d.name for d in cur.description or []], cur.fetchall() if cur.description else []


#: (statement, parameters): the answer must be PostgreSQL's
SAME_ANSWER = [
    # placeholders separated only by punctuation
    (f"SELECT id, name FROM {TABLE} WHERE id IN (%s,%s) ORDER BY id", [1, 3]),
    (f"SELECT id FROM {TABLE} WHERE name IN (%s,%s,%s) ORDER BY id", ["a", "c d", "zz"]),
    ("SELECT coalesce(%s,%s) AS c", [None, "x"]),
    ("SELECT %s||%s AS s", ["ab", "cd"]),
    (f"SELECT ARRAY[%s,%s] AS arr FROM {TABLE} WHERE id = 1", ["p", "q"]),
    (f"SELECT id FROM {TABLE} WHERE id = %s OR (id=%s) ORDER BY id", [2, 4]),
    # PostgreSQL array literals and array parameters (psycopg binds a list as an array)
    (f"SELECT id FROM {TABLE} WHERE name = ANY('{{a,\"c d\"}}') ORDER BY id", None),
    (f"SELECT id FROM {TABLE} WHERE name <> ALL('{{a,b}}') ORDER BY id", None),
    (f"SELECT id FROM {TABLE} WHERE name = ANY(%s) ORDER BY id", [["b", "c d"]]),
    (f"SELECT id FROM {TABLE} WHERE id = ANY(%s) ORDER BY id", [[1, 4, 9]]),
    (f"SELECT '{{a,\"b c\",NULL}}'::text[] AS arr FROM {TABLE} WHERE id = 1", None),
    (f"SELECT '{{1,2,3}}'::int[] AS arr FROM {TABLE} WHERE id = 1", None),
    # psqlODBC: parenthesized joins (SQLColumns, SQLStatistics), '...'::name (SQLForeignKeys)
    (f"SELECT a.id FROM (({TABLE} a JOIN {TABLE} b ON a.id = b.id) "
     f"JOIN {TABLE} c ON c.id = a.id) WHERE a.score > 0 ORDER BY a.id", None),
    ("SELECT a.attname, a.atttypid, a.attnum FROM ((pg_catalog.pg_class c "
     "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace) "
     "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid) "
     f"WHERE c.relname = '{TABLE}' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
     None),
    ("SELECT n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname = 'pg_catalog'::name",
     None),
    # pgcli: its function query (regtype arrays, regtypes compared) and \dt's relkind list
    ("SELECT n.nspname schema_name, p.proname func_name, "
     "COALESCE(proallargtypes::regtype[], proargtypes::regtype[])::text[] AS arg_types, "
     "prorettype::regtype::text return_type, p.prokind = 'a' is_aggregate "
     "FROM pg_catalog.pg_proc p INNER JOIN pg_catalog.pg_namespace n "
     "ON n.oid = p.pronamespace WHERE p.prorettype::regtype != 'trigger'::regtype "
     "AND p.proname IN ('abs', 'substr') ORDER BY 1, 2, 3", None),
    ("SELECT c.relname, c.relkind FROM pg_catalog.pg_class c "
     f"WHERE c.relkind = ANY(%s) AND c.relname = '{TABLE}'", [["r", "p"]]),
    ("SELECT c.relname FROM pg_catalog.pg_class c "
     f"WHERE c.relkind = ANY('{{r,p,\"\"}}') AND c.relname = '{TABLE}'", None),
    # quote_ident / quote_literal / quote_nullable (drivers and ORMs build SQL with them)
    (f"SELECT quote_ident(name), quote_literal(name), quote_nullable(name) FROM {TABLE} "
     "ORDER BY id", None),
    ("SELECT quote_ident('user') AS a, quote_ident('name') AS b, quote_ident('Mixed') AS c, "
     "quote_literal('O''R') AS d, quote_literal(E'a\\\\b') AS e", None),
    # psql's \sf and pgcli: pg_get_functiondef (options line, SUPPORT, SETOF, $function$)
    ("SELECT p.oid::int, pg_catalog.pg_get_functiondef(p.oid) FROM pg_catalog.pg_proc p "
     "WHERE p.oid IN (1066, 1299, 2626, 1396, 870) ORDER BY 1", None),
    # pgcli's casing query names a CTE's unaliased count(1) and row_number() as PostgreSQL
    # does, and refers to them by those names (catalog and DuckDB paths)
    ("WITH w AS (SELECT n.nspname, COUNT(1) FROM pg_catalog.pg_namespace n "
     "WHERE n.nspname IN ('pg_catalog', 'information_schema') GROUP BY n.nspname), "
     "o AS (SELECT nspname, ROW_NUMBER() OVER (ORDER BY Count DESC, nspname) FROM w) "
     "SELECT nspname, Row_Number FROM o ORDER BY row_number", None),
    (f"WITH w AS (SELECT name, COUNT(1) FROM {TABLE} GROUP BY name), "
     "o AS (SELECT name, ROW_NUMBER() OVER (ORDER BY Count DESC, name) FROM w) "
     "SELECT name, row_number FROM o ORDER BY row_number", None),
]


@pytest.mark.parametrize("prepare", [False, True], ids=["simple", "prepared"])
@pytest.mark.parametrize(("sql", "params"), SAME_ANSWER, ids=range(len(SAME_ANSWER)))
def test_the_answer_is_postgresqls(both: tuple[psycopg.Connection, psycopg.Connection],
                                   sql: str, params: Any, prepare: bool) -> None:
    fsql, pg = both
    assert _answer(fsql, sql, params, prepare) == _answer(pg, sql, params, prepare)


def test_batch_inserts_with_punctuation_placeholders(
        both: tuple[psycopg.Connection, psycopg.Connection]) -> None:
    """pgjdbc's reWriteBatchedInserts: ``INSERT ... VALUES ($1,$2),($3,$4)``."""
    for conn in both:
        conn.execute("INSERT INTO clients_sink VALUES (%s,%s),(%s,%s)", [7, "x", 8, None])
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO clients_sink VALUES (%s,%s)", [(9, "y"), (10, "z")])
    fsql, pg = both
    query = "SELECT * FROM clients_sink ORDER BY id"
    assert fsql.execute(query).fetchall() == pg.execute(query).fetchall() == [
        (7, "x"), (8, None), (9, "y"), (10, "z")]


def test_create_table_as_reports_its_rows(
        both: tuple[psycopg.Connection, psycopg.Connection]) -> None:
    for conn in both:
        cur = conn.execute(f"CREATE TEMP TABLE clients_ctas AS SELECT * FROM {TABLE} "
                           "WHERE id > 1")
        assert (cur.statusmessage, cur.rowcount) == ("SELECT 3", 3)


def test_dollar_quotes_still_read_as_strings(fsql_server: FsqlServer) -> None:
    """``$tag$...$tag$`` and ``$$...$$`` stay strings: only ``$<digit>`` is a parameter."""
    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT $$a,$1$$ AS s").fetchone() == ("a,$1",)
        assert conn.execute("SELECT $q$x$q$ AS s").fetchone() == ("x",)
