"""Where sources may read: the repo and the configured roots, nowhere else.

A source's ``FROM 'path'`` is read by the server and by every job, with their permissions; a
definition (a file in the repo, DDL over the wire) must not make them read ``/etc/shadow`` or
``../../other-team``. So the *parsed* path is checked when the source is defined: a local
path, made absolute against the repo and with symlinks resolved, must lie inside the repo or
a root of ``[sources] roots``; an ``s3://`` location inside a listed ``s3://bucket[/prefix]``;
any other scheme is refused.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fsql.config import Config
from fsql.errors import DefinitionError, Location, Problem
from fsql.language.analysis import Analysis, Removed, analyze
from fsql.language.definitions import AnyDefinition, DropDef, SourceDef

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


@dataclass(frozen=True)
class SourceRoots:
    """The folders (symlinks resolved) and ``s3://`` prefixes sources may read."""

    repo: Path
    folders: tuple[Path, ...]
    buckets: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Config) -> SourceRoots:
        repo = Path(os.path.realpath(config.repo))
        folders, buckets = [repo], []
        for root in config.sources.roots:
            if root.startswith("s3://"):
                buckets.append(root.rstrip("/") + "/")
            else:
                folders.append(Path(os.path.realpath(repo / root)))
        return cls(repo, tuple(folders), tuple(buckets))

    def refusal(self, path: str) -> str | None:
        """Why a source may not read ``path`` (None: it may)."""
        scheme = _SCHEME.match(path)
        if scheme is None:
            real = Path(os.path.realpath(self.repo / path))
            if any(real.is_relative_to(folder) for folder in self.folders):
                return None
            return f"resolves to {real}, outside the repo and [sources] roots"
        if scheme.group(1).lower() != "s3":
            return f"uses {scheme.group(1)}://; sources read local files and s3:// only"
        key = path[len("s3://") :]
        if ".." in key.split("/") or posixpath.normpath("/" + key) != "/" + key.rstrip("/"):
            return "has '.', '..' or empty segments"
        if any((path.rstrip("/") + "/").startswith(bucket) for bucket in self.buckets):
            return None
        return "is not inside an s3:// location listed in [sources] roots"


def source_location_problems(
    definitions: Iterable[AnyDefinition], roots: SourceRoots
) -> list[Problem]:
    """A problem (``source-location``, at the path) for every source reading outside
    ``roots``."""
    problems = []
    for definition in definitions:
        if not isinstance(definition, SourceDef):
            continue
        reason = roots.refusal(definition.path)
        if reason is None:
            continue
        problems.append(Problem(
            f"source {definition.name} reads {definition.path!r}, which {reason}; sources may "
            "read inside the repo and the locations of [sources] roots in fsql.toml "
            "(docs/configuration.md)",
            _path_location(definition),
            "source-location",
        ))  # fmt: skip
    return problems


def missing_source_paths(definitions: Iterable[AnyDefinition], repo: Path) -> list[Problem]:
    """A warning (``source-missing``, at the path) for every source whose local path does not
    exist, resolved against ``repo``. ``s3://`` locations are not listed at plan time. Data may
    arrive after the definitions are applied, so this does not block ``apply``; it is a check
    for ``fsql plan``, not an analysis pass (it touches the file system)."""
    problems = []
    for definition in definitions:
        if not isinstance(definition, SourceDef) or _SCHEME.match(definition.path):
            continue
        resolved = Path(os.path.abspath(repo / definition.path))
        if resolved.exists():
            continue
        problems.append(Problem(
            f"source {definition.name} reads {definition.path!r}, which does not exist "
            f"({resolved}); its features cannot be materialized until it does: put the data "
            "there or correct the path",
            _path_location(definition),
            "source-missing",
        ))  # fmt: skip
    return problems


def analyze_within(
    definitions: Iterable[AnyDefinition],
    roots: SourceRoots,
    *,
    drops: Sequence[DropDef] = (),
    new: Iterable[AnyDefinition] | None = None,
    removed: Mapping[str, Removed] | None = None,
) -> Analysis:
    """:func:`~fsql.language.analysis.analyze` with the sources of ``new`` (default: every
    definition) checked against ``roots``; every problem of both raised together."""
    problems = source_location_problems(definitions if new is None else new, roots)
    try:
        analysis = analyze(definitions, drops=drops, removed=removed)
    except DefinitionError as exc:
        raise DefinitionError(problems + exc.problems) from None
    if problems:
        raise DefinitionError(problems)
    return analysis


def _path_location(source: SourceDef) -> Location | None:
    """Where the path literal is written in the source's text (else the source's location)."""
    location, text = source.location, source.source_text
    if location is None or not text:
        return location
    start = text.find("'" + source.path.replace("'", "''") + "'")
    if start < 0:
        return location
    before = text[:start]
    line = location.line + before.count("\n")
    col = start - before.rfind("\n") if "\n" in before else location.col + start
    return replace(location, line=line, col=col, highlight=text[start:].split("\n")[0])
