"""Authentication (cleartext, md5, SCRAM-SHA-256 against stored verifiers), TLS, the
connection limit, and idle and statement timeouts — each against a server of its own."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from fsql_server.pg.auth import (
    ScramExchange,
    check_cleartext,
    check_md5_response,
    make_md5_hash,
    make_scram_verifier,
)

from tests.server.conftest import FsqlServer, cancelling

pytestmark = pytest.mark.server


def users_config(auth: str, verifier: str, extra: str = "") -> str:
    return (
        f'[server]\nauth = "{auth}"\n{extra}\n'
        f'[[server.users]]\nname = "alice"\npassword_hash = "{verifier}"\ncan_define = true\n'
    )


def test_verifiers_never_store_the_password() -> None:
    verifier = make_scram_verifier("s3cret")
    assert verifier.startswith("SCRAM-SHA-256$4096:") and "s3cret" not in verifier
    assert check_cleartext(verifier, "alice", "s3cret")
    assert not check_cleartext(verifier, "alice", "wrong")
    md5 = make_md5_hash("alice", "s3cret")
    assert md5.startswith("md5") and len(md5) == 35
    import hashlib

    salt = b"abcd"
    response = "md5" + hashlib.md5(md5[3:].encode() + salt).hexdigest()
    assert check_md5_response(md5, salt, response)
    assert not check_md5_response(md5, b"dcba", response)


def test_scram_exchange_against_psycopg_libpq_format() -> None:
    """The verifier format is PostgreSQL's own: a real PostgreSQL computes the same keys."""
    verifier = make_scram_verifier("pw", salt=b"0123456789abcdef")
    exchange = ScramExchange("alice", verifier)
    first = exchange.first(b"n,,n=alice,r=clientnonce").decode()
    assert first.startswith("r=clientnonce") and ",i=4096" in first


@pytest.mark.parametrize("method", ["scram-sha-256", "md5", "cleartext"])
def test_password_methods_with_psycopg_and_asyncpg(start_server, method: str) -> None:
    import asyncpg
    import psycopg

    verifier = make_md5_hash("alice", "s3cret") if method == "md5" else \
        make_scram_verifier("s3cret")
    server: FsqlServer = start_server(users_config(method, verifier))
    with psycopg.connect(server.dsn("alice", "s3cret")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("alice",)
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(server.dsn("alice", "wrong"))
    assert 'password authentication failed for user "alice"' in str(info.value)

    async def wrong_password() -> str:
        try:
            await asyncpg.connect(host="127.0.0.1", port=server.port, user="alice",
                                  password="wrong", database="fsql")
        except asyncpg.PostgresError as exc:
            return exc.sqlstate
        return "connected"

    assert asyncio.run(wrong_password()) == "28P01"

    async def right_password() -> int:
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="alice",
                                     password="s3cret", database="fsql")
        try:
            return await conn.fetchval("SELECT 7")
        finally:
            await conn.close()

    assert asyncio.run(right_password()) == 7


def test_unknown_user_is_refused(start_server) -> None:
    import psycopg

    server = start_server(users_config("scram-sha-256", make_scram_verifier("pw")))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(server.dsn("mallory", "pw"))


def test_trust_refuses_non_loopback_without_flag(tmp_path: Path) -> None:
    (tmp_path / "fsql.toml").write_text('[server]\nhost = "0.0.0.0"\n')
    from tests.server.conftest import FSQL

    result = subprocess.run([FSQL, "--repo", str(tmp_path), "serve", "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "auth = 'trust' on 0.0.0.0" in result.stderr


def test_tls_when_certificate_configured(start_server, tmp_path: Path) -> None:
    import psycopg

    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    server = start_server(
        users_config("scram-sha-256", make_scram_verifier("pw"),
                     f'tls_cert = "{cert}"\ntls_key = "{key}"'))
    with psycopg.connect(server.dsn("alice", "pw", sslmode="require")) as conn:
        assert conn.info.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_connection_limit(start_server) -> None:
    import psycopg

    server = start_server("[server]\nmax_connections = 2\n")
    first = psycopg.connect(server.dsn())
    second = psycopg.connect(server.dsn())
    try:
        with pytest.raises(psycopg.OperationalError, match="too many clients"):
            psycopg.connect(server.dsn())
    finally:
        first.close()
    # a slot freed by a closing client is usable again
    from tests.services._util import wait_until

    def third_connects() -> bool:
        with psycopg.connect(server.dsn()) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    wait_until(third_connects, timeout=10, what="a freed connection slot")
    second.close()


def test_idle_timeout_closes_idle_sessions(start_server) -> None:
    import socket

    from tests.server.test_robustness import error_fields, read_message, startup

    server = start_server("[server]\nidle_timeout = 0.5\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        startup(sock)
        # say nothing: the server ends the session with FATAL 57P05, then closes
        kind, body = read_message(sock)
        assert kind == b"E"
        fields = error_fields(body)
        assert (fields["S"], fields["C"]) == ("FATAL", "57P05")
        assert sock.recv(1) == b""


def test_statement_timeout(start_server) -> None:
    import psycopg

    server = start_server("[server]\nstatement_timeout = 0.5\n")
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            conn.execute("SELECT count(*) FROM range(100000000000)")
        assert conn.execute("SELECT 'next'").fetchone() == ("next",)
        # the server's timeout is a cap: a session may lower it, not raise or disable it
        for raised in ("0", "'12s'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match="the server's limit is 0.5 s"):
                conn.execute(f"SET statement_timeout = {raised}")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("0",)
        conn.execute("SET statement_timeout = '200ms'")
        assert conn.execute("SHOW statement_timeout").fetchone() == ("200",)
        conn.execute("RESET statement_timeout")
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            conn.execute("SELECT count(*) FROM range(100000000000)")


def test_several_workers_share_the_port_and_route_cancels(start_server) -> None:
    """With workers = 2 the kernel spreads connections over two processes; a CancelRequest
    reaching the other worker is forwarded to the session's owner."""
    import psycopg

    server = start_server("[server]\nworkers = 2\n")
    connections = [psycopg.connect(server.dsn(), autocommit=True) for _ in range(6)]
    try:
        pids = {c.info.backend_pid >> 22 for c in connections}
        assert pids <= {0, 1}
        for conn in connections:
            assert conn.execute("SELECT 21 * 2").fetchone() == (42,)
        # cancel a running query from each connection; some cancels land on the other worker
        for conn in connections:
            with cancelling(conn), pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT count(*) FROM range(100000000000)")
            assert conn.execute("SELECT 'alive'").fetchone() == ("alive",)
    finally:
        for conn in connections:
            conn.close()


def test_several_workers_get_an_even_share_of_connections(start_server) -> None:
    """Whatever worker the kernel gives a connection to, the workers end up with an even
    share (fsql_server.pg.balance): a worker with more connections hands a new one, before
    answering its StartupMessage, to one with fewer. Connections handed over work normally:
    each reads, a failing statement is an error, and a long one is cancelled."""
    import psycopg

    server = start_server("[server]\nworkers = 2\n")
    connections = [psycopg.connect(server.dsn(), autocommit=True) for _ in range(15)]
    try:
        owners = [c.info.backend_pid >> 22 for c in connections]
        assert sorted(owners.count(w) for w in (0, 1)) == [7, 8], owners
        for i, conn in enumerate(connections):
            assert conn.execute("SELECT %s::int * 2", [i]).fetchone() == (2 * i,)
            with pytest.raises(psycopg.errors.UndefinedTable):
                conn.execute("SELECT * FROM nowhere")
        victim = connections[-1]
        with cancelling(victim), pytest.raises(psycopg.errors.QueryCanceled):
            victim.execute("SELECT count(*) FROM range(100000000000)")
    finally:
        for conn in connections:
            conn.close()


def test_a_connection_handed_to_another_worker_loses_no_message(start_server) -> None:
    """A client's first query follows the other worker's answer at once; the worker that
    handed the connection over must not read it while it lets go (it stops reading before
    handing over). Many short connections, each querying at once, all get their answer."""
    import socket

    from tests.server.test_robustness import read_until_ready, startup

    server = start_server("[server]\nworkers = 2\n")
    held = []  # keep some connections open, so that the workers' counts differ
    try:
        for i in range(80):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            startup(sock)
            sock.sendall(protocol_query(f"SELECT {i}"))
            rows = [body for kind, body in read_until_ready(sock) if kind == b"D"]
            assert rows and rows[0].endswith(str(i).encode())
            if i % 3 == 0:
                held.append(sock)
            else:
                sock.close()
    finally:
        for sock in held:
            sock.close()


def protocol_query(sql: str) -> bytes:
    from fsql_server.pg import protocol

    return protocol.message(b"Q", protocol.cstr(sql))


def test_port_in_use_is_a_clear_error(fsql_server: FsqlServer, tmp_path: Path) -> None:
    from tests.server.conftest import FSQL

    result = subprocess.run([FSQL, "--repo", str(tmp_path), "serve", "--port",
                             str(fsql_server.port)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{fsql_server.port}" in result.stderr
    assert "--port" in result.stderr


def test_a_vanished_client_frees_its_slot_while_its_query_runs(start_server) -> None:
    """The long query of a client that disconnects is interrupted, so its connection slot is
    free again long before the query could have finished."""
    import socket
    import struct

    import psycopg
    from fsql_server.pg import protocol

    from tests.server.test_robustness import startup
    from tests.services._util import wait_until

    server = start_server("[server]\nmax_connections = 1\n")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    startup(sock)
    sock.sendall(protocol.message(b"Q", b"SELECT count(*) FROM range(100000000000)\x00"))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()

    def connects() -> bool:
        with psycopg.connect(server.dsn(), connect_timeout=5) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    wait_until(connects, timeout=60, what="the slot of the vanished client")


def test_plain_passwords_in_the_config_are_refused(tmp_path: Path) -> None:
    from tests.server.conftest import FSQL

    (tmp_path / "fsql.toml").write_text(
        '[server]\nauth = "scram-sha-256"\n\n[[server.users]]\nname = "alice"\n'
        'password_hash = "hunter2"\n')
    result = subprocess.run([FSQL, "--repo", str(tmp_path), "serve", "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "neither a SCRAM-SHA-256 verifier nor an md5 hash" in result.stderr
    assert "fsql hash-password alice" in result.stderr


def test_several_workers_serve_as_soon_as_serving_is_printed(tmp_path: Path) -> None:
    """'fsql serving on' is printed once every worker listens, and no connection made right
    after it is refused or reset (the parent's port-probing socket never listens)."""
    import psycopg

    from tests.server.conftest import FSQL, write_config

    write_config(tmp_path, "[server]\nworkers = 2\n")
    for _ in range(3):
        process = subprocess.Popen([FSQL, "--repo", str(tmp_path), "serve", "--port", "0"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("fsql serving on "):
                    port = int(line.rsplit(":", 1)[1])
                    break
            else:
                raise AssertionError("fsql serve exited before serving")
            # no polling for the port: serving means listening
            for _ in range(8):
                with psycopg.connect(f"host=127.0.0.1 port={port} user=x dbname=fsql",
                                     autocommit=True) as conn:
                    assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            process.terminate()
            process.wait(timeout=30)
