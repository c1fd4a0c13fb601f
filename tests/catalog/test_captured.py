"""The catalog queries real clients sent to PostgreSQL 15 (psql 15 ``\\d``, SQLAlchemy 2.1's
inspector, pgjdbc's DatabaseMetaData; captured through a logging proxy and kept in
corpus/captured_<client>.json), replayed against fsql and PostgreSQL 15 with the same tables:
the rows must be equal. The captures described a table ``public.features`` with oid 16384;
the replay asks about ``sources.tx`` instead (its oid on each server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.postgres]

CORPUS = Path(__file__).parent / "corpus"


def captured() -> list[tuple[str, int, str]]:
    cases = []
    for path in sorted(CORPUS.glob("captured_*.json")):
        client = path.stem.removeprefix("captured_")
        for index, sql in enumerate(json.loads(path.read_text())):
            cases.append((client, index, sql))
    return cases


#: answers fsql gives on purpose that differ from PostgreSQL's (listed in docs/clients.md);
#: none left: pg_opclass holds PostgreSQL 15's built-in rows
KNOWN_DIFFERENCES: dict[str, list[tuple]] = {}


def retarget(sql: str, oid: int) -> str:
    return (sql.replace("16384", str(oid)).replace("'features'", "'tx'")
            .replace("'^(features)$'", "'^(tx)$'").replace("'public'", "'sources'"))


@pytest.mark.parametrize(("client", "index", "sql"), captured(),
                         ids=[f"{c}-{i}" for c, i, _ in captured()])
def test_captured_catalog_query_equals_postgres(catalog_server: FsqlServer, reference_pg: str,
                                                client: str, index: int, sql: str) -> None:
    import psycopg

    answers = []
    for url in (f"postgresql://tester@127.0.0.1:{catalog_server.port}/fsql", reference_pg):
        with psycopg.connect(url) as conn:
            oid = conn.execute("SELECT 'sources.tx'::regclass::oid").fetchone()[0]
            answers.append(conn.execute(retarget(sql, oid)).fetchall())
    ours, theirs = answers
    known = [answer for marker, answer in KNOWN_DIFFERENCES.items() if marker in sql]
    if known:
        assert ours == known[0] and theirs != ours
        return
    assert ours == theirs
