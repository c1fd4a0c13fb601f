"""A ``key = ANY($1)`` with hundreds of thousands of keys (issue 15, finding 2's last case),
against the real server process: decoding the parameter (a text array of megabytes), the
lookup of every key and the sending of the rows happen off the event loop or in turns with
the other sessions, and the whole bound statement, its Bind included, obeys the statement
timeout.

The checks are orderings, not speeds: a ``SELECT 1`` sent by another session while the big
statement is being decoded answers before the big statement does. Before, the Bind was
decoded on the event loop (0.3 s per 200,000 keys) and a lookup's keys read and projected
there too (1.9 s for 200,000): the small statement waited for the big one to finish.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.api._shop import DAY, make_shop, today, write_shop
from tests.server.conftest import FsqlServer, write_config
from tests.server.test_robustness import connect, error_fields, read_until_ready, startup

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

TIMEOUT = 30
#: 2,000,000 integers and one that is not: seconds to decode, then 22P02
INT4_ARRAY, TEXT_ARRAY = 1007, 1009
GOOD_ARRAY = "{" + ",".join(map(str, range(2_000_000))) + "}"
BAD_ARRAY = "{" + ",".join(map(str, range(2_000_000))) + ",x}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FsqlServer]:
    """A shop repo with online features (the default SQLite online store)."""
    from fsql import SyncFeatureStore
    from tests.api.test_feature_store import COUNTRY, ORDERS_SQL, PURCHASE_30D

    root = tmp_path_factory.mktemp("big_params")
    shop = make_shop(seed=5)
    write_shop(shop, root)
    write_config(root, f"[server]\nstatement_timeout = {TIMEOUT}\n")
    store = SyncFeatureStore(root)
    try:
        store.register(shop.sql("data/orders", "data/profiles"))
        for definition in (PURCHASE_30D, ORDERS_SQL, COUNTRY):
            store.register_feature(definition)
        store.materialize(today() - 2 * DAY, today() + DAY)
    finally:
        store.close()
    started = FsqlServer(root).start()
    yield started
    started.stop()


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def big_statement(sql: str, value: str, oid: int | None) -> tuple[bytes, bytes]:
    """(Parse + Sync, Bind + Execute + Sync) of ``sql`` with one parameter of type ``oid``
    in text (as psycopg sends a list; None: no types in the Parse, as libpq's PQprepare
    with nParams = 0 and node-postgres send)."""
    types = struct.pack("!h", 0) if oid is None else struct.pack("!hi", 1, oid)
    parse = message(b"P", b"\x00" + sql.encode() + b"\x00" + types)
    raw = value.encode()
    bind = message(b"B", b"\x00\x00" + struct.pack("!hh", 1, 0) + struct.pack("!hi", 1, len(raw))
                   + raw + struct.pack("!h", 0))
    execute = message(b"E", b"\x00" + struct.pack("!i", 0))
    return parse + message(b"S"), bind + execute + message(b"S")


def small_answers_first(server: FsqlServer, sql: str, value: str, oid: int
                        ) -> dict[str, Any]:
    """Send ``sql`` with the big parameter ``value`` (prepared first, then Bind + Execute
    written to the socket in full) and, while the server works on it, ``SELECT 1`` in
    another session: when each answered and the big statement's messages."""
    prepare, run = big_statement(sql, value, oid)
    done: dict[str, Any] = {}
    sock = connect(server)
    sock.settimeout(TIMEOUT + 60)

    def read_big() -> None:
        done["messages"] = read_until_ready(sock)
        done["big"] = time.monotonic()

    try:
        startup(sock)
        sock.sendall(prepare)
        assert [kind for kind, _ in read_until_ready(sock)] == [b"1", b"Z"]
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("SELECT 1")
            reader = threading.Thread(target=read_big)
            reader.start()
            sock.sendall(run)  # returns once the server has read (nearly) all of it
            time.sleep(0.2)
            assert conn.execute("SELECT 1").fetchone() == (1,)
            done["small"] = time.monotonic()
            reader.join(TIMEOUT + 60)
    finally:
        sock.close()
    assert "big" in done, "the big statement never finished"
    return done


def test_a_huge_array_parameter_is_decoded_off_the_event_loop(server: FsqlServer) -> None:
    done = small_answers_first(
        server, "SELECT count(*) FROM range(10) t(i) WHERE i = ANY($1)", BAD_ARRAY, INT4_ARRAY)
    errors = [error_fields(body) for kind, body in done["messages"] if kind == b"E"]
    # the value is checked, as before (the whole array had to be read to find the x)
    assert [e["C"] for e in errors] == ["22P02"], errors
    assert done["small"] < done["big"], done


def test_a_lookup_of_200000_keys_lets_other_sessions_answer(server: FsqlServer) -> None:
    keys = "{" + ",".join(f"k{i}" for i in range(200_000)) + "}"
    # one row back (LIMIT): what takes the time is the keys, not sending the answer
    done = small_answers_first(
        server, "SELECT user_id, user_orders FROM features.user WHERE user_id = ANY($1) "
        "ORDER BY user_id DESC LIMIT 1", keys, TEXT_ARRAY)
    rows = [body for kind, body in done["messages"] if kind == b"D"]
    assert len(rows) == 1 and b"k99999" in rows[0], done["messages"]
    assert done["small"] < done["big"], done


def test_the_bind_counts_in_the_statement_timeout(server: FsqlServer) -> None:
    """Decoding the 2,000,000-key array takes seconds: with a 1 s timeout the statement is
    cancelled (57014) instead of taking as long as its parameter does, and the session goes
    on. Before, the timeout started at Execute, after the Bind was decoded, and the client
    waited for the decoding to find the bad element."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '1s'")
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            conn.execute("SELECT count(*) FROM range(10) t(i) WHERE i = ANY(%s::int[])",
                         [BAD_ARRAY])
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_a_lookup_of_many_keys_answers_as_before(server: FsqlServer) -> None:
    """The threaded path (HEAVY_KEYS keys or more) answers what the loop's path answers."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        users = [r[0] for r in conn.execute(
            "SELECT user_id FROM features.user ORDER BY user_id").fetchall()]
        few = conn.execute("SELECT user_id, user_orders, user_country FROM features.user "
                           "WHERE user_id = ANY(%s) ORDER BY user_id", [users]).fetchall()
        padding = [f"none{i}" for i in range(3000)]
        many = conn.execute("SELECT user_id, user_orders, user_country FROM features.user "
                            "WHERE user_id = ANY(%s) ORDER BY user_id",
                            [padding + users]).fetchall()
    assert users and any(row[1] is not None for row in few)
    known = set(users)
    assert [row for row in many if row[0] in known] == few
    assert sorted(row for row in many if row[0] not in known) == sorted(
        (key, None, None) for key in padding)


def test_a_prepared_lookup_with_a_literal_and_no_declared_types(server: FsqlServer) -> None:
    """Parse without parameter types (node-postgres' way) of a lookup with its own ``$1`` and
    a literal (``LIMIT 1``): the literal is not taken for a parameter. Before, the literal
    was numbered ``$1`` too and the Bind's one parameter was refused (08P01, "requires 0")."""
    prepare, run = big_statement(
        "SELECT user_id FROM features.user WHERE user_id = ANY($1) ORDER BY user_id DESC "
        "LIMIT 1", "{a,b,c}", None)
    sock = connect(server)
    try:
        startup(sock)
        sock.sendall(prepare + run)
        answer = read_until_ready(sock) + read_until_ready(sock)
    finally:
        sock.close()
    assert [kind for kind, _ in answer] == [b"1", b"Z", b"2", b"D", b"C", b"Z"], answer
    assert answer[3][1].endswith(b"c")


def threads_of(server: FsqlServer) -> int:
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("Threads:")))


def test_timed_out_binds_hold_one_thread_per_session(start_server: Any) -> None:
    """Decoding is not interruptible: a Bind abandoned at the statement timeout keeps its
    thread until the decoding ends. A session sending twelve of them in a row (each timing
    out after 1 ms) still holds one thread, not twelve: its next job waits for its own
    leftover (under its own timeout), so the statement threads (max_connections + 8 = 10
    here) are never all taken by one client."""
    server = start_server("[server]\nmax_connections = 2\n")
    prepare, run = big_statement(
        "SELECT count(*) FROM range(10) t(i) WHERE i = ANY($1)", GOOD_ARRAY, INT4_ARRAY)
    sock = connect(server)
    sock.settimeout(120)
    try:
        startup(sock)
        sock.sendall(message(b"Q", b"SET statement_timeout = '1ms'\x00"))
        read_until_ready(sock)
        sock.sendall(prepare)
        assert [kind for kind, _ in read_until_ready(sock)] == [b"1", b"Z"]
        before = threads_of(server)
        sock.sendall(run * 12)
        codes = []
        for _ in range(12):
            codes += [error_fields(body)["C"] for kind, body in read_until_ready(sock)
                      if kind == b"E"]
        assert codes == ["57014"] * 12, codes
        grown = threads_of(server) - before
    finally:
        sock.close()
    assert grown <= 2, grown
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM range(10)").fetchone() == (10,)
