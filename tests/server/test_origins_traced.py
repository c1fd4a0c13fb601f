"""RowDescription's table OID and attribute number (server/pg/origins.py) traced as
PostgreSQL does, differentially against a real PostgreSQL 15 holding the same tables
(tests/server/_differential.py): a plain column keeps its table's OID and attnum through
subqueries, CTEs and ``*`` over joins (``USING`` and ``NATURAL`` too); expressions and the
columns of a UNION come from no table."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server._differential import Pair, pair  # noqa: F401 - fixture
from tests.server.test_corpus import Statement, answer, connect

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.timeout(300)]

STATEMENTS = [
    "SELECT user_id, purchase_amount FROM sources.orders",
    "SELECT * FROM (SELECT user_id, purchase_amount FROM sources.orders) q WHERE 1=0",
    "SELECT q.amount FROM (SELECT purchase_amount AS amount, 1 AS one FROM sources.orders) q",
    "SELECT * FROM (SELECT * FROM (SELECT ts, user_id FROM sources.orders) a) b",
    "SELECT x, y FROM (SELECT user_id, ts FROM sources.orders) q(x, y)",
    "WITH o AS (SELECT user_id, purchase_amount * 2 AS twice, ts FROM sources.orders) "
    "SELECT * FROM o",
    "WITH o AS (SELECT * FROM sources.orders), p AS (SELECT o.ts FROM o) SELECT ts FROM p",
    "SELECT user_id FROM sources.orders UNION SELECT user_id FROM sources.profiles",
    "SELECT * FROM (SELECT user_id FROM sources.orders UNION ALL "
    "SELECT user_id FROM sources.profiles) u",
    "SELECT * FROM sources.orders o JOIN sources.profiles p USING (user_id)",
    "SELECT * FROM sources.orders o LEFT JOIN sources.profiles p USING (user_id)",
    "SELECT * FROM sources.orders NATURAL JOIN sources.profiles",
    "SELECT o.*, p.country FROM sources.orders o JOIN sources.profiles p "
    "ON p.user_id = o.user_id",
    "SELECT * FROM (SELECT o.user_id, o.purchase_amount, p.country FROM sources.orders o "
    "JOIN sources.profiles p ON p.user_id = o.user_id) AS virtual_table LIMIT 0",
    "SELECT upper(user_id), user_id::text, count(*) FROM sources.orders GROUP BY user_id",
    # the catalog emulation's tables carry PostgreSQL's own table OIDs and attnums
    "SELECT c.relname, n.nspname, c.relkind FROM pg_catalog.pg_class c JOIN "
    "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'pg_class'",
    "SELECT * FROM (SELECT relname, relnamespace AS ns FROM pg_class) s WHERE relname = 'pg_am'",
    "SELECT pg_catalog.pg_class.relname, cls.relkind FROM pg_catalog.pg_class JOIN "
    "pg_catalog.pg_class AS cls ON cls.oid = pg_catalog.pg_class.oid WHERE cls.relname = 'pg_am'",
    "SELECT a.attname, t.typname FROM ((pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t "
    "ON t.oid = a.atttypid) JOIN pg_catalog.pg_class c ON c.oid = a.attrelid) "
    "WHERE c.relname = 'pg_am' AND a.attnum = 1",
    "SELECT pos.n, c.relname FROM pg_catalog.generate_series(1, 2) pos(n), pg_catalog.pg_class c "
    "WHERE c.relname = 'pg_am' ORDER BY 1",
    "SELECT table_name, column_name FROM information_schema.columns "
    "WHERE table_name = 'orders' ORDER BY ordinal_position",
]


@pytest.fixture(scope="module")
def described(pair: Pair) -> dict[str, dict[str, Any]]:  # noqa: F811
    out: dict[str, dict[str, Any]] = {}
    for server, url in pair.urls().items():
        conn = connect(url)
        try:
            for sql in STATEMENTS:
                out.setdefault(sql, {})[server] = answer(conn, Statement("test", sql), url)
        finally:
            conn.finish()
    return out


@pytest.mark.parametrize("sql", STATEMENTS)
def test_columns_name_their_source_as_postgres_does(described: dict, sql: str) -> None:
    ours, theirs = described[sql]["fsql"], described[sql]["postgres"]
    assert ours["sqlstate"] is None and theirs["sqlstate"] is None, (ours, theirs)
    assert [c[0] for c in ours["columns"]] == [c[0] for c in theirs["columns"]]
    assert ours["origin"] == theirs["origin"]
