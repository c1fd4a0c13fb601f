"""The start of a client connection: SSL/GSS negotiation, the StartupMessage, the hand-over
to a less loaded worker, authentication and the initial ParameterStatus messages.

:class:`Handshake` is the part of :class:`~fsql_server.pg.connection.Connection` that runs
before the message loop, with the socket I/O both use. Nothing is allocated before a length
is checked: a startup packet is at most :data:`MAX_STARTUP` bytes, as in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
from typing import cast

from fsql_server.pg import auth, errors, protocol
from fsql_server.pg.commands import apply_setting
from fsql_server.pg.errors import PgError
from fsql_server.pg.session import REPORTED, Session
from fsql_server.pg.state import ServerState

#: the largest startup packet accepted (PostgreSQL uses 10,000 bytes too)
MAX_STARTUP = 10_000


class Fatal(Exception):
    """End the connection after sending this error (severity FATAL)."""

    def __init__(self, error: PgError):
        error.severity = "FATAL"
        self.error = error
        super().__init__(error.message)


class Handshake:
    """Socket I/O and the startup of one client connection (see the module docstring)."""

    state: ServerState
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    #: output not written yet (see :meth:`flush`)
    out: bytearray
    session: Session | None
    tls: bool
    #: counted in the worker's active connections
    counted: bool

    def cancel(self) -> None:
        """Cancel the running statement (the connection's: see ServerState.cancel)."""
        raise NotImplementedError

    def send(self, data: bytes) -> None:
        self.out += data

    async def flush(self) -> None:
        if self.out:
            self.writer.write(bytes(self.out))
            self.out.clear()
        await self.writer.drain()

    def send_error(self, error: PgError) -> None:
        self.send(protocol.error_response(error.fields()))

    async def read_exact(self, n: int) -> bytes:
        return await self.reader.readexactly(n)

    async def startup(self) -> bool:
        """SSL/GSS negotiation, StartupMessage, authentication, initial ParameterStatus.
        Returns False for a CancelRequest (answered by closing). Beyond
        ``max_pending_startups`` connections in startup a new one is closed at once."""
        state = self.state
        if state.pending_startups >= state.config.max_pending_startups:
            raise Fatal(PgError(errors.TOO_MANY_CONNECTIONS,
                                "too many connections in startup, try again later"))
        state.pending_startups += 1
        try:
            return await self._startup()
        finally:
            state.pending_startups -= 1

    async def _startup(self) -> bool:
        while True:
            (length,) = struct.unpack("!i", await self.read_exact(4))
            if length < 8 or length > MAX_STARTUP:
                raise Fatal(PgError(errors.PROTOCOL_VIOLATION,
                                    f"invalid length of startup packet: {length}"))
            body = await self.read_exact(length - 4)
            (code,) = struct.unpack("!i", body[:4])
            if code == protocol.SSL_REQUEST:
                ctx = self.state.ssl_context
                if ctx is not None and not self.tls:
                    self.writer.write(b"S")
                    await self.writer.drain()
                    await self.writer.start_tls(ctx)
                    self.tls = True
                else:
                    self.writer.write(b"N")
                    await self.writer.drain()
                continue
            if code == protocol.GSSENC_REQUEST:
                self.writer.write(b"N")
                await self.writer.drain()
                continue
            if code == protocol.CANCEL_REQUEST:
                pid, secret = protocol.parse_cancel(body[4:])
                await self.state.cancel(pid, secret)
                return False
            break
        if self.state.config.require_tls and not self.tls:
            # before any password exchange (and before handing the connection to a worker)
            raise Fatal(PgError(errors.INVALID_AUTHORIZATION,
                                "this server requires TLS (sslmode=require)"))
        balancer = self.state.balancer
        if balancer is not None and not self.tls:
            # another worker with fewer connections takes this one (fsql_server.pg.balance)
            target = balancer.target()
            raw = self.writer.get_extra_info("socket")
            if target is not None and raw is not None:
                # stop reading first: the client's next message (sent as soon as the other
                # worker answers) must not be read here while this transport closes
                transport = cast(asyncio.Transport, self.writer.transport)
                transport.pause_reading()
                if balancer.hand_off(target, raw, struct.pack("!i", length) + body):
                    return False
                transport.resume_reading()
        startup = protocol.parse_startup(body)
        major, minor = startup.version >> 16, startup.version & 0xFFFF
        if major != 3:
            raise Fatal(PgError(errors.FEATURE_NOT_SUPPORTED,
                                f"unsupported frontend protocol {major}.{minor}: server supports "
                                "3.0 to 3.0"))
        params = startup.params
        unsupported = [k for k in params if k.startswith("_pq_.")]
        if minor > 0 or unsupported:
            self.send(protocol.message(
                b"v", struct.pack("!ii", 0, len(unsupported))
                + b"".join(protocol.cstr(k) for k in unsupported)))
        user = params.get("user")
        if not user:
            raise Fatal(PgError(errors.INVALID_AUTHORIZATION,
                                "no PostgreSQL user name specified in startup packet"))
        if self.state.active >= self.state.config.max_connections:
            raise Fatal(PgError(errors.TOO_MANY_CONNECTIONS, "sorry, too many clients already",
                                detail=f"max_connections is {self.state.config.max_connections}"))
        # the slot is taken before the password exchange (released by close() when it fails
        # or the client goes away), so concurrent logins cannot all pass the check above
        self.state.active += 1
        self.counted = True
        can_define = await self.authenticate(user)
        pid, secret = self.state.new_backend_key()
        session = Session(self.state, user, params.get("database") or user, pid, secret,
                          can_define=can_define)
        session.settings["session_authorization"] = user
        self.apply_startup_settings(session, params)
        self.session = session
        self.state.register(pid, secret, self)
        self.send(protocol.AUTH_OK)
        for name in REPORTED:
            self.send(protocol.parameter_status(name, session.settings[name]))
        self.send(protocol.backend_key_data(pid, secret))
        self.send(protocol.ready_for_query("I"))
        await self.flush()
        return True

    def apply_startup_settings(self, session: Session, params: dict[str, str]) -> None:
        settings = {k: v for k, v in params.items()
                    if k not in ("user", "database", "options", "replication")}
        for key, value in settings.items():
            if key.lower() == "client_encoding":
                value = value.strip("'")
            try:
                apply_setting(session, key, value)
            except PgError as exc:
                if exc.code == errors.INSUFFICIENT_PRIVILEGE:
                    raise Fatal(exc) from None
                # unknown startup parameters are ignored (libpq sends some PG never had)
        for key, value in parse_options(params.get("options", "")):
            # settings given in ``options`` are the user's: every error ends the startup,
            # as in PostgreSQL (an unknown name is FATAL 42704)
            try:
                apply_setting(session, key, value)
            except PgError as exc:
                raise Fatal(exc) from None

    async def read_password(self) -> bytes:
        header = await self.read_exact(5)
        kind, length = struct.unpack("!ci", header)
        if kind != b"p":
            raise Fatal(PgError(errors.PROTOCOL_VIOLATION,
                                f"expected password response, got message type {kind!r}"))
        if length < 4 or length > MAX_STARTUP:
            raise Fatal(PgError(errors.PROTOCOL_VIOLATION, "invalid password packet size"))
        return await self.read_exact(length - 4)

    async def authenticate(self, user: str) -> bool:
        """Run the configured method; returns whether the user may define (CREATE/DROP)."""
        config = self.state.config
        method = config.auth
        users = {u.name: u for u in config.users}
        entry = users.get(user)
        if method == "trust":
            if users and entry is None:
                raise Fatal(PgError(errors.INVALID_AUTHORIZATION,
                                    f'role "{user}" does not exist'))
            # no users configured: every local client is "the" user, who defines only when
            # [server] trust_can_define says so (a single-user machine)
            return entry.can_define if entry is not None else config.trust_can_define
        verifier = entry.password_hash if entry is not None else None
        if method == "md5" and verifier and not auth.is_md5_hash(verifier):
            method = "scram-sha-256"  # PostgreSQL does the same with SCRAM-stored passwords
        if verifier is not None and auth.is_empty_password_verifier(verifier, user):
            verifier = None  # a verifier of the empty password never lets anyone in
        if method == "cleartext":
            self.send(protocol.authentication(3))
            await self.flush()
            password = (await self.read_password()).rstrip(b"\x00").decode(errors="replace")
            # an unknown user costs the same PBKDF2 work as a known one before failing
            ok = auth.check_cleartext(verifier or auth.fake_verifier(user), user, password)
            if verifier is None or not password or not ok:
                raise Fatal(auth.auth_failed(user, "password"))
        elif method == "md5":
            salt = secrets.token_bytes(4)
            self.send(protocol.authentication(5, salt))
            await self.flush()
            response = (await self.read_password()).rstrip(b"\x00").decode(errors="replace")
            if verifier is None or not auth.check_md5_response(verifier, salt, response):
                raise Fatal(auth.auth_failed(user, "md5"))
        else:
            self.send(protocol.authentication(10, protocol.cstr("SCRAM-SHA-256") + b"\x00"))
            await self.flush()
            reader = protocol.Reader(await self.read_password(), "SASLInitialResponse")
            mechanism = reader.cstring()
            if mechanism != "SCRAM-SHA-256":
                raise Fatal(PgError(errors.PROTOCOL_VIOLATION,
                                    f"client selected an invalid SASL mechanism {mechanism!r}"))
            size = reader.int32()
            exchange = auth.ScramExchange(user, verifier)
            server_first = exchange.first(reader.take(size) if size >= 0 else b"")
            self.send(protocol.authentication(11, server_first))
            await self.flush()
            server_final = exchange.final(await self.read_password())
            self.send(protocol.authentication(12, server_final))
        return entry.can_define if entry is not None else False


def parse_options(options: str) -> list[tuple[str, str]]:
    """The settings of a startup packet's ``options``, in every form libpq users write
    (``PGOPTIONS``, ``options=`` in a DSN): ``-c name=value``, ``-cname=value`` (what
    Superset sends), ``--name=value``; arguments are separated by whitespace, and a backslash
    keeps the next character (``-c search_path=a,\\ b``). Dashes in names are underscores, as
    PostgreSQL reads them. Anything else is FATAL 42601, PostgreSQL's answer."""
    args: list[str] = []
    current: list[str] = []
    escaped = started = False
    for ch in options:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = started = True
        elif ch.isspace():
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(ch)
            started = True
    if started:
        args.append("".join(current))
    settings = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-c" and i + 1 < len(args):
            pair, i = args[i + 1], i + 2
        elif arg.startswith("-c") and len(arg) > 2:
            pair, i = arg[2:], i + 1
        elif arg.startswith("--") and len(arg) > 2:
            pair, i = arg[2:], i + 1
        else:
            raise Fatal(PgError(errors.SYNTAX_ERROR,
                                f"invalid command-line argument for server process: {arg}",
                                hint="Use -c name=value or --name=value."))
        name, equals, value = pair.partition("=")
        if not equals:
            raise Fatal(PgError(errors.SYNTAX_ERROR, f"-c {name} requires a value"))
        settings.append((name.replace("-", "_"), value))
    return settings
