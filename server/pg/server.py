"""The asyncio server: listening socket(s), TLS, connection limit, CancelRequest routing, and
several worker processes sharing the port.

``fsql serve`` calls :func:`fsql_server.features.app.run`, which wires fsql's surface into
the worker states this module's :func:`run` serves. With ``workers > 1`` the parent forks that many processes,
each with its own event loop and listening socket bound with ``SO_REUSEPORT``, so the kernel
spreads connections over both cores. A CancelRequest arrives on a new connection that may
land in any worker; the backend key's process id names the worker that owns the session
(``pid = worker_index << 22 | session number``), and a worker that receives a cancel for a
session it does not own forwards the request to its owner over a private loopback socket.
With ``[server] metrics_port`` set, worker 0 also answers ``GET /metrics`` (:mod:`.metrics`).
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import multiprocessing
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fsql_server.pg import metrics
from fsql_server.pg.auth import is_md5_hash, parse_scram_verifier
from fsql_server.pg.balance import Balancer, inboxes_for
from fsql_server.pg.connection import Connection
from fsql_server.pg.nesting import RECURSION_LIMIT
from fsql_server.pg.state import ServerState
from fsql_server.pg.stream import ClientProtocol
from fsql_server.pg.workers import WorkerBudget, default_slots

if TYPE_CHECKING:
    from fsql.config import ServerConfig

class ServerConfigError(Exception):
    """A setting the server refuses, or an address it cannot listen on: the caller reports it
    as its own configuration error (``fsql serve``: :class:`fsql.errors.ConfigError`)."""


#: makes a worker's state: (worker index, every worker's cancel port, the port served)
StateFactory = Callable[[int, list[int], int], ServerState]


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_config(config: ServerConfig, allow_trust_remote: bool = False) -> None:
    """Refuse unsafe or inconsistent settings before listening."""
    if config.auth == "trust" and not is_loopback(config.host) and not allow_trust_remote:
        raise ServerConfigError(
            f"[server] auth = 'trust' on {config.host}: anyone who can reach the port could "
            "connect. Use auth = 'scram-sha-256' with [[server.users]] password hashes, bind to "
            "127.0.0.1, or pass --allow-trust-remote."
        )
    if config.auth != "trust" and not config.users:
        raise ServerConfigError(
            f"[server] auth = '{config.auth}' needs [[server.users]] entries with password_hash "
            "(make one with: python -m fsql_server.pg.auth USER)"
        )
    for user in config.users:
        verifier = user.password_hash
        if verifier and not (parse_scram_verifier(verifier) or is_md5_hash(verifier)):
            raise ServerConfigError(
                f"[[server.users]] {user.name}: password_hash is neither a SCRAM-SHA-256 "
                "verifier nor an md5 hash (a plain password must never be in the config); "
                f"make one with: fsql hash-password {user.name}"
            )
        if config.auth == "scram-sha-256" and verifier and is_md5_hash(verifier):
            raise ServerConfigError(
                f"[[server.users]] {user.name}: password_hash is an md5 hash, which cannot "
                "answer auth = 'scram-sha-256' (the user could never log in); replace it with "
                f"a SCRAM verifier made by: fsql hash-password {user.name}"
            )
        if config.auth in ("md5", "cleartext", "scram-sha-256") and not verifier:
            raise ServerConfigError(f"[[server.users]] {user.name} has no password_hash but "
                              f"[server] auth = '{config.auth}'")
    if bool(config.tls_cert) != bool(config.tls_key):
        raise ServerConfigError("[server] tls_cert and tls_key must be given together")
    if config.authentication_timeout <= 0:
        raise ServerConfigError("[server] authentication_timeout must be a positive number of "
                                "seconds")
    if config.statement_slots < 0:
        raise ServerConfigError("[server] statement_slots must be 0 (the cores per worker "
                                "process) or a positive number of statements")
    if config.max_pending_startups < 1:
        raise ServerConfigError("[server] max_pending_startups must be at least 1")
    if config.require_tls and not config.tls_cert:
        raise ServerConfigError("[server] require_tls = true needs tls_cert and tls_key")
    if config.auth == "cleartext" and not config.tls_cert and not is_loopback(config.host):
        raise ServerConfigError("[server] auth = 'cleartext' sends passwords in the clear: configure "
                          "tls_cert/tls_key or use scram-sha-256")


def make_ssl_context(config: ServerConfig,
                     resolve_path: Callable[[str], Any] = str) -> ssl.SSLContext | None:
    """The TLS context of ``tls_cert``/``tls_key`` (paths as ``resolve_path`` resolves them:
    the caller knows what they are relative to), None without them."""
    if not config.tls_cert or not config.tls_key:
        return None
    cert = resolve_path(config.tls_cert)
    key = resolve_path(config.tls_key)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def listening_socket(host: str, port: int, reuse_port: bool, listen: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServerConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}; pass --port N (0 picks a free "
            "port) or set [server] port / host"
        ) from None
    if listen:
        sock.listen(512)
    sock.setblocking(False)
    return sock


async def serve_forever(
    state: ServerState, sock: socket.socket, cancel_sock: socket.socket | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Accept connections on ``sock`` until cancelled."""
    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         protocol: ClientProtocol) -> None:
        raw = writer.get_extra_info("socket")
        if raw is not None:
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            except OSError:
                pass
        await Connection(state, reader, writer, protocol).serve()

    loop = asyncio.get_running_loop()
    # Statements run in threads (DuckDB releases the GIL): light work on a thread for every
    # session that may be connected, heavy statements through the worker budget's slots,
    # sessions taking turns (fsql_server.pg.workers)
    config = state.config
    state.budget = WorkerBudget(config.statement_slots or default_slots(config.workers),
                                config.max_connections + 8)
    loop.set_default_executor(state.budget)

    def new_protocol() -> ClientProtocol:
        # asyncio.start_server's factory, with the lane's protocol in front of the stream
        reader = asyncio.StreamReader(limit=2**20, loop=loop)
        protocol: ClientProtocol = ClientProtocol(
            reader, lambda r, w: on_connect(r, w, protocol), loop=loop)
        return protocol

    server = await loop.create_server(new_protocol, sock=sock)
    servers = [server]
    if state.balancer is not None:

        async def adopt(raw: socket.socket, startup: bytes) -> None:
            try:
                _transport, protocol = await loop.connect_accepted_socket(new_protocol, raw)
            except OSError:
                raw.close()
                return
            # the StartupMessage the other worker read, as if it had just arrived here
            protocol.reader.feed_data(startup)

        state.balancer.listen(lambda raw, startup: loop.create_task(adopt(raw, startup)))
    if cancel_sock is not None:
        servers.append(await loop.create_server(new_protocol, sock=cancel_sock))
    if ready is not None:
        ready()
    try:
        await asyncio.gather(*(s.serve_forever() for s in servers))
    finally:
        for s in servers:
            s.close()


def run(server_config: ServerConfig, make_state: StateFactory,
        allow_trust_remote: bool = False,
        on_ready: Callable[[str, int], None] | None = None,
        on_metrics: Callable[[str, int], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM: one process, or ``workers`` forked processes, each with
    the state ``make_state`` makes for it (after forking: nothing it opens is shared).

    ``on_metrics(host, port)`` is called once the ``/metrics`` port is bound (when
    ``[server] metrics_port`` is set; 0 picks a free port)."""
    check_config(server_config, allow_trust_remote)
    workers = max(1, server_config.workers)
    host, port = server_config.host, server_config.port
    if workers == 1:
        sock = listening_socket(host, port, reuse_port=False)
        metrics_sock = _metrics_socket(server_config, on_metrics)
        state = make_state(0, [], sock.getsockname()[1])
        _run_worker(state, sock, None, lambda: on_ready and on_ready(host, state.port),
                    metrics_sock)
        return
    # Bind once in the parent to learn the port (port 0 → a free one), then every worker binds
    # its own SO_REUSEPORT socket to it. The parent's socket never listens: a connection the
    # kernel queued on it would be reset when it closes.
    probe = listening_socket(host, port, reuse_port=True, listen=False)
    port = probe.getsockname()[1]
    metrics_sock = _metrics_socket(server_config, on_metrics)
    cancel_socks = [listening_socket("127.0.0.1", 0, reuse_port=False) for _ in range(workers)]
    worker_ports = [s.getsockname()[1] for s in cancel_socks]
    # each worker writes one byte here once its socket listens; "serving" is said after all
    listening_r, listening_w = os.pipe()
    loads = multiprocessing.RawArray("i", workers)  # shared with the forked workers
    pairs = inboxes_for(workers)
    children = []
    for index in range(workers):
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.close(listening_r)
                probe.close()
                if metrics_sock is not None and index != 0:
                    metrics_sock.close()  # worker 0 alone serves /metrics
                    metrics_sock = None
                sock = listening_socket(host, port, reuse_port=True)
                os.write(listening_w, b"L")
                os.close(listening_w)
                state = make_state(index, worker_ports, port)
                for k, (inbox, outbox) in enumerate(pairs):  # keep own inbox, others' outboxes
                    (outbox if k == index else inbox).close()
                state.balancer = Balancer(
                    index, loads, pairs[index][0],
                    [None if k == index else pair[1] for k, pair in enumerate(pairs)])
                _run_worker(state, sock, cancel_socks[index], None, metrics_sock)
            finally:
                os._exit(0)
        children.append(pid)
    os.close(listening_w)
    listening = 0
    while listening < workers:  # EOF early when a worker died before listening
        got = os.read(listening_r, workers)
        if not got:
            break
        listening += len(got)
    os.close(listening_r)
    probe.close()
    if metrics_sock is not None:
        metrics_sock.close()
    for s in cancel_socks:
        s.close()
    for pair in pairs:
        for end in pair:
            end.close()
    if on_ready:
        on_ready(host, port)
    _wait_children(children)


def _metrics_socket(config: ServerConfig,
                    on_metrics: Callable[[str, int], None] | None) -> socket.socket | None:
    """The ``/metrics`` listening socket, bound once (None when metrics_port is unset)."""
    if config.metrics_port is None:
        return None
    try:
        sock = listening_socket(config.host, config.metrics_port, reuse_port=False)
    except ServerConfigError as exc:
        reason = str(exc).split("; pass ", 1)[0]
        raise ServerConfigError(f"/metrics: {reason}; pass --metrics-port N (0 picks a free port) "
                          "or set [server] metrics_port") from None
    if on_metrics:
        on_metrics(config.host, sock.getsockname()[1])
    return sock


def _run_worker(state: ServerState, sock: socket.socket, cancel_sock: socket.socket | None,
                ready: Callable[[], Any] | None,
                metrics_sock: socket.socket | None = None) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        if metrics_sock is not None and state.metrics_text is not None:
            await metrics.start(metrics_sock, state.metrics_text)
        # Everything loaded so far (modules, the registry, sqlglot's tables) lives as long as
        # the worker: move it out of the collector's generations, so the collections that
        # serving's short-lived objects trigger never traverse it again (shorter pauses).
        gc.collect()
        gc.freeze()
        try:
            await serve_forever(state, sock, cancel_sock, ready)
        except asyncio.CancelledError:
            pass

    # room for sqlglot's recursion over statements nested up to nesting.MAX_DEPTH deep
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (``pip install fsql[server]``), else asyncio's.

    The server is a loop of small reads and writes on many sockets: libuv's loop and
    transports take much less CPU per message than asyncio's pure-Python selector loop, and
    CPU is what bounds lookups per second (docs/benchmarks.md, "Postgres-wire server")."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def _wait_children(children: list[int]) -> None:
    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
