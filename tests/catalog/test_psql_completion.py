"""psql's tab completion against fsql and against a real PostgreSQL 15 holding the same
tables: psql runs in a pseudo-terminal, the test types a prefix and TAB (twice to list the
candidates) and the completed line or candidate list psql prints must be equal. psql builds
its completions from catalog queries (pg_class, pg_namespace, pg_attribute, pg_proc with
``LIKE 'pg\\_get%'`` patterns), so these are the queries it sends while typing."""

from __future__ import annotations

import os
import select
import shutil
import time
from pathlib import Path

import pytest

from tests.server.conftest import FsqlServer

pytestmark = [pytest.mark.server, pytest.mark.postgres]

CORPUS = Path(__file__).parent / "corpus" / "psql_completion.txt"
#: typed after the TABs: psql handles input in order, so its echo follows the completion
MARKER = "@@done@@"


def typed_lines() -> list[str]:
    return [line.replace("<TAB>", "\t") for line in CORPUS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def complete(args: list[str], typed: str) -> str:
    """What psql shows after ``typed`` (with its TABs) in an interactive session."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: psql on the terminal
        env = {**os.environ, "PSQLRC": "/dev/null", "TERM": "dumb", "LC_ALL": "C.UTF-8"}
        os.execvpe("psql", ["psql", "-X", "-v", "PROMPT1=>> ", *args], env)
    try:
        read_until(fd, ">> ")
        os.write(fd, (typed + MARKER).encode())
        out = read_until(fd, MARKER)
    finally:
        os.write(fd, b"\x03\\q\n")
        os.close(fd)
        os.waitpid(pid, 0)
    return out.removesuffix(MARKER).replace("\x07", "")


def read_until(fd: int, text: str, limit: float = 60) -> str:
    out = b""
    deadline = time.monotonic() + limit
    while text.encode() not in out:
        assert time.monotonic() < deadline, f"psql did not show {text!r}: {out!r}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            out += os.read(fd, 65536)
    return out.decode()


@pytest.mark.parametrize("typed", typed_lines(), ids=lambda t: t.replace("\t", "<TAB>"))
def test_psql_tab_completion_equals_postgres(catalog_server: FsqlServer, reference_pg: str,
                                             typed: str) -> None:
    assert shutil.which("psql"), "psql (postgresql-client-15) is not installed"
    ours = complete(["-h", "127.0.0.1", "-p", str(catalog_server.port), "-U", "tester",
                     "-d", "fsql"], typed)
    theirs = complete([reference_pg], typed)
    assert ours == theirs
    prefix = typed.replace("\t", "")
    assert ours != prefix, "psql completed nothing"  # every corpus line completes something
