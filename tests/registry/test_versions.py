"""Plan and apply: versions, history, indirect versions, drops, atomicity (both backends)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from fsql.errors import DefinitionError, NotFoundError, RegistryError
from fsql.language.definitions import DropDef
from fsql.registry import Change, Plan, Registry, default_actor
from tests.registry._world import (
    BASE,
    BASE_REFORMATTED,
    definitions,
    desired,
    drops,
    replace_statement,
)


def apply_text(registry: Registry, text: str, **kwargs) -> list:
    state = desired(text)
    return registry.apply(registry.plan(state, **kwargs), state, actor="tester")


def summary(plan: Plan) -> list[tuple]:
    return [(c.action, c.name, c.old_version, c.new_version, c.reason) for c in plan.changes]


def test_first_apply_adds_everything_upstream_first(registry: Registry) -> None:
    assert registry.revision() == 0
    assert registry.current() == {}
    plan = registry.plan(desired(BASE))
    assert plan.base_revision == 0
    assert [(c.action, c.old_version, c.new_version, c.reason) for c in plan.changes] == [
        ("add", None, 1, "new")
    ] * 10
    order = [c.name for c in plan.changes]
    # entities, then sources, then features with inputs before the features reading them
    assert order[:4] == ["user", "user_item", "purchases", "users"]
    assert order.index("purchase_sum_30d") < order.index("avg_purchase_30d")
    assert order.index("purchase_count_30d") < order.index("avg_purchase_30d")
    assert order[-1] == "fraud_model_v1"
    records = registry.apply(plan, desired(BASE), actor="alice")
    assert [r.name for r in records] == order
    assert registry.revision() == 1
    current = registry.current()
    assert sorted(current) == sorted(definitions(BASE))
    for record in current.values():
        assert (record.version, record.change, record.created_by, record.retired) == (
            1,
            "added",
            "alice",
            False,
        )
        assert record.created_at.tzinfo is not None
        assert abs((datetime.now(UTC) - record.created_at).total_seconds()) < 3600


def test_every_definition_kind_round_trips_exactly(registry: Registry) -> None:
    apply_text(registry, BASE)
    originals = {s.name: s for s in desired(BASE).definitions.values()}
    assert {type(d).__name__ for d in originals.values()} == {
        "EntityDef",
        "SourceDef",
        "FeatureDef",
        "FeatureSetDef",
    }
    for name, original in originals.items():
        for record in (registry.get(name), registry.get(name, 1), registry.current()[name]):
            assert type(record.definition) is type(original)
            assert record.definition == original
            assert record.definition.location == original.location
            assert record.definition.source_text == original.source_text
            assert record.source_text == original.source_text
            assert (record.file, record.line) == ("defs.sql", original.location.line)
            assert record.kind == original.kind
            assert record.canonical_sql == original.canonical_sql()
    feature = registry.get("purchase_sum_30d").definition
    assert (feature.window.days, feature.ttl.days, feature.every.days, feature.type) == (
        30,
        2,
        1,
        "DOUBLE",
    )
    assert registry.get("user_item").definition.key_names == ("user_id", "item_id")
    assert registry.get("country").definition.online is False


def test_reformatted_repo_plans_nothing(registry: Registry) -> None:
    apply_text(registry, BASE)
    plan = registry.plan(desired(BASE_REFORMATTED, "other.sql"))
    assert plan.empty and plan.changes == () and plan.base_revision == 1
    assert registry.apply(plan, desired(BASE_REFORMATTED)) == []
    assert registry.revision() == 1
    assert {r.version for r in registry.current().values()} == {1}


def test_changed_definition_gets_a_new_version_and_dependents_indirect_ones(
    registry: Registry,
) -> None:
    apply_text(registry, BASE)
    changed = replace_statement(
        BASE, "purchase_sum_30d",
        "CREATE FEATURE purchase_sum_30d ENTITY user TYPE DOUBLE WINDOW '30 days' TTL '2 days' "
        "DESCRIPTION 'Sum of purchases over 30 days' "
        "AS SELECT user_id, SUM(amount) FROM purchases WHERE amount > 10",
    )  # fmt: skip
    plan = registry.plan(desired(changed))
    assert summary(plan) == [
        ("change", "purchase_sum_30d", 1, 2, "definition changed"),
        ("change", "avg_purchase_30d", 1, 2, "upstream purchase_sum_30d changed"),
        ("change", "fraud_model_v1", 1, 2,
         "upstream avg_purchase_30d, purchase_sum_30d changed"),
    ]  # fmt: skip
    assert [c.indirect for c in plan.changes] == [False, True, True]
    records = registry.apply(plan, desired(changed))
    assert [(r.name, r.version, r.change) for r in records] == [
        ("purchase_sum_30d", 2, "changed"),
        ("avg_purchase_30d", 2, "indirect"),
        ("fraud_model_v1", 2, "indirect"),
    ]
    assert [r.fingerprint for r in records] == [c.fingerprint for c in plan.changes]
    history = registry.history("purchase_sum_30d")
    assert [(r.version, r.retired) for r in history] == [(1, False), (2, False)]
    assert history[0].definition.query.endswith("amount > 0")
    assert history[1].definition.query.endswith("amount > 10")
    assert history[0].fingerprint != history[1].fingerprint
    # the derived feature's own text did not change, but its version pins the new input
    avg = registry.history("avg_purchase_30d")
    assert avg[0].definition == avg[1].definition
    assert dict(avg[0].dependencies)["purchase_sum_30d"] == 1
    assert dict(avg[1].dependencies)["purchase_sum_30d"] == 2
    assert registry.current()["purchase_sum_30d"].version == 2
    assert registry.current()["purchase_count_30d"].version == 1
    assert registry.get("purchase_sum_30d", 1).definition.query.endswith("amount > 0")
    assert registry.plan(desired(changed)).empty


def test_changed_source_versions_everything_downstream(registry: Registry) -> None:
    apply_text(registry, BASE)
    changed = BASE.replace("FROM 'data/purchases'", "FROM 's3://bucket/purchases'")
    moved = "location data/purchases → s3://bucket/purchases"
    plan = registry.plan(desired(changed))
    assert summary(plan) == [
        ("change", "purchases", 1, 2, "definition changed"),
        ("change", "item_spend", 1, 2, f"upstream purchases changed ({moved})"),
        ("change", "purchase_count_30d", 1, 2, f"upstream purchases changed ({moved})"),
        ("change", "purchase_sum_30d", 1, 2, f"upstream purchases changed ({moved})"),
        ("change", "avg_purchase_30d", 1, 2,
         "upstream purchase_count_30d, purchase_sum_30d changed"),
        ("change", "fraud_model_v1", 1, 2,
         "upstream avg_purchase_30d, purchase_sum_30d changed"),
    ]  # fmt: skip
    registry.apply(plan, desired(changed))
    assert registry.current()["country"].version == 1
    assert registry.current()["users"].version == 1


def test_a_source_change_versions_only_the_features_reading_what_changed(
    registry: Registry,
) -> None:
    apply_text(registry, BASE)
    # a new column nobody reads: a new version of the source, of nothing else
    widened = BASE.replace("item_id BIGINT,", "item_id BIGINT, channel VARCHAR,")
    plan = registry.plan(desired(widened))
    assert summary(plan) == [("change", "purchases", 1, 2, "definition changed")]
    registry.apply(plan, desired(widened))
    current = registry.current()
    assert {n: current[n].version for n in ("item_spend", "purchase_sum_30d")} == {
        "item_spend": 1, "purchase_sum_30d": 1}  # fmt: skip
    # retyping and then removing it: the same
    retyped = widened.replace("channel VARCHAR", "channel BIGINT")
    assert summary(registry.plan(desired(retyped))) == [
        ("change", "purchases", 2, 3, "definition changed")]  # fmt: skip
    assert summary(registry.plan(desired(BASE))) == [
        ("change", "purchases", 2, 3, "definition changed")]  # fmt: skip
    # retyping a column features read versions those features and what reads them
    retimed = widened.replace("amount DOUBLE", "amount BIGINT")
    assert summary(registry.plan(desired(retimed))) == [
        ("change", "purchases", 2, 3, "definition changed"),
        ("change", "item_spend", 1, 2, "upstream purchases changed (amount DOUBLE → BIGINT)"),
        ("change", "purchase_sum_30d", 1, 2,
         "upstream purchases changed (amount DOUBLE → BIGINT)"),
        ("change", "avg_purchase_30d", 1, 2, "upstream purchase_sum_30d changed"),
        ("change", "fraud_model_v1", 1, 2, "upstream avg_purchase_30d, purchase_sum_30d changed"),
    ]  # fmt: skip


def test_description_only_change_versions_only_that_definition(registry: Registry) -> None:
    apply_text(registry, BASE)
    changed = BASE.replace("'Card payments'", "'Card and wallet payments'").replace(
        "'Sum of purchases over 30 days'", "'Sum of positive purchases'"
    )
    plan = registry.plan(desired(changed))
    assert summary(plan) == [
        ("change", "purchases", 1, 2, "description changed"),
        ("change", "purchase_sum_30d", 1, 2, "description changed"),
    ]
    registry.apply(plan, desired(changed))
    assert registry.get("purchases").definition.description == "Card and wallet payments"
    assert registry.get("purchases", 1).definition.description == "Card payments"


def test_removed_definition_is_retired_and_can_be_recreated(registry: Registry) -> None:
    apply_text(registry, BASE)
    without = replace_statement(BASE, "country", "")
    plan = registry.plan(desired(without))
    assert summary(plan) == [("drop", "country", 1, None, "removed from repo")]
    assert plan.changes[0].fingerprint is None
    (record,) = registry.apply(plan, desired(without), actor="bob")
    assert (record.name, record.version, record.retired, record.change) == (
        "country",
        1,
        True,
        "dropped",
    )
    assert (record.created_change, record.retired_by, record.retired_reason) == (
        "added",
        "bob",
        "removed from repo",
    )
    assert record.retired_at is not None and record.retired_at >= record.created_at
    assert "country" not in registry.current()
    assert registry.get("country").retired
    assert [r.retired for r in registry.history("country")] == [True]
    assert registry.plan(desired(without)).empty

    plan = registry.plan(desired(BASE))
    assert summary(plan) == [("add", "country", None, 2, "re-created (v1 was dropped)")]
    registry.apply(plan, desired(BASE))
    assert [(r.version, r.retired, r.change) for r in registry.history("country")] == [
        (1, True, "dropped"), (2, False, "added"),
    ]  # fmt: skip
    assert registry.current()["country"].version == 2


def test_explicit_drop_retires_only_what_it_names(registry: Registry) -> None:
    apply_text(registry, BASE)
    nothing_new = desired("CREATE ENTITY user KEY (user_id VARCHAR) DESCRIPTION 'A customer';")
    plan = registry.plan(
        nothing_new, drops("DROP FEATURE SET fraud_model_v1; DROP FEATURE item_spend;"),
        declarative=False,
    )  # fmt: skip
    assert summary(plan) == [
        ("drop", "fraud_model_v1", 1, None, "dropped"),
        ("drop", "item_spend", 1, None, "dropped"),
    ]
    registry.apply(plan, nothing_new)
    assert sorted(registry.current()) == sorted(
        set(definitions(BASE)) - {"fraud_model_v1", "item_spend"}
    )


def test_non_declarative_plan_changes_only_what_is_given(registry: Registry) -> None:
    apply_text(registry, BASE)
    text = (
        "CREATE FEATURE purchase_max ENTITY user AS SELECT user_id, MAX(amount) FROM purchases;"
        "CREATE SOURCE users (user_id VARCHAR, country VARCHAR, ts TIMESTAMP)"
        "  FROM 'data/users_v2.csv' FORMAT CSV EVENT TIME ts;"
    )
    overlay = {**definitions(BASE), **definitions(text)}
    from tests.registry._world import analyze

    state = analyze(overlay.values())
    plan = registry.plan(state, declarative=False)
    assert summary(plan) == [
        ("change", "users", 1, 2, "definition changed"),
        ("change", "country", 1, 2,
         "upstream users changed (location data/users.csv → data/users_v2.csv)"),
        ("add", "purchase_max", None, 1, "new"),
    ]
    registry.apply(plan, state)
    assert len(registry.current()) == 11
    # a state holding only some definitions drops nothing when not declarative
    partial = desired("CREATE ENTITY user KEY (user_id VARCHAR) DESCRIPTION 'A customer';")
    assert registry.plan(partial, declarative=False).empty
    assert summary(registry.plan(partial))[-1] == (
        "drop",
        "user_item",
        1,
        None,
        "removed from repo",
    )


def test_dropping_what_others_depend_on_fails_and_changes_nothing(registry: Registry) -> None:
    apply_text(registry, BASE)
    before = (registry.revision(), registry.current())
    empty = desired("CREATE ENTITY user KEY (user_id VARCHAR) DESCRIPTION 'A customer';")
    with pytest.raises(DefinitionError) as info:
        registry.plan(empty, drops("DROP SOURCE purchases;"), declarative=False)
    (problem,) = info.value.problems
    assert problem.message == (
        "cannot drop source purchases: feature item_spend, feature purchase_count_30d, "
        "feature purchase_sum_30d still depend on it; drop or change them first"
    )
    assert (problem.location.file, problem.location.line) == ("drops.sql", 1)
    assert problem.code == "dropped-dependency"
    with pytest.raises(
        DefinitionError,
        match="cannot drop feature purchase_sum_30d: feature "
        "avg_purchase_30d, feature set fraud_model_v1 still depend on it",
    ):
        registry.plan(empty, drops("DROP FEATURE purchase_sum_30d;"), declarative=False)
    assert (registry.revision(), registry.current()) == before


def test_bad_drops_are_reported_together(registry: Registry) -> None:
    apply_text(registry, BASE)
    empty = desired("CREATE ENTITY user KEY (user_id VARCHAR) DESCRIPTION 'A customer';")
    text = "DROP FEATURE nope;\nDROP FEATURE purchases;\nDROP FEATURE IF EXISTS gone;"
    with pytest.raises(DefinitionError) as info:
        registry.plan(empty, drops(text), declarative=False)
    messages = [(p.code, p.location.line, p.message) for p in info.value.problems]
    assert messages == [
        ("unknown-drop", 1, "cannot drop feature nope: it is not in the registry "
         "(write DROP FEATURE IF EXISTS to ignore this)"),
        ("drop-kind", 2, "purchases is a source, not a feature; write DROP SOURCE purchases"),
    ]  # fmt: skip
    # Declaratively the repo is the whole truth: a DROP of something never applied changes
    # nothing, and a DROP followed by the same CREATE is superseded by it.
    assert registry.plan(desired(BASE), drops("DROP FEATURE nope;")).empty
    assert registry.plan(desired(BASE), drops("DROP FEATURE country;")).empty
    plan = registry.plan(
        desired(replace_statement(BASE, "country", "")), drops("DROP FEATURE country;")
    )
    assert summary(plan) == [("drop", "country", 1, None, "dropped")]


def test_stale_plan_is_refused(registry: Registry) -> None:
    apply_text(registry, BASE)
    one = replace_statement(BASE, "country", "")
    stale = registry.plan(desired(one))
    two = replace_statement(BASE, "item_spend", "")
    apply_text(registry, two)
    before = registry.current()
    with pytest.raises(RegistryError, match=r"registry changed since the plan was made "
                       r"\(revision 1 → 2\); run plan again"):  # fmt: skip
        registry.apply(stale, desired(one))
    assert registry.current() == before and registry.revision() == 2


def test_apply_with_other_definitions_than_planned_is_refused(registry: Registry) -> None:
    plan = registry.plan(desired(BASE))
    with pytest.raises(RegistryError, match="differ from the ones the plan was made from"):
        registry.apply(plan, desired(replace_statement(BASE, "country", "")))
    assert registry.revision() == 0 and registry.current() == {}


def test_failed_apply_leaves_the_registry_unchanged(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    apply_text(registry, BASE)
    before = (registry.revision(), registry.current(), registry.history("purchases"))
    changed = BASE.replace("FROM 'data/purchases'", "FROM 'data/purchases_v2'")
    plan = registry.plan(desired(changed))
    assert len(plan.changes) == 6
    real_insert = Registry._insert_version
    calls = []

    def failing_insert(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("disk on fire")
        return real_insert(self, *args, **kwargs)

    monkeypatch.setattr(Registry, "_insert_version", failing_insert)
    with pytest.raises(RuntimeError, match="disk on fire"):
        registry.apply(plan, desired(changed))
    assert len(calls) == 4  # three versions were written inside the transaction, then rolled back
    assert (registry.revision(), registry.current(), registry.history("purchases")) == before
    monkeypatch.undo()
    # the registry is not wedged: the same plan applies now
    assert len(registry.apply(plan, desired(changed))) == 6
    assert registry.revision() == 2


def test_get_and_history_say_what_exists(registry: Registry) -> None:
    apply_text(registry, BASE)
    with pytest.raises(NotFoundError) as info:
        registry.get("purchase_sum")
    assert str(info.value) == (
        "nothing named purchase_sum in the registry; did you mean purchases, purchase_sum_30d "
        "or purchase_count_30d?"
    )
    with pytest.raises(NotFoundError, match="purchases has no version 7; it has v1"):
        registry.get("purchases", 7)
    with pytest.raises(NotFoundError, match="nothing named zzz in the registry; `fsql ls`"):
        registry.history("zzz")


def test_created_by_defaults_to_the_os_user(registry: Registry) -> None:
    state = desired(BASE)
    records = registry.apply(registry.plan(state), state)
    assert {r.created_by for r in records} == {default_actor()}
    assert default_actor()


def test_plan_json_is_stable(registry: Registry) -> None:
    apply_text(registry, BASE)
    changed = (
        replace_statement(
            replace_statement(BASE, "country", ""),
            "purchase_count_30d",
            "CREATE FEATURE purchase_count_30d ENTITY user WINDOW '7 days' "
            "AS SELECT user_id, COUNT(*) FROM purchases",
        )
        + "CREATE FEATURE purchase_min ENTITY user AS SELECT user_id, MIN(amount) FROM purchases;"
    )
    plan = registry.plan(desired(changed))
    data = plan.to_json()
    assert list(data) == ["base_revision", "empty", "summary", "changes", "kept_foreign"]
    assert (data["base_revision"], data["empty"], data["summary"]) == (
        1,
        False,
        {"add": 1, "change": 3, "drop": 1},
    )
    first = data["changes"][0]
    assert list(first) == [
        "action", "kind", "name", "old_version", "new_version", "fingerprint", "reason", "indirect",
    ]  # fmt: skip
    assert [(c["action"], c["kind"], c["name"], c["old_version"], c["new_version"], c["indirect"])
            for c in data["changes"]] == [
        ("change", "feature", "purchase_count_30d", 1, 2, False),
        ("add", "feature", "purchase_min", None, 1, False),
        ("change", "feature", "avg_purchase_30d", 1, 2, True),
        ("change", "feature_set", "fraud_model_v1", 1, 2, True),
        ("drop", "feature", "country", 1, None, False),
    ]  # fmt: skip
    assert all(len(c["fingerprint"]) == 16 for c in data["changes"][:4])
    assert Plan.from_json(data).changes == plan.changes
    assert Plan(base_revision=3, changes=()).to_json() == {
        "base_revision": 3, "empty": True, "summary": {"add": 0, "change": 0, "drop": 0},
        "changes": [], "kept_foreign": [],
    }  # fmt: skip


def test_effective_fingerprint_of_a_leaf_is_its_own(registry: Registry) -> None:
    records = apply_text(registry, BASE)
    by_name = {r.name: r for r in records}
    assert by_name["user"].fingerprint == by_name["user"].definition.fingerprint
    assert by_name["purchase_sum_30d"].fingerprint != (
        by_name["purchase_sum_30d"].definition.fingerprint
    )
    assert dict(by_name["purchase_sum_30d"].dependencies) == {"purchases": 1, "user": 1}


def test_kind_change_keeps_the_version_sequence(registry: Registry) -> None:
    apply_text(registry, BASE)
    changed = replace_statement(BASE, "users", "CREATE ENTITY users KEY (user_id VARCHAR)")
    changed = replace_statement(changed, "country", "")
    plan = registry.plan(desired(changed))
    assert summary(plan)[0] == ("change", "users", 1, 2, "kind changed from source to entity")
    registry.apply(plan, desired(changed))
    assert [r.kind for r in registry.history("users")] == ["source", "entity"]


def test_change_is_a_frozen_value() -> None:
    change = Change("add", "feature", "f", None, 1, "ab", "new")
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.name = "g"  # type: ignore[misc]
    assert DropDef(target_kind="feature", name="f").canonical_sql() == "DROP FEATURE f"
