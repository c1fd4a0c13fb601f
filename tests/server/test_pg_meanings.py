"""PostgreSQL meanings DuckDB reads otherwise (server/pg/meanings.py), differentially against
a real PostgreSQL 15: integer division truncates, division by zero is 22012, the bare
keywords CURRENT_DATE/LOCALTIME/LOCALTIMESTAMP are functions, ``pg_catalog.`` qualifies
functions and types, ``x > ANY('{1,3}')`` compares with numbers. (Not yet: numeric / integer is double precision, PostgreSQL's numeric.)"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.timeout(300)]

SOURCE = "(SELECT 7 AS x, 2 AS y, 0 AS z, -7 AS w) s"
STATEMENTS = [
    "SELECT 7 / 2", "SELECT -7 / 2", f"SELECT x / y, w / y, x / 2 FROM {SOURCE}",
    "SELECT 7::bigint / 2::smallint", "SELECT 7 / 2.0 = 3.5", "SELECT 1 / 0", "SELECT 1.0 / 0",
    "SELECT 1::float8 / 0", f"SELECT x / z FROM {SOURCE}", f"SELECT x / (y - 2) FROM {SOURCE}",
    "SELECT 5 % 0",
    "SELECT current_date = now()::date, localtimestamp IS NOT NULL, localtime IS NOT NULL",
    "SELECT pg_catalog.upper('a'), pg_catalog.version() IS NOT NULL",
    "SELECT 'a'::pg_catalog.text, pg_catalog.current_setting('search_path')",
    "SELECT pg_catalog.array_to_string(array(select 1), ',')",
    "SELECT 2 > ANY('{1,3}'), 2 < ALL('{1,3}'), 2 < ALL('{3,4}'), 2 <> ANY('{2,2}')",
    f"SELECT x >= ANY('{{7,8}}'), x <= ALL('{{7,8}}'), y = ALL('{{2,2}}') FROM {SOURCE}",
    "SELECT 2 > ANY('{}'), 2 < ALL('{}'), 2 > ANY('{NULL,1}'), 0 > ANY('{NULL,1}')",
    "SELECT 1.5 < ANY('{1.25,2.5}'), 'b' > ANY('{a,c}')",
    "SELECT 'nosuch'::regproc", "SELECT 'now'::regproc::oid = 1299",
]


def answer(conn: Any, sql: str) -> tuple[Any, ...]:
    try:
        cursor = conn.execute(sql)
    except psycopg.Error as error:
        return ("error", error.sqlstate)
    return ([(d.name, d.type_code) for d in cursor.description],
            [tuple(str(v) for v in row) for row in cursor.fetchall()])


@pytest.fixture(scope="module")
def answers(fsql_server: Any, postgres_url: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for server, url in (("fsql", fsql_server.dsn()), ("postgres", postgres_url)):
        with psycopg.connect(url, autocommit=True) as conn:
            for sql in STATEMENTS:
                out.setdefault(sql, {})[server] = answer(conn, sql)
    return out


@pytest.mark.parametrize("sql", STATEMENTS)
def test_answers_as_postgres(answers: dict[str, dict[str, Any]], sql: str) -> None:
    assert answers[sql]["fsql"] == answers[sql]["postgres"]
