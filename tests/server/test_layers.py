"""The server's two layers stay apart: the wire layer (``fsql_server.pg``) imports nothing of
fsql's surface (``fsql_server.features``) nor of fsql itself (a type named only for checking
aside), and no module of ``fsql_server`` takes part in an import loop, counting imports made
inside functions or under ``TYPE_CHECKING``."""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[2] / "server"


def modules() -> dict[str, Path]:
    """Dotted name (as installed, ``fsql_server...``) → file, for every module of server/."""
    found = {}
    for path in SERVER.rglob("*.py"):
        parts = list(path.relative_to(SERVER).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(["fsql_server", *parts])] = path
    return found


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, whether only under ``if TYPE_CHECKING:``) for every import."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    checking = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                and ast.unparse(node.test) == "TYPE_CHECKING" for n in ast.walk(node)}
    package = ".".join(["fsql_server", *path.relative_to(SERVER).parent.parts])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, id(node) in checking) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            out.append((base, id(node) in checking))
            out += [(f"{base}.{alias.name}", id(node) in checking) for alias in node.names]
    return out


def test_the_wire_layer_knows_nothing_of_features() -> None:
    offending = []
    for name, path in modules().items():
        if not name.startswith("fsql_server.pg"):
            continue
        for target, type_only in imports(path):
            if target.startswith("fsql_server.features") or target.startswith("fsql_server.redis"):
                offending.append(f"{name} imports {target}")
            elif (target == "fsql" or target.startswith("fsql.")) and not (
                type_only and target.startswith("fsql.config")
            ):
                offending.append(f"{name} imports {target}")
    assert not offending, offending


def test_no_import_loops_in_fsql_server() -> None:
    known = modules()

    def resolve(target: str) -> str | None:
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    graph = {name: {r for t, _ in imports(path) if (r := resolve(t)) and r != name}
             for name, path in known.items()}
    # a module is in a loop when it can reach itself
    looping = []
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            current = stack.pop()
            if current == start:
                looping.append(start)
                break
            if current not in seen:
                seen.add(current)
                stack.extend(graph.get(current, ()))
    assert not looping, f"modules in import loops: {sorted(looping)}"
