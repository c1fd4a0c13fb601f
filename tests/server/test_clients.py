"""Real clients against the real ``fsql serve`` process: psql, psycopg 3, psycopg2, asyncpg,
pg8000 and pgjdbc, each doing what it does in its own way (the message sequences differ:
see pgwire-captures/)."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from tests.server.conftest import FsqlServer, cancelling
from tests.services.jdbc import JAR, compile_jdbc_probe

pytestmark = pytest.mark.server

JAVA_SRC = Path(__file__).parent / "java" / "FsqlJdbcProbe.java"


def psql(server: FsqlServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", "-X", "-h", "127.0.0.1", "-p", str(server.port), "-U", "tester", "-d", "fsql",
         "-v", "ON_ERROR_STOP=1", *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )


# --------------------------------------------------------------------------------------- psql


def test_psql_single_and_multi_statement(fsql_server: FsqlServer) -> None:
    out = psql(fsql_server, "-A", "-t", "-c", "SELECT 40 + 2 AS answer")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"
    # several statements in one -c: one Query message, psql 15 prints every result
    out = psql(fsql_server, "-A", "-t", "-c",
               "CREATE TEMP TABLE m (x INT); INSERT INTO m VALUES (1), (2); SELECT sum(x) FROM m")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == ["CREATE TABLE", "INSERT 0 2", "3"]


def test_psql_reports_errors_with_sqlstate_and_position(fsql_server: FsqlServer) -> None:
    out = psql(fsql_server, "-v", "VERBOSITY=verbose", "-c", "SELECT * FROM no_such_table")
    assert out.returncode != 0
    assert "ERROR:  42P01" in out.stderr
    assert 'relation "no_such_table" does not exist' in out.stderr
    assert "LINE 1: SELECT * FROM no_such_table" in out.stderr
    out = psql(fsql_server, "-v", "VERBOSITY=verbose", "-c", "SELECT (1 + ")
    assert "ERROR:  42601" in out.stderr


def test_psql_copy_in_and_out(fsql_server: FsqlServer, tmp_path: Path) -> None:
    data = tmp_path / "spine.csv"
    data.write_text("user_id,ts\nu1,2024-01-02 03:04:05\nu2,2024-02-03 00:00:00\n")
    script = (
        "CREATE TEMP TABLE spine (user_id VARCHAR, ts TIMESTAMP);\n"
        f"\\copy spine FROM '{data}' WITH (FORMAT csv, HEADER)\n"
        "\\copy (SELECT user_id, ts FROM spine ORDER BY user_id) TO STDOUT WITH (FORMAT csv)\n"
    )
    out = psql(fsql_server, "-f", "-", stdin=script)
    assert out.returncode == 0, out.stderr
    assert "COPY 2" in out.stdout
    assert "u1,2024-01-02 03:04:05\nu2,2024-02-03 00:00:00" in out.stdout


# ---------------------------------------------------------------------------------- psycopg 3


def test_psycopg_simple_parameters_and_binary(fsql_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn()) as conn:
        assert conn.info.server_version >= 150000
        assert conn.execute("SELECT 1").fetchone() == (1,)
        row = conn.execute("SELECT %s::int + 1 AS a, %s AS b, %s::float8 AS c",
                           [41, "x", 1.5]).fetchone()
        assert row == (42, "x", 1.5)
        cur = conn.cursor(binary=True)
        row = cur.execute(
            "SELECT 1::int8 AS a, 2.25::numeric(10, 2) AS b, true AS c, DATE '2020-01-02' AS d, "
            "TIMESTAMP '2020-01-02 03:04:05.5' AS e, INTERVAL '1 day 2 hours' AS f, "
            "'\\x0102'::bytea AS g, [1, 2, NULL] AS h, %s::int4 AS i",
            [7],
        ).fetchone()
        assert row == (1, Decimal("2.25"), True, dt.date(2020, 1, 2),
                       dt.datetime(2020, 1, 2, 3, 4, 5, 500000),
                       dt.timedelta(days=1, hours=2), b"\x01\x02", [1, 2, None], 7)
        assert [d.name for d in cur.description] == list("abcdefghi")


def test_psycopg_prepared_after_repeated_execution(fsql_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), prepare_threshold=2) as conn:
        results = [conn.execute("SELECT %s::int * 2", [i]).fetchone()[0] for i in range(6)]
        assert results == [0, 2, 4, 6, 8, 10]
        # psycopg prepared it under a name after the threshold
        assert conn._prepared._names, "psycopg did not prepare the statement"


def test_psycopg_pipeline_mode(fsql_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        with conn.pipeline():
            cursors = [conn.execute("SELECT %s::int + 100", [i]) for i in range(5)]
            bad = conn.cursor()
        assert [c.fetchone()[0] for c in cursors] == [100, 101, 102, 103, 104]
        with pytest.raises(psycopg.errors.UndefinedTable):
            with conn.pipeline():
                bad.execute("SELECT * FROM missing_table")
        assert conn.execute("SELECT 'still alive'").fetchone() == ("still alive",)


def test_psycopg_server_side_cursor(fsql_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn()) as conn:
        with conn.cursor(name="big") as cur:
            cur.execute("SELECT x, x * x AS sq FROM range(25) t(x) ORDER BY x")
            first = cur.fetchmany(10)
            rest = cur.fetchall()
        assert first == [(i, i * i) for i in range(10)]
        assert rest == [(i, i * i) for i in range(10, 25)]


def test_psycopg_cancel_keeps_session(fsql_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        with cancelling(conn), pytest.raises(psycopg.errors.QueryCanceled) as info:
            conn.execute("SELECT count(*) FROM range(100000000000) a")
        assert info.value.sqlstate == "57014"
        assert conn.execute("SELECT 'after cancel'").fetchone() == ("after cancel",)


def test_psycopg_error_sqlstates(fsql_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        cases = {
            "SELECT * FROM nope": psycopg.errors.UndefinedTable,
            "SELECT nope_column FROM range(3)": psycopg.errors.UndefinedColumn,
            "SELEC 1": psycopg.errors.SyntaxError,
            "SELECT 'abc'::int": psycopg.errors.InvalidTextRepresentation,
        }
        for sql, error in cases.items():
            with pytest.raises(error):
                conn.execute(sql)
        with pytest.raises(psycopg.errors.SyntaxError) as info:
            conn.execute("SELECT 1 FROM range(2) WHERE")
        assert info.value.diag.statement_position is not None


def test_psycopg_transaction_status(fsql_server: FsqlServer) -> None:
    import psycopg
    from psycopg.pq import TransactionStatus

    with psycopg.connect(fsql_server.dsn()) as conn:
        conn.execute("SELECT 1")
        assert conn.info.transaction_status == TransactionStatus.INTRANS
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM nope")
        assert conn.info.transaction_status == TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.rollback()
        assert conn.info.transaction_status == TransactionStatus.IDLE
        assert conn.execute("SELECT 2").fetchone() == (2,)


# ----------------------------------------------------------------------------------- psycopg2


def test_psycopg2(fsql_server: FsqlServer) -> None:
    import psycopg2
    import psycopg2.errors

    conn = psycopg2.connect(host="127.0.0.1", port=fsql_server.port, user="tester",
                            dbname="fsql")
    try:
        cur = conn.cursor()
        cur.execute("SELECT %s::int AS a, %s AS b, %s AS c", (5, "five", None))
        assert cur.fetchall() == [(5, "five", None)]
        cur.execute("SELECT DATE '2024-05-06', TIMESTAMPTZ '2024-05-06 07:08:09+00'")
        day, moment = cur.fetchone()
        assert day == dt.date(2024, 5, 6)
        assert moment == dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
        with pytest.raises(psycopg2.errors.UndefinedTable):
            cur.execute("SELECT * FROM nope")
        conn.rollback()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------ asyncpg


def test_asyncpg(fsql_server: FsqlServer) -> None:
    import asyncpg

    async def main() -> None:
        conn = await asyncpg.connect(host="127.0.0.1", port=fsql_server.port, user="tester",
                                     database="fsql")
        try:
            rows = await conn.fetch("SELECT $1::int + 1 AS a, $2::text AS b", 41, "x")
            assert [tuple(r) for r in rows] == [(42, "x")]
            row = await conn.fetchrow(
                "SELECT 1::int8 AS a, 2.5::numeric AS b, [1, 2] AS c, ['x', NULL] AS d, "
                "TIMESTAMPTZ '2024-01-01 00:00:00+00' AS e, INTERVAL '3 days' AS f")
            assert tuple(row) == (1, Decimal("2.5"), [1, 2], ["x", None],
                                  dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.timedelta(days=3))
            statement = await conn.prepare("SELECT $1::int8 * 2 AS doubled")
            assert [await statement.fetchval(i) for i in range(7)] == [0, 2, 4, 6, 8, 10, 12]
            assert statement.get_parameters()[0].name == "int8"
            with pytest.raises(asyncpg.exceptions.UndefinedTableError):
                await conn.fetch("SELECT * FROM nope")
            # untyped parameters compared with a column take the column's type
            await conn.execute("CREATE TEMP TABLE t (id BIGINT, name VARCHAR)")
            await conn.executemany("INSERT INTO t VALUES ($1, $2)", [(1, "a"), (2, "b")])
            assert await conn.fetchval("SELECT name FROM t WHERE id = $1", 2) == "b"
        finally:
            await conn.close()
        # the pool runs its reset query (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL)
        pool = await asyncpg.create_pool(host="127.0.0.1", port=fsql_server.port,
                                         user="tester", database="fsql", min_size=1, max_size=1)
        try:
            for i in range(3):
                async with pool.acquire() as pooled:
                    assert await pooled.fetchval("SELECT $1::int", i) == i
        finally:
            await pool.close()

    asyncio.run(main())


# ------------------------------------------------------------------------------------- pg8000


def test_pg8000(fsql_server: FsqlServer) -> None:
    import pg8000.native

    conn = pg8000.native.Connection("tester", host="127.0.0.1", port=fsql_server.port,
                                    database="fsql")
    try:
        assert conn.run("SELECT :a::int + 1 AS a, :b AS b", a=41, b="x") == [[42, "x"]]
        assert conn.columns[0]["name"] == "a"
        assert conn.run("SELECT 1.5::float8, DATE '2024-01-02'") == [[1.5, dt.date(2024, 1, 2)]]
        with pytest.raises(pg8000.native.DatabaseError) as info:
            conn.run("SELECT * FROM nope")
        assert info.value.args[0]["C"] == "42P01"
        assert conn.run("SELECT 'ok'") == [["ok"]]
    finally:
        conn.close()


# ------------------------------------------------------------------------------------- pgjdbc


@pytest.fixture(scope="session")
def jdbc_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compile the Java probe once with javac (Java 17)."""
    return compile_jdbc_probe(JAVA_SRC, tmp_path_factory.mktemp("java"))


def run_jdbc(classes: Path, server: FsqlServer, *ops: str, user: str = "tester",
             password: str = "") -> dict[int, list[list[str]]]:
    url = f"jdbc:postgresql://127.0.0.1:{server.port}/fsql"
    result = subprocess.run(
        ["java", "-cp", f"{JAR}:{classes}", "FsqlJdbcProbe", url, user, password, *ops],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows: dict[int, list[list[str]]] = {}
    for line in result.stdout.splitlines():
        index, *values = line.split("\t")
        rows.setdefault(int(index), []).append(values)
    return rows


def test_pgjdbc(fsql_server: FsqlServer, jdbc_probe: Path) -> None:
    rows = run_jdbc(
        jdbc_probe, fsql_server,
        "query|SELECT 1 AS a, 'x' AS b, 2.5::float8 AS c",
        "prepared|7|long|21|SELECT ?::int8 * 2 AS doubled",
        "prepared|7|string|ab|SELECT ? || 'c' AS s",
        "fetch|2|SELECT x FROM range(5) t(x) ORDER BY x",
        "error|SELECT * FROM nope",
        "error|SELEC 1",
    )
    assert rows[0] == [["1", "x", "2.5"], ["END"]]
    assert rows[1] == [["42"], ["END"]]
    assert rows[2] == [["abc"], ["END"]]
    assert rows[3] == [["0"], ["1"], ["2"], ["3"], ["4"], ["END"]]
    assert rows[4] == [["SQLSTATE", "42P01"]]
    assert rows[5] == [["SQLSTATE", "42601"]]


def test_cancel_stops_a_streaming_result(fsql_server: FsqlServer) -> None:
    """A result that streams for long (a billion rows) is stopped by a CancelRequest between
    chunks; the session goes on."""
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        with cancelling(conn, every=0.5), pytest.raises(psycopg.errors.QueryCanceled):
            with conn.cursor() as cur:
                cur.execute("SELECT x FROM range(1000000000) t(x)")
        assert conn.execute("SELECT 'after'").fetchone() == ("after",)
