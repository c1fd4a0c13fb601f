"""RowDescription metadata compared with a real PostgreSQL 15 holding the same tables: type
OIDs, type modifiers (numeric(p,s), varchar(n), char(n), timestamp(p)), jsonb, and whether a
column comes straight from a table (table OID and attribute number set) or is an expression
(both 0). Read through psycopg's result (``ftype``/``fmod``/``ftable``/``ftablecol``),
``cursor.description`` and pgjdbc's ResultSetMetaData."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.server.conftest import FsqlServer
from tests.services.jdbc import JAR

pytestmark = pytest.mark.server

JAVA_SRC = Path(__file__).parent / "java" / "FsqlWireProbe.java"

TABLE = ("CREATE TEMP TABLE m (id bigint, price numeric(10,2), code varchar(20), flag char(5), "
         "at timestamp(3), atz timestamptz(2), doc jsonb, raw json, note text, n numeric)")
INSERT = ("INSERT INTO m VALUES (1, 12.5, 'abc', 'x', '2024-01-02 03:04:05.123', "
          "'2024-01-02 03:04:05.12+00', '{\"a\": 1}', '{\"b\": 2}', 'hello', 7)")

QUERIES = [
    "SELECT * FROM m",
    "SELECT price, code AS c, m.doc, id + 1 AS next_id FROM m",
    "SELECT m.* FROM m",
    "SELECT 2.25::numeric(10,2) AS a, 'x'::varchar(7) AS b, '{}'::jsonb AS c, "
    "'x'::char(3) AS d, now()::timestamp(0) AS e, 1 AS f",
    "SELECT count(*) AS n, max(price) AS top FROM m",
    "SELECT count(*), 1 + 1 FROM m UNION ALL SELECT id, 3 FROM m",
    "SELECT a.id, b.price, note, a.* FROM m a JOIN m2 b ON a.id = b.id",
    "SELECT * FROM m JOIN m2 ON m.id = m2.id",
    "SELECT m2.*, m.code FROM m2, m",
]


def shape(conn: Any, query: str) -> list[tuple[str, int, int, bool, int]]:
    """(name, type OID, typmod, has a table OID, attribute number) per result column."""
    cur = conn.execute(query)
    res = cur.pgresult
    assert res is not None
    return [(res.fname(i).decode(), res.ftype(i), res.fmod(i), res.ftable(i) != 0,
             res.ftablecol(i)) for i in range(res.nfields)]


@pytest.fixture(scope="module")
def both(postgres_url: str, fsql_server: FsqlServer) -> Any:
    import psycopg

    pg = psycopg.connect(postgres_url, autocommit=True)
    fsql = psycopg.connect(fsql_server.dsn(), autocommit=True)
    for conn in (pg, fsql):
        conn.execute(TABLE)
        conn.execute(INSERT)
        conn.execute("CREATE TEMP TABLE m2 (id bigint, price numeric(12,4))")
    yield pg, fsql
    pg.close()
    fsql.close()


@pytest.mark.parametrize("query", QUERIES)
def test_row_description_matches_postgresql(both: Any, query: str) -> None:
    pg, fsql = both
    assert shape(fsql, query) == shape(pg, query)


def test_table_oids_are_the_catalogs(both: Any) -> None:
    """The table OID of a column is the table's pg_class OID, in both servers."""
    for conn in both:
        cur = conn.execute("SELECT id, note FROM m")
        assert cur.pgresult is not None
        oid = conn.execute("SELECT 'm'::regclass::oid").fetchone()[0]
        assert [cur.pgresult.ftable(i) for i in range(2)] == [oid, oid]


def test_psycopg_description_precision_and_scale(both: Any) -> None:
    pg, fsql = both
    for conn in (pg, fsql):
        cur = conn.execute("SELECT price, code, flag, at, doc FROM m")
        got = [(d.name, d.type_code, d.precision, d.scale, d.display_size)
               for d in cur.description]
        assert got == [("price", 1700, 10, 2, None), ("code", 1043, None, None, 20),
                       ("flag", 1042, None, None, 5), ("at", 1114, 3, None, None),
                       ("doc", 3802, None, None, None)]
        assert cur.fetchone()[4] == {"a": 1}


def test_pgjdbc_metadata(postgres_url: str, fsql_server: FsqlServer, tmp_path: Path) -> None:
    """pgjdbc's ResultSetMetaData: precision, scale, type name and base table name."""
    import subprocess

    classes = tmp_path  # compiled against pgjdbc: the probe uses PGResultSetMetaData
    subprocess.run(["javac", "-cp", str(JAR), "-d", str(classes), str(JAVA_SRC)], check=True,
                   timeout=120)
    outputs = []
    for url, user in ((_jdbc_url(postgres_url), "postgres"),
                      (f"jdbc:postgresql://127.0.0.1:{fsql_server.port}/fsql", "tester")):
        result = subprocess.run(
            ["java", "-cp", f"{JAR}:{classes}", "FsqlWireProbe", url, user,
             "exec|" + TABLE, "exec|" + INSERT,
             "meta|SELECT id, price, code, doc, id * 2 AS twice FROM m",
             "typed|6|int:1|SELECT count(*) FROM m WHERE id >= ?",
             "typed|6|short:1|SELECT count(*) FROM m WHERE id >= ?",
             "typed|6|double:12.5|SELECT count(*) FROM m WHERE price = ?",
             "typed|6|decimal:12.50|SELECT count(*) FROM m WHERE price = ?",
             "typed|6|bool:true|SELECT count(*) FROM m WHERE (id = 1) = ?",
             "typed|6|string:abc|SELECT count(*) FROM m WHERE code = ?",
             "typed|6|date:2024-01-02|SELECT count(*) FROM m WHERE at::date = ?",
             "typed|6|timestamp:2024-01-02 03:04:05.123|SELECT count(*) FROM m WHERE at = ?",
             # a parameter without a value: pgjdbc binds none, PostgreSQL answers 08P01 as an
             # ERROR and the connection goes on
             "error|SELECT $1 AS x", "error|SELECT nosuch_column FROM m"],
            capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout.splitlines())
    assert outputs[1] == outputs[0]
    assert "2\tprice\tnumeric\t10\t2\tm" in outputs[0]
    assert outputs[0].count("COUNT\t1") == 8
    assert outputs[0][-4:] == ["SQLSTATE\t08P01", "ALIVE\t1", "SQLSTATE\t42703", "ALIVE\t1"]


def _jdbc_url(postgres_url: str) -> str:
    """postgresql://user@host:port/db → jdbc:postgresql://host:port/db"""
    rest = postgres_url.split("://", 1)[1]
    host = rest.split("@", 1)[-1]
    return "jdbc:postgresql://" + host


def test_quote_functions_and_create_table_as_match_postgresql(both: Any) -> None:
    """quote_ident/quote_literal/quote_nullable over table columns (not only in catalog
    queries), the ``SELECT n`` tag of CREATE TABLE AS, COLLATE "C" in filters and ORDER BY."""
    answers = []
    for conn in both:
        cur = conn.execute("CREATE TEMP TABLE names AS SELECT * FROM (VALUES ('abc'), ('Ab c'), "
                           "('select'), ('name'), ('it''s'), ('a\\b'), (NULL)) v(s)")
        assert cur.statusmessage == "SELECT 7"
        rows = conn.execute(
            "SELECT quote_ident(s), quote_literal(s), quote_nullable(s), quote_literal(42) "
            "FROM names ORDER BY s COLLATE \"C\" NULLS LAST").fetchall()
        filtered = conn.execute(
            "SELECT s FROM names WHERE s COLLATE \"C\" > 'a' ORDER BY 1").fetchall()
        answers.append((rows, filtered))
        conn.execute("DROP TABLE names")
    assert answers[0] == answers[1]
    assert answers[0][0][0] == ('"Ab c"', "'Ab c'", "'Ab c'", "'42'")


def test_error_texts_are_postgresqls(both: Any) -> None:
    """Unknown functions and columns, bad input, ambiguous names: PostgreSQL's SQLSTATE and
    message shape (no "Binder Error:" prefix), the hint naming every column of the table."""
    import psycopg

    pg, fsql = both
    for sql, sqlstate in (("SELECT nosuch(1)", "42883"),
                          ("SELECT ctid_x FROM m", "42703"),
                          ("SELECT id FROM m WHERE id = 'a'", "22P02"),
                          ("SELECT id FROM m a JOIN m b ON a.id = b.id", "42702")):
        messages = []
        for conn in (pg, fsql):
            with pytest.raises(psycopg.Error) as info:
                conn.execute(sql)
            assert info.value.sqlstate == sqlstate, sql
            messages.append(info.value.diag.message_primary or "")
        assert "Error:" not in messages[1]
        if sqlstate != "42883":  # PostgreSQL names the argument types: nosuch(integer)
            assert messages[1] == messages[0]
    with pytest.raises(psycopg.errors.UndefinedColumn) as info:
        fsql.execute("SELECT ctid_x FROM m")
    assert info.value.diag.message_hint == (
        "Columns here: id, price, code, flag, at, atz, doc, raw, note, n.")


def test_pg_get_functiondef_matches_postgresql(both: Any) -> None:
    """What ``\\sf`` prints for built-in functions (plain, set-returning with a support
    function, window, procedure-less C functions): the same text as PostgreSQL 15's."""
    query = ("SELECT oid::int, pg_get_functiondef(oid) FROM pg_proc WHERE proname IN "
             "('now', 'lower', 'generate_series', 'row_number', 'md5', 'pg_sleep') "
             "ORDER BY oid")
    pg, fsql = both
    expected = pg.execute(query).fetchall()
    assert len(expected) >= 6
    assert fsql.execute(query).fetchall() == expected



def test_pg_get_functiondef_of_an_aggregate_is_42809(both: Any) -> None:
    """An aggregate has no definition to print: PostgreSQL's error, SQLSTATE and message."""
    query = "SELECT pg_get_functiondef(2108)"  # sum(int4), an oid both servers share
    answers = []
    for conn in both:
        with pytest.raises(psycopg.errors.WrongObjectType) as info:
            conn.execute(query)
        answers.append(info.value.diag.message_primary)
    assert answers[0] == answers[1] == '"sum" is an aggregate function'
