"""A cached view of the registry for the serving path.

Serving must not query the registry on every read. :class:`Catalog` keeps the current
definitions and re-reads them when the registry's revision changed, checking the revision at
most every ``refresh_seconds`` (and at once when a name is unknown). Versions are immutable,
so the definition of ``(feature, version)`` — needed to apply the TTL of the version the online
store actually served — is cached for good.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fsql.errors import DefinitionError, NotFoundError, Problem
from fsql.language.analysis import analyze
from fsql.language.definitions import EntityDef, FeatureDef, FeatureSetDef

if TYPE_CHECKING:  # pragma: no cover
    from fsql.language.analysis import Analysis
    from fsql.registry.base import Registry, VersionRecord


T = TypeVar("T")
_MISSING = object()


@dataclass(frozen=True)
class FeatureMeta:
    """What serving needs to know about one requested feature."""

    name: str
    #: the registry's current version
    version: int
    definition: FeatureDef
    entity: EntityDef
    #: an explicit version asked for (``name@3``), else None
    pinned: int | None = None


class Catalog:
    """Current features, entities and feature sets of a registry, cached."""

    def __init__(self, registry: Registry, refresh_seconds: float = 1.0):
        self.registry = registry
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._current: dict[str, VersionRecord] = {}
        self._revision = -1
        self._checked = 0.0
        self._analysis: Analysis | None = None
        self._versions: dict[tuple[str, int], FeatureDef] = {}
        #: feature id → resolved metas, valid for the cached revision
        self._resolved: dict[str, list[FeatureMeta]] = {}
        #: values derived from the cached revision (see :meth:`memo`)
        self._memo: dict[Hashable, Any] = {}
        #: changes whenever the cached revision does or :meth:`invalidate` is called: what a
        #: caller keeping its own derived state checks before using it
        self.generation = 0

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < self.refresh_seconds:
            return
        with self._lock:
            revision = self.registry.revision()
            if revision != self._revision:
                self._current = self.registry.current()
                self._revision = revision
                self._analysis = None
                self._resolved = {}
                self._memo = {}
                self.generation += 1
            self._checked = now

    @property
    def stale(self) -> bool:
        """True when the next lookup will query the registry (async callers then look up in
        a worker thread, so the event loop never waits on the registry database)."""
        return time.monotonic() - self._checked >= self.refresh_seconds

    def invalidate(self) -> None:
        """Forget the cached state (after this process changed the registry)."""
        self._checked = 0.0
        self.generation += 1

    def current(self) -> dict[str, VersionRecord]:
        self._refresh()
        return self._current

    def analysis(self) -> Analysis:
        """The current definitions, analysed (resolved features); cached per revision."""
        self._refresh()
        if self._analysis is None:

            self._analysis = analyze(r.definition for r in self._current.values())
        return self._analysis

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()``'s result, computed once per registry revision (e.g. serving's read
        plans: what a read of some feature ids needs besides the keys)."""
        self._refresh()
        memo = self._memo
        found = memo.get(key, _MISSING)
        if found is _MISSING:
            found = memo[key] = build()
        return found  # type: ignore[no-any-return]

    def definition_at(self, name: str, version: int) -> FeatureDef:
        key = (name, version)
        found = self._versions.get(key)
        if found is None:
            record = self._current.get(name)
            if record is None or record.version != version:
                record = self.registry.get(name, version)
            assert isinstance(record.definition, FeatureDef)
            found = self._versions[key] = record.definition
        return found

    def features(self, ids: Iterable[str]) -> list[FeatureMeta]:
        """Resolve feature ids — ``name``, ``name@3`` (a version) or a feature set's name
        (its features, in order) — to :class:`FeatureMeta`. Unknown names are one
        :class:`DefinitionError` listing all of them with suggestions."""
        ids = list(ids)
        self._refresh()
        resolved = self._resolved
        out: list[FeatureMeta] = []
        for feature_id in ids:
            found = resolved.get(feature_id)
            if found is None:
                break
            out.extend(found)
        else:
            return out  # the hot path: every id resolved before, same registry revision
        self._refresh(force=True)
        out = []
        problems: list[Problem] = []
        for feature_id in ids:
            found = self._lookup(feature_id)
            if found is None:
                problems.append(self._unknown(feature_id))
            else:
                self._resolved[feature_id] = found
                out.extend(found)
        if problems:
            raise DefinitionError(problems)
        return out

    def _lookup(self, feature_id: str) -> list[FeatureMeta] | None:
        name, sep, version_text = feature_id.partition("@")
        record = self._current.get(name)
        if record is None:
            return None
        definition = record.definition
        if isinstance(definition, FeatureSetDef) and not sep:
            members = [self._lookup(member) for member in definition.features]
            return [m for found in members if found for m in found]
        if not isinstance(definition, FeatureDef):
            return None
        entity = self._current.get(definition.entity)
        if entity is None or not isinstance(entity.definition, EntityDef):
            return None
        pinned = None
        if sep:
            version_text = version_text.lstrip("v")
            if not version_text.isdigit():
                return None
            pinned = int(version_text)
            try:
                definition = self.definition_at(name, pinned)
            except NotFoundError:
                return None
        return [FeatureMeta(name, record.version, definition, entity.definition, pinned)]

    def _unknown(self, feature_id: str) -> Problem:

        name = feature_id.partition("@")[0]
        if name in self._current and "@" in feature_id:
            try:
                history = self.registry.history(name)
                versions = ", ".join(f"{name}@{r.version}" for r in history)
            except NotFoundError:
                versions = "none"
            return Problem(
                f"{feature_id}: no such version; versions: {versions}", None, "unknown-name"
            )
        names = [
            n
            for n, r in self._current.items()
            if isinstance(r.definition, FeatureDef | FeatureSetDef)
        ]
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"did you mean {' or '.join(close)}?" if close else "`fsql ls` lists the features"
        return Problem(f"no feature or feature set named {name}; {hint}", None, "unknown-name")


def entity_key_tuple(entity: EntityDef, key: Any) -> tuple[Any, ...]:
    """Normalise a key given by a caller — a scalar, a tuple in key order, or a dict by key
    column — to a tuple in the entity's key order."""
    names = entity.key_names
    if isinstance(key, dict):
        missing = [n for n in names if n not in key]
        if missing:
            raise DefinitionError(
                f"the key {key!r} lacks {', '.join(missing)} (entity {entity.name} has key "
                f"columns {', '.join(names)})"
            )
        return tuple(key[n] for n in names)
    if isinstance(key, tuple | list):
        if len(key) != len(names):
            raise DefinitionError(
                f"entity {entity.name} has {len(names)} key column(s) ({', '.join(names)}); "
                f"the key {tuple(key)!r} has {len(key)}"
            )
        return tuple(key)
    if len(names) != 1:
        raise DefinitionError(
            f"entity {entity.name} has a composite key ({', '.join(names)}); pass a tuple or a "
            f"dict, not {key!r}"
        )
    return (key,)


def group_by_entity(metas: Sequence[FeatureMeta]) -> dict[str, list[int]]:
    """Positions of the requested features, grouped by entity (one read per entity)."""
    groups: dict[str, list[int]] = {}
    for i, meta in enumerate(metas):
        groups.setdefault(meta.entity.name, []).append(i)
    return groups
