"""Authentication hardening (issue 15, finding 6), each against a real server process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import struct

import pytest
from fsql_server.pg.auth import make_scram_verifier

from tests.server.conftest import FsqlServer
from tests.server.test_auth_limits import users_config
from tests.server.test_robustness import read_message

pytestmark = pytest.mark.server


def _startup(user: str) -> bytes:
    body = struct.pack("!i", 196608) + b"user\0" + user.encode() + b"\0database\0fsql\0\0"
    return struct.pack("!i", len(body) + 4) + body


def scram_server_first(port: int, user: str) -> dict[str, str]:
    """Start a SCRAM exchange as ``user`` and return the server-first-message's attributes."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(_startup(user))
        kind, body = read_message(sock)
        assert kind == b"R" and struct.unpack("!i", body[:4])[0] == 10, (kind, body)
        first = b"n,,n=,r=clientnonce123"
        payload = b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first
        sock.sendall(b"p" + struct.pack("!i", len(payload) + 4) + payload)
        kind, body = read_message(sock)
        assert kind == b"R" and struct.unpack("!i", body[:4])[0] == 11, (kind, body)
        text = body[4:].decode()
        return dict(part.split("=", 1) for part in text.split(","))


def login_error(port: int, user: str, password: str) -> tuple[str | None, str]:
    """(SQLSTATE, message) of the ErrorResponse a login gets (asyncpg keeps both)."""
    import asyncpg

    async def attempt() -> tuple[str | None, str]:
        try:
            conn = await asyncpg.connect(host="127.0.0.1", port=port, user=user,
                                         password=password, database="fsql", timeout=30)
        except asyncpg.PostgresError as exc:
            return exc.sqlstate, str(exc)
        await conn.close()
        return None, "connected"

    return asyncio.run(attempt())


@pytest.mark.parametrize("method", ["scram-sha-256", "cleartext"])
def test_unknown_users_look_like_known_ones(start_server, method: str) -> None:
    server: FsqlServer = start_server(users_config(method, make_scram_verifier("s3cret")))
    if method == "scram-sha-256":
        salt = scram_server_first(server.port, "mallory")["s"]
        assert salt != base64.b64encode(hashlib.sha256(b"mallory").digest()[:16]).decode()
        assert scram_server_first(server.port, "mallory")["s"] == salt
        assert scram_server_first(server.port, "mallory")["i"] == "4096"
        assert scram_server_first(server.port, "eve")["s"] != salt
    known = login_error(server.port, "alice", "wrong")
    unknown = login_error(server.port, "mallory", "anything")
    assert known[0] == unknown[0] == "28P01"
    assert known[1].replace('"alice"', '"USER"') == unknown[1].replace('"mallory"', '"USER"')
    assert 'password authentication failed for user "USER"' in known[1].replace('"alice"', '"USER"')


def test_max_connections_holds_during_concurrent_password_logins(start_server) -> None:
    """The slot is taken before the password exchange: 30 concurrent SCRAM logins against
    max_connections = 5 let at most 5 in, the others get 53300."""
    import asyncpg

    server: FsqlServer = start_server(
        users_config("scram-sha-256", make_scram_verifier("s3cret"), "max_connections = 5"))

    async def run() -> list[object]:
        async def login() -> object:
            try:
                return await asyncpg.connect(host="127.0.0.1", port=server.port, user="alice",
                                             password="s3cret", database="fsql", timeout=60)
            except asyncpg.PostgresError as exc:
                return exc.sqlstate

        results = await asyncio.wait_for(asyncio.gather(*(login() for _ in range(30))), 120)
        for result in results:
            if isinstance(result, asyncpg.Connection):
                await result.close()
        return [r if isinstance(r, str) else "ok" for r in results]

    results = asyncio.run(run())
    assert 1 <= results.count("ok") <= 5, results
    assert all(r in ("ok", "53300") for r in results), results
    # the slots of the refused logins were released: a new login succeeds
    assert login_error(server.port, "alice", "s3cret") == (None, "connected")


def cleartext_login(port: int, user: str, password: str) -> tuple[str, str]:
    """Log in with auth = 'cleartext' over a raw socket: ("ok", "") or (SQLSTATE, message)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(_startup(user))
        kind, body = read_message(sock)
        assert kind == b"R" and struct.unpack("!i", body[:4])[0] == 3, (kind, body)
        payload = password.encode() + b"\0"
        sock.sendall(b"p" + struct.pack("!i", len(payload) + 4) + payload)
        kind, body = read_message(sock)
        if kind == b"R" and struct.unpack("!i", body[:4])[0] == 0:
            return "ok", ""
        assert kind == b"E", (kind, body)
        fields = {f[:1]: f[1:].decode() for f in body.split(b"\0") if f}
        return fields[b"C"], fields[b"M"]


def test_empty_passwords_are_refused(start_server) -> None:
    import subprocess

    from tests.server.conftest import FSQL

    result = subprocess.run([FSQL, "hash-password", "alice", "--password-stdin"], input="\n",
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert "empty" in result.stderr and "password_hash" not in result.stdout
    # a client sending an empty password
    server: FsqlServer = start_server(users_config("cleartext", make_scram_verifier("s3cret")))
    assert cleartext_login(server.port, "alice", "")[0] == "28P01"
    assert cleartext_login(server.port, "alice", "s3cret") == ("ok", "")
    # a user whose verifier is for the empty password: cleartext and SCRAM
    for method in ("cleartext", "scram-sha-256"):
        server = start_server(users_config(method, make_scram_verifier("")))
        if method == "cleartext":
            assert cleartext_login(server.port, "alice", "") == \
                ("28P01", 'password authentication failed for user "alice"')
        else:
            assert login_error(server.port, "alice", "")[0] == "28P01"


def serve_refused(tmp_path, config: str) -> str:
    """Run ``fsql serve`` over ``config``: it must refuse to start; returns its stderr."""
    import subprocess

    from tests.server.conftest import FSQL, write_config

    write_config(tmp_path, config)
    result = subprocess.run([FSQL, "--repo", str(tmp_path), "serve", "--port", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, (result.stdout, result.stderr)
    return result.stderr


def test_md5_verifier_under_scram_is_refused_at_load(tmp_path) -> None:
    from fsql_server.pg.auth import make_md5_hash

    stderr = serve_refused(tmp_path, users_config("scram-sha-256", make_md5_hash("alice", "pw")))
    assert "alice" in stderr and "md5" in stderr
    assert "fsql hash-password alice" in stderr


def self_signed(tmp_path) -> tuple[str, str]:
    """A self-signed certificate and key (as test_auth_limits' TLS test makes them)."""
    import subprocess

    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return str(cert), str(key)


def test_require_tls_refuses_plaintext_clients(start_server, tmp_path) -> None:
    import psycopg

    cert, key = self_signed(tmp_path)
    server: FsqlServer = start_server(users_config(
        "scram-sha-256", make_scram_verifier("pw"),
        f'tls_cert = "{cert}"\ntls_key = "{key}"\nrequire_tls = true'))
    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(server.dsn("alice", "pw", sslmode="disable"), connect_timeout=30)
    assert "this server requires TLS (sslmode=require)" in str(info.value)
    # refused before any password exchange: the first answer to the StartupMessage is the error
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_startup("alice"))
        kind, body = read_message(sock)
        assert kind == b"E" and b"C28000\0" in body, (kind, body)
    with psycopg.connect(server.dsn("alice", "pw", sslmode="require")) as conn:
        assert conn.info.pgconn.ssl_in_use


def test_require_tls_and_cleartext_checks_at_load(tmp_path) -> None:
    stderr = serve_refused(tmp_path / "a", users_config(
        "scram-sha-256", make_scram_verifier("pw"), "require_tls = true"))
    assert "require_tls" in stderr
    stderr = serve_refused(tmp_path / "b", users_config(
        "cleartext", make_scram_verifier("pw"), 'host = "0.0.0.0"'))
    assert "cleartext" in stderr


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """Does the server close ``sock`` (an error message may come first) within ``seconds``?"""
    import time

    deadline = time.monotonic() + seconds
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(4096)
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        if not data:
            return True
        if time.monotonic() >= deadline:
            return False


def test_half_sent_startups_are_closed(start_server) -> None:
    import time

    server: FsqlServer = start_server(users_config(
        "scram-sha-256", make_scram_verifier("pw"),
        "authentication_timeout = 2\nmax_pending_startups = 2"))
    half = _startup("alice")[:6]  # the length and part of the protocol version
    first = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    second = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        first.sendall(half)
        second.sendall(half)
        time.sleep(0.3)  # both are in startup now
        # beyond max_pending_startups: closed at once, long before the timeout
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as third:
            third.sendall(half)
            assert _closed_within(third, 1.0)
        # the half-sent ones are closed by authentication_timeout
        start = time.monotonic()
        assert _closed_within(first, 10) and _closed_within(second, 10)
        assert time.monotonic() - start < 5
    finally:
        first.close()
        second.close()
    # their slots are free again: a full login works
    assert login_error(server.port, "alice", "pw") == (None, "connected")


def test_unknown_user_salt_is_the_same_in_every_worker(start_server) -> None:
    """The secret is made before the workers fork: whichever worker answers, the salt of an
    unknown user is the same."""
    server: FsqlServer = start_server(
        users_config("scram-sha-256", make_scram_verifier("pw"), "workers = 2"))
    salts = {scram_server_first(server.port, "mallory")["s"] for _ in range(12)}
    assert len(salts) == 1
    assert salts != {base64.b64encode(hashlib.sha256(b"mallory").digest()[:16]).decode()}
