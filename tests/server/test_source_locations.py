"""DDL over the wire may not define a source reading outside the repo and [sources] roots:
42501 at the path; a path with a slash is refused by the sandbox before (42501 too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.language.test_source_locations import source

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]


def test_ddl_over_the_wire_refuses_a_source_outside_the_repo(
    start_server: Any, tmp_path: Path
) -> None:
    import psycopg

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "escape").symlink_to("/etc")  # a link in the repo to a folder outside it
    server = start_server("[server]\ntrust_can_define = true\n", repo=repo)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for sql in (source("'escape'"), source("'escape'").replace("FROM '", "FROM'")):
            sql = sql.rstrip(";\n")
            with pytest.raises(psycopg.Error) as refused:
                conn.execute(sql)
            assert refused.value.sqlstate == "42501", refused.value
            assert "outside the repo and [sources] roots" in str(refused.value)
            assert refused.value.diag.statement_position == str(sql.index("'escape'") + 1)
        with pytest.raises(psycopg.Error) as sandbox:
            conn.execute(source("'/etc/passwd'").replace("FROM '", "FROM'").rstrip(";\n"))
        assert sandbox.value.sqlstate == "42501"
        assert conn.execute("SELECT count(*) FROM fsql.sources").fetchone() == (0,)
