"""Raw-socket tests: startup negotiation, malformed and oversized messages, garbage, clients
that vanish. None of them may crash the server or disturb another session."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest
from fsql_server.pg import protocol

from tests.server.conftest import FsqlServer

pytestmark = pytest.mark.server


def connect(server: FsqlServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_message(sock: socket.socket) -> tuple[bytes, bytes]:
    kind, length = struct.unpack("!ci", recv_exact(sock, 5))
    return kind, recv_exact(sock, length - 4)


def read_until_ready(sock: socket.socket) -> list[tuple[bytes, bytes]]:
    messages = []
    while True:
        kind, body = read_message(sock)
        messages.append((kind, body))
        if kind == b"Z":
            return messages


def startup(sock: socket.socket, user: str = "tester") -> list[tuple[bytes, bytes]]:
    params = b"user\x00" + user.encode() + b"\x00database\x00fsql\x00\x00"
    body = struct.pack("!i", protocol.PROTOCOL_V3) + params
    sock.sendall(struct.pack("!i", len(body) + 4) + body)
    return read_until_ready(sock)


def error_fields(body: bytes) -> dict[str, str]:
    fields = {}
    for part in body.split(b"\x00"):
        if part:
            fields[chr(part[0])] = part[1:].decode()
    return fields


def still_serves(server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(server.dsn(), connect_timeout=5) as conn:
        assert conn.execute("SELECT 'alive'").fetchone() == ("alive",)


def test_startup_parameters_like_postgres_15(fsql_server: FsqlServer) -> None:
    with connect(fsql_server) as sock:
        sock.sendall(struct.pack("!ii", 8, protocol.SSL_REQUEST))
        assert recv_exact(sock, 1) == b"N"  # no certificate configured
        sock.sendall(struct.pack("!ii", 8, protocol.GSSENC_REQUEST))
        assert recv_exact(sock, 1) == b"N"
        messages = startup(sock)
    kinds = [k for k, _ in messages]
    assert kinds[0] == b"R" and struct.unpack("!i", messages[0][1]) == (0,)
    status = dict(
        tuple(part.decode() for part in body.split(b"\x00")[:2])
        for kind, body in messages if kind == b"S"
    )
    assert status["server_version"].startswith("15.")
    assert status["client_encoding"] == "UTF8"
    assert status["DateStyle"] == "ISO, MDY"
    assert status["integer_datetimes"] == "on"
    assert status["standard_conforming_strings"] == "on"
    assert status["TimeZone"] == "Etc/UTC"
    assert status["session_authorization"] == "tester"
    assert b"K" in kinds and kinds[-1] == b"Z" and messages[-1][1] == b"I"


def test_empty_query_and_multi_statement_simple_query(fsql_server: FsqlServer) -> None:
    with connect(fsql_server) as sock:
        startup(sock)
        sock.sendall(protocol.message(b"Q", b"\x00"))
        assert [k for k, _ in read_until_ready(sock)] == [b"I", b"Z"]
        sock.sendall(protocol.message(b"Q", b"SELECT 1; ; SELECT 'two'\x00"))
        kinds = [k for k, _ in read_until_ready(sock)]
        assert kinds == [b"T", b"D", b"C", b"T", b"D", b"C", b"Z"]
        # an error stops the rest of the message; the position points into the whole text
        sock.sendall(protocol.message(b"Q", b"SELECT 1; SELECT * FROM nope; SELECT 3\x00"))
        messages = read_until_ready(sock)
        assert [k for k, _ in messages] == [b"T", b"D", b"C", b"E", b"Z"]
        fields = error_fields(messages[3][1])
        assert fields["C"] == "42P01" and fields["S"] == "ERROR"
        assert fields["P"] == str(len("SELECT 1; SELECT * FROM ") + 1)


def test_extended_protocol_skips_to_sync_after_error(fsql_server: FsqlServer) -> None:
    with connect(fsql_server) as sock:
        startup(sock)
        bad_bind = protocol.message(b"B", b"\x00missing\x00" + struct.pack("!hhh", 0, 0, 0))
        execute = protocol.message(b"E", b"\x00" + struct.pack("!i", 0))
        sock.sendall(bad_bind + execute + protocol.message(b"S"))
        messages = read_until_ready(sock)
        assert [k for k, _ in messages] == [b"E", b"Z"]
        assert error_fields(messages[0][1])["C"] == "26000"
        # Parse + Describe + Flush (asyncpg's sequence) answers before Sync
        parse = protocol.message(b"P", b"s1\x00SELECT $1::int AS v\x00" + struct.pack("!h", 0))
        describe = protocol.message(b"D", b"Ss1\x00")
        sock.sendall(parse + describe + protocol.message(b"H"))
        kinds = [read_message(sock)[0] for _ in range(3)]
        assert kinds == [b"1", b"t", b"T"]
        bind = protocol.message(
            b"B", b"p1\x00s1\x00" + struct.pack("!hh", 1, 1) + struct.pack("!h", 1)
            + struct.pack("!i", 4) + struct.pack("!i", 7) + struct.pack("!hh", 1, 1))
        ex1 = protocol.message(b"E", b"p1\x00" + struct.pack("!i", 1))
        sock.sendall(bind + ex1 + protocol.message(b"S"))
        messages = read_until_ready(sock)
        assert [k for k, _ in messages] == [b"2", b"D", b"C", b"Z"]
        assert messages[1][1] == struct.pack("!hi", 1, 4) + struct.pack("!i", 7)


def test_portal_row_limit_and_suspension(fsql_server: FsqlServer) -> None:
    with connect(fsql_server) as sock:
        startup(sock)
        sock.sendall(protocol.message(b"Q", b"BEGIN\x00"))
        read_until_ready(sock)
        parse = protocol.message(b"P", b"\x00SELECT x FROM range(5) t(x) ORDER BY x\x00\x00\x00")
        bind = protocol.message(b"B", b"c\x00\x00" + struct.pack("!hhh", 0, 0, 0))
        ex = protocol.message(b"E", b"c\x00" + struct.pack("!i", 2))
        sock.sendall(parse + bind + ex + protocol.message(b"S"))
        assert [k for k, _ in read_until_ready(sock)] == [b"1", b"2", b"D", b"D", b"s", b"Z"]
        sock.sendall(ex + protocol.message(b"S"))
        assert [k for k, _ in read_until_ready(sock)] == [b"D", b"D", b"s", b"Z"]
        sock.sendall(ex + protocol.message(b"S"))
        messages = read_until_ready(sock)
        assert [k for k, _ in messages] == [b"D", b"C", b"Z"]
        assert messages[1][1] == b"SELECT 1\x00"
        assert messages[2][1] == b"T"


@pytest.mark.parametrize(
    "payload",
    [
        b"\x00\x00\x00\x04",  # startup packet too short
        b"\xff\xff\xff\xff garbage",  # negative length
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # an HTTP client on the wrong port
        struct.pack("!ii", 8, 1234 << 16),  # unknown protocol version
    ],
)
def test_garbage_before_startup(fsql_server: FsqlServer, payload: bytes) -> None:
    with connect(fsql_server) as sock:
        sock.sendall(payload)
        data = b""
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    if data:
        assert data[:1] == b"E"
        assert error_fields(data[5:])["S"] == "FATAL"
    still_serves(fsql_server)


def test_garbage_and_oversized_messages_after_startup(fsql_server: FsqlServer) -> None:
    with connect(fsql_server) as sock:
        startup(sock)
        sock.sendall(b"\x01\x02\x03\x04\x05\x06\x07")  # unknown message type
        kind, body = read_message(sock)
        assert kind == b"E" and error_fields(body)["C"] == "08P01"
    with connect(fsql_server) as sock:
        startup(sock)
        sock.sendall(b"Q" + struct.pack("!i", 2**31 - 1))  # claims 2 GB; never allocated
        kind, body = read_message(sock)
        assert kind == b"E" and error_fields(body)["C"] == "08P01"
        assert "invalid message length" in error_fields(body)["M"]
    with connect(fsql_server) as sock:
        startup(sock)
        sock.sendall(protocol.message(b"B", b"\x00\x00\xff\xff"))  # truncated Bind
        kind, body = read_message(sock)
        assert kind == b"E" and error_fields(body)["C"] == "08P01"
    still_serves(fsql_server)


def test_half_open_and_vanishing_clients(fsql_server: FsqlServer) -> None:
    import psycopg

    with psycopg.connect(fsql_server.dsn(), autocommit=True) as survivor:
        # half a startup packet, then silence; half a message, then close
        idle = connect(fsql_server)
        idle.sendall(struct.pack("!i", 40)[:2])
        partial = connect(fsql_server)
        startup(partial)
        partial.sendall(b"Q" + struct.pack("!i", 100) + b"SELECT")
        partial.close()
        # a client that disappears while its query runs
        runner = connect(fsql_server)
        startup(runner)
        runner.sendall(protocol.message(b"Q", b"SELECT count(*) FROM range(3000000000)\x00"))
        time.sleep(0.3)
        runner.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        runner.close()  # RST
        assert survivor.execute("SELECT 40 + 2").fetchone() == (42,)
        idle.close()
    still_serves(fsql_server)
    assert fsql_server.alive()


def test_many_concurrent_sessions_do_not_share_state(fsql_server: FsqlServer) -> None:
    import psycopg

    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with psycopg.connect(fsql_server.dsn(), autocommit=True) as conn:
                conn.execute("CREATE TEMP TABLE mine (v INT)")
                conn.execute("INSERT INTO mine VALUES (%s)", [n])
                assert conn.execute("SELECT v FROM mine").fetchall() == [(n,)]
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_portal_row_limit_over_a_streamed_result(fsql_server: FsqlServer) -> None:
    """A result larger than one fetch chunk, read through a portal in pieces (JDBC's
    setFetchSize): every row arrives once, in order, then CommandComplete."""
    with connect(fsql_server) as sock:
        startup(sock)
        sock.sendall(protocol.message(b"Q", b"BEGIN\x00"))
        read_until_ready(sock)
        parse = protocol.message(
            b"P", b"\x00SELECT x FROM range(25000) t(x) ORDER BY x\x00\x00\x00")
        bind = protocol.message(b"B", b"big\x00\x00" + struct.pack("!hhh", 0, 0, 0))
        execute = protocol.message(b"E", b"big\x00" + struct.pack("!i", 15000))
        sock.sendall(parse + bind + execute + protocol.message(b"S"))
        first = read_until_ready(sock)
        sock.sendall(execute + protocol.message(b"S"))
        second = read_until_ready(sock)
    rows = [int(body[6:]) for kind, body in first + second if kind == b"D"]
    assert rows == list(range(25000))
    assert [k for k, _ in first][-2:] == [b"s", b"Z"]
    assert [k for k, _ in second][-2:] == [b"C", b"Z"]
