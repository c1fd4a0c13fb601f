"""What ``apply`` would change: diffing a desired state against the registry's current state.

Planning is pure (no database): it takes the active versions and the desired definitions and
returns a :class:`Plan` plus the :class:`Node` each new version is built from. ``apply`` runs the
same function again inside its transaction, so what it writes is exactly what was shown.

Versioning rules:

- A definition's *effective fingerprint* is its own fingerprint (the hash of its canonical SQL)
  combined with the *semantic* effective fingerprints of its direct dependencies. So a changed
  input feature gives every downstream definition a new version ("upstream X changed"), while
  reformatting or re-commenting gives none.
- **Column-level versions**: a feature depends on the part of a source it reads (its *source
  view*: the location, format, time columns and the columns the feature reads, with their
  types), not on the whole declaration. Adding, removing or retyping a column that a feature
  does not read leaves that feature's version (and its data) as it is; the source itself gets a
  new version. The REASON names what changed in what the feature reads ("upstream purchases
  changed (amount DOUBLE → BIGINT)").
- The active versions' fingerprints are recomputed from their definitions and lineage with the
  same rules each time (not read back), so a registry written by an older fsql plans the same.
- A description-only change creates a new version of that definition (the history stays honest:
  every version shows the text that was applied) but does not propagate: dependents hash the
  *semantic* fingerprint of their inputs, which leaves the description out.
- Dropping marks the active version retired; re-creating the name later starts a new version.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from fsql.errors import DefinitionError, Problem
from fsql.language.definitions import KINDS, AnyDefinition, DropDef, SourceDef

#: (from_kind, from_name, to_kind, to_name, column): one lineage edge as stored
LineageRow = tuple[str, str, str, str, str | None]


class AnalysisLike(Protocol):
    """What planning needs from :class:`fsql.language.analysis.Analysis`."""

    @property
    def definitions(self) -> Mapping[str, AnyDefinition]: ...

    def dependencies(self, name: str) -> tuple[str, ...]: ...

    def lineage(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class Change:
    """One line of a plan: add, change or drop one definition."""

    action: str  # "add" | "change" | "drop"
    kind: str
    name: str
    old_version: int | None
    new_version: int | None
    #: the new version's effective fingerprint (None for a drop)
    fingerprint: str | None
    #: e.g. "new", "definition changed", "description changed", "upstream purchases changed",
    #: "re-created (v2 was dropped)", "dropped", "removed from repo"
    reason: str
    #: True when only upstream definitions changed, not this one's own text
    indirect: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "kind": self.kind,
            "name": self.name,
            "old_version": self.old_version,
            "new_version": self.new_version,
            "fingerprint": self.fingerprint,
            "reason": self.reason,
            "indirect": self.indirect,
        }


#: where a definition came from, by the file its version was read from (``VersionRecord.file``)
ORIGINS = ("repo", "api", "sql")


def origin_of(file: str | None) -> str:
    """``repo`` for a definition read from a repo's ``.sql`` file (or of unknown origin, as
    written by an older fsql), ``sql`` for ``CREATE ...`` over the PostgreSQL wire (file
    ``<wire>``), ``api`` for the Python API (``register``/``register_feature``: files like
    ``<register>``, ``<FeatureDefinition name>``)."""
    if file is None or not file.startswith("<"):
        return "repo"
    return "sql" if file == "<wire>" else "api"


@dataclass(frozen=True)
class Foreign:
    """An active definition made outside the repo (the API or SQL over the wire) that a
    declarative plan keeps although the repo does not declare it."""

    kind: str
    name: str
    version: int
    origin: str

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "version": self.version,
                "origin": self.origin}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """The changes ``apply`` would make, computed against registry revision ``base_revision``.

    ``declarative``, ``prune_foreign`` and ``drops`` record how the plan was made so ``apply``
    can recompute and verify it under its lock. ``foreign`` lists the definitions made
    elsewhere that a declarative plan keeps (see :func:`compute_plan`).
    """

    base_revision: int
    changes: tuple[Change, ...]
    declarative: bool = True
    drops: tuple[DropDef, ...] = field(default=(), repr=False)
    foreign: tuple[Foreign, ...] = ()
    prune_foreign: bool = False

    @property
    def empty(self) -> bool:
        return not self.changes

    def to_json(self) -> dict[str, Any]:
        """Stable JSON form (documented in docs/cli.md): counts per action, then the changes in
        the order ``apply`` performs them."""
        counts = {"add": 0, "change": 0, "drop": 0}
        for c in self.changes:
            counts[c.action] += 1
        return {
            "base_revision": self.base_revision,
            "empty": self.empty,
            "summary": counts,
            "changes": [c.to_json() for c in self.changes],
            "kept_foreign": [f.to_json() for f in self.foreign],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        """Rebuild a plan from :meth:`to_json` (declarative; drops are not part of the JSON)."""
        changes = tuple(Change(**c) for c in data["changes"])
        return cls(base_revision=int(data["base_revision"]), changes=changes)


@dataclass(frozen=True)
class Node:
    """One definition as planning sees it: what it depends on and its fingerprints."""

    definition: AnyDefinition
    dependencies: tuple[str, ...]
    lineage: tuple[LineageRow, ...] = ()
    #: computed by :func:`compute_plan`
    effective: str = ""
    semantic_effective: str = ""

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def kind(self) -> str:
        return self.definition.kind


@dataclass(frozen=True)
class Active:
    """The registry's active version of one name, as planning needs it."""

    node: Node
    version: int
    #: where the version came from (:func:`origin_of`)
    origin: str = "repo"


@dataclass
class PlanResult:
    plan: Plan
    #: the nodes of every definition active after the plan, by name
    after: dict[str, Node]


def semantic_fingerprint(definition: AnyDefinition) -> str:
    """The fingerprint without the description (nor a feature's inline ``EXPECT`` checks,
    which judge its values without changing them): what dependents' versions depend on."""
    changes: dict[str, Any] = {}
    if definition.description is not None:
        changes["description"] = None
    if getattr(definition, "expect", ()):
        changes["expect"] = ()
    if not changes:
        return definition.fingerprint
    return dataclasses.replace(definition, **changes).fingerprint


def _combine(own: str, deps: Iterable[tuple[str, str]]) -> str:
    deps = sorted(deps)
    if not deps:
        return own
    text = own + "".join(f"|{name}={fp}" for name, fp in deps)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _owner(edge: LineageRow, deps: Mapping[str, tuple[str, ...]]) -> str:
    """The definition an edge belongs to: the downstream end (the one depending on the other)."""
    from_kind, from_name, to_kind, to_name, _column = edge
    if from_name in deps.get(to_name, ()):
        return to_name
    if to_name in deps.get(from_name, ()):
        return from_name
    return to_name


def nodes_from_analysis(desired: AnalysisLike) -> dict[str, Node]:
    """One :class:`Node` per definition of ``desired``, with its lineage edges attached."""
    deps = {name: tuple(desired.dependencies(name)) for name in desired.definitions}
    edges: dict[str, list[LineageRow]] = {name: [] for name in desired.definitions}
    for e in desired.lineage():
        row: LineageRow = (e.from_kind, e.from_name, e.to_kind, e.to_name, e.column)
        owner = _owner(row, deps)
        if owner in edges:
            edges[owner].append(row)
    return {
        name: Node(
            definition=d, dependencies=deps[name], lineage=tuple(sorted(edges[name], key=str))
        )
        for name, d in desired.definitions.items()
    }


def topological_order(nodes: Mapping[str, Node]) -> list[str]:
    """Upstream first; ties broken by kind (entities, sources, features, sets) then name."""
    rank: dict[str, int] = {k: i for i, k in enumerate(KINDS)}
    key = {n: (rank.get(node.kind, len(KINDS)), n) for n, node in nodes.items()}
    pending = {n: {d for d in node.dependencies if d in nodes} for n, node in nodes.items()}
    order: list[str] = []
    while pending:
        ready = sorted((n for n, d in pending.items() if not d), key=key.__getitem__)
        if not ready:  # a cycle; analysis rejects these, so only corrupt input gets here
            cycle = ", ".join(sorted(pending))
            raise DefinitionError(Problem(f"dependency cycle between {cycle}", code="cycle"))
        for n in ready:
            order.append(n)
            del pending[n]
        for deps in pending.values():
            deps.difference_update(ready)
    return order


def columns_read(node: Node, source: SourceDef) -> tuple[str, ...]:
    """The columns of ``source`` that ``node`` reads (its lineage) plus the source's time
    columns, which every feature reading the source reads."""
    read = {
        column for _fk, _fn, to_kind, to_name, column in node.lineage
        if to_kind == "source" and to_name == source.name and column
    }  # fmt: skip
    read.add(source.event_time)
    if source.created_time:
        read.add(source.created_time)
    return tuple(sorted(read))


def source_view(source: SourceDef, columns: Iterable[str]) -> str:
    """What a feature's values depend on in ``source``: where and how it is read, its time
    columns, and the declaration (name and type) of each column in ``columns``."""
    wanted = set(columns)
    declared = ",".join(c.sql() for c in source.columns if c.name in wanted)
    missing = ",".join(sorted(wanted - {c.name for c in source.columns}))
    text = (
        f"{source.path}|{source.format}|{source.event_time}|{source.created_time or ''}|"
        f"{declared}|{missing}"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _dependency_fingerprint(node: Node, dep: Node) -> str:
    if node.kind == "feature" and isinstance(dep.definition, SourceDef):
        return source_view(dep.definition, columns_read(node, dep.definition))
    return dep.semantic_effective


def _fingerprint_all(nodes: dict[str, Node]) -> None:
    for name in topological_order(nodes):
        node = nodes[name]
        deps = [(d, _dependency_fingerprint(node, nodes[d])) for d in node.dependencies
                if d in nodes]  # fmt: skip
        nodes[name] = dataclasses.replace(
            node,
            effective=_combine(node.definition.fingerprint, deps),
            semantic_effective=_combine(semantic_fingerprint(node.definition), deps),
        )


def _source_change(node: Node, before: SourceDef, after: SourceDef) -> str:
    """What changed in the part of a source ``node`` reads, in words."""
    parts = []
    for attr, word in (("path", "location"), ("format", "format"),
                       ("event_time", "event time"), ("created_time", "created time")):
        if getattr(before, attr) != getattr(after, attr):
            parts.append(f"{word} {getattr(before, attr)} → {getattr(after, attr)}")
    old = {c.name: c for c in before.columns}
    new = {c.name: c for c in after.columns}
    for column in columns_read(node, after):
        was, now = old.get(column), new.get(column)
        if was is None and now is not None:
            parts.append(f"{column} added ({now.type})")
        elif was is not None and now is None:
            parts.append(f"{column} removed")
        elif was is not None and now is not None and was.sql() != now.sql():
            parts.append(f"{column} {was.type} → {now.type}")
    return ", ".join(parts)


def _kind_word(kind: str) -> str:
    return kind.replace("_", " ")


def compute_plan(
    *,
    base_revision: int,
    active: Mapping[str, Active],
    latest_versions: Mapping[str, int],
    desired: AnalysisLike,
    drops: Sequence[DropDef] = (),
    declarative: bool = True,
    prune_foreign: bool = False,
) -> PlanResult:
    """Diff ``desired`` (plus ``drops``) against the ``active`` versions.

    ``latest_versions`` holds the highest version number of every name ever stored (retired
    ones included), so a re-created name continues its sequence.

    Declaratively, the repo owns what it declares and what it created: an active definition
    the repo no longer declares is dropped ("removed from repo") when it came from the repo,
    and kept (listed in :attr:`Plan.foreign`) when it was made elsewhere — by the Python API or
    ``CREATE`` over the wire — unless ``prune_foreign``. A repo that declares such a name takes
    it over (its next version is the repo's).
    """
    desired_nodes = nodes_from_analysis(desired)
    problems: list[Problem] = []
    dropped: dict[str, DropDef] = {}
    for d in drops:
        current = active.get(d.name)
        if d.name in desired_nodes:
            # defined again after the DROP (statements apply in order, see
            # fsql.language.project.desired_state): the new definition is what counts
            continue
        if current is None:
            # Declaratively, absence from the repo already means "dropped", and a repo may
            # create and drop a name that never reached the registry. Over the wire (not
            # declarative) a DROP must name something, as in PostgreSQL.
            if not declarative and not d.if_exists:
                problems.append(Problem(
                    f"cannot drop {_kind_word(d.target_kind)} {d.name}: it is not in the registry"
                    f" (write DROP {_kind_word(d.target_kind).upper()} IF EXISTS to ignore this)",
                    d.location, code="unknown-drop",
                ))  # fmt: skip
        elif current.node.kind != d.target_kind:
            problems.append(Problem(
                f"{d.name} is a {_kind_word(current.node.kind)}, not a "
                f"{_kind_word(d.target_kind)}; write DROP {_kind_word(current.node.kind).upper()}"
                f" {d.name}",
                d.location, code="drop-kind",
            ))  # fmt: skip
        else:
            dropped[d.name] = d

    foreign: list[Foreign] = []
    if declarative:
        after = dict(desired_nodes)
        for name, a in sorted(active.items()):
            if name in after or name in dropped or a.origin == "repo" or prune_foreign:
                continue
            after[name] = a.node
            foreign.append(Foreign(a.node.kind, name, a.version, a.origin))
    else:
        after = {name: a.node for name, a in active.items()}
        after.update(desired_nodes)
    for name in dropped:
        after.pop(name, None)

    # Nothing that stays may depend on something that goes.
    orphans: dict[str, list[str]] = {}
    for name in sorted(after):
        for dep in after[name].dependencies:
            if dep not in after:
                orphans.setdefault(dep, []).append(name)
    for dep, dependents in sorted(orphans.items()):
        drop = dropped.get(dep)
        kind = active[dep].node.kind if dep in active else "definition"
        names = ", ".join(f"{_kind_word(after[n].kind)} {n}" for n in dependents)
        if dep in active:
            problems.append(Problem(
                f"cannot drop {_kind_word(kind)} {dep}: {names} still depend"
                f"{'s' if len(dependents) == 1 else ''} on it; drop or change "
                f"{'it' if len(dependents) == 1 else 'them'} first",
                drop.location if drop else after[dependents[0]].definition.location,
                code="dropped-dependency",
            ))  # fmt: skip
        else:
            problems.append(Problem(
                f"{names} depend{'s' if len(dependents) == 1 else ''} on {dep}, which is not "
                "defined; define it or remove the reference",
                after[dependents[0]].definition.location, code="unknown-reference",
            ))  # fmt: skip
    if problems:
        raise DefinitionError(problems)

    _fingerprint_all(after)
    # the active versions' fingerprints, by today's rules (see the module docstring)
    active_nodes = {name: a.node for name, a in active.items()}
    _fingerprint_all(active_nodes)
    changes: list[Change] = []
    for name in topological_order(after):
        node = after[name]
        old = active.get(name)
        if (
            old is not None
            and active_nodes[name].effective == node.effective
            and old.node.kind == node.kind
        ):
            continue
        new_version = latest_versions.get(name, 0) + 1
        if old is None:
            reason = f"re-created (v{new_version - 1} was dropped)" if new_version > 1 else "new"
            changes.append(
                Change("add", node.kind, name, None, new_version, node.effective, reason)
            )
            continue
        indirect = False
        before = old.node.definition
        if old.node.kind != node.kind:
            reason = f"kind changed from {_kind_word(old.node.kind)} to {_kind_word(node.kind)}"
        elif before.fingerprint != node.definition.fingerprint:
            same_meaning = semantic_fingerprint(before) == semantic_fingerprint(node.definition)
            checks_changed = getattr(before, "expect", ()) != getattr(node.definition, "expect", ())
            same_text = before.description == node.definition.description
            if not same_meaning:
                reason = "definition changed"
            elif checks_changed:
                reason = "checks changed" if same_text else "description and checks changed"
            else:
                reason = "description changed"
        else:
            indirect = True
            upstream: list[str] = []
            details: list[tuple[str, str]] = []
            for dep in node.dependencies:
                if dep not in active_nodes or dep not in after:
                    upstream.append(dep)
                elif _dependency_fingerprint(node, after[dep]) != _dependency_fingerprint(
                    active_nodes[name], active_nodes[dep]
                ):
                    was, now = active_nodes[dep].definition, after[dep].definition
                    detail = (
                        _source_change(node, was, now)
                        if isinstance(was, SourceDef) and isinstance(now, SourceDef)
                        else ""
                    )
                    upstream.append(dep)
                    if detail:
                        details.append((dep, detail))
            reason = f"upstream {', '.join(upstream) or '(dependency set)'} changed"
            if details:
                said = [f"{d}: {t}" if len(upstream) > 1 else t for d, t in details]
                reason += f" ({'; '.join(said)})"
        changes.append(
            Change(
                "change",
                node.kind,
                name,
                old.version,
                new_version,
                node.effective,
                reason,
                indirect,
            )  # fmt: skip
        )

    gone = {name: a.node for name, a in active.items() if name not in after}
    for name in reversed(topological_order(gone)):
        if name in dropped:
            reason = "dropped"
        elif active[name].origin != "repo":
            reason = f"defined elsewhere ({active[name].origin}); --prune-foreign"
        else:
            reason = "removed from repo"
        changes.append(
            Change("drop", gone[name].kind, name, active[name].version, None, None, reason)
        )

    plan = Plan(
        base_revision=base_revision,
        changes=tuple(changes),
        declarative=declarative,
        drops=tuple(drops),
        foreign=tuple(foreign),
        prune_foreign=prune_foreign,
    )
    return PlanResult(plan=plan, after=after)
