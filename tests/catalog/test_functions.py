"""Catalog functions, casts, views and drivers' introspection (psycopg, asyncpg) against fsql
and against a real PostgreSQL 15 with the same tables: equal rows. The queries are the corpus
file corpus/functions.sql (one per line)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.postgres]

CORPUS = Path(__file__).parent / "corpus" / "functions.sql"
#: queries whose answer is rows in PostgreSQL: fsql must not answer them with none
MAY_BE_EMPTY = ("typname = 'hstore'",)


def queries() -> list[str]:
    return [line for line in CORPUS.read_text().splitlines()
            if line.strip() and not line.startswith("--")]


def fsql_url(server: FsqlServer) -> str:
    return f"postgresql://tester@127.0.0.1:{server.port}/fsql"


@pytest.mark.parametrize("query", queries())
def test_catalog_query_equals_postgres(catalog_server: FsqlServer, reference_pg: str,
                                       query: str) -> None:
    import psycopg

    with psycopg.connect(fsql_url(catalog_server)) as ours, \
            psycopg.connect(reference_pg) as theirs:
        mine = ours.execute(query).fetchall()
        reference = theirs.execute(query).fetchall()
    assert mine == reference
    assert mine or any(m in query for m in MAY_BE_EMPTY), "an empty answer"


def test_catalog_answers_follow_the_registry(private_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_url(private_server), autocommit=True) as conn:
        query = ("SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                 "JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE n.nspname = 'features' AND c.relname = 'user' ORDER BY a.attnum")
        before = [r[0] for r in conn.execute(query).fetchall()]
        conn.execute("CREATE FEATURE max_spend_1d ENTITY \"user\" WINDOW '1 day' "
                     "AS SELECT user_id, MAX(amount) FROM tx")
        after = [r[0] for r in conn.execute(query).fetchall()]
        conn.execute("DROP FEATURE max_spend_1d")
        dropped = [r[0] for r in conn.execute(query).fetchall()]
    assert after == [before[0], *sorted([*before[1:], "max_spend_1d"])]
    assert before[0] == "user_id" and dropped == before


def test_asyncpg_catalog_queries_with_parameters(catalog_server: FsqlServer,
                                                 reference_pg: str) -> None:
    import asyncpg

    query = ("SELECT c.relname, c.relnatts, obj_description(c.oid, 'pg_class') AS comment "
             "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
             "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r' ORDER BY 1")

    async def fetch(url: str) -> list[tuple]:
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch(query, "features")
            oid = await conn.fetchval("SELECT 'features.user'::regclass::oid")
            attrs = await conn.fetch("SELECT attname FROM pg_attribute WHERE attrelid = $1 "
                                     "AND attnum > 0 ORDER BY attnum", oid)
            return [tuple(r) for r in rows] + [tuple(r) for r in attrs]
        finally:
            await conn.close()

    mine = asyncio.run(fetch(fsql_url(catalog_server)))
    assert mine == asyncio.run(fetch(reference_pg))
    assert ("user", 3, "A customer") in mine


def test_catalog_queries_join_fsql_data(catalog_server: FsqlServer) -> None:
    """A catalog query may read offline.*, sources.* and fsql.* too (the answer is the one the
    two reads give apart), and features.* too; the session's own tables are refused with 0A000
    saying what to do instead."""
    import psycopg

    with psycopg.connect(fsql_url(catalog_server), autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM sources.tx").fetchone()[0]
        joined = conn.execute(
            "SELECT c.relname, count(*) FROM pg_class c JOIN sources.tx t ON true "
            "WHERE c.relname = 'tx' GROUP BY 1").fetchall()
        assert rows > 0 and joined == [("tx", rows)]
        features = [r[0] for r in conn.execute("SELECT name FROM fsql.features ORDER BY 1")]
        described = conn.execute(
            "SELECT f.name, obj_description(c.oid, 'pg_class') FROM fsql.features f "
            "JOIN pg_class c ON c.relname = f.name JOIN pg_namespace n ON n.oid = "
            "c.relnamespace AND n.nspname = 'offline' ORDER BY 1").fetchall()
        assert [r[0] for r in described] == features
        assert described[0][1].endswith("version 1.")
        # features.<entity> is a relation like the others (its scan: test_entity_relation.py)
        entities = conn.execute("SELECT count(*) FROM features.user").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM pg_class c JOIN features.user u ON true "
                            "WHERE c.relname = 'tx'").fetchone() == (entities,)
        conn.execute("CREATE TEMP TABLE spine (user_id text)")
        with pytest.raises(psycopg.errors.FeatureNotSupported) as info:
            conn.execute("SELECT c.relname FROM pg_class c, spine s")
        assert "spine" in str(info.value)


@pytest.mark.parametrize(("query", "error"), [
    ("SELECT 'no_such_table'::regclass", "UndefinedTable"),
    ("SELECT 'features.no_such_table'::regclass::oid", "UndefinedTable"),
    ("SELECT c.relname FROM pg_class c WHERE c.oid = 'no_such_table'::regclass", "UndefinedTable"),
    ("SELECT 'no_such_type'::regtype", "UndefinedObject"),
])
def test_unknown_names_in_reg_casts_fail_as_in_postgres(catalog_server: FsqlServer,
                                                       reference_pg: str, query: str,
                                                       error: str) -> None:
    """A name that is no relation (type) is error 42P01 (42704) with PostgreSQL's message;
    to_regclass/to_regtype give NULL for it instead."""
    import psycopg

    messages = []
    for url in (fsql_url(catalog_server), reference_pg):
        with psycopg.connect(url) as conn:
            with pytest.raises(getattr(psycopg.errors, error)) as info:
                conn.execute(query)
            messages.append(info.value.diag.message_primary)
            conn.rollback()
            lenient = conn.execute("SELECT to_regclass('no_such_table') IS NULL, "
                                   "to_regtype('no_such_type') IS NULL").fetchone()
            assert lenient == (True, True)
    assert messages[0] == messages[1]


def test_temporary_tables_of_two_sessions_equal_postgres(catalog_server: FsqlServer,
                                                         reference_pg: str) -> None:
    """pg_class lists every session's temporary tables; pg_table_is_visible, ::regclass and
    information_schema show a session its own only (as PostgreSQL does). fsql learns of
    another session's temporary tables when that session runs a catalog statement."""
    import psycopg

    queries = [
        "SELECT relname, relpersistence FROM pg_class WHERE relname LIKE 'spine\\_%' ORDER BY 1",
        "SELECT relname, pg_table_is_visible(oid) FROM pg_class WHERE relname LIKE 'spine\\_%' "
        "ORDER BY 1",
        "SELECT table_name, table_type FROM information_schema.tables "
        "WHERE table_name LIKE 'spine\\_%'",
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name LIKE 'spine\\_%' ORDER BY 1",
        "SELECT to_regclass('spine_a') IS NOT NULL, to_regclass('spine_b') IS NULL",
    ]
    answers = []
    for url in (fsql_url(catalog_server), reference_pg.replace("postgres@", "tester@", 1)):
        with psycopg.connect(url, autocommit=True) as a, psycopg.connect(url,
                                                                         autocommit=True) as b:
            a.execute("CREATE TEMP TABLE spine_a (user_id text, ts timestamp)")
            b.execute("CREATE TEMP TABLE spine_b (item_id bigint)")
            # fsql lists a session's temporary tables when that session runs a catalog query
            b.execute("SELECT count(*) FROM pg_class").fetchall()
            answers.append([a.execute(q).fetchall() for q in queries])
    ours, theirs = answers
    assert ours == theirs
    assert ours[0] == [("spine_a", "t"), ("spine_b", "t")]
    assert ours[2] == [("spine_a", "LOCAL TEMPORARY")]
