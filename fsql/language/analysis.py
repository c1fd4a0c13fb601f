"""Semantic analysis: resolve definitions against each other into :class:`ResolvedFeature`.

Given the desired set of definitions (after DROPs), :func:`analyze` checks every reference
(entities, sources, columns, features), classifies each feature (``aggregate``, ``latest`` or
``derived``), splits its SELECT into keys, aggregates, value expression and filter, infers its
type with sqlglot's ``annotate_types`` and checks it against ``TYPE``, extracts lineage from
the AST, and rejects dependency cycles. All problems are collected and raised together as one
:class:`DefinitionError`, each pointing at the offending text in its file when the definition
still carries its source text.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from fsql.errors import DefinitionError, Location, Problem
from fsql.intervals import format_interval
from fsql.language.checks import checks_from_definitions, validate_checks
from fsql.language.definitions import (
    AnyDefinition,
    CheckDef,
    DropDef,
    EntityDef,
    FeatureDef,
    FeatureSetDef,
    LineageEdge,
    ResolvedFeature,
    SourceDef,
)
from fsql.language.dialect import FSQL
from fsql.language.feature_query import TIME_TYPES, FeatureQuery, FeatureQueryChecks, type_widens
from fsql.language.grammar import closest_name
from fsql.language.parser import statement_tree

__all__ = ["Analysis", "LineageEdge", "analyze", "type_widens"]


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


def analyze(definitions: Iterable[AnyDefinition], *, drops: Sequence[DropDef] = ()) -> Analysis:
    """Resolve ``definitions`` (the desired state) into an :class:`Analysis`.

    ``drops`` (optional) are the DROP statements that produced this state: a reference to a
    dropped name is then reported at the DROP as "still needed by ...", which says more than
    "unknown name". Raises :class:`DefinitionError` with every problem found.
    """
    return _Analyzer(list(definitions), list(drops)).run()


# ---------------------------------------------------------------------------------------------


class _Analyzer(FeatureQueryChecks):
    def __init__(self, definitions: list[AnyDefinition], drops: list[DropDef]):
        self.all = definitions
        self.drops = {d.name: d for d in drops}
        self.problems: list[Problem] = []
        self.by_name: dict[str, AnyDefinition] = {}
        self.resolved: dict[str, ResolvedFeature] = {}
        self.edges: list[LineageEdge] = []
        self.failed: set[str] = set()
        self.dropped_users: dict[str, list[AnyDefinition]] = {}

    def problem(self, message: str, location: Location | None, code: str) -> None:
        self.problems.append(Problem(message, location, code))

    # -- driver --------------------------------------------------------------------------------

    def run(self) -> Analysis:
        self.index()
        for definition in self.by_name.values():
            if isinstance(definition, SourceDef):
                self.check_source(definition)
        queries = {
            d.name: FeatureQuery(d) for d in self.by_name.values() if isinstance(d, FeatureDef)
        }
        derived_inputs: dict[str, list[str]] = {}
        for name, query in queries.items():
            inputs = self.derived_inputs(query)
            if inputs is not None:
                derived_inputs[name] = inputs
        cyclic = self.check_cycles(derived_inputs, queries)
        for name in self.order(derived_inputs):
            if name not in cyclic:
                self.resolve(queries[name])
        for definition in self.by_name.values():
            if isinstance(definition, FeatureSetDef):
                self.check_set(definition)
        self.check_checks()
        self.report_drops()
        if self.problems:
            raise DefinitionError(self.problems)
        edges = sorted(
            set(self.edges),
            key=lambda e: (e.from_name, e.to_kind, e.to_name, e.column or ""),
        )
        features = {name: self.resolved[name] for name in sorted(self.resolved)}
        return Analysis(dict(sorted(self.by_name.items())), features, edges)

    def report_drops(self) -> None:
        """One problem per DROP that removes something still in use, naming every user."""
        for name, users in self.dropped_users.items():
            named = [f"{u.kind.replace('_', ' ')} {u.name}" for u in users]
            listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
            verb, them = ("depends", "it") if len(named) == 1 else ("depend", "them")
            self.problem(
                f"cannot drop {name}: {listed} still {verb} on it; drop or change {them} in "
                f"the same change, or keep {name}",
                self.drops[name].location,
                "dropped-dependency",
            )

    def index(self) -> None:
        first: dict[str, AnyDefinition] = {}
        for definition in self.all:
            other = first.get(definition.name)
            if other is None:
                first[definition.name] = definition
                continue
            for this, that in ((other, definition), (definition, other)):
                self.problem(
                    f"{definition.name} is defined twice (as {this.kind.replace('_', ' ')} here "
                    f"and as {that.kind.replace('_', ' ')} at {that.location or 'another place'})"
                    "; names are unique across entities, sources, features and feature sets, "
                    "so rename or remove one",
                    this.location,
                    "duplicate",
                )
        self.by_name = first

    def order(self, derived_inputs: dict[str, list[str]]) -> list[str]:
        """Feature names so that a derived feature comes after the features it reads."""
        features = sorted(n for n, d in self.by_name.items() if isinstance(d, FeatureDef))
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for upstream in derived_inputs.get(name, []):
                if upstream in derived_inputs or isinstance(self.by_name.get(upstream), FeatureDef):
                    visit(upstream)
            order.append(name)

        for name in features:
            visit(name)
        return order

    # -- references ----------------------------------------------------------------------------

    def unknown(
        self,
        name: str,
        wanted: str,
        candidates: Iterable[str],
        location: Location | None,
        user: AnyDefinition,
    ) -> None:
        """Report a reference to a name that is not defined (or is defined as another kind)."""
        if name in self.drops and name not in self.by_name:
            users = self.dropped_users.setdefault(name, [])
            if user not in users:
                users.append(user)
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
        return [n for n, d in self.by_name.items() if isinstance(d, kind)]

    # -- sources -------------------------------------------------------------------------------

    def check_source(self, source: SourceDef) -> None:
        for option, column_name in (
            ("EVENT TIME", source.event_time),
            ("CREATED TIME", source.created_time),
        ):
            if column_name is None:
                continue
            column = source.column(column_name)
            if column is None:
                self.problem(
                    f"{option} names column {column_name}, which source {source.name} does not "
                    "declare; name one of its TIMESTAMP columns",
                    source.location,
                    "unknown-column",
                )
            elif column.type not in TIME_TYPES:
                self.problem(
                    f"{option} column {column_name} is {column.type}; it must be TIMESTAMP, "
                    "TIMESTAMPTZ or DATE",
                    source.location,
                    "invalid-type",
                )

    # -- feature sets --------------------------------------------------------------------------

    def check_set(self, feature_set: FeatureSetDef) -> None:
        for feature in feature_set.features:
            if isinstance(self.by_name.get(feature), FeatureDef):
                self.edges.append(LineageEdge("feature_set", feature_set.name, "feature", feature))
                continue
            self.unknown(
                feature,
                "feature",
                self.names_of(FeatureDef),
                _set_member_location(feature_set, feature),
                feature_set,
            )

    # -- data checks ---------------------------------------------------------------------------

    def check_checks(self) -> None:
        """Each ``CREATE CHECK`` names a feature (lineage check → feature, so dropping a
        checked feature is a dependency error); every check's expression reads only ``value``
        or the run statistics (the dialect already says so for parsed text; this covers
        definitions built otherwise); a check's name is not an inline check's name."""

        inline: dict[str, str] = {}
        for definition in self.by_name.values():
            if isinstance(definition, FeatureDef):
                for number in range(1, len(definition.expect) + 1):
                    inline[f"{definition.name}_expect_{number}"] = definition.name
            if not isinstance(definition, CheckDef):
                continue
            if isinstance(self.by_name.get(definition.feature), FeatureDef):
                self.edges.append(
                    LineageEdge("check", definition.name, "feature", definition.feature)
                )
            else:
                self.unknown(
                    definition.feature,
                    "feature",
                    self.names_of(FeatureDef),
                    _check_feature_location(definition),
                    definition,
                )
        for name, feature in inline.items():
            if isinstance(self.by_name.get(name), CheckDef):
                self.problem(
                    f"check {name} has the name of an inline check of feature {feature} "
                    f"(EXPECT checks are named <feature>_expect_<n>); rename the check",
                    self.by_name[name].location,
                    "duplicate",
                )
        try:
            validate_checks(checks_from_definitions(self.by_name.values()))
        except DefinitionError as error:
            self.problems.extend(error.problems)

    # -- cycles --------------------------------------------------------------------------------

    def derived_inputs(self, query: FeatureQuery) -> list[str] | None:
        """For a derived feature (FROM its entity), the feature names its query reads."""
        select = query.query
        table = select.args.get("from_")
        table = table.this if isinstance(table, exp.From) else None
        if not isinstance(table, exp.Table) or not isinstance(
            self.by_name.get(table.name), EntityDef
        ):
            return None
        entity = self.by_name[table.name]
        keys = set(t.cast(EntityDef, entity).key_names)
        names = [c.name for c in select.find_all(exp.Column) if c.name not in keys]
        return sorted({n for n in names if isinstance(self.by_name.get(n), FeatureDef)})

    def check_cycles(
        self, inputs: dict[str, list[str]], queries: dict[str, FeatureQuery]
    ) -> set[str]:
        """Report each cycle among derived features once, naming every feature in it."""
        in_cycle: set[str] = set()
        for component in _strongly_connected(inputs):
            if len(component) == 1 and component[0] not in inputs.get(component[0], []):
                continue
            cycle = _cycle_path(component, inputs)
            first = queries[cycle[0]]
            read = next((c for c in first.query.find_all(exp.Column) if c.name == cycle[1]), None)
            self.problem(
                f"features {', '.join(sorted(component))} form a dependency cycle "
                f"({' → '.join(cycle)}); a derived feature cannot read itself, directly or "
                "through others: remove one of these reads",
                first.location(read) if read is not None else first.feature.location,
                "cycle",
            )
            in_cycle.update(component)
        return in_cycle

    # -- features ------------------------------------------------------------------------------

    def resolve(self, query: FeatureQuery) -> None:
        feature = query.feature
        count = len(self.problems)
        resolved = self._resolve(query)
        if resolved is not None and len(self.problems) == count:
            self.resolved[feature.name] = resolved
        else:
            self.failed.add(feature.name)

    def _resolve(self, query: FeatureQuery) -> ResolvedFeature | None:
        feature = query.feature
        entity = self.by_name.get(feature.entity)
        if not isinstance(entity, EntityDef):
            self.unknown(
                feature.entity,
                "entity",
                self.names_of(EntityDef),
                query.location(option="ENTITY"),
                feature,
            )
            return None
        self.edges.append(LineageEdge("feature", feature.name, "entity", entity.name))
        if feature.window is not None and feature.window % feature.every:
            # the parser reports this for text; definitions built in Python are checked here
            self.problem(
                f"WINDOW {format_interval(feature.window)!r} of feature {feature.name} is not a "
                f"whole multiple of EVERY {format_interval(feature.every)!r}; make it one",
                query.location(option="WINDOW"),
                "window-not-multiple",
            )
            return None
        select = query.query
        if not self.check_shape(query):
            return None
        assert isinstance(select, exp.Select)
        table = select.args["from_"].this
        target = self.by_name.get(table.name)
        if isinstance(target, SourceDef):
            return self.resolve_source_feature(query, entity, target, table)
        if isinstance(target, EntityDef):
            if target.name != entity.name:
                self.problem(
                    f"feature {feature.name} belongs to entity {entity.name} but reads FROM "
                    f"{target.name}; a derived feature reads only features of its own entity: "
                    f"FROM {entity.name}",
                    query.location(table),
                    "cross-entity",
                )
                return None
            return self.resolve_derived(query, entity, table)
        if isinstance(target, FeatureDef):
            self.problem(
                f"FROM {table.name} names a feature; a derived feature reads features as "
                f"columns of its entity: SELECT {', '.join(entity.key_names)}, "
                f"<expression over {table.name}> FROM {entity.name}",
                query.location(table),
                "wrong-kind",
            )
            return None
        self.unknown(
            table.name,
            "source",
            self.names_of(SourceDef) + [entity.name],
            query.location(table),
            feature,
        )
        return None


def _set_member_location(feature_set: FeatureSetDef, feature: str) -> Location | None:
    """The position of ``feature`` in a feature set's source text, for errors."""
    base, text = feature_set.location, feature_set.source_text
    if base is None:
        return None
    if text:
        tree = statement_tree(text)
        if tree is not None:
            for token in FSQL().tokenize(text)[3:]:
                name = token.text if token.token_type.name == "IDENTIFIER" else token.text.lower()
                if name == feature:
                    line_offset = text.count("\n", 0, token.start)
                    col = (
                        base.col + token.start
                        if line_offset == 0
                        else token.start - text.rfind("\n", 0, token.start)
                    )
                    return Location(base.file, base.line + line_offset, col, token.text)
    return Location(base.file, base.line, base.col, feature)


def _check_feature_location(check: CheckDef) -> Location | None:
    """The position of the feature a ``CREATE CHECK`` names (after ON), for errors."""
    base, text = check.location, check.source_text
    if base is None:
        return None
    tree = statement_tree(text) if text else None
    span = tree.meta.get("spans", {}).get("ON") if tree is not None else None
    if span is None or text is None:
        return Location(base.file, base.line, base.col, check.feature)
    start, end = span
    line_offset = text.count("\n", 0, start)
    col = base.col + start if line_offset == 0 else start - text.rfind("\n", 0, start)
    return Location(base.file, base.line + line_offset, col, text[start : end + 1])


def _strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph`` (node → successors), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in graph:
                continue
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(components)


def _cycle_path(component: list[str], graph: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle through every... at least through the first member: a → b → ... → a."""
    members = set(component)
    start = component[0]
    path = [start]
    seen = {start}
    node = start
    while True:
        successors = [s for s in sorted(graph.get(node, ())) if s in members]
        next_node = next((s for s in successors if s not in seen), None)
        if next_node is None:
            back = start if start in successors else successors[0]
            path.append(back)
            return path
        path.append(next_node)
        seen.add(next_node)
        node = next_node
