"""The example repo sql_features/ applies, round-trips and re-plans empty on both backends."""

from __future__ import annotations

from pathlib import Path

from fsql.language.project import load_project
from fsql.registry import Registry

REPO = Path(__file__).resolve().parents[2] / "sql_features"


def test_example_repo_round_trips(registry: Registry) -> None:
    state = load_project(REPO)
    plan = registry.plan(state)
    assert plan.changes and {c.action for c in plan.changes} == {"add"}
    assert len(plan.changes) == len(state.definitions)
    records = {r.name: r for r in registry.apply(plan, state)}
    for name, definition in state.definitions.items():
        stored = registry.get(name)
        assert stored.definition == definition
        assert stored.definition.location == definition.location
        assert stored.source_text == definition.source_text
        assert stored == records[name]
        assert dict(stored.dependencies) == {d: 1 for d in state.dependencies(name)}
    assert set(registry.lineage()) == set(state.lineage())
    assert registry.analysis().topological_order() == state.topological_order()
    assert registry.plan(load_project(REPO)).empty
