"""``fsql serve``: the Postgres-wire server; ``fsql hash-password``: a verifier for its users.

The server itself lives in ``fsql_server`` (the top-level ``server/`` folder); the core never
imports it; this module (loaded only when one of its commands runs) does.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click
from fsql_server.features.app import run
from fsql_server.pg.auth import make_md5_hash, make_scram_verifier

from fsql.cli import CliContext, pass_cli


@click.command()
@click.option("--host", default=None, help="Address to listen on (default: [server] host, "
              "127.0.0.1).")
@click.option("--port", type=int, default=None,
              help="Port to listen on (default: [server] port, 5433; 0 picks a free port).")
@click.option("--workers", type=int, default=None,
              help="Worker processes sharing the port (default: [server] workers, 1).")
@click.option("--metrics-port", type=int, default=None,
              help="Serve Prometheus metrics at http://HOST:N/metrics (default: [server] "
              "metrics_port; unset: no metrics; 0 picks a free port).")
@click.option("--allow-trust-remote", is_flag=True,
              help="Allow auth = 'trust' on a non-loopback address (anyone reaching the port "
              "can connect).")
@pass_cli
def serve(cli: CliContext, host: str | None, port: int | None, workers: int | None,
          metrics_port: int | None, allow_trust_remote: bool) -> None:
    """Serve features over the PostgreSQL protocol (psql, JDBC, psycopg, asyncpg, ...).

    Prints "fsql serving on HOST:PORT" on stdout when ready (after "fsql metrics on
    http://HOST:PORT/metrics" when metrics are on), then serves until interrupted.
    """

    config = cli.config
    overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port), ("workers", workers),
                                   ("metrics_port", metrics_port)) if v is not None}
    if overrides:
        config = config.replace(server=dataclasses.replace(config.server, **overrides))

    def ready(bound_host: str, bound_port: int) -> None:
        click.echo(f"fsql serving on {bound_host}:{bound_port}")
        sys.stdout.flush()

    def metrics_ready(bound_host: str, bound_port: int) -> None:
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host  # IPv6 in a URL
        click.echo(f"fsql metrics on http://{shown}:{bound_port}/metrics")
        sys.stdout.flush()

    run(config, allow_trust_remote=allow_trust_remote, on_ready=ready, on_metrics=metrics_ready)


@click.command("hash-password")
@click.argument("user")
@click.option("--md5", is_flag=True, help="An md5 hash instead of a SCRAM-SHA-256 verifier.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from stdin instead of prompting.")
def hash_password(user: str, md5: bool, password_stdin: bool) -> None:
    """Print a [[server.users]] entry with a password verifier for USER (never the password)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        click.echo("fsql hash-password: the password is empty; an empty password cannot log "
                   "in (choose a non-empty one)", err=True)
        sys.exit(2)
    verifier = make_md5_hash(user, password) if md5 else make_scram_verifier(password)
    click.echo(f'[[server.users]]\nname = "{user}"\npassword_hash = "{verifier}"')


def register(group: click.Group) -> None:
    group.add_command(serve)
    group.add_command(hash_password)
