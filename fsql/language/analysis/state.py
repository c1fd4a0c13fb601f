"""What the analysis passes share, and what they produce.

:class:`AnalysisState` is the one mutable state of an analysis run: the definitions indexed by
name, the DROPs that produced them, the problems found so far, and what has been resolved
(features, lineage edges). Every pass is a function over it; problems are recorded here and
raised together at the end. :class:`Analysis` is the result: a consistent set of definitions
with their resolved features, lineage and order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from fsql.errors import DefinitionError, Location, Problem
from fsql.language.definitions import (
    AnyDefinition,
    DropDef,
    FeatureDef,
    FeatureSetDef,
    LineageEdge,
    ResolvedFeature,
)
from fsql.language.grammar import closest_name

__all__ = ["Analysis", "AnalysisState", "LineageEdge", "Removed"]


@dataclass(frozen=True)
class Removed:
    """A definition the registry has but the repo no longer declares (plain data given to the
    analysis by whoever knows the registry): a reference to it says so, rather than
    "unknown"."""

    kind: str
    #: the registry's current version
    version: int
    #: the file it was declared in (relative to the repo), when known
    file: str | None = None


@dataclass
class AnalysisState:
    """The state every analysis pass reads and adds to."""

    #: every definition of the desired state, in the order given (duplicates included)
    definitions: list[AnyDefinition]
    #: the DROP statements that produced the desired state, by dropped name
    drops: dict[str, DropDef]
    problems: list[Problem] = field(default_factory=list)
    #: the first definition of each name (see :func:`.references.index_definitions`)
    by_name: dict[str, AnyDefinition] = field(default_factory=dict)
    resolved: dict[str, ResolvedFeature] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)
    #: features that could not be resolved (their problems are reported already)
    failed: set[str] = field(default_factory=set)
    #: dropped name → the definitions that still use it (reported at the DROP)
    dropped_users: dict[str, list[AnyDefinition]] = field(default_factory=dict)
    #: definitions the registry has and the repo no longer declares, by name
    removed: Mapping[str, Removed] = field(default_factory=dict)

    def problem(self, message: str, location: Location | None, code: str) -> None:
        """Record a problem (all are raised together at the end)."""
        self.problems.append(Problem(message, location, code))

    def unknown(
        self,
        name: str,
        wanted: str,
        candidates: Iterable[str],
        location: Location | None,
        user: AnyDefinition,
    ) -> None:
        """Report a reference to a name that is not defined (or is defined as another kind).
        A name dropped in the same change is reported once, at its DROP, naming every user."""
        if name in self.drops and name not in self.by_name:
            users = self.dropped_users.setdefault(name, [])
            if user not in users:
                users.append(user)
            return
        gone = self.removed.get(name)
        if gone is not None and name not in self.by_name and (gone.file or "").startswith("<"):
            # made by the Python API (<register>, ...) or over the wire (<wire>): not the repo's
            origin = "SQL over the wire" if gone.file == "<wire>" else "the Python API"
            self.problem(
                f"{user.name} uses {name}, which is defined elsewhere ({origin}, registry "
                f"version v{gone.version}), not in this repo; a repo's definitions may only use "
                f"what the repo declares: declare {name} in the repo (it then takes it over)",
                location,
                "foreign-dependency",
            )
            return
        if gone is not None and name not in self.by_name:
            where = f"from {gone.file}" if gone.file else "from the repo"
            self.problem(
                f"{name} was removed {where} (where registry version v{gone.version} was "
                f"declared) but {user.name} still uses it; remove {user.name}'s use of "
                f"{name} or keep {name}",
                location,
                "removed-dependency",
            )
            return
        other = self.by_name.get(name)
        if other is not None:
            self.problem(
                f"{name} is a {other.kind.replace('_', ' ')}, not a {wanted}; name a {wanted} here",
                location,
                "wrong-kind",
            )
            return
        hint = (
            closest_name(name, candidates) or f"define it with CREATE {wanted.upper()} {name} ..."
        )
        self.problem(f"unknown {wanted} {name}; {hint}", location, f"unknown-{wanted}")

    def names_of(self, kind: type) -> list[str]:
        """The names defined as ``kind`` (e.g. :class:`FeatureDef`)."""
        return [n for n, d in self.by_name.items() if isinstance(d, kind)]


@dataclass
class Analysis:
    """A consistent set of definitions and what follows from them (types, lineage, order)."""

    definitions: Mapping[str, AnyDefinition]
    features: Mapping[str, ResolvedFeature]
    _edges: list[LineageEdge] = field(default_factory=list, repr=False)

    def dependencies(self, name: str) -> tuple[str, ...]:
        """Direct upstream names: a feature's entity and source (or input features); a feature
        set's features. Entities and sources have none."""
        self._require(name)
        seen: dict[str, None] = {}
        for edge in self._edges:
            if edge.from_name == name:
                seen.setdefault(edge.to_name)
        return tuple(seen)

    def dependents(self, name: str) -> tuple[str, ...]:
        """Direct downstream names: what would break if ``name`` were dropped."""
        self._require(name)
        return tuple(sorted({e.from_name for e in self._edges if e.to_name == name}))

    def lineage(self) -> list[LineageEdge]:
        """Every dependency edge, including the source columns each feature reads."""
        return list(self._edges)

    def topological_order(self, features: Iterable[str] | None = None) -> list[str]:
        """The named features (default: all; feature sets are expanded) plus every feature they
        read, inputs before dependents; deterministic (ties broken by name)."""
        roots = sorted(self.features) if features is None else self.expand(features)
        order: list[str] = []
        done: set[str] = set()

        def visit(name: str) -> None:
            if name in done:
                return
            done.add(name)
            for upstream in sorted(self.features[name].inputs):
                visit(upstream)
            order.append(name)

        for root in roots:
            visit(root)
        return order

    def expand(self, names: Iterable[str]) -> list[str]:
        """Feature names, with feature-set names replaced by their features; order kept,
        duplicates dropped. An unknown name is a :class:`DefinitionError`."""
        result: dict[str, None] = {}
        problems: list[Problem] = []
        for name in names:
            definition = self.definitions.get(name)
            if isinstance(definition, FeatureSetDef):
                result.update(dict.fromkeys(definition.features))
            elif isinstance(definition, FeatureDef) and name in self.features:
                result.setdefault(name)
            else:
                problems.append(self._unknown_problem(name, "feature or feature set"))
        if problems:
            raise DefinitionError(problems)
        return list(result)

    def _require(self, name: str) -> None:
        if name not in self.definitions:
            raise DefinitionError(self._unknown_problem(name, "definition"))

    def _unknown_problem(self, name: str, what: str) -> Problem:
        candidates = list(self.features) + [
            n for n, d in self.definitions.items() if isinstance(d, FeatureSetDef)
        ]
        if what == "definition":
            candidates = list(self.definitions)
        hint = closest_name(name, candidates)
        return Problem(
            f"there is no {what} named {name}; {hint or 'check the name'}", None, "unknown-name"
        )
