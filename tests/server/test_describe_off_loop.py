"""Extended-protocol Describe of a catalog statement refreshes the catalog in a thread, not on
the event loop (issue 15, finding 5): the first refresh builds the catalog database (about a
second), and another session's ``SELECT 1`` answers meanwhile. Before, Describe ran the
refresh on the loop and the other session waited for it. Against the real server process,
a fresh one (its catalog not built yet)."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.server.conftest import FsqlServer, write_config
from tests.server.test_robustness import connect, error_fields, read_until_ready, startup

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

CATALOG_QUERY = (b"SELECT c.relname, a.attname FROM pg_class c "
                 b"JOIN pg_attribute a ON a.attrelid = c.oid LIMIT 1")


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FsqlServer]:
    repo = tmp_path_factory.mktemp("describe")
    write_config(repo, "")
    started = FsqlServer(repo).start()
    yield started
    started.stop()


def test_describe_of_a_catalog_statement_lets_other_sessions_answer(server: FsqlServer) -> None:
    done: dict[str, Any] = {}
    sock = connect(server)
    sock.settimeout(60)

    def read_describe() -> None:
        done["messages"] = read_until_ready(sock)
        done["describe"] = time.monotonic()

    try:
        startup(sock)
        sock.sendall(message(b"P", b"\x00" + CATALOG_QUERY + b"\x00\x00\x00") + message(b"S"))
        assert [kind for kind, _ in read_until_ready(sock)] == [b"1", b"Z"]
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("SELECT 1")
            reader = threading.Thread(target=read_describe)
            reader.start()
            sock.sendall(message(b"D", b"S\x00") + message(b"S"))  # builds the catalog
            time.sleep(0.2)
            assert conn.execute("SELECT 1").fetchone() == (1,)
            done["small"] = time.monotonic()
            reader.join(60)
    finally:
        sock.close()
    kinds = [kind for kind, _ in done["messages"]]
    assert kinds == [b"t", b"T", b"Z"], done["messages"]
    columns = done["messages"][1][1]
    assert b"relname" in columns and b"attname" in columns
    assert done["small"] < done["describe"], done


def test_describe_in_a_thread_obeys_the_statement_timeout(start_server: Any) -> None:
    """A Describe that would take longer than the statement timeout is cancelled (57014) and
    the session goes on; the next Describe (the catalog built meanwhile) answers."""
    server = start_server("")
    sock = connect(server)
    sock.settimeout(60)
    try:
        startup(sock)
        sock.sendall(message(b"Q", b"SET statement_timeout = '1ms'\x00"))
        read_until_ready(sock)
        sock.sendall(message(b"P", b"s1\x00" + CATALOG_QUERY + b"\x00\x00\x00")
                     + message(b"D", b"Ss1\x00") + message(b"S"))
        answer = read_until_ready(sock)
        assert [kind for kind, _ in answer] == [b"1", b"E", b"Z"], answer
        assert error_fields(answer[1][1])["C"] == "57014", answer
        sock.sendall(message(b"Q", b"RESET statement_timeout\x00"))
        read_until_ready(sock)
        sock.sendall(message(b"D", b"Ss1\x00") + message(b"S"))
        assert [kind for kind, _ in read_until_ready(sock)] == [b"t", b"T", b"Z"]
    finally:
        sock.close()
