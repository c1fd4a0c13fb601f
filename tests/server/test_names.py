"""DDL over the wire with a name that is not a plain identifier: 42602 pointing at the name,
nothing defined."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.conftest import FsqlServer, write_config

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FsqlServer]:
    """DDL over the wire allowed explicitly (trust, no users)."""
    repo = tmp_path_factory.mktemp("names")
    write_config(repo, "[server]\ntrust_can_define = true\n")
    started = FsqlServer(repo).start()
    yield started
    started.stop()


@pytest.mark.parametrize("name", ['"../../../../elsewhere/escaped"', '"x"" FROM y; --"'])
def test_ddl_with_an_invalid_name_is_42602_at_the_name(server: FsqlServer, name: str) -> None:
    import psycopg

    sql = f"CREATE ENTITY {name} KEY (user_id VARCHAR)"
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(sql)
        assert refused.value.sqlstate == "42602", refused.value
        assert "[A-Za-z_][A-Za-z0-9_]*" in str(refused.value)
        assert refused.value.diag.statement_position == str(sql.index(name) + 1)
        assert conn.execute("SELECT count(*) FROM fsql.entities").fetchone() == (0,)
