"""search_path over the wire: ``SET search_path``, ``set_config``, libpq's startup options in
every form, ``current_schema()``/``current_schemas()``, and unqualified names resolved in the
path's schemas (temporary tables first), against the materialized shop repo of
test_surface."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import FsqlServer
from tests.server.test_surface import repo, shop  # noqa: F401 - fixtures

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(repo: Path) -> Iterator[FsqlServer]:  # noqa: F811 - the fixture imported above
    srv = FsqlServer(repo).start()
    yield srv
    srv.stop()


def test_set_search_path_resolves_unqualified_names(server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(server.dsn("bob"), autocommit=True) as conn:
        expected = conn.execute("SELECT count(*) FROM offline.user_orders").fetchone()
        assert expected[0] > 0
        assert conn.execute("SELECT current_schema(), current_schemas(false)").fetchone() == (
            "public", ["public"])
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT count(*) FROM user_orders")
        conn.execute("SET search_path TO offline")
        assert conn.execute("SHOW search_path").fetchone() == ("offline",)
        assert conn.execute("SELECT count(*) FROM user_orders").fetchone() == expected
        # a join with a second schema of the path, and a CTE that shadows a relation name
        conn.execute("SET search_path = offline, sources, public")
        joined = conn.execute(
            "SELECT count(*) FROM user_orders u JOIN (SELECT DISTINCT user_id FROM orders) o "
            "ON u.user_id = o.user_id").fetchone()[0]
        assert joined == conn.execute(
            "SELECT count(*) FROM offline.user_orders u JOIN (SELECT DISTINCT user_id FROM "
            "sources.orders) o ON u.user_id = o.user_id").fetchone()[0]
        assert conn.execute("WITH user_orders AS (SELECT 1 AS x) SELECT x FROM user_orders"
                            ).fetchall() == [(1,)]
        assert conn.execute("SELECT current_schema(), current_schemas(true)").fetchone() == (
            "offline", ["pg_catalog", "offline", "sources", "public"])
        # a temporary table of the same name comes first, as in PostgreSQL
        conn.execute("CREATE TEMP TABLE user_orders AS SELECT 7 AS mine")
        assert conn.execute("SELECT * FROM user_orders").fetchall() == [(7,)]
        conn.execute("DROP TABLE user_orders")
        assert conn.execute("SELECT count(*) FROM user_orders").fetchone() == expected
        # set_config changes it too; the plan cached under the old path is not reused
        assert conn.execute("SELECT set_config('search_path', 'public', false)").fetchone() == (
            "public",)
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT count(*) FROM user_orders")
        assert conn.execute("SELECT current_schema()").fetchone() == ("public",)


def test_prepared_statements_follow_the_path(server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(server.dsn("bob"), autocommit=True, prepare_threshold=0) as conn:
        conn.execute("SET search_path TO sources")
        total = conn.execute("SELECT count(*) FROM orders WHERE purchase_amount > %s", [0]).fetchone()[0]
        assert total == conn.execute(
            "SELECT count(*) FROM sources.orders WHERE purchase_amount > 0").fetchone()[0]
        # a statement prepared under one path is planned again under another
        conn.execute("SET search_path TO offline")
        query = "SELECT count(*) > 0 FROM user_orders WHERE user_id <> %s"
        assert conn.execute(query, ["x"], prepare=True).fetchone() == (True,)
        conn.execute("SET search_path TO public")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute(query, ["x"], prepare=True)
        conn.execute("SET search_path TO offline")
        assert conn.execute(query, ["x"], prepare=True).fetchone() == (True,)


@pytest.mark.parametrize("options", [
    "-c search_path=offline",
    "-csearch_path=offline",  # Superset's form
    "--search_path=offline",
    "-c search_path=offline,public -c TimeZone=Europe/Paris",
    "-csearch_path=offline\\,\\ public -cTimeZone=Europe/Paris",  # escaped blank in a value
])
def test_startup_options(server: FsqlServer, options: str) -> None:
    import psycopg

    with psycopg.connect(server.dsn("bob"), options=options, autocommit=True) as conn:
        assert conn.execute("SELECT current_schema()").fetchone() == ("offline",)
        assert conn.execute("SELECT count(*) > 0 FROM user_orders").fetchone() == (True,)
        if "TimeZone" in options:
            assert conn.info.parameter_status("TimeZone") == "Europe/Paris"
            assert conn.execute("SHOW TimeZone").fetchone() == ("Europe/Paris",)


@pytest.mark.parametrize(("options", "text"), [
    ("-c no_such_setting=1", 'unrecognized configuration parameter "no_such_setting"'),
    ("-x", "invalid command-line argument for server process: -x"),
    ("-c search_path", "-c search_path requires a value"),
])
def test_bad_startup_options_are_fatal_as_in_postgresql(server: FsqlServer, options: str,
                                                        text: str) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(server.dsn("bob"), options=options)
    assert text in str(info.value)
    # the server goes on serving
    with psycopg.connect(server.dsn("bob")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_features_lookups_through_the_path_and_with_collate_c(server: FsqlServer,
                                                              shop: Any) -> None:  # noqa: F811
    """``features`` on the path, and ``COLLATE "C"`` on the key (DuckDB's postgres extension
    writes its filters so): the same row as the plain lookup."""
    import psycopg

    user = shop.users[1]
    with psycopg.connect(server.dsn("bob"), autocommit=True) as conn:
        expected = conn.execute("SELECT * FROM features.user WHERE user_id = %s",
                                [user]).fetchall()
        assert len(expected) == 1
        assert conn.execute('SELECT * FROM features.user WHERE user_id COLLATE "C" = %s',
                            [user]).fetchall() == expected
        conn.execute("SET search_path TO features, public")
        assert conn.execute('SELECT * FROM "user" WHERE user_id = %s', [user]).fetchall() == (
            expected)
        assert conn.execute(
            "SELECT user_id FROM sources.orders WHERE user_id COLLATE \"C\" = %s "
            "ORDER BY user_id COLLATE \"C\" LIMIT 1", [user]).fetchall() == [(user,)]


def test_reset_and_discard_restore_the_default_path(server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(server.dsn("bob"), autocommit=True) as conn:
        for reset in ("RESET search_path", "RESET ALL", "DISCARD ALL",
                      "SET search_path TO DEFAULT"):
            conn.execute("SET search_path TO offline")
            assert conn.execute("SELECT count(*) > 0 FROM user_orders").fetchone() == (True,)
            conn.execute(reset)
            assert conn.execute("SHOW search_path").fetchone() == ('"$user", public',)
            with pytest.raises(psycopg.errors.UndefinedTable):
                conn.execute("SELECT count(*) > 0 FROM user_orders")


def test_columns_of_offline_and_sources_carry_their_table(server: FsqlServer) -> None:
    """RowDescription of ``offline.*``/``sources.*`` columns: the relation's pg_class OID
    and pg_attribute numbers (pgjdbc's getBaseTableName, BI tools' column lineage)."""
    import psycopg

    with psycopg.connect(server.dsn("bob"), autocommit=True) as conn:
        for relation in ("offline.user_orders", "sources.orders"):
            cur = conn.execute(f"SELECT * FROM {relation} LIMIT 0")
            res = cur.pgresult
            assert res is not None
            got = [(res.fname(i).decode(), res.ftable(i), res.ftablecol(i))
                   for i in range(res.nfields)]
            oid = conn.execute("SELECT %s::regclass::oid", [relation]).fetchone()[0]
            attributes = conn.execute(
                "SELECT attname, attnum FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
                "ORDER BY attnum", [oid]).fetchall()
            assert got == [(name, oid, num) for name, num in attributes]
            # an expression is no table's column
            cur = conn.execute(f"SELECT count(*) FROM {relation}")
            assert cur.pgresult is not None and cur.pgresult.ftable(0) == 0
