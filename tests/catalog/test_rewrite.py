"""Which statements are catalog queries, and how they are rewritten for the catalog database
(no server: sqlglot trees only)."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from fsql_server.pg.catalog.rewrite import is_catalog_query, rewrite
from fsql_server.pg.catalog.tables import quote_ident
from fsql_server.pg.colnames import output_name
from fsql_server.pg.dialect import FsqlPostgres
from fsql_server.pg.session import VERSION_STRING


def tree(sql: str) -> sqlglot.exp.Expression:
    return sqlglot.parse_one(sql, read=FsqlPostgres)


@pytest.mark.parametrize("sql", [
    "SELECT relname FROM pg_catalog.pg_class",
    "SELECT relname FROM pg_class",
    "SELECT * FROM information_schema.columns",
    "SELECT 'features.user'::regclass",
    "SELECT format_type(23, -1)",
    "SELECT current_schemas(true)",
    "SELECT word FROM pg_get_keywords()",
])
def test_catalog_queries_are_recognised(sql: str) -> None:
    assert is_catalog_query(tree(sql))


@pytest.mark.parametrize("sql", [
    "SELECT 1", "SELECT version()", "SELECT * FROM offline.spend_7d",
    "SELECT user_id FROM features.user WHERE user_id = 'a'", "SELECT current_setting('x')",
    "INSERT INTO pg_class VALUES (1)", "SELECT * FROM my_spine",
])
def test_other_statements_are_not_catalog_queries(sql: str) -> None:
    assert not is_catalog_query(tree(sql))


def test_rewrite_of_postgres_only_syntax() -> None:
    sql = ("SELECT c.oid::pg_catalog.regclass, pg_catalog.pg_get_userbyid(c.relowner) "
           "FROM pg_catalog.pg_class c WHERE c.relname OPERATOR(pg_catalog.~) '^(x)$' "
           "COLLATE pg_catalog.default AND c.oid = 'features.user'::regclass")
    out = rewrite(tree(sql)).sql(dialect="duckdb")
    assert "pg_catalog" not in out and "COLLATE" not in out and "OPERATOR" not in out
    # the last argument is the session's temporary schema (none here: -1)
    assert "FSQL_REGCLASS_NAME(c.oid, -1)" in out and "FSQL_PG_GET_USERBYID(c.relowner)" in out
    assert "c.oid = FSQL_REGCLASS_STRICT('features.user', -1)" in out  # unknown: 42P01
    assert "REGEXP_MATCHES(c.relname, '^(x)$')" in out
    # the select list keeps PostgreSQL's output names
    assert 'AS "oid"' in out and 'AS "pg_get_userbyid"' in out


@pytest.mark.parametrize(("sql", "name"), [
    ("SELECT 'x'::regclass::text", "text"), ("SELECT c.oid::regclass::text FROM t c", "oid"),
    ("SELECT 1 + 1", "?column?"), ("SELECT pg_catalog.format_type(23, NULL)", "format_type"),
    ("SELECT count(*)", "count"), ("SELECT CASE WHEN true THEN 1 END", "case"),
    ("SELECT ARRAY[1]", "array"), ("SELECT 'a' ~ 'b'", "?column?"), ("SELECT 1::int", "int4"),
])
def test_output_names_follow_postgres(sql: str, name: str) -> None:
    assert output_name(tree(sql).expressions[0]) == name


def test_quote_ident_matches_postgres_rules() -> None:
    assert quote_ident("spend_7d") == "spend_7d"
    assert quote_ident("user") == '"user"'  # reserved
    assert quote_ident("Mixed") == '"Mixed"'
    assert quote_ident('a"b') == '"a""b"'


def test_catalog_rewrites_follow_postgres_types_and_nulls() -> None:
    """generate_series of integer literals is int4 (pgjdbc's KEY_SEQ), an array || another
    skips a NULL side (psql's \\d reloptions), version() names fsql."""
    con = duckdb.connect()
    sql = ("SELECT pos.n, g, version(), NULL::text[] || array(SELECT 'a' WHERE false) AS opts "
           "FROM pg_catalog.generate_series(1, 2) pos(n), generate_series(3, 3) g")
    out = rewrite(tree(sql)).sql(dialect="duckdb")
    result = con.execute(out)
    assert [(d[0], str(d[1])) for d in result.description][:2] == [("n", "INTEGER"),
                                                                    ("g", "INTEGER")]
    assert result.fetchall() == [(1, 3, VERSION_STRING, []), (2, 3, VERSION_STRING, [])]
