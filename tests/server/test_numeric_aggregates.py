"""sum and avg typed and valued as PostgreSQL's (server/pg/origins.py numeric_aggregates,
server/pg/macros.py pg_average), differentially against a real PostgreSQL 15: avg of
integers and numerics is numeric at PostgreSQL's scale (exact), sum of int2/int4 is bigint,
sum of int8 numeric; avg of a float stays double precision."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from fsql_server.pg.macros import pg_average

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.timeout(300)]

TABLE = ("CREATE TEMP TABLE m (g int, s smallint, i integer, b bigint, n numeric(10,2), "
         "f double precision)")
ROWS = [(1, 1, 7, 7, "2.25", 0.5), (1, 2, 41, 9000000000000000000, "-1.10", 1.5),
        (2, -3, 5, -5, "0.01", 2.0), (2, 4, 10, 10, "12345.67", None),
        (3, None, None, None, None, None), (4, 32000, 2147483647, 41, "0.05", 3.25)]

QUERIES = [
    "SELECT avg(i), avg(s), avg(b), avg(n), avg(f) FROM m",
    "SELECT sum(i), sum(s), sum(b), sum(n) FROM m",
    "SELECT g, avg(i) AS mean, sum(i) AS total, avg(n) FROM m GROUP BY g ORDER BY g",
    "SELECT g, AVG(b) AS \"AVG(b)\" FROM m GROUP BY g ORDER BY \"AVG(b)\" DESC NULLS LAST, g",
    "SELECT avg(i) FROM m WHERE false",
    # sorted by the value, not the text ('10.5' < '9.5')
    "SELECT g, avg(i) AS mean FROM m GROUP BY g ORDER BY mean DESC NULLS LAST",
    "SELECT g, avg(i) FROM m GROUP BY g ORDER BY 2 NULLS FIRST",
    "SELECT g, avg(i) FROM m GROUP BY g ORDER BY avg(i), g",
    "SELECT * FROM (SELECT g, sum(s) AS total FROM m GROUP BY g) t ORDER BY g",
]


def answer(conn: Any, sql: str) -> tuple[list[tuple[str, int]], list[tuple[Any, ...]]]:
    cursor = conn.execute(sql)
    return ([(d.name, d.type_code) for d in cursor.description], cursor.fetchall())


@pytest.fixture(scope="module")
def both(fsql_server: Any, postgres_url: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for server, url in (("fsql", fsql_server.dsn()), ("postgres", postgres_url)):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(TABLE)
            with conn.cursor() as cursor:
                cursor.executemany("INSERT INTO m VALUES (%s, %s, %s, %s, %s, %s)",
                                   [(*row[:4], None if row[4] is None else Decimal(row[4]),
                                     row[5]) for row in ROWS])
            for sql in QUERIES:
                # text (as psql shows them) and binary results
                with conn.cursor() as text:
                    text.execute(sql)
                    rows_text = [tuple(None if v is None else str(v) for v in row)
                                 for row in text.fetchall()]
                    columns = [(d.name, d.type_code) for d in text.description]
                with conn.cursor(binary=True) as binary:
                    rows_binary = binary.execute(sql).fetchall()
                out.setdefault(sql, {})[server] = (columns, rows_text, rows_binary)
    return out


@pytest.mark.parametrize("sql", QUERIES)
def test_aggregates_answer_as_postgres(both: dict[str, dict[str, Any]], sql: str) -> None:
    assert both[sql]["fsql"] == both[sql]["postgres"]


def test_pg_average_is_postgres_numeric_division(postgres_url: str) -> None:
    """The reference: PostgreSQL's own numeric division, on generated dividends (integers and
    numerics of many magnitudes, both signs) and counts."""
    generator = random.Random(14)
    cases = []
    for _ in range(300):
        digits = generator.randint(1, 24)
        value = generator.randint(-(10 ** digits), 10 ** digits)
        scale = generator.choice([0, 0, 1, 2, 5])
        total = str(Decimal(value).scaleb(-scale)) if scale else str(value)
        cases.append((format(Decimal(total), "f"), generator.choice([1, 2, 3, 7, 11, 10000,
                                                                     generator.randint(1, 10**6)])))
    with psycopg.connect(postgres_url) as conn:
        expected = [conn.execute("SELECT (%s::numeric / %s::numeric)::text", case).fetchone()[0]
                    for case in cases]
    assert [pg_average(total, count) for total, count in cases] == expected
