"""A feature repo on disk: its ``.sql`` files → statements → the desired set of definitions.

Files are read in path order (so the result does not depend on the file system), every file's
problems are collected into one :class:`DefinitionError`, and locations name files relative to
the repo root, as users see them in their editor.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fsql.config import Config, load_config
from fsql.errors import DefinitionError, Problem
from fsql.language.analysis import Analysis, analyze
from fsql.language.analysis.locations import SourceRoots, analyze_within
from fsql.language.definitions import AnyDefinition, DropDef, Statement
from fsql.language.parser import parse_partially

__all__ = [
    "RepoStatements",
    "analyze_repo",
    "desired_state",
    "load_project",
    "load_statements",
    "read_statements",
    "sql_files",
]

#: directories that never hold definitions: generated data and fsql's own state
SKIPPED_DIRS = frozenset({"data"})


def sql_files(repo: Path) -> list[Path]:
    """Every ``*.sql`` file under ``repo``, sorted by relative path, skipping hidden
    directories (``.fsql/``, ``.git/``) and ``data/`` directories."""
    files = []
    for path in repo.rglob("*.sql"):
        parts = path.relative_to(repo).parts
        if any(p.startswith(".") or p in SKIPPED_DIRS for p in parts[:-1]):
            continue
        if path.is_file():
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(repo).as_posix())


#: a name a CREATE statement defines, found in text that may not parse
_CREATED_NAME = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:ENTITY|SOURCE|FEATURE\s+SET|FEATURE|CHECK)\s+"
    r"(?:IF\s+NOT\s+EXISTS\s+)?\"?([A-Za-z_][A-Za-z0-9_]*)",
    re.IGNORECASE,
)


@dataclass
class RepoStatements:
    """What a repo's files say, even when some of them do not parse: the statements that
    parse, the syntax problems of those that do not, and the names the broken files may
    define (so that references to them are not reported as unknown as well)."""

    statements: list[Statement] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    unparsed_names: set[str] = field(default_factory=set)

    def without_unparsed(self, problems: Sequence[Problem]) -> list[Problem]:
        """``problems`` without "unknown ..." (or "removed ...") ones about a name a broken
        file may define."""
        return [
            p
            for p in problems
            if not (
                (p.code.startswith("unknown-") or p.code == "removed-dependency")
                and p.location is not None
                and p.location.highlight.strip('"').lower() in self.unparsed_names
            )
        ]


def read_statements(repo: Path) -> RepoStatements:
    """Parse every definition file of ``repo``, keeping the statements that parse and every
    file's problems (see :class:`RepoStatements`)."""
    repo = Path(repo)
    if not repo.is_dir():
        raise DefinitionError(f"{repo} is not a directory; pass the feature repo's root")
    result = RepoStatements()
    for path in sql_files(repo):
        relative = path.relative_to(repo).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as error:
            result.problems.append(Problem(f"{relative} is not UTF-8 text ({error.reason})", None))
            continue
        statements, problems = parse_partially(text, relative)
        result.statements.extend(statements)
        if problems:
            result.problems.extend(problems)
            result.unparsed_names.update(m.lower() for m in _CREATED_NAME.findall(text))
    return result


def load_statements(repo: Path) -> list[Statement]:
    """Parse every definition file of ``repo``; one error lists the problems of all files."""
    read = read_statements(repo)
    if read.problems:
        raise DefinitionError(read.problems)
    return read.statements


def analyze_repo(
    repo: Path,
    analyze_state: Callable[[list[AnyDefinition], list[DropDef]], Analysis] | None = None,
) -> Analysis:
    """Load, apply DROPs and analyse a feature repo, reporting every problem at once: the
    files that parse are analysed even while another file has a syntax error (problems that
    only say a broken file's name is unknown are left out). ``analyze_state`` (default
    :func:`~fsql.language.analysis.analyze`) analyses the desired definitions and DROPs."""
    read = read_statements(Path(repo))
    run = analyze_state or (lambda definitions, drops: analyze(definitions, drops=drops))
    try:
        definitions, drops = desired_state(read.statements)
        analysis = run(definitions, drops)
    except DefinitionError as exc:
        raise DefinitionError(read.problems + read.without_unparsed(exc.problems)) from None
    if read.problems:
        raise DefinitionError(read.problems)
    return analysis


def desired_state(
    statements: Sequence[Statement],
) -> tuple[list[AnyDefinition], list[DropDef]]:
    """Apply the statements in order: definitions accumulate, a DROP removes an earlier
    definition of that name (or, when there is none, retires one in the registry).

    Returns the remaining definitions (in statement order) and every DROP. Two definitions
    with one name (no DROP between them) are an error reported at both places; so is a DROP
    naming a definition of another kind.
    """
    current: dict[str, AnyDefinition] = {}
    drops: list[DropDef] = []
    problems: list[Problem] = []
    for statement in statements:
        if isinstance(statement, DropDef):
            drops.append(statement)
            existing = current.get(statement.name)
            if existing is None:
                continue
            if existing.kind != statement.target_kind:
                actual = existing.kind.replace("_", " ").upper()
                problems.append(
                    Problem(
                        f"{statement.name} is a {existing.kind.replace('_', ' ')}, not a "
                        f"{statement.target_kind.replace('_', ' ')}; write DROP {actual} "
                        f"{statement.name}",
                        statement.location,
                        "wrong-kind",
                    )
                )
                continue
            del current[statement.name]
            continue
        other = current.get(statement.name)
        if other is not None:
            for this, that in ((other, statement), (statement, other)):
                problems.append(
                    Problem(
                        f"{statement.name} is defined twice (here and at "
                        f"{that.location or 'another place'}); names are unique across "
                        "entities, sources, features and feature sets, so rename or remove one",
                        this.location,
                        "duplicate",
                    )
                )
            continue
        current[statement.name] = statement
    if problems:
        raise DefinitionError(problems)
    return list(current.values()), drops


def load_project(repo: Path, config: Config | None = None) -> Analysis:
    """Load, apply DROPs and analyse a feature repo: the one call to validate a repo. Its
    sources are checked against the repo and the ``[sources] roots`` of ``config`` (default:
    the repo's own ``fsql.toml``), on the parsed paths with symlinks resolved, as ``fsql
    plan``/``apply``, the Python API and DDL over the wire check them."""
    roots = SourceRoots.from_config(config if config is not None else load_config(repo))
    return analyze_repo(
        repo, lambda definitions, drops: analyze_within(definitions, roots, drops=drops))
