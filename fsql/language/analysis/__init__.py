"""Semantic analysis: resolve definitions against each other into :class:`ResolvedFeature`.

Given the desired set of definitions (after DROPs), :func:`analyze` checks every reference
(entities, sources, columns, features), classifies each feature (``aggregate``, ``latest`` or
``derived``), splits its SELECT into keys, aggregates, value expression and filter, infers its
type with sqlglot's ``annotate_types`` and checks it against ``TYPE``, extracts lineage from
the AST, and rejects dependency cycles. All problems are collected and raised together as one
:class:`DefinitionError`, each pointing at the offending text in its file when the definition
still carries its source text.

One module per topic, each a set of passes over one :class:`~.state.AnalysisState`:
:mod:`.references` (names, kinds, columns, lineage), :mod:`.shapes` (what a feature query may
look like, and its type), :mod:`.cycles` (cycles among derived features, resolution order);
:mod:`.query` locates a feature's query nodes in its file. :func:`analyze` runs the passes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from fsql.errors import DefinitionError
from fsql.language.analysis.cycles import check_cycles, derived_inputs, resolution_order
from fsql.language.analysis.names import check_names
from fsql.language.analysis.query import FeatureQuery
from fsql.language.analysis.references import (
    check_checks,
    check_set,
    check_source,
    index_definitions,
    report_drops,
    resolve_feature,
)
from fsql.language.analysis.shapes import TIME_TYPES, type_widens
from fsql.language.analysis.state import Analysis, AnalysisState, Removed
from fsql.language.definitions import (
    AnyDefinition,
    DropDef,
    FeatureDef,
    FeatureSetDef,
    LineageEdge,
    SourceDef,
)

__all__ = [
    "TIME_TYPES",
    "Analysis",
    "FeatureQuery",
    "LineageEdge",
    "Removed",
    "analyze",
    "type_widens",
]


def analyze(
    definitions: Iterable[AnyDefinition],
    *,
    drops: Sequence[DropDef] = (),
    removed: Mapping[str, Removed] | None = None,
) -> Analysis:
    """Resolve ``definitions`` (the desired state) into an :class:`Analysis`.

    ``drops`` (optional) are the DROP statements that produced this state: a reference to a
    dropped name is then reported at the DROP as "still needed by ...", which says more than
    "unknown name". ``removed`` (optional): definitions the registry has and the repo no
    longer declares; a reference to one says it was removed, and from where. Raises
    :class:`DefinitionError` with every problem found.
    """
    state = AnalysisState(list(definitions), {d.name: d for d in drops})
    state.removed = dict(removed or {})
    index_definitions(state)
    check_names(state)
    for definition in state.by_name.values():
        if isinstance(definition, SourceDef):
            check_source(state, definition)
    queries = {d.name: FeatureQuery(d) for d in state.by_name.values() if isinstance(d, FeatureDef)}
    inputs: dict[str, list[str]] = {}
    for name, query in queries.items():
        read = derived_inputs(state, query)
        if read is not None:
            inputs[name] = read
    cyclic = check_cycles(state, inputs, queries)
    for name in resolution_order(state, inputs):
        if name not in cyclic:
            resolve_feature(state, queries[name])
    for definition in state.by_name.values():
        if isinstance(definition, FeatureSetDef):
            check_set(state, definition)
    check_checks(state)
    report_drops(state)
    if state.problems:
        raise DefinitionError(state.problems)
    edges = sorted(
        set(state.edges),
        key=lambda e: (e.from_name, e.to_kind, e.to_name, e.column or ""),
    )
    features = {name: state.resolved[name] for name in sorted(state.resolved)}
    return Analysis(dict(sorted(state.by_name.items())), features, edges)
