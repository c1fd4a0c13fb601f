"""Dependency cycles among derived features, and the order features are resolved in.

A derived feature (FROM its entity) reads other features of that entity as columns; those reads
must form no cycle (:func:`check_cycles` reports each cycle once, naming every feature in it),
and each feature is resolved after the features it reads (:func:`resolution_order`), so a
derived feature's type follows from theirs.
"""

from __future__ import annotations

import typing as t
from collections.abc import Mapping, Sequence

from sqlglot import exp

from fsql.language.analysis.query import FeatureQuery
from fsql.language.analysis.state import AnalysisState
from fsql.language.definitions import EntityDef, FeatureDef

__all__ = ["check_cycles", "derived_inputs", "resolution_order"]


def derived_inputs(state: AnalysisState, query: FeatureQuery) -> list[str] | None:
    """For a derived feature (FROM its entity), the feature names its query reads."""
    select = query.query
    table = select.args.get("from_")
    table = table.this if isinstance(table, exp.From) else None
    if not isinstance(table, exp.Table) or not isinstance(state.by_name.get(table.name), EntityDef):
        return None
    entity = state.by_name[table.name]
    keys = set(t.cast(EntityDef, entity).key_names)
    names = [c.name for c in select.find_all(exp.Column) if c.name not in keys]
    return sorted({n for n in names if isinstance(state.by_name.get(n), FeatureDef)})


def check_cycles(
    state: AnalysisState, inputs: dict[str, list[str]], queries: dict[str, FeatureQuery]
) -> set[str]:
    """Report each cycle among derived features once, naming every feature in it."""
    in_cycle: set[str] = set()
    for component in _strongly_connected(inputs):
        if len(component) == 1 and component[0] not in inputs.get(component[0], []):
            continue
        cycle = _cycle_path(component, inputs)
        first = queries[cycle[0]]
        read = next((c for c in first.query.find_all(exp.Column) if c.name == cycle[1]), None)
        state.problem(
            f"features {', '.join(sorted(component))} form a dependency cycle "
            f"({' → '.join(cycle)}); a derived feature cannot read itself, directly or "
            "through others: remove one of these reads",
            first.location(read) if read is not None else first.feature.location,
            "cycle",
        )
        in_cycle.update(component)
    return in_cycle


def resolution_order(state: AnalysisState, inputs: dict[str, list[str]]) -> list[str]:
    """Feature names so that a derived feature comes after the features it reads."""
    features = sorted(n for n, d in state.by_name.items() if isinstance(d, FeatureDef))
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for upstream in inputs.get(name, []):
            if upstream in inputs or isinstance(state.by_name.get(upstream), FeatureDef):
                visit(upstream)
        order.append(name)

    for name in features:
        visit(name)
    return order


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
