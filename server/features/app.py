"""The entry point of ``fsql serve``: the wire layer's server with fsql's surface wired in.

:func:`build_state` makes one worker's state (its :class:`~.services.Services` over the
repository, the surface attached); :func:`run` serves with one such state per worker.
"""

from __future__ import annotations

from collections.abc import Callable

from fsql_server.features.services import Services
from fsql_server.features.surface import FsqlSurface
from fsql_server.pg import server
from fsql_server.pg.state import ServerState

from fsql.config import Config
from fsql.errors import ConfigError

#: DuckDB memory limit of one session when ``[compute] memory_limit`` is not set
DEFAULT_SESSION_MEMORY = "2GB"


def build_state(config: Config, worker: int = 0, worker_ports: list[int] | None = None,
                port: int | None = None) -> ServerState:
    """One worker's state over the repository of ``config``, fsql's surface attached."""
    server_config = config.server
    state = ServerState(
        config=server_config,
        port=port if port is not None else server_config.port,
        worker=worker,
        ssl_context=server.make_ssl_context(server_config, config.resolve_path),
        duckdb_threads=config.compute.threads or 2,
        # each session has its own DuckDB: bound it, DuckDB's default is 80% of the RAM
        duckdb_memory_limit=config.compute.memory_limit or DEFAULT_SESSION_MEMORY,
        worker_ports=worker_ports or [],
    )
    FsqlSurface(Services(config)).attach(state)
    return state


def run(config: Config, allow_trust_remote: bool = False,
        on_ready: Callable[[str, int], None] | None = None,
        on_metrics: Callable[[str, int], None] | None = None) -> None:
    """Serve fsql until SIGINT/SIGTERM (see :func:`fsql_server.pg.server.run`); a setting the
    server refuses is a :class:`~fsql.errors.ConfigError`, reported like any other."""

    def make_state(worker: int, worker_ports: list[int], port: int) -> ServerState:
        return build_state(config, worker, worker_ports, port)

    try:
        server.run(config.server, make_state, allow_trust_remote, on_ready, on_metrics)
    except server.ServerConfigError as exc:
        raise ConfigError(str(exc)) from None
