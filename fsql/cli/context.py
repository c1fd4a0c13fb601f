"""The workspace a command works in: one per invocation, closed when the command ends.

Kept apart from :mod:`fsql.cli` (the group, the error handler, the command table) so that
``fsql --help`` loads nothing of the core: a command's module imports this one when it runs.
"""

from __future__ import annotations

import click

from fsql.cli import CliContext
from fsql.registry import Registry
from fsql.workspace import Workspace


def open_workspace(cli: CliContext, *, create_registry: bool = True) -> Workspace:
    """The repo's workspace (registry, stores, engines), opened once per command and closed
    when it finishes. Read-only commands pass ``create_registry=False``: a missing embedded
    registry is then an error, not a new empty file."""
    if cli.workspace is None:
        workspace = Workspace(cli.config, create_registry=create_registry)
        cli.workspace = click.get_current_context().with_resource(workspace)
    workspace_: Workspace = cli.workspace
    return workspace_


def open_registry(cli: CliContext, *, create: bool = True) -> Registry:
    """The workspace's registry (see :func:`open_workspace`)."""
    return open_workspace(cli, create_registry=create).registry


__all__ = ["open_registry", "open_workspace"]
