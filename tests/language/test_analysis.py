"""Semantic analysis: resolution, types, lineage, order, and one test per rejected input.

Each bad-input test asserts the message, the file, and the line/column of the offending text;
expected positions are found by searching the test's own text (see ``position``), not copied
from fsql's output.
"""

from __future__ import annotations

import pytest

from fsql.errors import DefinitionError, Problem
from fsql.language.analysis import Analysis, LineageEdge, analyze, type_widens
from fsql.language.definitions import Aggregate, DropDef
from fsql.language.parser import parse
from fsql.language.project import desired_state

BASE = """\
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE ENTITY item KEY (item_id BIGINT);
CREATE ENTITY user_item KEY (user_id VARCHAR, item_id BIGINT);
CREATE SOURCE purchases (user_id VARCHAR, buyer VARCHAR, item_id BIGINT, qty INTEGER,
                         amount DOUBLE, price DECIMAL(10,2), country VARCHAR, ts TIMESTAMP)
  FROM 'data/purchases' EVENT TIME ts;
CREATE FEATURE user_sum ENTITY user AS SELECT user_id, SUM(amount) FROM purchases;
CREATE FEATURE user_count ENTITY user AS SELECT user_id, COUNT(*) FROM purchases;
CREATE FEATURE item_count ENTITY item AS SELECT item_id, COUNT(*) FROM purchases;
"""


def position(text: str, needle: str, occurrence: int = 1, after: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the ``occurrence``-th ``needle`` in ``text[after:]``."""
    start = after - 1
    for _ in range(occurrence):
        start = text.index(needle, start + 1)
    line = text.count("\n", 0, start) + 1
    return line, start - (text.rfind("\n", 0, start) + 1) + 1


def run(extra: str, file: str = "repo.sql") -> Analysis:
    definitions, drops = desired_state(parse(BASE + extra, file))
    return analyze(definitions, drops=drops)


def problems(extra: str, file: str = "repo.sql") -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        run(extra, file)
    return caught.value.problems


def single(extra: str, needle: str, occurrence: int = 1) -> Problem:
    """The one problem of BASE + extra, which must be located at ``needle``."""
    (problem,) = problems(extra)
    assert problem.location is not None
    line, col = position(BASE + extra, needle, occurrence, after=len(BASE))
    assert (problem.location.file, problem.location.line, problem.location.col) == (
        "repo.sql",
        line,
        col,
    ), problem
    highlight = problem.location.highlight
    assert highlight and (needle.startswith(highlight) or highlight[:3] == needle[:3]), highlight
    return problem


# -- resolution ------------------------------------------------------------------------------


def test_aggregate_feature_is_resolved_with_placeholders_and_filter():
    analysis = run(
        "CREATE FEATURE f ENTITY user WINDOW '7 days' AS "
        "SELECT buyer AS user_id, SUM(amount) / NULLIF(COUNT(*), 0) * 100 "
        "FROM purchases p WHERE p.amount > 0;"
    )
    feature = analysis.features["f"]
    assert feature.kind == "aggregate"
    assert feature.key_exprs == ("buyer",)
    assert feature.aggregates == (Aggregate("sum", "amount"), Aggregate("count", None))
    assert feature.value_expr == "__agg0 / NULLIF(__agg1, 0) * 100"
    assert feature.filter == "amount > 0"
    assert feature.value_type == "DOUBLE"
    assert feature.columns == ("amount", "buyer")
    assert feature.source is not None and feature.source.name == "purchases"


def test_filter_clause_and_count_distinct_become_plain_aggregates():
    analysis = run(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, "
        "COUNT(*) FILTER (WHERE amount > 10) + COUNT(DISTINCT item_id) FROM purchases;"
    )
    assert analysis.features["f"].aggregates == (
        Aggregate("count", "CASE WHEN amount > 10 THEN 1 END"),
        Aggregate("count_distinct", "item_id"),
    )
    assert analysis.features["f"].value_expr == "__agg0 + __agg1"


def test_repeated_aggregate_is_computed_once():
    analysis = run(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, SUM(qty) * SUM(qty) FROM purchases;"
    )
    assert analysis.features["f"].aggregates == (Aggregate("sum", "qty"),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("SUM(qty)", "BIGINT"),  # SUM(integer) → BIGINT
        ("SUM(item_id)", "BIGINT"),
        ("SUM(amount)", "DOUBLE"),  # SUM(float) → DOUBLE
        ("SUM(price)", "DECIMAL(38,2)"),
        ("COUNT(amount)", "BIGINT"),
        ("COUNT(DISTINCT country)", "BIGINT"),
        ("AVG(qty)", "DOUBLE"),
        ("MIN(country)", "VARCHAR"),  # MIN/MAX → argument type
        ("MAX(ts)", "TIMESTAMP"),
        ("MAX(qty)", "INTEGER"),
        ("SUM(qty) * 100", "BIGINT"),
        ("SUM(amount) / COUNT(*)", "DOUBLE"),
        ("COUNT(*) > 3", "BOOLEAN"),
    ],
)
def test_aggregate_types_are_inferred(value: str, expected: str):
    analysis = run(f"CREATE FEATURE f ENTITY user AS SELECT user_id, {value} FROM purchases;")
    assert analysis.features["f"].value_type == expected


def test_latest_feature_reads_source_columns():
    analysis = run(
        "CREATE FEATURE f ENTITY user TTL '30 days' AS "
        "SELECT user_id, UPPER(country) FROM purchases WHERE country IS NOT NULL;"
    )
    feature = analysis.features["f"]
    assert (feature.kind, feature.value_type, feature.value_expr) == (
        "latest",
        "VARCHAR",
        "UPPER(country)",
    )
    assert feature.aggregates == ()
    assert feature.filter == "NOT country IS NULL" or feature.filter == "country IS NOT NULL"


def test_derived_feature_types_come_from_its_inputs():
    analysis = run(
        "CREATE FEATURE avg_ ENTITY user AS SELECT user_id, user_sum / NULLIF(user_count, 0) "
        "FROM user;\nCREATE FEATURE ratio ENTITY user AS SELECT user_id, user_count * 2 FROM user;"
    )
    assert analysis.features["avg_"].kind == "derived"
    assert analysis.features["avg_"].inputs == ("user_count", "user_sum")
    assert analysis.features["avg_"].value_type == "DOUBLE"
    assert analysis.features["ratio"].value_type == "BIGINT"
    assert analysis.features["avg_"].source is None


def test_composite_keys_follow_the_entity_key_order():
    analysis = run(
        "CREATE FEATURE f ENTITY user_item AS SELECT item_id, user_id, SUM(qty) FROM purchases;"
    )
    assert analysis.features["f"].key_exprs == ("user_id", "item_id")


def test_declared_type_may_widen_the_inferred_one():
    analysis = run(
        "CREATE FEATURE f ENTITY user TYPE DOUBLE AS SELECT user_id, SUM(qty) FROM purchases;"
    )
    assert analysis.features["f"].value_type == "DOUBLE"


def test_explicit_group_by_keys_is_allowed():
    analysis = run(
        "CREATE FEATURE f ENTITY user AS SELECT buyer AS user_id, SUM(qty) FROM purchases GROUP BY buyer;"
    )
    assert analysis.features["f"].key_exprs == ("buyer",)


def test_type_widening_rules():
    assert type_widens("BIGINT", "DOUBLE") and type_widens("INTEGER", "BIGINT")
    assert type_widens("DATE", "TIMESTAMP") and type_widens("REAL", "DOUBLE")
    assert not type_widens("DOUBLE", "BIGINT")
    assert not type_widens("VARCHAR", "DOUBLE") and not type_widens("DOUBLE", "VARCHAR")


# -- lineage, dependencies, order --------------------------------------------------------------


DERIVED = (
    "CREATE FEATURE avg_ ENTITY user AS SELECT user_id, user_sum / NULLIF(user_count, 0) FROM user;\n"
    "CREATE FEATURE twice ENTITY user AS SELECT user_id, avg_ * 2 FROM user;\n"
    "CREATE FEATURE SET model (twice, user_sum);\n"
)


def test_lineage_edges_come_from_the_ast():
    edges = run(DERIVED).lineage()
    assert LineageEdge("feature", "user_sum", "source", "purchases", "amount") in edges
    assert LineageEdge("feature", "user_sum", "source", "purchases", "user_id") in edges
    assert LineageEdge("feature", "user_sum", "entity", "user", None) in edges
    assert LineageEdge("feature", "avg_", "feature", "user_sum", None) in edges
    assert LineageEdge("feature_set", "model", "feature", "twice", None) in edges
    assert not any(e.from_name == "user_count" and e.column == "amount" for e in edges)


def test_dependencies_and_dependents():
    analysis = run(DERIVED)
    assert analysis.dependencies("user_sum") == ("user", "purchases")
    assert analysis.dependencies("avg_") == ("user", "user_count", "user_sum")
    assert analysis.dependencies("model") == ("twice", "user_sum")
    assert analysis.dependents("user_sum") == ("avg_", "model")
    assert analysis.dependents("purchases") == ("item_count", "user_count", "user_sum")
    assert analysis.dependencies("purchases") == ()


def test_topological_order_puts_inputs_first_and_is_deterministic():
    analysis = run(DERIVED)
    order = analysis.topological_order(["twice"])
    assert order == ["user_count", "user_sum", "avg_", "twice"]
    everything = analysis.topological_order()
    assert sorted(everything) == sorted(analysis.features)
    for name in everything:
        for upstream in analysis.features[name].inputs:
            assert everything.index(upstream) < everything.index(name)
    assert analysis.topological_order() == run(DERIVED).topological_order()


def test_expand_feature_sets_keeps_order_and_deduplicates():
    analysis = run(DERIVED)
    assert analysis.expand(["user_count", "model", "user_sum"]) == [
        "user_count",
        "twice",
        "user_sum",
    ]
    with pytest.raises(
        DefinitionError, match="no feature or feature set named user_sun; did you mean user_sum"
    ):
        analysis.expand(["user_sun"])


# -- rejected input: one test per case -------------------------------------------------------


def test_unknown_entity_suggests_the_closest():
    problem = single(
        "CREATE FEATURE f ENTITY usr AS SELECT user_id, SUM(amount) FROM purchases;", "usr AS"
    )
    assert problem.message == "unknown entity usr; did you mean user?"


def test_unknown_source_suggests_the_closest():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, SUM(amount) FROM purchase;", "purchase;"
    )
    assert problem.message == "unknown source purchase; did you mean purchases?"


def test_unknown_column_suggests_the_closest():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, SUM(amout) FROM purchases;", "amout"
    )
    assert problem.message == "unknown column amout in source purchases; did you mean amount?"


def test_unknown_column_in_where():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, SUM(amount) FROM purchases\n"
        "  WHERE contry = 'DE';",
        "contry",
    )
    assert problem.message == "unknown column contry in source purchases; did you mean country?"


def test_unknown_feature_in_derived_feature():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, user_summ * 2 FROM user;", "user_summ"
    )
    assert (
        problem.message
        == "unknown column user_summ in entity user's features; did you mean user_sum?"
    )


def test_select_must_return_the_entity_key():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT buyer, SUM(amount) FROM purchases;", "buyer,"
    )
    assert problem.message == (
        "the SELECT of feature f does not return entity key user_id of entity user; select it "
        "first, e.g. SELECT user_id, <value> (or <column> AS user_id)"
    )


def test_select_must_return_every_key_of_a_composite_entity():
    problem = single(
        "CREATE FEATURE f ENTITY user_item AS SELECT user_id, SUM(qty) FROM purchases;",
        "user_id, SUM",
    )
    assert "does not return entity key item_id of entity user_item" in problem.message


def test_select_must_return_exactly_one_value():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, SUM(amount), COUNT(*) FROM purchases;",
        "COUNT(*)",
    )
    assert problem.message == (
        "feature f returns 2 values besides the entity key(s); a feature returns exactly one "
        "value: define one feature per value"
    )


def test_declared_type_contradicting_the_value_is_rejected():
    problem = single(
        "CREATE FEATURE f ENTITY user TYPE DOUBLE AS SELECT user_id, MAX(country) FROM purchases;",
        "DOUBLE AS",
    )
    assert problem.message == (
        "feature f declares TYPE DOUBLE but its value is VARCHAR; declare TYPE VARCHAR or CAST the value AS DOUBLE"
    )


def test_narrowing_declared_type_is_rejected():
    problem = single(
        "CREATE FEATURE f ENTITY user TYPE BIGINT AS SELECT user_id, SUM(amount) FROM purchases;",
        "BIGINT AS",
    )
    assert "declares TYPE BIGINT but its value is DOUBLE" in problem.message


def test_dependency_cycle_names_every_feature():
    text = (
        "CREATE FEATURE a ENTITY user AS SELECT user_id, b + 1 FROM user;\n"
        "CREATE FEATURE b ENTITY user AS SELECT user_id, c + user_sum FROM user;\n"
        "CREATE FEATURE c ENTITY user AS SELECT user_id, a * 2 FROM user;\n"
        "CREATE FEATURE ok ENTITY user AS SELECT user_id, user_sum + 1 FROM user;\n"
    )
    problem = single(text, "b + 1")  # where a reads b, the first read of the cycle
    assert problem.message == (
        "features a, b, c form a dependency cycle (a → b → c → a); a derived feature cannot "
        "read itself, directly or through others: remove one of these reads"
    )
    assert problem.code == "cycle"


def test_self_reference_is_a_cycle():
    problem = single(
        "CREATE FEATURE a ENTITY user AS SELECT user_id, a + user_sum FROM user;",
        "a + user_sum",
    )
    assert "features a form a dependency cycle (a → a)" in problem.message


def test_two_definitions_with_one_name_are_reported_at_both():
    found = problems(
        "CREATE FEATURE user_sum ENTITY user AS SELECT user_id, MAX(amount) FROM purchases;"
    )
    text = BASE
    first = position(text, "CREATE FEATURE user_sum")
    second = position(text + "CREATE FEATURE user_sum", "CREATE FEATURE user_sum", 2)
    assert [(p.location.line, p.location.col) for p in found] == [first, second]
    assert found[0].message.startswith(
        f"user_sum is defined twice (here and at repo.sql:{second[0]}:1)"
    )
    assert found[1].message.startswith(
        f"user_sum is defined twice (here and at repo.sql:{first[0]}:1)"
    )


def test_two_definitions_with_one_name_across_kinds():
    found = problems("CREATE SOURCE user_sum (a VARCHAR, ts DATE) FROM 'x' EVENT TIME ts;")
    assert len(found) == 2 and all("user_sum is defined twice" in p.message for p in found)


def test_derived_feature_reading_a_feature_of_another_entity():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, item_count + user_sum FROM user;",
        "item_count",
    )
    assert problem.message == (
        "unknown column item_count in entity user's features; item_count is a feature of "
        "entity item; a derived feature reads only features of its own entity user"
    )


def test_derived_feature_reading_from_another_entity():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, item_count FROM item;", "item;"
    )
    assert problem.message == (
        "feature f belongs to entity user but reads FROM item; a derived feature reads only "
        "features of its own entity: FROM user"
    )


def test_feature_set_naming_an_unknown_feature():
    problem = single("CREATE FEATURE SET s (user_sum,\n  user_cnt);", "user_cnt")
    assert problem.message == "unknown feature user_cnt; did you mean user_count?"


def test_feature_set_naming_a_source():
    problem = single("CREATE FEATURE SET s (purchases);", "purchases)")
    assert problem.message == "purchases is a source, not a feature; name a feature here"


def test_dropping_something_others_depend_on():
    problem = single("DROP SOURCE purchases;", "DROP SOURCE")
    assert problem.message == (
        "cannot drop purchases: feature item_count, feature user_count and feature user_sum "
        "still depend on it; drop or change them in the same change, or keep purchases"
    )


def test_dropping_a_feature_used_by_a_set():
    found = problems("CREATE FEATURE SET s (user_sum);\nDROP FEATURE user_sum;")
    assert [p.message for p in found] == [
        "cannot drop user_sum: feature set s still depends on it; drop or change it in the "
        "same change, or keep user_sum"
    ]


def test_drop_of_the_wrong_kind():
    with pytest.raises(DefinitionError) as caught:
        desired_state(parse(BASE + "DROP FEATURE purchases;", "repo.sql"))
    (problem,) = caught.value.problems
    assert problem.message == "purchases is a source, not a feature; write DROP SOURCE purchases"


def test_drop_then_redefine_is_allowed():
    analysis = run(
        "DROP FEATURE user_sum;\n"
        "CREATE FEATURE user_sum ENTITY user AS SELECT user_id, MAX(amount) FROM purchases;"
    )
    assert analysis.features["user_sum"].aggregates == (Aggregate("max", "amount"),)


@pytest.mark.parametrize(
    ("sql", "needle", "message"),
    [
        (
            "SELECT p.user_id, SUM(amount) FROM purchases p JOIN purchases q ON p.ts = q.ts",
            "JOIN",
            "JOIN is not supported in a feature",
        ),
        (
            "SELECT user_id, SUM(amount) FROM purchases HAVING SUM(amount) > 1",
            "SUM(amount) > 1",
            "HAVING is not supported in a feature",
        ),
        ("SELECT user_id, amount FROM purchases ORDER BY ts", "ts\n", "ORDER BY is not supported"),
        ("SELECT user_id, amount FROM purchases LIMIT 1", "1\n", "LIMIT is not supported"),
        (
            "SELECT user_id, SUM(amount) OVER (ORDER BY ts) FROM purchases",
            "SUM(amount) OVER",
            "window functions (OVER ...) are not supported",
        ),
        (
            "SELECT user_id, (SELECT MAX(amount) FROM purchases) FROM purchases",
            "(SELECT MAX",
            "subqueries are not supported in a feature",
        ),
        ("SELECT * FROM purchases", "*", "SELECT * is not supported in a feature"),
        (
            "SELECT user_id, COUNT(*) FILTER (WHERE ts > NOW() - INTERVAL '1 day') FROM purchases",
            "NOW()",
            "functions of the current time or random values are not supported",
        ),
        (
            "SELECT user_id, MAX(amount * RANDOM()) FROM purchases",
            "RANDOM()",
            "functions of the current time or random values are not supported",
        ),
        (
            "SELECT user_id, MAX(clock_timestamp()) FROM purchases",
            "clock_timestamp()",
            "functions of the current time or random values are not supported",
        ),
        (
            "SELECT user_id, SUM(amount) FROM purchases GROUP BY country",
            "country\n",
            "may only GROUP BY its entity key(s)",
        ),
        (
            "SELECT user_id, STDDEV(amount) FROM purchases",
            "STDDEV(amount)",
            "is not a supported aggregate in feature f; use SUM, COUNT, COUNT(DISTINCT ...), AVG, MIN or MAX",
        ),
        (
            "SELECT user_id, SUM(amount) + amount FROM purchases",
            "amount FROM",
            "column amount is used outside an aggregate in feature f",
        ),
        (
            "SELECT user_id, SUM(country) FROM purchases",
            "SUM(country)",
            "SUM needs a numeric argument, but it is VARCHAR",
        ),
        (
            "SELECT user_id, SUM(amount) FROM purchases UNION SELECT user_id, SUM(amount) FROM purchases",
            "user_id, SUM(amount) FROM purchases UNION",
            "must be a single SELECT",
        ),
    ],
)
def test_unsupported_query_shapes_say_what_to_do(sql: str, needle: str, message: str):
    extra = f"CREATE FEATURE f ENTITY user AS\n{sql}\n;"
    (problem,) = problems(extra)
    assert message in problem.message
    line, col = position(BASE + extra, needle, after=len(BASE))
    assert (problem.location.line, problem.location.col) == (line, col), problem


def test_window_on_a_latest_value_feature_is_rejected():
    problem = single(
        "CREATE FEATURE f ENTITY user WINDOW '7 days' AS SELECT user_id, country FROM purchases;",
        "'7 days'",
    )
    assert "has WINDOW '7 days' but no aggregate" in problem.message


def test_key_type_must_match_the_entity():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT qty AS user_id, SUM(amount) FROM purchases;", "qty"
    )
    assert problem.message == (
        "entity key user_id is VARCHAR in entity user but qty is INTEGER here; CAST(qty AS VARCHAR)"
    )


def test_several_errors_are_all_reported():
    found = problems(
        "CREATE FEATURE a ENTITY usr AS SELECT user_id, SUM(amount) FROM purchases;\n"
        "CREATE FEATURE b ENTITY user AS SELECT user_id, SUM(amout) FROM purchases;\n"
        "CREATE FEATURE c ENTITY user AS SELECT user_id, SUM(amount) FROM purchase;\n"
        "CREATE FEATURE SET s (a, b, zzz);\n"
    )
    messages = [p.message for p in found]
    assert any(m.startswith("unknown entity usr") for m in messages)
    assert any(m.startswith("unknown column amout") for m in messages)
    assert any(m.startswith("unknown source purchase") for m in messages)
    assert any(m.startswith("unknown feature zzz") for m in messages)


def test_definitions_without_source_text_are_located_at_their_statement():
    """Definitions read back from a registry may lack source text: problems still point at
    the statement (from its canonical SQL)."""
    (feature,) = parse(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, SUM(amout) FROM purchases;", "x.sql"
    )
    stripped = type(feature)(**{**feature.__dict__, "source_text": None})
    definitions, _ = desired_state(parse(BASE, "repo.sql"))
    with pytest.raises(DefinitionError) as caught:
        analyze([*definitions, stripped])
    (problem,) = caught.value.problems
    assert problem.location.file == "x.sql" and problem.location.line == 1
    assert problem.message.startswith("unknown column amout")


def test_drop_defs_are_accepted_by_analyze_without_matching_definitions():
    definitions, _ = desired_state(parse(BASE, "repo.sql"))
    analysis = analyze(definitions, drops=[DropDef(target_kind="feature", name="old")])
    assert "old" not in analysis.definitions


def test_definitions_built_in_python_are_checked_too():
    """The parser rejects a bad WINDOW in text; analyze re-checks definitions made in code."""
    from datetime import timedelta

    from fsql.language.definitions import FeatureDef

    definitions, _ = desired_state(parse(BASE, "repo.sql"))
    feature = FeatureDef(
        name="f",
        entity="user",
        query="SELECT user_id, SUM(amount) FROM purchases",
        window=timedelta(days=10),
        every=timedelta(days=7),
    )
    with pytest.raises(DefinitionError) as caught:
        analyze([*definitions, feature])
    (problem,) = caught.value.problems
    assert problem.code == "window-not-multiple"
    assert problem.message == (
        "WINDOW '10 days' of feature f is not a whole multiple of EVERY '7 days'; make it one"
    )


def test_feature_set_dependencies_are_sorted():
    """Stable for the registry's plans: sorted, not in the set's order (expand() keeps that)."""
    analysis = run("CREATE FEATURE SET s (user_sum, item_count, user_count);")
    assert analysis.dependencies("s") == ("item_count", "user_count", "user_sum")
    assert analysis.expand(["s"]) == ["user_sum", "item_count", "user_count"]


def test_reading_from_a_feature_says_how_to_read_features():
    problem = single(
        "CREATE FEATURE f ENTITY user AS SELECT user_id, user_sum * 2 FROM user_sum;", "user_sum;"
    )
    assert problem.message == (
        "FROM user_sum names a feature; a derived feature reads features as columns of its "
        "entity: SELECT user_id, <expression over user_sum> FROM user"
    )


def test_empty_and_comment_only_files_have_no_statements():
    assert parse("") == [] and parse("-- nothing here\n/* still nothing */\n") == []


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    '"../../../../elsewhere/escaped"',
    '"a/b"',
    '"x; DROP TABLE y"',
    '"1abc"',
    '"has space"',
    '"dot.ted"',
    "a" * 64,
])
def test_names_must_be_plain_identifiers(name: str) -> None:
    problem = single(
        f"CREATE FEATURE {name} ENTITY user AS SELECT user_id, COUNT(*) FROM purchases;\n", name
    )
    assert problem.code == "invalid-name"
    assert "[A-Za-z_][A-Za-z0-9_]*" in problem.message and "63" in problem.message


def test_every_kind_of_definition_has_its_name_checked() -> None:
    found = problems(
        'CREATE ENTITY "e/x" KEY (k VARCHAR);\n'
        "CREATE SOURCE \"s..\" (k VARCHAR, ts TIMESTAMP) FROM 'data/s' EVENT TIME ts;\n"
        'CREATE FEATURE SET "set-1" (user_sum);\n'
    )
    assert sorted((p.code, p.location.line if p.location else 0) for p in found) == [
        ("invalid-name", 10), ("invalid-name", 11), ("invalid-name", 12)]


def test_names_at_the_limit_are_accepted() -> None:
    name = "_a" + "b" * 61
    analysis = run(f"CREATE FEATURE {name} ENTITY user AS SELECT user_id, COUNT(*) FROM purchases;\n")
    assert name in analysis.features
