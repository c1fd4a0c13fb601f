"""Parameters as real clients bind them, and the errors PostgreSQL answers without ending the
session: the types declared in Parse honoured (text and binary, extended protocol and
DECLARE ... CURSOR), Bind with the wrong number of parameters or undecodable binary values,
unbound ``$1`` in a simple query, statements nested too deep, COPY options quoted or not.
Each client is the real one: psycopg 3, asyncpg, pg8000, and raw protocol messages where a
driver would never send the bad message."""

from __future__ import annotations

import asyncio
import datetime as dt
import struct
import uuid
from decimal import Decimal

import pytest
from fsql_server.pg import protocol

from tests.server.conftest import FsqlServer
from tests.server.test_robustness import (
    connect,
    error_fields,
    read_until_ready,
    startup,
)

pytestmark = pytest.mark.server

TABLE = "CREATE TEMP TABLE t (x int8, y text, z numeric(10,2), d date)"
ROWS = ("INSERT INTO t VALUES (1, 'a', 1.50, '2024-01-01'), (2, 'b', 2.50, '2024-01-02'), "
        "(3, 'c', 3.50, '2024-01-03')")


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("value", [1, 2**20, 2**40])  # psycopg binds int2, int4, int8
def test_psycopg_server_side_cursor_with_parameters(fsql_server: FsqlServer, binary: bool,
                                                     value: int) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn()) as conn:
        conn.execute(TABLE)
        conn.execute(ROWS)
        with conn.cursor("c1", binary=binary) as cur:
            cur.execute("SELECT x, y FROM t WHERE x > %s ORDER BY x", [value % 7 // 3])
            rows = cur.fetchall()
        expected = [(x, y) for x, y in [(1, "a"), (2, "b"), (3, "c")] if x > value % 7 // 3]
        assert rows == expected
        # the cursor over a typed comparison with another type: numeric, date, text
        with conn.cursor("c2", binary=binary) as cur:
            cur.execute("SELECT y FROM t WHERE z > %s AND d >= %s AND y <> %s ORDER BY y",
                        [Decimal("1.5"), dt.date(2024, 1, 2), "c"])
            assert cur.fetchall() == [("b",)]
        assert conn.execute("SELECT 'alive'").fetchone() == ("alive",)


def test_psycopg_binary_parameters_of_every_type(fsql_server: FsqlServer) -> None:
    import psycopg
    from psycopg.types.json import Json, Jsonb

    values = [True, 7, 2**40, 1.25, Decimal("12.50"), "text", dt.date(2024, 1, 2),
              dt.datetime(2024, 1, 2, 3, 4, 5), dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
              uuid.UUID(int=5), b"\x00\x01", Json({"a": 1}), Jsonb({"b": 2})]
    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        for binary in (False, True):
            cur = conn.cursor(binary=binary)
            row = cur.execute("SELECT " + ", ".join(["%s"] * len(values)), values).fetchone()
            assert row[:11] == tuple(values[:11])
            assert row[11:] in [({"a": 1}, {"b": 2}), ('{"a": 1}', '{"b": 2}')]


def test_asyncpg_and_pg8000_typed_parameters(fsql_server: FsqlServer) -> None:
    import asyncpg
    import pg8000.native

    async def via_asyncpg() -> list[object]:
        conn = await asyncpg.connect(host="127.0.0.1", port=fsql_server.port, user="tester",
                                     database="fsql")
        try:
            await conn.execute(TABLE)
            await conn.execute(ROWS)
            small = await conn.fetchval("SELECT count(*) FROM t WHERE x > $1::int2", 1)
            dated = await conn.fetchval("SELECT y FROM t WHERE d = $1", dt.date(2024, 1, 3))
            money = await conn.fetchval("SELECT y FROM t WHERE z = $1", Decimal("2.50"))
            async with conn.transaction():
                cursor = await conn.cursor("SELECT y FROM t WHERE x >= $1 ORDER BY x", 2)
                fetched = [r["y"] for r in await cursor.fetch(5)]
            return [small, dated, money, fetched]
        finally:
            await conn.close()

    assert asyncio.run(via_asyncpg()) == [2, "c", "b", ["b", "c"]]
    conn = pg8000.native.Connection("tester", host="127.0.0.1", port=fsql_server.port,
                                    database="fsql")
    try:
        conn.run(TABLE)
        conn.run(ROWS)
        assert conn.run("SELECT y FROM t WHERE x = :x", x=2) == [["b"]]
        assert conn.run("SELECT y FROM t WHERE z < :z ORDER BY y", z=Decimal("3")) == [
            ["a"], ["b"]]
        assert conn.run("SELECT y FROM t WHERE d > :d ORDER BY y",
                        d=dt.date(2024, 1, 2)) == [["c"]]
    finally:
        conn.close()


def _parse_bind_execute(name: str, sql: str, oids: list[int], params: list[bytes | None],
                        fmt: int = 0) -> bytes:
    parse = protocol.message(b"P", name.encode() + b"\x00" + sql.encode() + b"\x00"
                             + struct.pack(f"!h{len(oids)}I", len(oids), *oids))
    values = b"".join(struct.pack("!i", -1) if p is None else struct.pack("!i", len(p)) + p
                      for p in params)
    bind = protocol.message(b"B", b"\x00" + name.encode() + b"\x00"
                            + struct.pack("!hh", 1, fmt) + struct.pack("!h", len(params))
                            + values + struct.pack("!h", 0))
    execute = protocol.message(b"E", b"\x00" + struct.pack("!i", 0))
    return parse + bind + execute + protocol.message(b"S")


def _ok_after(sock: object) -> None:
    """The session still answers a query."""
    sock.sendall(protocol.message(b"Q", b"SELECT 'alive'\x00"))  # type: ignore[attr-defined]
    kinds = [k for k, _ in read_until_ready(sock)]  # type: ignore[arg-type]
    assert kinds == [b"T", b"D", b"C", b"Z"]


@pytest.mark.parametrize(("params", "oids", "fmt", "sqlstate", "text"), [
    ([b"1"], [], 0, "08P01", 'bind message supplies 1 parameters, but prepared statement "s" '
                             "requires 2"),
    ([b"1", b"2", b"3"], [], 0, "08P01", "bind message supplies 3 parameters"),
    ([b"\x00\x01\x02", b"\x00\x00\x00\x01"], [20, 23], 1, "22P03",
     "incorrect binary data format in bind parameter 1"),
    ([b"abc", b"1"], [20, 23], 0, "22P02", 'invalid input syntax for type integer: "abc"'),
])
def test_bad_binds_are_errors_that_keep_the_session(fsql_server: FsqlServer,
                                                    params: list[bytes], oids: list[int],
                                                    fmt: int, sqlstate: str, text: str) -> None:
    with connect(fsql_server) as sock:
        startup(sock)
        sock.sendall(_parse_bind_execute("s", "SELECT $1::int8 + $2::int4 AS v", oids, params,
                                         fmt))
        messages = read_until_ready(sock)
        assert [k for k, _ in messages] == [b"1", b"E", b"Z"]
        fields = error_fields(messages[1][1])
        assert (fields["S"], fields["C"]) == ("ERROR", sqlstate)
        assert text in fields["M"]
        assert messages[-1][1] == b"I"
        _ok_after(sock)


def test_declared_types_decode_the_values(fsql_server: FsqlServer) -> None:
    """A value is decoded as the type the client declared (int2 in binary: 2 bytes), then
    used as the type the statement needs (a bigint comparison)."""
    with connect(fsql_server) as sock:
        startup(sock)
        sock.sendall(_parse_bind_execute("d", "SELECT $1 + 1::int8 AS v, $2 AS w", [21, 701],
                                         [struct.pack("!h", 41), struct.pack("!d", 0.5)], 1))
        messages = read_until_ready(sock)
        assert [k for k, _ in messages] == [b"1", b"2", b"D", b"C", b"Z"]
        row = messages[2][1]
        assert row == struct.pack("!hi", 2, 2) + b"42" + struct.pack("!i", 3) + b"0.5"


def test_unbound_parameter_in_a_simple_query(fsql_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        for sql in ("SELECT $1", "SELECT x FROM range(3) t(x) WHERE x > $1"):
            result = conn.pgconn.exec_(sql.encode())
            assert result.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"42P02"
            assert b"there is no parameter $1" in result.error_message
        assert conn.execute("SELECT 'alive'").fetchone() == ("alive",)


@pytest.mark.parametrize("depth", [200, 10_000])
def test_deep_nesting_is_54001_and_keeps_the_session(fsql_server: FsqlServer,
                                                     depth: int) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        for sql in ("SELECT " + "(" * depth + "1" + ")" * depth,
                    "SELECT " + "abs(" * depth + "1" + ")" * depth,
                    "SELECT " + "CASE WHEN true THEN " * depth + "1" + " END" * depth,
                    "SELECT 1 WHERE 1 IN " + "(SELECT " * depth + "1" + ")" * depth):
            with pytest.raises(psycopg.errors.StatementTooComplex) as info:
                conn.execute(sql)
            assert "stack depth limit exceeded" in str(info.value)
            # also over the extended protocol (Parse)
            with pytest.raises(psycopg.errors.StatementTooComplex):
                conn.execute(sql, prepare=True)
        assert conn.execute("SELECT " + "(" * 60 + "1" + ")" * 60).fetchone() == (1,)
        assert conn.execute("SELECT '((((((((((' || $$))))$$ AS s").fetchone() == (
            "(((((((((())))",)


@pytest.mark.parametrize("options", [
    '(FORMAT "binary")', "(FORMAT 'binary')", "(FORMAT binary)", "WITH (FORMAT binary)",
    'WITH (FORMAT "binary")', "BINARY"])
def test_copy_format_quoted_or_not(fsql_server: FsqlServer, options: str) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        with conn.cursor().copy(f"COPY (SELECT 7::int4 AS a) TO STDOUT {options}") as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        assert data.startswith(b"PGCOPY\n\xff\r\n\x00")
        assert struct.pack("!hi", 1, 4) + struct.pack("!i", 7) in data


@pytest.mark.parametrize(("options", "expected"), [
    ("(FORMAT 'csv')", b"7,x\n"), ('(FORMAT "csv", HEADER)', b"a,b\n7,x\n"),
    ("(FORMAT text)", b"7\tx\n"), ("(FORMAT \"text\", DELIMITER '|')", b"7|x\n")])
def test_copy_text_formats_quoted_or_not(fsql_server: FsqlServer, options: str,
                                         expected: bytes) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        with conn.cursor().copy(f"COPY (SELECT 7 AS a, 'x' AS b) TO STDOUT {options}") as copy:
            assert b"".join(bytes(chunk) for chunk in copy) == expected
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            with conn.cursor().copy('COPY (SELECT 1) TO STDOUT (FORMAT "parquet")') as copy:
                pass


@pytest.mark.parametrize(("sql", "depth"), [
    ("SELECT ((1)), [2]", 2),
    ("SELECT '(((' || $$ ((( $$ || $t$ ((( $t$ || \"a(((\" -- (((\n, (1)", 1),
    ("SELECT /* ((( */ CASE WHEN (1 = 1) THEN 2 END, x.case_when", 2),
    ("SELECT 'it''s (((' , f((g(1))) /* unclosed (((", 3),
    ("SELECT " + "(" * 5000 + "1" + ")" * 5000, 5000),
])
def test_nesting_depth_skips_literals_and_comments(sql: str, depth: int) -> None:
    from fsql_server.pg.nesting import nesting_depth

    assert nesting_depth(sql)[0] == depth


def test_copy_errors_are_postgresqls(fsql_server: FsqlServer) -> None:
    """Bad COPY FROM data: PostgreSQL's SQLSTATE and message, the session goes on."""
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE ci (a int, b date)")
        for data, sqlstate, message in [
            (b"x,2024-01-01\n", "22P02", 'invalid input syntax for type integer: "x"'),
            (b"99999999999,2024-01-01\n", "22003",
             'value "99999999999" is out of range for type integer'),
        ]:
            with pytest.raises(psycopg.Error) as info:
                with conn.cursor().copy("COPY ci FROM STDIN (FORMAT 'csv')") as copy:
                    copy.write(data)
            assert info.value.sqlstate == sqlstate
            assert info.value.diag.message_primary == message
        assert conn.execute("SELECT count(*) FROM ci").fetchone() == (0,)


def test_result_format_count_mismatch_keeps_the_session(fsql_server: FsqlServer) -> None:
    """Three result format codes for a one-column result: 08P01 as an ERROR (PostgreSQL's
    "bind message has 3 result formats but query has 1 columns"), the session goes on."""
    with connect(fsql_server) as sock:
        startup(sock)
        parse = protocol.message(b"P", b"\x00SELECT 1 AS one\x00" + struct.pack("!h", 0))
        bind = protocol.message(b"B", b"\x00\x00" + struct.pack("!hh", 0, 0)
                                + struct.pack("!hhhh", 3, 0, 0, 0))
        execute = protocol.message(b"E", b"\x00" + struct.pack("!i", 0))
        sock.sendall(parse + bind + execute + protocol.message(b"S"))
        messages = read_until_ready(sock)
        assert [k for k, _ in messages] == [b"1", b"2", b"E", b"Z"]
        fields = error_fields(messages[2][1])
        assert (fields["S"], fields["C"]) == ("ERROR", "08P01")
        assert "3 result formats" in fields["M"]
        _ok_after(sock)
