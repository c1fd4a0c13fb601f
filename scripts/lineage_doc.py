"""Keep docs/architecture.md's picture of the example repo's lineage equal to what
``fsql lineage --format mermaid`` draws for sql_features/:

    python scripts/lineage_doc.py           # rewrite the block
    python scripts/lineage_doc.py --check   # exit 1 when it is stale (tests/cli/test_lineage.py)

The block sits between ``<!-- lineage:begin -->`` and ``<!-- lineage:end -->``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fsql.cli.lineage import render
from fsql.language.project import load_project

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- lineage:begin -->", "<!-- lineage:end -->"


def block() -> str:
    """The generated block (markers included)."""
    lineage = load_project(ROOT / "sql_features").lineage()
    return f"{BEGIN}\n```mermaid\n{render(lineage, 'mermaid')}\n```\n{END}"


def updated(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + block() + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if stale")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    new = updated(text)
    if args.check:
        if new != text:
            print(f"{DOC} is stale: run python scripts/lineage_doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
