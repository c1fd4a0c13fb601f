"""The architecture's rules, checked: layers (import-linter), no import cycles, imports at the
top of files, module sizes, and the generated layer diagram in docs/architecture.md."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
#: the only modules that may be imported inside a function: optional extras, and the heavy
#: third-party modules ruff bans at module level (pyproject.toml, banned-module-level-imports)
#: so that `fsql --help` and `import fsql.<module>` stay fast
LAZY = {
    "pyspark", "redis", "hiredis", "psycopg", "boto3", "botocore", "airflow", "croniter",
    "pandas", "uvloop", "buildpg", "pendulum", "duckdb", "pyarrow.dataset",
}  # fmt: skip
PACKAGES = ("fsql", "server")
#: the most lines a module may have without saying, in its docstring, why it needs more
MAX_LINES = 800


def _run_lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache"], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_layer_contracts_hold() -> None:
    done = _run_lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" in done.stdout and " 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        # a store reaching up into compute: against the layers
        ("fsql/stores/offline.py", "import fsql.compute.materialize", "fsql-layers"),
        # the core importing the server
        ("fsql/compute/runs.py", "import fsql_server", "the core never imports the server"),
        # the wire layer importing fsql's surface
        ("fsql_server/pg/router.py", "import fsql_server.features.lookup",
         "knows nothing of features"),
    ],
)
def test_a_wrong_way_import_fails_the_lint(
    tmp_path: Path, module: str, bad_import: str, contract: str
) -> None:
    copy = tmp_path / "tree"
    copy.mkdir()
    shutil.copytree(ROOT / "fsql", copy / "fsql")
    shutil.copytree(ROOT / "server", copy / "fsql_server")  # the installed name
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / module
    target.write_text(target.read_text() + f"\n{bad_import}  # deliberately wrong\n")
    env = {**os.environ, "PYTHONPATH": str(copy)}
    done = _run_lint(copy, env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN" in done.stdout
    expected = contract if contract != "fsql-layers" else "front ends -> compute/serving"
    assert expected in done.stdout
    assert bad_import.split()[-1] in done.stdout  # the report names the offending import


def _strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's algorithm over module -> imported module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("fsql", "fsql_server")
    assert _strongly_connected(graph) == []


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_imports_are_at_the_top_of_files() -> None:
    inside: list[str] = []
    for path in _sources():
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                else:
                    continue
                if not all(n in LAZY or n.split(".")[0] in LAZY for n in names):
                    inside.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {names}")
    assert inside == []


def test_modules_stay_small_or_say_why() -> None:
    too_long = []
    for path in _sources():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Why one module" not in doc:
                too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert too_long == [], "split by topic, or say 'Why one module: ...' in the docstring"


def test_the_architecture_diagram_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "architecture.py"), "--check"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
