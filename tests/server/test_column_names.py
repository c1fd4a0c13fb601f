"""Result column names as PostgreSQL gives them (server/pg/colnames.py), differentially: each
select-list item below, and the generated combinations of them, is described by fsql and by a
real PostgreSQL 15, and the column names must be equal. Three of fsql's routes are covered:
a query over a subquery (DuckDB), one that also reads pg_catalog (the catalog emulation), and
a SELECT without FROM (constants, evaluated in Python when it can be)."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import pytest
import sqlglot
from fsql_server.pg.dialect import FsqlPostgres
from sqlglot import exp

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.timeout(300)]

#: unnamed and named select-list items, with PostgreSQL's names for them checked by the test
#: (x is an integer column, t a text column)
ITEMS = [
    "x", "X", "s.x", "s.X", "t", "(x)", "((x))", "-x", "x * 2", "1 + 1", "x::int + 1",
    "1", "'a'", "null", "true", "$$a$$", "E'a'", "(1)",
    "1::int", "1::int8", "2::bigint", "1::smallint", "1::double precision", "1::float",
    "1::real", "1::float4", "1::decimal", "'1'::numeric", "x::numeric(10,2)", "'a'::text",
    "'a'::varchar", "'a'::varchar(3)", "'a'::character varying", "'a'::char", "'a'::bpchar",
    "'{x}'::text[]", "'{}'::int[]", "null::int", "'1'::json", "'1'::jsonb", "'x'::bytea",
    "1::oid", "'pg_class'::regclass", "'int4'::pg_catalog.regtype::pg_catalog.text",
    "'2020-01-01'::timestamptz", "'2020-01-01'::timestamp with time zone",
    "'2020-01-01'::timestamp", "'10:00'::time", "date '2020-01-01'", "interval '1 day'",
    "cast(x as bigint)", "x::text::int", "t::varchar", "x::boolean", "cast(t as text)",
    "(x + 1)::text", "now()::date", "cast(now() as date)",
    "now()", "current_timestamp", "current_date", "localtimestamp", "localtime",
    "now() at time zone 'utc'", "current_user", "session_user", "current_role", "user",
    "current_schema", "current_schema()", "current_catalog", "version()",
    "pg_catalog.version()", "current_setting('TimeZone')",
    "pg_catalog.current_setting('search_path')",
    "trim(' x')", "trim(leading 'x' from 'xa')", "trim(trailing 'x' from 'ax')", "btrim(' a ')",
    "position('a' in 'ba')", "strpos('abc', 'b')", "substring('abc' for 1)", "substr('abc', 1)",
    "overlay('abc' placing 'x' from 1)", "extract(year from now())", "date_part('year', now())",
    "char_length('x')", "length('a')", "lower('A')", "upper(t)", "Upper(t)",
    "pg_catalog.upper('a')", "coalesce(null, 1)", "coalesce(t, 'a')", "nullif(1, 2)",
    "greatest(1, 2)", "least(1, 2)", "abs(-1)", "round(1.5)", "ceil(1.5)", "ceiling(1.5)",
    "floor(1.5)", "mod(3, 2)", "power(2, 3)", "sqrt(4)", "md5('a')", "concat('a', 'b')",
    "replace('a', 'a', 'b')", "split_part('a,b', ',', 1)", "left('ab', 1)", "right('ab', 1)",
    "chr(65)", "initcap('a')", "regexp_replace('a', 'a', 'b')", "to_char(now(), 'YYYY')",
    "date_trunc('day', now())", "to_timestamp(0)", "array_to_string(array[1], ',')",
    "array_length(array[1], 1)", "format('%s', x)", "to_json(x)", "pg_typeof(x)",
    "array[1]", "ARRAY[x, 2]", "row(1, 2)", "ROW(x)", "(x, 2)", "array(select 1)",
    "exists(select 1)", "(array[1])[1]",
    "(select 1 as q)", "(select x)", "(select 1)", "(select upper('a'))",
    "(select x as \"Y\")", "(select x as Y)", "(select t from (select 'a' as t) z limit 1)",
    "case when true then 1 end", "case when true then x else 2 end",
    "case when true then 1 else x end", "case x when 1 then 'a' else 'b' end",
    "case when x = 1 then t end", "case when x = 1 then t else upper(t) end",
    "case when x = 1 then 'a' else t::text end",
    "CASE WHEN x = 0 THEN '' ELSE x::pg_catalog.text END",
    "CASE WHEN x = 1 THEN NULL ELSE pg_catalog.array_to_string(array(select 1), ',') END",
    "'a' is null", "x is not null", "x between 1 and 2", "x in (1, 2)", "'a' like 'b'",
    "'a' ~ 'b'", "'a' || 'b'", "x::text || t", "not true", "not (x = 1)", "x = any('{1}')",
    "x is distinct from 2", "t is null or x = 1", "random() < 2", "'a' collate \"C\"",
    "t collate \"C\"", "x::text collate \"C\"",
    "X AS Foo", "1 AS Foo", "1 AS \"Bar\"", "x AS \"MiXed\"", "upper(t) AS UP",
]

#: aggregates and window functions (their own queries: no GROUP BY mixing)
AGGREGATES = [
    "count(*)", "COUNT(X)", "sum(x)", "avg(x)", "max(x)", "min(t)", "bool_and(true)",
    "string_agg(t, ',')", "string_agg(t, ',' order by t)", "array_agg(x)",
    "array_agg(x order by x)", "json_agg(x)", "count(*) filter (where x > 0)",
    "sum(x) over ()", "row_number() over ()", "grouping(x)", "(select count(*) from (select 1) z)",
]

#: wrappers that pass a name on, or replace it, combined with some items of each kind
WRAPPERS = [
    "({})", "({})::text", "CAST({} AS varchar)", "(SELECT {})",
    "CASE WHEN x = 1 THEN NULL ELSE {} END", "CASE WHEN x = 1 THEN {} END",
    "coalesce({}, {})", "({}) IS NULL", "ARRAY[{}]", "(SELECT {} AS Inner_Name)",
]
LEAVES = ["x", "t", "upper(t)", "now()", "1", "'a'::text", "x::int", "(select x)",
          "CASE WHEN x = 1 THEN t END", "current_user", "version()", "-x"]
GENERATED = [wrapper.format(*[leaf] * wrapper.count("{}"))
             for wrapper, leaf in itertools.product(WRAPPERS, LEAVES)]

SOURCE = "(SELECT 1 AS x, 'a'::text AS t) s"


def statements() -> list[tuple[str, str]]:
    """(id, statement) for each item on each route."""
    out = []
    for item in ITEMS + GENERATED:
        out.append((f"duckdb {item}", f"SELECT {item} FROM {SOURCE}"))
        out.append((f"catalog {item}", f"SELECT {item} FROM {SOURCE} "
                                       f"JOIN pg_catalog.pg_namespace n ON n.nspname = s.t"))
        if not reads_columns(item):
            out.append((f"constant {item}", f"SELECT {item}"))
    for item in AGGREGATES:
        out.append((f"aggregate {item}", f"SELECT {item} FROM {SOURCE} GROUP BY x, t"
                    if "grouping" in item else f"SELECT {item} FROM {SOURCE}"))
    return out


def listing(found: dict[str, Any]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in found.items())


def reads_columns(item: str) -> bool:
    tree = sqlglot.parse_one(f"SELECT {item}", read=FsqlPostgres)
    return any(isinstance(node, exp.Column) for node in tree.walk())


def described(conn: Any, sql: str) -> list[str] | str:
    """The column names of ``sql``'s result, or the error that stopped it."""
    try:
        cursor = conn.execute(sql)
    except psycopg.Error as error:
        return f"error {error.sqlstate}: {error}"
    return [column.name for column in cursor.description or []]


@pytest.fixture(scope="module")
def names(fsql_server: Any, postgres_url: str) -> dict[str, tuple[Any, Any]]:
    out = {}
    with psycopg.connect(fsql_server.dsn(), autocommit=True) as ours, \
            psycopg.connect(postgres_url, autocommit=True) as theirs:
        for key, sql in statements():
            out[key] = (described(ours, sql), described(theirs, sql))
    return out


def test_the_table_is_large_enough() -> None:
    assert len(ITEMS) + len(AGGREGATES) >= 40 and len(GENERATED) >= 100


def test_postgres_runs_every_statement(names: dict[str, tuple[Any, Any]]) -> None:
    """The table holds only what PostgreSQL accepts (the names compared are its own)."""
    refused = {key: theirs for key, (_, theirs) in names.items() if isinstance(theirs, str)}
    assert refused == {}, listing(refused)


def test_column_names_are_postgres_names(names: dict[str, tuple[Any, Any]]) -> None:
    differ = {key: both for key, both in names.items()
              if not isinstance(both[0], str) and both[0] != both[1]}
    assert differ == {}, listing(differ)


#: statements fsql refuses today, each for a gap of its DuckDB path unrelated to names
#: (issue #14; the names of the other routes are still compared)
GAPS = {
    "aggregate json_agg(x)": "sqlglot writes json_agg as DuckDB's missing json_arrayagg",
}


def test_fsql_runs_the_statements(names: dict[str, tuple[Any, Any]]) -> None:
    """Every statement of the table runs on fsql too, but for the gaps listed in GAPS (each
    a missing function or type of the DuckDB path, not a naming question)."""
    failed = {key: ours for key, (ours, _) in names.items() if isinstance(ours, str)}
    assert sorted(failed) == sorted(GAPS), listing(failed)
