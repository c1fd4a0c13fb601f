"""``fsql lineage [NAME] --format text|mermaid|dot``: the lineage graph of the registry's
current definitions, as a picture source.

Nodes are definitions (entities, sources, features, feature sets, checks); an edge goes from
what is read to what reads it, labelled with the source columns read when there are any. With
NAME, only what NAME reads (transitively) and what reads NAME. The same renderer draws the
example repo's graph in docs/architecture.md (``scripts/lineage_doc.py``, checked by
tests/cli/test_lineage.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import click

from fsql.cli import CliContext, pass_cli
from fsql.cli.context import open_registry
from fsql.errors import NotFoundError
from fsql.language.definitions import LineageEdge

#: node shapes per kind: mermaid brackets, dot shape
MERMAID = {"entity": ("([", "])"), "source": ("[(", ")]"), "feature": ("[", "]"),
           "feature_set": ("{{", "}}"), "check": (">", "]")}  # fmt: skip
DOT = {"entity": "ellipse", "source": "cylinder", "feature": "box", "feature_set": "hexagon",
       "check": "note"}  # fmt: skip
KIND_WORD = {"feature_set": "feature set"}


@dataclass(frozen=True)
class Graph:
    """Definitions (name → kind) and edges (read → reader → columns read)."""

    kinds: dict[str, str]
    edges: dict[tuple[str, str], tuple[str, ...]]


def build_graph(lineage: Iterable[LineageEdge], focus: str | None = None) -> Graph:
    """The graph of ``lineage``; with ``focus``, only its ancestors and descendants."""
    kinds: dict[str, str] = {}
    columns: dict[tuple[str, str], set[str]] = {}
    for e in lineage:
        kinds[e.from_name], kinds[e.to_name] = e.from_kind, e.to_kind
        found = columns.setdefault((e.to_name, e.from_name), set())
        if e.column:
            found.add(e.column)
    if focus is not None:
        if focus not in kinds:
            raise NotFoundError(
                f"{focus} has no lineage in the registry (no such definition, or nothing reads "
                "it and it reads nothing); `fsql ls` lists the definitions"
            )
        keep = {focus} | _reach(columns, focus, up=True) | _reach(columns, focus, up=False)
        kinds = {n: k for n, k in kinds.items() if n in keep}
        columns = {e: c for e, c in columns.items() if e[0] in keep and e[1] in keep}
    edges = {edge: tuple(sorted(cols)) for edge, cols in sorted(columns.items())}
    return Graph(dict(sorted(kinds.items())), edges)


def _reach(edges: dict[tuple[str, str], set[str]], start: str, up: bool) -> set[str]:
    seen: set[str] = set()
    pending = [start]
    while pending:
        node = pending.pop()
        for read, reader in edges:
            nxt = read if up and reader == node else reader if not up and read == node else None
            if nxt is not None and nxt not in seen:
                seen.add(nxt)
                pending.append(nxt)
    return seen


def mermaid(graph: Graph) -> str:
    lines = ["flowchart LR"]
    for name, kind in graph.kinds.items():
        left, right = MERMAID.get(kind, ("[", "]"))
        lines.append(f'    {name}{left}"{name}<br/><i>{KIND_WORD.get(kind, kind)}</i>"{right}')
    for (read, reader), cols in graph.edges.items():
        label = f'|"{", ".join(cols)}"|' if cols else ""
        lines.append(f"    {read} -->{label} {reader}")
    return "\n".join(lines)


def dot(graph: Graph) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for name, kind in graph.kinds.items():
        lines.append(f'  "{name}" [shape={DOT.get(kind, "box")}, '
                     f'label="{name}\\n({KIND_WORD.get(kind, kind)})"];')  # fmt: skip
    for (read, reader), cols in graph.edges.items():
        label = f' [label="{", ".join(cols)}"]' if cols else ""
        lines.append(f'  "{read}" -> "{reader}"{label};')
    lines.append("}")
    return "\n".join(lines)


def text(graph: Graph) -> str:
    """One line per definition: what it reads (with columns)."""
    reads: dict[str, list[str]] = {}
    for (read, reader), cols in graph.edges.items():
        reads.setdefault(reader, []).append(f"{read}({', '.join(cols)})" if cols else read)
    width = max((len(n) for n in graph.kinds), default=0)
    lines = []
    for name, kind in graph.kinds.items():
        inputs = reads.get(name)
        word = KIND_WORD.get(kind, kind)
        lines.append(f"{word:<11} {name:<{width}}  ← {', '.join(inputs)}" if inputs else
                     f"{word:<11} {name}")  # fmt: skip
    return "\n".join(lines)


RENDER = {"text": text, "mermaid": mermaid, "dot": dot}


def render(lineage: Sequence[LineageEdge], fmt: str, focus: str | None = None) -> str:
    return RENDER[fmt](build_graph(lineage, focus))


@click.command("lineage")
@click.argument("name", required=False)
@click.option("--format", "fmt", type=click.Choice(sorted(RENDER)), default="text",
              show_default=True, help="text, a Mermaid flowchart or a Graphviz dot graph.")  # fmt: skip
@pass_cli
def lineage_command(cli: CliContext, name: str | None, fmt: str) -> None:
    """Print the lineage graph of the registry's definitions (or of what NAME reads and what
    reads NAME) as text, Mermaid or Graphviz dot."""
    registry = open_registry(cli, create=False)
    click.echo(render(registry.lineage(), fmt, name))


def register(group: click.Group) -> None:
    group.add_command(lineage_command)
