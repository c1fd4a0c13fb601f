"""COPY in every format, and every type the server emits checked against a real
PostgreSQL 15: the same query through the same client must give the same values, in text and
in binary (the reference is the real server, not expectations typed in by hand)."""

from __future__ import annotations

import pytest

from tests.server.conftest import FsqlServer

pytestmark = pytest.mark.server

#: expressions that mean the same in PostgreSQL and in fsql's SQL (DuckDB underneath)
TYPED_VALUES = [
    "1::int2", "(-32768)::int2", "2147483647::int4", "-9007199254740993::int8",
    "1.5::float4", "0.1::float8", "-1e300::float8", "1e-7::float8", "'Infinity'::float8",
    "123.4500::numeric(10,4)", "-0.000123::numeric(12,6)", "12345678901234567890::numeric(30,0)",
    "true", "false", "'héllo, \"world\"'::text", "''::text", "'x'::varchar",
    "DATE '2024-02-29'", "DATE '1970-01-01'", "TIMESTAMP '2024-01-02 03:04:05.123456'",
    "TIMESTAMP '1999-12-31 23:59:59'", "TIMESTAMPTZ '2024-06-01 12:00:00+00'",
    "INTERVAL '1 day 02:03:04'", "INTERVAL '12 hours'", "INTERVAL '-5 minutes'",
    "'\\x00ff10'::bytea", "'{\"a\": [1, 2]}'::json",
    "NULL::int4", "NULL::text",
]

ARRAYS = [("ARRAY[1, 2, 3]::int4[]", "[1, 2, 3]"), ("ARRAY['a', NULL, 'c d']::text[]",
                                                     "['a', NULL, 'c d']"),
          ("ARRAY[1.5, 2.5]::float8[]", "[1.5, 2.5]::DOUBLE[]"),
          ("ARRAY[DATE '2024-01-01']", "[DATE '2024-01-01']")]


@pytest.mark.postgres
@pytest.mark.parametrize("binary", [False, True])
def test_values_match_real_postgres(fsql_server: FsqlServer, postgres_url: str,
                                    binary: bool) -> None:
    import psycopg

    select = "SELECT " + ", ".join(f"{v} AS c{i}" for i, v in enumerate(TYPED_VALUES))
    with psycopg.connect(postgres_url) as pg, psycopg.connect(fsql_server.dsn()) as fs:
        expected = pg.cursor(binary=binary).execute(select).fetchone()
        got = fs.cursor(binary=binary).execute(select).fetchone()
        for value, want, have in zip(TYPED_VALUES, expected, got, strict=True):
            assert have == want, value
            assert type(have) is type(want), value
        for pg_expr, fsql_expr in ARRAYS:
            want = pg.cursor(binary=binary).execute(f"SELECT {pg_expr}").fetchone()
            have = fs.cursor(binary=binary).execute(f"SELECT {fsql_expr}").fetchone()
            assert have == want, pg_expr


@pytest.mark.postgres
def test_text_output_bytes_match_real_postgres(fsql_server: FsqlServer,
                                               postgres_url: str) -> None:
    """The exact text PostgreSQL prints (what psql shows and what JDBC parses)."""
    import psycopg

    select = "SELECT " + ", ".join(f"({v})::text" for v in TYPED_VALUES if "NULL" not in v)
    # cast in the client instead: compare the raw text of each column as sent on the wire
    with psycopg.connect(postgres_url) as pg, psycopg.connect(fsql_server.dsn()) as fs:
        for value in TYPED_VALUES:
            if "NULL" in value or "json" in value:
                continue
            want = pg.pgconn.exec_(f"SELECT {value}".encode()).get_value(0, 0)
            have = fs.pgconn.exec_(f"SELECT {value}".encode()).get_value(0, 0)
            assert have == want, value
    assert select


@pytest.mark.postgres
@pytest.mark.parametrize("fmt", ["text", "csv", "binary"])
def test_copy_to_stdout_matches_real_postgres(fsql_server: FsqlServer, postgres_url: str,
                                              fmt: str) -> None:
    import psycopg

    query = ("SELECT x::int8 AS id, (x * 1.5)::float8 AS score, 'n,\"' || x::text AS name, "
             "CASE WHEN x = 2 THEN NULL ELSE DATE '2024-01-01' END AS day "
             "FROM generate_series(1, 3) t(x) ORDER BY x")
    fsql_query = query.replace("generate_series(1, 3) t(x)", "range(1, 4) t(x)")
    option = {"text": "", "csv": " WITH (FORMAT csv, HEADER)", "binary": " WITH (FORMAT binary)"}

    def dump(dsn: str, q: str) -> bytes:
        with psycopg.connect(dsn) as conn, conn.cursor() as cur:
            data = b""
            with cur.copy(f"COPY ({q}) TO STDOUT{option[fmt]}") as copy:
                for chunk in copy:
                    data += bytes(chunk)
            return data

    assert dump(fsql_server.dsn(), fsql_query) == dump(postgres_url, query)


def test_copy_from_stdin_text_csv_binary(fsql_server: FsqlServer) -> None:
    import datetime as dt

    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE spine (user_id VARCHAR, ts TIMESTAMP, w DOUBLE)")
        with conn.cursor().copy("COPY spine FROM STDIN") as copy:
            copy.write(b"u1\t2024-01-01 00:00:00\t1.5\nu\\t2\t2024-01-02 00:00:00\t\\N\n")
        with conn.cursor().copy("COPY spine (user_id, ts) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(b'"u,3",2024-01-03 00:00:00\n')
        with conn.cursor().copy("COPY spine FROM STDIN WITH (FORMAT binary)") as copy:
            copy.set_types(["text", "timestamp", "float8"])
            copy.write_row(("u4", dt.datetime(2024, 1, 4), 4.0))
        rows = conn.execute("SELECT * FROM spine ORDER BY ts").fetchall()
        assert rows == [
            ("u1", dt.datetime(2024, 1, 1), 1.5),
            ("u\t2", dt.datetime(2024, 1, 2), None),
            ("u,3", dt.datetime(2024, 1, 3), None),
            ("u4", dt.datetime(2024, 1, 4), 4.0),
        ]
        with pytest.raises(psycopg.errors.UndefinedTable):
            with conn.cursor().copy("COPY nowhere FROM STDIN") as copy:
                copy.write(b"x\n")
        with pytest.raises(psycopg.errors.InvalidDatetimeFormat):
            with conn.cursor().copy("COPY spine FROM STDIN") as copy:
                copy.write(b"u5\tnot a time\t1\n")
        assert conn.execute("SELECT count(*) FROM spine").fetchone() == (4,)


@pytest.mark.postgres
def test_timestamptz_text_follows_the_session_time_zone(fsql_server: FsqlServer,
                                                        postgres_url: str) -> None:
    import psycopg

    for zone in ("Europe/Berlin", "Asia/Kolkata", "America/New_York"):
        values = []
        for dsn in (postgres_url, fsql_server.dsn()):
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f"SET TIME ZONE '{zone}'")
                result = conn.pgconn.exec_(
                    b"SELECT TIMESTAMPTZ '2024-07-01 12:00:00+00', "
                    b"TIMESTAMPTZ '2024-01-01 00:30:00+00'")
                values.append((result.get_value(0, 0), result.get_value(0, 1)))
        assert values[1] == values[0], zone


@pytest.mark.postgres
def test_adbc_type_table_matches_real_postgres(fsql_server: FsqlServer, postgres_url: str) -> None:
    """ADBC's PostgreSQL driver reads pg_type at connect (pgwire-captures/adbc.log): for every
    type fsql sends, the answer is PostgreSQL's own row."""
    import psycopg

    query = ("SELECT oid, typname, typreceive, typbasetype, typrelid, typarray "
             "FROM pg_catalog.pg_type WHERE (typreceive != 0 OR typsend != 0) AND "
             "typtype != 'r' AND typreceive::TEXT != 'array_recv'")
    attributes = ("\nSELECT\n    attrelid,\n    attname,\n    atttypid\nFROM\n"
                  "    pg_catalog.pg_attribute\nORDER BY\n    attrelid, attnum\n")
    with psycopg.connect(fsql_server.dsn(), autocommit=True) as fs:
        ours = {r[0]: r for r in fs.execute(query).fetchall()}
        assert fs.execute(attributes).fetchall() == []
    with psycopg.connect(postgres_url, autocommit=True) as pg:
        theirs = {r[0]: tuple(str(v) if i == 2 else v for i, v in enumerate(r))
                  for r in pg.execute(query).fetchall()}
    assert ours
    for oid, row in ours.items():
        assert row == theirs[oid], oid


@pytest.mark.postgres
@pytest.mark.parametrize("fmt", ["csv", "binary"])
def test_large_results_stream_in_chunks(fsql_server: FsqlServer, postgres_url: str,
                                        fmt: str) -> None:
    """Results larger than one fetch chunk (10,000 rows) stream: COPY output stays byte-equal
    to PostgreSQL's, plain SELECTs and portals with row limits return every row."""
    import psycopg

    n = 25_001
    pg_query = f"SELECT x::int8 AS id, (x * 0.5)::float8 AS half FROM generate_series(1, {n}) t(x)"
    fs_query = f"SELECT x::int8 AS id, (x * 0.5)::float8 AS half FROM range(1, {n + 1}) t(x)"
    option = " WITH (FORMAT csv, HEADER)" if fmt == "csv" else " WITH (FORMAT binary)"

    def dump(dsn: str, q: str) -> bytes:
        with psycopg.connect(dsn) as conn, conn.cursor() as cur:
            data = b""
            with cur.copy(f"COPY ({q} ORDER BY 1) TO STDOUT{option}") as copy:
                for chunk in copy:
                    data += bytes(chunk)
            return data

    assert dump(fsql_server.dsn(), fs_query) == dump(postgres_url, pg_query)
    with psycopg.connect(fsql_server.dsn()) as conn:
        rows = conn.execute(fs_query + " ORDER BY 1").fetchall()
        assert len(rows) == n and rows[-1] == (n, n * 0.5)
        with conn.cursor(name="chunked") as cur:
            cur.itersize = 4_000
            cur.execute(fs_query + " ORDER BY 1")
            assert sum(1 for _ in cur) == n


COLUMN_EXPRESSIONS = [
    "now()", "current_timestamp", "1+1", "upper('a')", "coalesce(null, 1)", "'a'::text",
    "lower('B') AS l", "length('abc')", "round(1.5)", "greatest(1, 2)",
    "CASE WHEN true THEN 1 END", "count(*)", "sum(1)", "avg(1)", "max(1)", "1::int8", "x",
    "x + 1", "-x", "(x)", "array_agg(x)", "string_agg('a', ',')", "row_number() over ()",
]


@pytest.mark.postgres
def test_column_names_match_real_postgres(fsql_server: FsqlServer, postgres_url: str) -> None:
    """Unaliased columns are named as PostgreSQL names them (clients key rows by name)."""
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as pg, \
            psycopg.connect(fsql_server.dsn(), autocommit=True) as fs:
        for expression in COLUMN_EXPRESSIONS:
            want = pg.execute(f"SELECT {expression} FROM generate_series(1, 2) t(x)")
            have = fs.execute(f"SELECT {expression} FROM range(1, 3) t(x)")
            assert have.description[0].name == want.description[0].name, expression
