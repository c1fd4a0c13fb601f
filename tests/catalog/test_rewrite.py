"""Which statements are catalog queries, and how they are rewritten for the catalog database
(no server: sqlglot trees only)."""

from __future__ import annotations

import pytest
import sqlglot
from fsql_server.catalog.engine import is_catalog_query, quote_ident, rewrite


def tree(sql: str) -> sqlglot.exp.Expression:
    return sqlglot.parse_one(sql, read="postgres")


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
    assert "FSQL_REGCLASS_NAME(c.oid)" in out and "FSQL_PG_GET_USERBYID(c.relowner)" in out
    assert "c.oid = FSQL_REGCLASS('features.user')" in out
    assert "REGEXP_MATCHES(c.relname, '^(x)$')" in out


def test_quote_ident_matches_postgres_rules() -> None:
    assert quote_ident("spend_7d") == "spend_7d"
    assert quote_ident("user") == '"user"'  # reserved
    assert quote_ident("Mixed") == '"Mixed"'
    assert quote_ident('a"b') == '"a""b"'
