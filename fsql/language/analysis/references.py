"""Reference resolution: every name a definition uses names the right kind of definition.

Names are unique across kinds (:func:`index_definitions`); a source's time columns are its own
(:func:`check_source`); a feature's ENTITY is an entity, its FROM a source or its own entity,
and every column it reads a column of that source or a key or feature of that entity
(:func:`resolve_feature`, which hands the query to :mod:`.shapes` once the names resolve); a
feature set's members and a check's feature are features. A name dropped in the same change is
reported at the DROP (:func:`report_drops`). Resolved references become lineage edges.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable, Mapping

from sqlglot import exp

from fsql.errors import DefinitionError, Location
from fsql.language.analysis.query import FeatureQuery
from fsql.language.analysis.shapes import (
    TIME_TYPES,
    check_cadence,
    check_shape,
    derived_feature,
    source_feature,
    split_select,
)
from fsql.language.analysis.state import AnalysisState
from fsql.language.checks import checks_from_definitions, validate_checks
from fsql.language.definitions import (
    AnyDefinition,
    CheckDef,
    EntityDef,
    FeatureDef,
    FeatureSetDef,
    LineageEdge,
    ResolvedFeature,
    SourceDef,
)
from fsql.language.dialect import FSQL
from fsql.language.grammar import closest_name
from fsql.language.parser import statement_tree

__all__ = [
    "check_checks",
    "check_set",
    "check_source",
    "index_definitions",
    "report_drops",
    "resolve_feature",
]


def index_definitions(state: AnalysisState) -> None:
    """``state.by_name``: the first definition of each name; a name defined twice is a
    problem at both places."""
    first: dict[str, AnyDefinition] = {}
    for definition in state.definitions:
        other = first.get(definition.name)
        if other is None:
            first[definition.name] = definition
            continue
        for this, that in ((other, definition), (definition, other)):
            state.problem(
                f"{definition.name} is defined twice (as {this.kind.replace('_', ' ')} here "
                f"and as {that.kind.replace('_', ' ')} at {that.location or 'another place'})"
                "; names are unique across entities, sources, features and feature sets, "
                "so rename or remove one",
                this.location,
                "duplicate",
            )
    state.by_name = first


def check_source(state: AnalysisState, source: SourceDef) -> None:
    """EVENT TIME / CREATED TIME name a time column the source declares."""
    for option, column_name in (
        ("EVENT TIME", source.event_time),
        ("CREATED TIME", source.created_time),
    ):
        if column_name is None:
            continue
        column = source.column(column_name)
        if column is None:
            state.problem(
                f"{option} names column {column_name}, which source {source.name} does not "
                "declare; name one of its TIMESTAMP columns",
                source.location,
                "unknown-column",
            )
        elif column.type not in TIME_TYPES:
            state.problem(
                f"{option} column {column_name} is {column.type}; it must be TIMESTAMP, "
                "TIMESTAMPTZ or DATE",
                source.location,
                "invalid-type",
            )


def resolve_feature(state: AnalysisState, query: FeatureQuery) -> None:
    """Resolve one feature into ``state.resolved``, or mark it failed (its problems
    recorded)."""
    feature = query.feature
    count = len(state.problems)
    resolved = _resolve(state, query)
    if resolved is not None and len(state.problems) == count:
        state.resolved[feature.name] = resolved
    else:
        state.failed.add(feature.name)


def _resolve(state: AnalysisState, query: FeatureQuery) -> ResolvedFeature | None:
    """The ENTITY and the FROM of a feature, then the feature by what FROM names."""
    feature = query.feature
    entity = state.by_name.get(feature.entity)
    if not isinstance(entity, EntityDef):
        state.unknown(
            feature.entity,
            "entity",
            state.names_of(EntityDef),
            query.location(option="ENTITY"),
            feature,
        )
        return None
    state.edges.append(LineageEdge("feature", feature.name, "entity", entity.name))
    if not check_cadence(state, query) or not check_shape(state, query):
        return None
    select = query.query
    assert isinstance(select, exp.Select)
    table = select.args["from_"].this
    target = state.by_name.get(table.name)
    if isinstance(target, SourceDef):
        return _resolve_source_feature(state, query, entity, target, table)
    if isinstance(target, EntityDef):
        if target.name != entity.name:
            state.problem(
                f"feature {feature.name} belongs to entity {entity.name} but reads FROM "
                f"{target.name}; a derived feature reads only features of its own entity: "
                f"FROM {entity.name}",
                query.location(table),
                "cross-entity",
            )
            return None
        return _resolve_derived(state, query, entity, table)
    if isinstance(target, FeatureDef):
        state.problem(
            f"FROM {table.name} names a feature; a derived feature reads features as "
            f"columns of its entity: SELECT {', '.join(entity.key_names)}, "
            f"<expression over {table.name}> FROM {entity.name}",
            query.location(table),
            "wrong-kind",
        )
        return None
    state.unknown(
        table.name,
        "source",
        state.names_of(SourceDef) + [entity.name],
        query.location(table),
        feature,
    )
    return None


def _resolve_source_feature(
    state: AnalysisState,
    query: FeatureQuery,
    entity: EntityDef,
    source: SourceDef,
    table: exp.Table,
) -> ResolvedFeature | None:
    """A feature FROM a source: every column it reads is the source's (lineage: the source and
    each column); then its shape (:func:`.shapes.source_feature`)."""
    feature = query.feature
    select = t.cast(exp.Select, query.query)
    schema = {c.name: c.type for c in source.columns}
    where = select.args.get("where")
    parts = split_select(state, query, entity)
    checked = [select] if parts is None else [*parts[0], parts[1]]
    if where is not None:
        checked.append(where)
    if not check_columns(state, query, checked, schema, table, f"source {source.name}"):
        return None
    if parts is None:
        return None
    columns = tuple(sorted({c.name for n in checked for c in n.find_all(exp.Column)}))
    state.edges.append(LineageEdge("feature", feature.name, "source", source.name))
    for column in columns:
        state.edges.append(LineageEdge("feature", feature.name, "source", source.name, column))
    return source_feature(state, query, entity, source, parts, columns)


def _resolve_derived(
    state: AnalysisState, query: FeatureQuery, entity: EntityDef, table: exp.Table
) -> ResolvedFeature | None:
    """A feature FROM its entity: every column it reads is a key or another feature of the
    entity; then its shape (:func:`.shapes.derived_feature`)."""
    feature = query.feature
    select = t.cast(exp.Select, query.query)
    own = {
        n: d
        for n, d in state.by_name.items()
        if isinstance(d, FeatureDef) and d.entity == entity.name and n != feature.name
    }
    columns = {k.name: k.type for k in entity.keys} | {n: "?" for n in own}

    def other_entity(name: str) -> str | None:
        other = state.by_name.get(name)
        if isinstance(other, FeatureDef) and other.entity != entity.name:
            return (
                f"{name} is a feature of entity {other.entity}; a derived feature reads "
                f"only features of its own entity {entity.name}"
            )
        return None

    parts = split_select(state, query, entity)
    checked = [select] if parts is None else [*parts[0], parts[1]]
    if not check_columns(
        state,
        query,
        checked,
        columns,
        table,
        f"entity {entity.name}'s features",
        other_entity,
        reads_features=True,
    ):
        return None
    if parts is None:
        return None
    return derived_feature(state, query, entity, parts, own)


def check_columns(
    state: AnalysisState,
    query: FeatureQuery,
    nodes: Iterable[exp.Expr],
    columns: Mapping[str, str],
    table: exp.Table,
    describe: str,
    extra_hint: t.Callable[[str], str | None] = lambda _: None,
    reads_features: bool = False,
) -> bool:
    """Every column must exist in ``columns``; qualifiers must name the FROM table.
    ``reads_features``: the columns are an entity's features (a derived feature)."""
    allowed_qualifiers = {table.name, table.alias_or_name}
    ok = True
    for node in nodes:
        for column in node.find_all(exp.Column):
            if column.table and column.table not in allowed_qualifiers:
                state.problem(
                    f"{column.sql(dialect=FSQL)} is qualified by {column.table}, which is not "
                    f"in FROM; write {column.name} or {table.alias_or_name}.{column.name}",
                    query.location(column),
                    "unknown-column",
                )
                ok = False
            elif column.name not in columns and column.name in state.drops:
                # reading a feature dropped in the same change: reported at the DROP
                state.unknown(column.name, "feature", (), None, query.feature)
                ok = False
            elif column.name not in columns and reads_features and column.name in state.removed:
                # reading a feature the repo no longer declares: say so, not "unknown column"
                state.unknown(column.name, "feature", (), query.location(column), query.feature)
                ok = False
            elif column.name not in columns:
                hint = (
                    extra_hint(column.name)
                    or closest_name(column.name, columns)
                    or (f"it has {', '.join(columns)}")
                )
                state.problem(
                    f"unknown column {column.name} in {describe}; {hint}",
                    query.location(column),
                    "unknown-column",
                )
                ok = False
    return ok


def check_set(state: AnalysisState, feature_set: FeatureSetDef) -> None:
    """Every member of a feature set is a feature (lineage: set → feature)."""
    for feature in feature_set.features:
        if isinstance(state.by_name.get(feature), FeatureDef):
            state.edges.append(LineageEdge("feature_set", feature_set.name, "feature", feature))
            continue
        state.unknown(
            feature,
            "feature",
            state.names_of(FeatureDef),
            _set_member_location(feature_set, feature),
            feature_set,
        )


def check_checks(state: AnalysisState) -> None:
    """Each ``CREATE CHECK`` names a feature (lineage check → feature, so dropping a
    checked feature is a dependency error); every check's expression reads only ``value``
    or the run statistics (the dialect already says so for parsed text; this covers
    definitions built otherwise); a check's name is not an inline check's name."""

    inline: dict[str, str] = {}
    for definition in state.by_name.values():
        if isinstance(definition, FeatureDef):
            for number in range(1, len(definition.expect) + 1):
                inline[f"{definition.name}_expect_{number}"] = definition.name
        if not isinstance(definition, CheckDef):
            continue
        if isinstance(state.by_name.get(definition.feature), FeatureDef):
            state.edges.append(LineageEdge("check", definition.name, "feature", definition.feature))
        else:
            state.unknown(
                definition.feature,
                "feature",
                state.names_of(FeatureDef),
                _check_feature_location(definition),
                definition,
            )
    for name, feature in inline.items():
        if isinstance(state.by_name.get(name), CheckDef):
            state.problem(
                f"check {name} has the name of an inline check of feature {feature} "
                f"(EXPECT checks are named <feature>_expect_<n>); rename the check",
                state.by_name[name].location,
                "duplicate",
            )
    try:
        validate_checks(checks_from_definitions(state.by_name.values()))
    except DefinitionError as error:
        state.problems.extend(error.problems)


def report_drops(state: AnalysisState) -> None:
    """One problem per DROP that removes something still in use, naming every user."""
    for name, users in state.dropped_users.items():
        named = [f"{u.kind.replace('_', ' ')} {u.name}" for u in users]
        listed = named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
        verb, them = ("depends", "it") if len(named) == 1 else ("depend", "them")
        state.problem(
            f"cannot drop {name}: {listed} still {verb} on it; drop or change {them} in "
            f"the same change, or keep {name}",
            state.drops[name].location,
            "dropped-dependency",
        )


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
