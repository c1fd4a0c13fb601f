"""Keep the ``$ fsql ... --help`` blocks of docs/*.md equal to what the CLI prints.

Every fenced block whose first line is ``$ fsql <command...> --help`` is replaced by that
command's real help (80 columns, as a terminal of that width shows it):

    python scripts/cli_help.py           # rewrite the blocks
    python scripts/cli_help.py --check   # exit 1 when a block is stale (tests/test_docs.py)
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from click.testing import CliRunner

from fsql.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = "```"


def help_text(command_line: str) -> str:
    """The help ``fsql ...`` prints for ``command_line`` (``fsql get --help``)."""
    args = shlex.split(command_line)[1:]
    result = CliRunner().invoke(cli, args, prog_name="fsql", terminal_width=80,
                                env={"COLUMNS": "80"})  # fmt: skip
    if result.exit_code != 0:
        raise SystemExit(f"`{command_line}` failed: {result.output}")
    return result.output.rstrip("\n")


def rewrite(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.startswith(FENCE) and nxt.startswith("$ fsql ") and nxt.endswith("--help"):
            end = lines.index(FENCE, i + 2)
            out += [line, nxt, *help_text(nxt[2:]).split("\n"), FENCE]
            i = end + 1
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a block is stale")
    args = parser.parse_args()
    stale = []
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text()
        new = rewrite(text)
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"stale --help blocks in {', '.join(stale)}: run python scripts/cli_help.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
