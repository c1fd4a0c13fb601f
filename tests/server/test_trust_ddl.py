"""Under ``auth = "trust"`` with no ``[[server.users]]`` (the default configuration), DDL over
the wire is off (issue 15, finding 3): every local user can connect under trust, and defining
a source reads files as the server. 42501 with a hint naming the setting that turns it on
(``[server] trust_can_define``, set by the tests that define over the wire); nothing is
defined, the session goes on, and reading is unaffected."""

from __future__ import annotations

import psycopg
import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

STATEMENTS = [
    "CREATE ENTITY shop KEY (shop_id BIGINT)",
    "CREATE SOURCE s (a VARCHAR, ts TIMESTAMP) FROM 'x.csv' FORMAT CSV EVENT TIME ts",
    "DROP FEATURE nothing",
]


@pytest.mark.parametrize("sql", STATEMENTS)
def test_ddl_is_off_under_trust_without_users(fsql_server: FsqlServer, sql: str) -> None:
    with psycopg.connect(fsql_server.dsn(user="anyone"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute(sql)
        diag = refused.value.diag
        assert diag.message_primary == (
            'permission denied: user "anyone" may not define or drop entities, sources, '
            "features or feature sets")
        assert "[server] trust_can_define = true" in (diag.message_hint or ""), diag.message_hint
        assert "can_define = true" in (diag.message_hint or "")
        assert conn.execute("SELECT count(*) FROM fsql.entities").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM fsql.sources").fetchone() == (0,)
