"""The ``fsql`` command line: one click group, commands contributed by topic modules.

Convention for adding commands (each helper owns its own module)::

    # fsql/cli/compute.py
    from __future__ import annotations

    import click

    from fsql.cli import CliContext, pass_cli
    from fsql.cli.context import open_workspace


    @click.command()
    @click.argument("features", nargs=-1)
    @pass_cli
    def materialize(cli: CliContext, features: tuple[str, ...]) -> None:
        \"\"\"Compute feature timelines into the offline store.\"\"\"
        workspace = open_workspace(cli)  # fsql.toml + FSQL_*, registry, stores, engines
        ...


    def register(group: click.Group) -> None:
        group.add_command(materialize)

- :data:`COMMANDS` names each command's module and its one-line help. A command's module is
  imported when the command runs (its ``register(group)`` adds its commands), so ``fsql
  --help`` imports none of them and stays fast; ``tests/cli/test_group.py`` checks the table
  against the commands themselves.
- Commands that need the registry, the stores or an engine get them from the repo's
  :class:`~fsql.workspace.Workspace`: ``open_workspace(cli)`` (:mod:`fsql.cli.context`), one
  per invocation, closed when the command ends.
- Commands raise :class:`fsql.errors.FsqlError` (or any exception) and never print tracebacks or
  call ``sys.exit`` themselves: :class:`FsqlGroup` is the one error handler. It prints
  ``Error: <message>`` in red on stderr and exits 1; ``--debug`` (or ``FSQL_DEBUG=1``) adds the
  traceback. :class:`~fsql.errors.DefinitionError` prints every problem with file:line:col, the
  source line with the offending text underlined, and the message.
- Commands with ``--json`` print exactly one JSON document on stdout (see :func:`echo_json`) and
  nothing else there; progress and colour go to stderr through ``cli.err`` (a rich Console that
  honours ``NO_COLOR`` and is plain when not a terminal).
- Every command and option must be documented in ``docs/cli.md`` (``tests/test_docs.py``
  introspects this group and fails otherwise).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.text import Text

from fsql import __version__
from fsql.config import CONFIG_FILE, load_config
from fsql.errors import DefinitionError, FsqlError, Problem
from fsql.secrets import redact

if TYPE_CHECKING:
    from rich.console import Console

    from fsql.config import Config

#: Every command: the module that defines it (its ``register(group)`` adds it) and its one-line
#: help, shown by ``fsql --help`` without importing the module.
COMMANDS: dict[str, tuple[str, str]] = {
    "apply": ("fsql.cli.registry",
              "Validate the repo and apply its plan to the registry, atomically."),
    "compile": ("fsql.cli.compute",
                "Print the SQL that computes FEATURE's timeline for [--start, --end)."),
    "describe": ("fsql.cli.registry", "Show one definition: its SQL, type, options, "
                 "dependencies, dependents and history; for a feature, its last run's "
                 "statistics (and a histogram of its values on a terminal)."),
    "gc": ("fsql.cli.admin", "Delete the offline data of feature versions nothing uses: not "
           "the registry's current version, not pinned by a deployed pipeline, not served by "
           "the online store."),
    "get": ("fsql.cli.online", "Read current values of FEATURE..."),
    "hash-password": ("fsql.cli.serve", "Print a [[server.users]] entry with a password "
                      "verifier for USER (never the password)."),
    "init": ("fsql.cli.registry",
             "Create a new feature repo in DIRECTORY: fsql.toml, example .sql files and data."),
    "lineage": ("fsql.cli.lineage", "Print the lineage graph of the registry's definitions (or "
                "of what NAME reads and what reads NAME) as text, Mermaid or Graphviz dot."),
    "ls": ("fsql.cli.registry", "List the registry's current entities, sources, features, "
           "feature sets and checks."),
    "materialize": ("fsql.cli.compute", "Compute FEATURES (default: all; feature sets expand) "
                    "and their inputs for every tick in [--start, --end) into the offline store."),
    "pipeline": ("fsql.cli.pipeline", "Schedule feature materialization with Airflow: create "
                 "DAGs, list them, report status."),
    "plan": ("fsql.cli.registry", "Show what `fsql apply` would change: added, changed and "
             "dropped definitions."),
    "registry": ("fsql.cli.admin", "Move a registry between databases: export it to JSON, "
                 "import it into an empty one."),
    "serve": ("fsql.cli.serve", "Serve features over the PostgreSQL protocol (psql, JDBC, "
              "psycopg, asyncpg, ...)."),
    "status": ("fsql.cli.pipeline", "Every feature's freshness, last run and checks (from the "
               "registry's run records)."),
    "training-set": ("fsql.cli.compute", "Join features to a spine point-in-time correctly and "
                     "write the result as Parquet (or CSV when --out ends in .csv)."),
}  # fmt: skip

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliContext:
    """What every command gets: the repo, the debug flag, consoles, and the config (lazily)."""

    repo: Path
    debug: bool = False
    #: the repo came from --repo / FSQL_REPO (else: found by walking up from the current
    #: folder, and it must hold fsql.toml)
    repo_given: bool = True
    _config: Config | None = field(default=None, repr=False)
    _out: Console | None = field(default=None, repr=False)
    _err: Console | None = field(default=None, repr=False)
    #: the invocation's workspace, opened by :func:`fsql.cli.context.open_workspace`
    workspace: Any = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        """The repo's configuration (``fsql.toml`` + ``FSQL_*``), read on first use."""
        if self._config is None:

            if not self.repo.is_dir():
                # never create a repo (and its .fsql/ registry) by mistyping --repo
                raise FsqlError(
                    f"{self.repo} is not a folder; pass --repo PATH (or set FSQL_REPO) to a "
                    "feature repo, or create one with `fsql init DIR`"
                )
            if not self.repo_given and not (self.repo / CONFIG_FILE).is_file():
                # found by walking up: a repo is marked by its fsql.toml, so running fsql in the
                # wrong folder never reads every .sql file below it nor leaves a registry there
                # (--repo PATH, or FSQL_REPO, names a repo explicitly, marked or not)
                raise FsqlError(
                    f"no {CONFIG_FILE} in {self.repo} or any folder above it: fsql works in a "
                    f"feature repo, the folder holding {CONFIG_FILE}. Run it there, pass --repo "
                    "PATH (or set FSQL_REPO), or create a repo with `fsql init DIR` (an empty "
                    "fsql.toml is enough to mark an existing folder)"
                )
            self._config = load_config(self.repo)
        return self._config

    @property
    def out(self) -> Console:
        """Console for human-readable results on stdout."""
        if self._out is None:
            self._out = make_console(stderr=False)
        return self._out

    @property
    def err(self) -> Console:
        """Console for progress, warnings and errors on stderr."""
        if self._err is None:
            self._err = make_console(stderr=True)
        return self._err


def make_console(stderr: bool) -> Console:
    """A rich Console writing to click's current streams (so CliRunner captures it).

    rich itself turns colour off for ``NO_COLOR`` and when the stream is not a terminal.
    """

    stream = sys.stderr if stderr else sys.stdout  # looked up now: CliRunner swaps them
    width = None
    if not _isatty(stream) and not os.environ.get("COLUMNS"):
        # rich assumes 80 columns off a terminal and would wrap tables mid-name in pipes/logs
        width = 200
    return Console(file=stream, stderr=stderr, highlight=False, soft_wrap=True, width=width)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def print_table(console: Console, table: Any) -> None:
    """Print a rich Table without the trailing blanks rich pads the last column with."""
    with console.capture() as captured:
        console.print(table)
    for line in captured.get().splitlines():
        console.out(line.rstrip(), highlight=False)


def data_row(table: Any, *cells: Any) -> None:
    """Add a row of data to a rich Table. Strings are shown as they are, never read as rich
    markup (a value such as ``[/]`` or ``[bold]`` would otherwise fail the command or vanish);
    pass a :class:`rich.text.Text` to style a cell."""
    table.add_row(*(c if isinstance(c, Text) else Text(str(c)) for c in cells))


def styled(text: str, style: str) -> Text:
    """``text`` in ``style`` (``""``: plain), never read as markup."""
    return Text(text, style=style)


pass_cli = click.make_pass_decorator(CliContext)


def echo_json(data: Any) -> None:
    """Print one JSON document: 2-space indent, keys in the order built, UTF-8 as is; store
    passwords masked (run records may hold errors from before they were redacted)."""
    click.echo(redact(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


def sorted_problems(problems: list[Problem]) -> list[Problem]:
    """Problems in reading order: by file, line and column; those without a place last."""

    def key(p: Problem) -> tuple[int, str, int, int]:
        loc = p.location
        if loc is None:
            return (1, "", 0, 0)
        return (0, loc.file or "", loc.line, loc.col)

    return sorted(problems, key=key)


def _format_problem(problem: Problem, repo: Path | None) -> str:
    """``file:line:col: message`` then the source line with the offending text underlined."""
    lines = [str(problem.location) + ": " + problem.message if problem.location else problem.message]
    loc = problem.location
    if loc is None:
        return lines[0]
    source_line = _read_line(loc.file, loc.line, repo)
    if source_line is not None and loc.col >= 1:
        width = max(1, len(loc.highlight.splitlines()[0]) if loc.highlight else 1)
        lines.append("    " + source_line.rstrip("\n"))
        lines.append("    " + " " * (loc.col - 1) + "^" * width)
    elif loc.highlight:
        lines.append("    " + loc.highlight)
    return "\n".join(lines)


def _read_line(file: str | None, line: int, repo: Path | None) -> str | None:
    if not file or line < 1:
        return None
    path = Path(file)
    if not path.is_absolute() and repo is not None:
        path = repo / path
    try:
        with path.open(encoding="utf-8") as fh:
            for number, text in enumerate(fh, start=1):
                if number == line:
                    return text.expandtabs(1)
    except OSError:
        return None
    return None


def report_error(exc: BaseException, debug: bool, repo: Path | None) -> None:
    """Print an error the one fsql way: ``Error: ...`` in red on stderr (+ traceback if debug)."""
    err = make_console(stderr=True)
    if debug:
        err.print(redact("".join(traceback.format_exception(exc))), style="dim", markup=False)
    if isinstance(exc, DefinitionError):
        count = len(exc.problems)
        err.print(
            f"Error: {count} problem{'s' if count != 1 else ''} in the definitions:",
            style="bold red",
            markup=False,
        )
        for problem in sorted_problems(exc.problems):
            err.print(_format_problem(problem, repo), markup=False)
        return
    message = str(exc) or type(exc).__name__
    if not isinstance(exc, FsqlError | OSError):
        # A bug rather than bad input: name the exception so a report is useful.
        message = f"{type(exc).__name__}: {message}"
    err.print(f"Error: {redact(message)}", style="bold red", markup=False)
    if not debug and not isinstance(exc, FsqlError):
        err.print("(run with --debug for the traceback)", style="dim", markup=False)


class FsqlGroup(click.Group):
    """The top-level group: the one error handler for every command, and commands loaded from
    their modules when they run (:data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in COMMANDS:
            register: Callable[[click.Group], None] = importlib.import_module(
                COMMANDS[name][0]
            ).register
            register(self)
        return self.commands.get(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        # shortened exactly as click shortens a command's own help
        rows = [(n, click.Command(n, help=COMMANDS[n][1]).get_short_help_str(limit)) for n in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        with _InterruptWatch() as interrupt:
            try:
                return super().invoke(ctx)
            except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
                raise
            except BaseException as exc:
                obj = ctx.obj if isinstance(ctx.obj, CliContext) else None
                debug = obj.debug if obj else _env_debug()
                if interrupt.seen or isinstance(exc, KeyboardInterrupt):
                    # DuckDB turns Ctrl-C into RuntimeError('Query interrupted'): the flag,
                    # not the exception's type, says the user stopped the command
                    if debug:
                        report_error(exc, debug, obj.repo if obj else None)
                    make_console(stderr=True).print(
                        "Interrupted: what was being computed was not committed (the offline "
                        "store and the ledger keep what completed before); run the command "
                        "again to continue.", style="bold red", markup=False,
                    )  # fmt: skip
                    raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
                if not isinstance(exc, Exception):
                    raise
                report_error(exc, debug, obj.repo if obj else None)
                raise click.exceptions.Exit(1) from None


#: the exit status of a command stopped by Ctrl-C (SIGINT), as shells report it: 128 + 2
EXIT_INTERRUPTED = 130


class _InterruptWatch:
    """Notes a SIGINT while a command runs (then raises KeyboardInterrupt as Python does), so an
    interrupt that a library turned into another exception is still reported as one."""

    def __init__(self) -> None:
        self.seen = False
        self._previous: Any = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def __enter__(self) -> _InterruptWatch:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _env_debug() -> bool:
    return os.environ.get("FSQL_DEBUG", "").lower() in ("1", "true", "yes", "on")


@click.group(cls=FsqlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fsql")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="FSQL_REPO",
    default=None,
    help="The feature repo (the folder with fsql.toml and .sql files). "
    "Default: $FSQL_REPO, else the nearest folder at or above the current one holding "
    "fsql.toml.",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="FSQL_DEBUG",
    help="Show the full traceback when a command fails.",
)
@click.pass_context
def cli(ctx: click.Context, repo: Path | None, debug: bool) -> None:
    """fsql: a SQL-first feature warehouse.

    Define entities, sources, features and feature sets as SQL in a repo; `fsql plan` shows what
    changed, `fsql apply` versions it in the registry.
    """
    ctx.obj = CliContext(
        repo=repo.resolve() if repo else find_repo(Path.cwd()), debug=debug,
        repo_given=repo is not None,
    )  # fmt: skip


def find_repo(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding ``fsql.toml`` (as git finds ``.git``),
    else ``start`` itself (commands that need a repo then say how to make one)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    return start


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``fsql = fsql.cli:main``)."""
    cli.main(args=argv, prog_name="fsql")

