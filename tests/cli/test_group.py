"""The fsql group itself: help, version, and the command-module registration convention."""

from __future__ import annotations

import sys
import types

import click
import pytest

from fsql import __version__
from fsql.cli import cli, register_commands
from tests.cli.conftest import Run


def test_help_lists_the_registry_commands(run: Run) -> None:
    out = run("--help").stdout
    for name in ("init", "plan", "apply", "ls", "describe"):
        assert f"  {name} " in out
    assert "--repo" in out and "--debug" in out


def test_version(run: Run) -> None:
    assert run("--version").stdout.strip() == f"fsql, version {__version__}"


def test_every_command_has_help_text() -> None:
    for name, command in cli.commands.items():
        assert command.help and command.help.strip(), f"fsql {name} has no help text"


def _module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: object) -> None:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    module.__spec__ = types.SimpleNamespace(name=name)  # type: ignore[assignment]
    monkeypatch.setitem(sys.modules, name, module)


def test_register_commands_adds_a_modules_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    @click.command()
    def hello() -> None:
        """Say hello."""
        click.echo("hello")

    def register(group: click.Group) -> None:
        group.add_command(hello)

    _module(monkeypatch, "fsql_test_plugin_ok", register=register)
    group = click.Group("g")
    register_commands(group, ("fsql_test_plugin_ok", "fsql.cli.does_not_exist_yet"))
    assert list(group.commands) == ["hello"]


def test_register_commands_requires_register(monkeypatch: pytest.MonkeyPatch) -> None:
    _module(monkeypatch, "fsql_test_plugin_bad")
    with pytest.raises(RuntimeError, match="must define register"):
        register_commands(click.Group("g"), ("fsql_test_plugin_bad",))


def test_unexpected_exception_is_reported_with_its_type(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A bug (not an FsqlError) still goes through the one handler, naming the exception."""
    import fsql.cli.registry as registry_cli

    def explode(cli_context, **options):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(registry_cli, "_open_registry", explode)
    result = run("ls", repo=tmp_path, ok=False)
    assert result.stderr.splitlines() == [
        "Error: ZeroDivisionError: division by zero",
        "(run with --debug for the traceback)",
    ]
