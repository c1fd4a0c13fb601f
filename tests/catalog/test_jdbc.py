"""pgjdbc's DatabaseMetaData against fsql and against a real PostgreSQL 15 holding ordinary
tables with the same names, columns, types, keys and comments (the calls DBeaver, DataGrip
and Metabase make when browsing). The calls are the corpus file corpus/pgjdbc.txt."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.server.conftest import FsqlServer
from tests.services.jdbc import JAR, compile_jdbc_probe

pytestmark = [pytest.mark.server, pytest.mark.postgres]

SOURCE = Path(__file__).parent / "java" / "FsqlJdbcMetadata.java"
CORPUS = Path(__file__).parent / "corpus" / "pgjdbc.txt"


def corpus() -> list[tuple[str, str]]:
    lines = [line.split("\t", 1) for line in CORPUS.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return [(mode, op) for mode, op in lines]


@pytest.fixture(scope="module")
def metadata_probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_jdbc_probe(SOURCE, tmp_path_factory.mktemp("java_metadata"))


def run(classes: Path, url: str, user: str, ops: list[str]) -> dict[int, list[str]]:
    result = subprocess.run(["java", "-cp", f"{JAR}:{classes}", "FsqlJdbcMetadata", url, user,
                             *ops], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out: dict[int, list[str]] = {}
    for line in result.stdout.splitlines():
        index, rest = line.split("\t", 1)
        out.setdefault(int(index), []).append(rest)
    return out


def test_database_metadata_equals_postgres(catalog_server: FsqlServer, reference_pg: str,
                                           metadata_probe: Path) -> None:
    calls = corpus()
    ops = [op for _mode, op in calls]
    ours = run(metadata_probe, f"jdbc:postgresql://127.0.0.1:{catalog_server.port}/fsql",
               "tester", ops)
    pg = urlparse(reference_pg)
    theirs = run(metadata_probe, f"jdbc:postgresql://{pg.hostname}:{pg.port}{pg.path}",
                 pg.username or "postgres", ops)
    # the one difference on purpose: the database (FUNCTION_CAT, ...) is fsql's, "fsql"
    database = re.compile(rf"(?:^|(?<=\t)){re.escape(pg.path.lstrip('/'))}(?=\t|$)")
    theirs = {i: [database.sub("fsql", line) for line in lines] for i, lines in theirs.items()}
    for index, (mode, op) in enumerate(calls):
        assert not ours[index][0].startswith("ERROR"), (op, ours[index])
        assert ours[index][-1] == "END", (op, ours[index])
        if mode in ("same", "empty"):
            assert ours[index] == theirs[index], op
            # rows, not an empty answer (sources have no primary key)
            assert (len(ours[index]) > 1) == (mode == "same" and not op.startswith("pk|sources"))
    # getSchemas: fsql's schemas next to PostgreSQL's own
    schemas = run(metadata_probe, f"jdbc:postgresql://127.0.0.1:{catalog_server.port}/fsql",
                  "tester", ["schemas"])[0]
    assert [s.split("\t")[0] for s in schemas[:-1]] == [
        "features", "fsql", "information_schema", "offline", "pg_catalog", "public", "sources"]
