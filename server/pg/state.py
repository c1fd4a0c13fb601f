"""What every connection of one worker shares: limits, the surface wired in, the sessions.

A surface (:mod:`fsql_server.pg.planner`) is plugged in by setting the planner, relations,
relation catalog, lane factory and metrics fields; a state without them serves plain
PostgreSQL over DuckDB (as the unit tests use it).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fsql_server.pg import protocol
from fsql_server.pg.planner import DataRelations, Planner, RelationCatalog
from fsql_server.pg.stream import ClientProtocol, Lane
from fsql_server.pg.user_tables import UserDatabases

if TYPE_CHECKING:
    from fsql.config import ServerConfig

log = logging.getLogger("fsql.server")

WORKER_SHIFT = 22


class Cancellable(Protocol):
    """A connection, as the cancel routing sees it."""

    def cancel(self) -> None:
        """Cancel the statement it runs now (if any)."""


@dataclass
class ServerState:
    """What every connection of one worker shares."""

    config: ServerConfig
    port: int = 0
    worker: int = 0
    ssl_context: ssl.SSLContext | None = None
    #: the surface's own statements (None: plain PostgreSQL over DuckDB only)
    planner: Planner | None = None
    #: the surface's tables DuckDB scans
    relations: DataRelations | None = None
    #: the surface's relations as the catalog emulation shows them
    relation_catalog: RelationCatalog | None = None
    #: makes the lane in front of a connection's stream (None: no lane), given the
    #: connection and its protocol
    open_lane: Callable[[Any, ClientProtocol], Lane | None] | None = None
    #: the Prometheus text ``/metrics`` serves
    metrics_text: Callable[[], str] | None = None
    #: the catalog emulation's database (fsql_server.pg.catalog.database), made on first use
    catalog_backend: Any = None
    duckdb_threads: int = 2
    duckdb_memory_limit: str | None = None
    max_message_size: int = 64 * 1024 * 1024
    max_copy_size: int = 1024 * 1024 * 1024
    #: seconds a client may take from connecting to finishing authentication (None: the
    #: config's authentication_timeout)
    startup_timeout: float | None = None
    active: int = 0
    #: connections in startup/authentication now (capped by max_pending_startups)
    pending_startups: int = 0
    #: connections being served (startup included), published to the balancer
    connected: int = 0
    #: evens connections across workers (several workers only; fsql_server.pg.balance)
    balancer: Any = None
    #: lookups answered by the fast lane (fsql_server.features.fast_lane) in this worker
    fast_lane_lookups: int = 0
    #: the worker budget, the event loop's default executor (fsql_server.pg.workers; set
    #: when serving starts)
    budget: Any = None
    #: private loopback ports of every worker, for forwarding CancelRequests
    worker_ports: list[int] = field(default_factory=list)
    #: each user's shared tables (fsql_server.pg.user_tables), made on first use
    user_databases: Any = None
    #: backend pid → (the session's secret, its connection)
    _connections: dict[int, tuple[int, Cancellable]] = field(default_factory=dict)
    _next: int = 0

    def __post_init__(self) -> None:
        if self.startup_timeout is None:
            self.startup_timeout = float(self.config.authentication_timeout)

    def user_database(self, user: str) -> Any:
        """The database of ``user``'s shared tables (fsql_server.pg.user_tables)."""
        if self.user_databases is None:
            self.user_databases = UserDatabases(self.duckdb_threads, self.duckdb_memory_limit)
        return self.user_databases.of(user)

    def new_backend_key(self) -> tuple[int, int]:
        self._next = (self._next + 1) % (1 << WORKER_SHIFT)
        pid = (self.worker << WORKER_SHIFT) | self._next
        return pid, struct.unpack("!i", secrets.token_bytes(4))[0]

    def connection_opened(self) -> None:
        self.connected += 1
        if self.balancer is not None:
            self.balancer.publish(self.connected)

    def connection_closed(self) -> None:
        self.connected -= 1
        if self.balancer is not None:
            self.balancer.publish(self.connected)

    def register(self, pid: int, secret: int, connection: Cancellable) -> None:
        self._connections[pid] = (secret, connection)

    def unregister(self, pid: int) -> None:
        self._connections.pop(pid, None)

    def session_pids(self) -> set[int]:
        """The backend pids of this worker's open sessions (the catalog lists their
        temporary tables, and forgets them when a session ends)."""
        return set(self._connections)

    async def cancel(self, pid: int, secret: int) -> None:
        """Cancel the running statement of session ``pid`` if ``secret`` matches."""
        owner = pid >> WORKER_SHIFT
        if owner != self.worker and 0 <= owner < len(self.worker_ports):
            await forward_cancel(self.worker_ports[owner], pid, secret)
            return
        found = self._connections.get(pid)
        if found is not None and found[0] == secret:
            found[1].cancel()


async def forward_cancel(port: int, pid: int, secret: int) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(struct.pack("!iiii", 16, protocol.CANCEL_REQUEST, pid, secret))
        await writer.drain()
        writer.close()
    except OSError:
        log.warning("could not forward a CancelRequest to worker port %s", port)
