"""The fsql group itself: help, version, and the command-module registration convention."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from fsql import __version__
from fsql.cli import COMMANDS, cli
from tests.cli.conftest import Run


def test_help_lists_the_registry_commands(run: Run) -> None:
    out = run("--help").stdout
    for name in ("init", "plan", "apply", "ls", "describe"):
        assert f"  {name} " in out
    assert "--repo" in out and "--debug" in out


def test_version(run: Run) -> None:
    assert run("--version").stdout.strip() == f"fsql, version {__version__}"


def test_every_command_has_help_text() -> None:
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        assert command.help and command.help.strip(), f"fsql {name} has no help text"


def test_the_command_table_matches_the_commands() -> None:
    """``fsql --help`` lists COMMANDS without importing the command modules: each entry must
    name the module that defines the command and repeat the command's own one-line help."""
    ctx = click.Context(cli)
    for name, (module, short_help) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert command.get_short_help_str(limit=1000) == short_help, name
        defined_in = command.callback.__module__ if command.callback else None
        assert defined_in in (module, None) or isinstance(command, click.Group), name
    assert set(cli.commands) == set(COMMANDS)  # every module's commands are in the table


def test_help_imports_no_command_module() -> None:
    code = (
        "import sys\n"
        "from fsql.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('fsql.cli.', 'fsql.workspace',"
        " 'duckdb', 'pyarrow')))\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout, done.stdout


def test_unexpected_exception_is_reported_with_its_type(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    """A bug (not an FsqlError) still goes through the one handler, naming the exception."""
    import fsql.cli.registry as registry_cli

    def explode(cli_context, **options):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(registry_cli, "open_registry", explode)
    result = run("ls", repo=tmp_path, ok=False)
    assert result.stderr.splitlines() == [
        "Error: ZeroDivisionError: division by zero",
        "(run with --debug for the traceback)",
    ]
