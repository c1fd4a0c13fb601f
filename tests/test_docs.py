"""Docs are part of done: every CLI command and option, every fsql.toml key and every FSQL_*
variable must be documented (the check introspects the click group and the config model, so a
command or key added later is caught without touching this file)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from fsql.cli import cli
from fsql.config import _SECTIONS, ENV_VARS, ServerUser

DOCS = Path(__file__).resolve().parents[1] / "docs"
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
COMMAND_HEADING = re.compile(r"^`?fsql ([a-z0-9_][a-z0-9 _-]*?)`?$")


def sections(text: str) -> Iterator[tuple[int, str, str]]:
    """(level, heading, body up to the next heading of the same or a higher level)."""
    lines = text.splitlines()
    heads = [(i, m) for i, line in enumerate(lines) if (m := HEADING.match(line))]
    for n, (i, m) in enumerate(heads):
        level = len(m.group(1))
        end = next((j for j, mm in heads[n + 1:] if len(mm.group(1)) <= level), len(lines))
        yield level, m.group(2), "\n".join(lines[i + 1:end])


def command_sections() -> dict[str, str]:
    """``{"plan": body, "pipeline create": body, ...}`` from every page under docs/ (a command
    documented on several pages gets all its sections)."""
    found: dict[str, str] = {}
    for page in sorted(DOCS.glob("*.md")):
        for _level, heading, body in sections(page.read_text()):
            if m := COMMAND_HEADING.match(heading):
                name = m.group(1).strip()
                found[name] = found.get(name, "") + "\n" + body
    return found


def walk(group: click.Group, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        path = f"{prefix}{name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from walk(command, path + " ")


def documented_names(param: click.Parameter) -> list[str]:
    """What a reader must find: every long option name, or the argument's metavar."""
    if isinstance(param, click.Argument):
        return [param.human_readable_name.upper()]
    names = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("--")]
    return names or list(param.opts)


COMMANDS = sorted(walk(cli), key=lambda item: item[0])


def test_every_command_has_a_section() -> None:
    documented = command_sections()
    missing = [path for path, _ in COMMANDS if path not in documented]
    assert not missing, (
        f"undocumented commands {missing}: add a heading like '## `fsql {missing[0]}`' to "
        "docs/cli.md (or to the docs page of that feature)"
    )


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_option_and_argument_is_documented(path: str, command: click.Command) -> None:
    body = command_sections().get(path)
    if body is None:
        pytest.fail(f"fsql {path} has no section in docs/ (see test_every_command_has_a_section)")
    missing = [
        name
        for param in command.params
        if not getattr(param, "hidden", False)
        for name in documented_names(param)
        if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", body)
    ]
    assert not missing, f"fsql {path}: {missing} not documented in its section"


def test_global_options_are_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    body = next(b for _l, h, b in sections(text) if h == "Global options")
    for param in cli.params:
        for name in documented_names(param):
            assert f"`{name}" in body, f"global option {name} is not in docs/cli.md"


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    by_heading = {h: b for _l, h, b in sections(text)}
    for section, cls in _SECTIONS.items():
        heading = f"`[{section}]`"
        assert heading in by_heading, f"docs/configuration.md needs a '## {heading}' section"
        body = by_heading[heading]
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in body, f"[{section}] {f.name} is not documented"
    users = by_heading["`[[server.users]]`"]
    for f in dataclasses.fields(ServerUser):
        assert f"`{f.name}`" in users, f"[[server.users]] {f.name} is not documented"


def test_every_environment_variable_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    for var in (*ENV_VARS, "FSQL_REPO", "FSQL_DEBUG"):
        assert f"`{var}`" in text, f"{var} is not documented in docs/configuration.md"


def test_design_dict_keys_are_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    for key in ("metadata_config.database_url", "online_store_config.host",
                "offline_store_config.bucket", "offline_store_config.region",
                "compute_config.spark_master", "compute_config.executor_memory"):
        assert key in text, f"{key} (the design's config dict) is not documented"


def test_cli_help_blocks_are_what_the_cli_prints() -> None:
    """Every ``$ fsql ... --help`` block in docs/ is generated (scripts/cli_help.py)."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve().parents[1] / "scripts" / "cli_help.py"),
         "--check"], capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
