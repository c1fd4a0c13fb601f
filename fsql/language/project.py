"""A feature repo on disk: its ``.sql`` files → statements → the desired set of definitions.

Files are read in path order (so the result does not depend on the file system), every file's
problems are collected into one :class:`DefinitionError`, and locations name files relative to
the repo root, as users see them in their editor.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fsql.errors import DefinitionError, Problem
from fsql.language.analysis import Analysis, analyze
from fsql.language.definitions import AnyDefinition, DropDef, Statement
from fsql.language.parser import parse

__all__ = ["desired_state", "load_project", "load_statements", "sql_files"]

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


def load_statements(repo: Path) -> list[Statement]:
    """Parse every definition file of ``repo``; one error lists the problems of all files."""
    repo = Path(repo)
    if not repo.is_dir():
        raise DefinitionError(f"{repo} is not a directory; pass the feature repo's root")
    statements: list[Statement] = []
    problems: list[Problem] = []
    for path in sql_files(repo):
        relative = path.relative_to(repo).as_posix()
        try:
            statements.extend(parse(path.read_text(encoding="utf-8"), relative))
        except DefinitionError as error:
            problems.extend(error.problems)
        except UnicodeDecodeError as error:
            problems.append(Problem(f"{relative} is not UTF-8 text ({error.reason})", None))
    if problems:
        raise DefinitionError(problems)
    return statements


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


def load_project(repo: Path) -> Analysis:
    """Load, apply DROPs and analyse a feature repo: the one call to validate a repo."""
    definitions, drops = desired_state(load_statements(Path(repo)))
    return analyze(definitions, drops=drops)
