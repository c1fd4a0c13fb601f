"""Data checks in the language: ``CREATE CHECK`` / ``DROP CHECK`` and ``EXPECT (...)`` on
``CREATE FEATURE``: parsing, canonical SQL, errors with positions, lineage, the registry (both
backends), and a materialization whose declared check fails the run."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest

from fsql.compute.checks import evaluate_checks
from fsql.errors import DefinitionError
from fsql.language.analysis import analyze
from fsql.language.checks import Check, checks_from_definitions
from fsql.language.definitions import CheckDef, DropDef, FeatureDef
from fsql.language.parser import parse
from fsql.language.project import desired_state
from fsql.registry import Registry
from fsql.workspace import Workspace
from tests.registry.conftest import registry, registry_url  # noqa: F401 - fixtures

BASE = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE SOURCE purchases (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)
  FROM 'data/purchases' FORMAT PARQUET EVENT TIME ts;
CREATE FEATURE spend ENTITY user WINDOW '2 days'
  AS SELECT user_id, SUM(amount) FROM purchases;
CREATE FEATURE orders ENTITY user WINDOW '2 days'
  EXPECT (value >= 0, null_fraction < 0.01 WARN)
  AS SELECT user_id, COUNT(*) FROM purchases;
CREATE FEATURE avg_order ENTITY user
  AS SELECT user_id, spend / NULLIF(orders, 0) FROM user;
"""
CHECKS = """
CREATE CHECK spend_not_negative ON spend EXPECT (value >= 0);
CREATE CHECK few_null_spends ON spend EXPECT (null_fraction < 0.5) WARN
  DESCRIPTION 'most users spent something';
"""


def _problem(text: str, file: str = "checks.sql"):
    with pytest.raises(DefinitionError) as info:
        _analyze(text, file)
    (problem,) = info.value.problems
    return problem


def _analyze(text: str, file: str | None = None):
    definitions, drops = desired_state(parse(text, file))
    return analyze(definitions, drops=drops)


def _position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the ``occurrence``-th ``needle`` in ``text``."""
    start = -1
    for _ in range(occurrence):
        start = text.index(needle, start + 1)
    line = text.count("\n", 0, start) + 1
    return line, start - (text.rfind("\n", 0, start) + 1) + 1


# -- parsing -----------------------------------------------------------------------------------


def test_create_check_parses_with_defaults_severity_and_description() -> None:
    plain, warned, explicit = parse(
        "CREATE CHECK spend_not_negative ON spend EXPECT (value >= 0);\n"
        "create check Few_Nulls on SPEND expect (NULL_FRACTION < 0.01) warn "
        "description 'at most 1% missing';\n"
        'CREATE CHECK "Big" ON "Spend" EXPECT (rows > 0 AND max < 1e6) ERROR;'
    )
    assert plain == CheckDef(
        name="spend_not_negative", feature="spend", expression="value >= 0", severity="error"
    )
    assert warned == CheckDef(
        name="few_nulls", feature="spend", expression="null_fraction < 0.01", severity="warn",
        description="at most 1% missing",
    )  # fmt: skip
    assert (explicit.name, explicit.feature, explicit.severity) == ("Big", "Spend", "error")
    assert explicit.expression == "rows > 0 AND max < 1e6"


def test_inline_expect_parses_in_written_order_among_the_options() -> None:
    (feature,) = parse(
        "CREATE FEATURE f ENTITY user EXPECT (value >= 0, null_fraction < 0.01 WARN, "
        "rows > 0 ERROR) WINDOW '2 days' AS SELECT user_id, SUM(amount) FROM purchases"
    )
    assert isinstance(feature, FeatureDef)
    assert feature.window == timedelta(days=2)
    assert feature.expect == (
        ("value >= 0", "error"), ("null_fraction < 0.01", "warn"), ("rows > 0", "error")
    )  # fmt: skip
    checks = checks_from_definitions([feature])
    assert [(c.name, c.feature, c.expression, c.severity) for c in checks] == [
        ("f_expect_1", "f", "value >= 0", "error"),
        ("f_expect_2", "f", "null_fraction < 0.01", "warn"),
        ("f_expect_3", "f", "rows > 0", "error"),
    ]


def test_drop_check() -> None:
    assert parse("DROP CHECK c; DROP CHECK IF EXISTS d") == [
        DropDef(target_kind="check", name="c"),
        DropDef(target_kind="check", name="d", if_exists=True),
    ]


def test_canonical_sql_parses_back_to_the_same_definition() -> None:
    statements = parse(BASE + CHECKS + "CREATE CHECK \"Odd Name\" ON orders EXPECT "
                       "(mean BETWEEN 0 AND 10 OR distinct_count IS NULL);")  # fmt: skip
    for statement in statements:
        (again,) = parse(statement.canonical_sql())
        assert again == statement, statement.canonical_sql()
        assert again.fingerprint == statement.fingerprint


def test_features_without_expect_keep_their_canonical_sql_and_fingerprint() -> None:
    text = "CREATE FEATURE f ENTITY user AS SELECT user_id, SUM(amount) FROM purchases"
    (plain,) = parse(text)
    expected = (
        "CREATE FEATURE f ENTITY user EVERY '1 day' ONLINE TRUE AS "
        "SELECT user_id, SUM(amount) FROM purchases"
    )
    assert plain.canonical_sql() == expected
    assert plain.fingerprint == hashlib.sha256(expected.encode()).hexdigest()[:16]
    (checked,) = parse(text.replace(" AS ", " EXPECT (value >= 0) AS "))
    assert checked.fingerprint != plain.fingerprint
    assert "EXPECT (value >= 0) AS" in checked.canonical_sql()


def test_checks_from_parsed_definitions_evaluate() -> None:
    checks = checks_from_definitions(parse(BASE + CHECKS))
    assert [c.name for c in checks] == [
        "orders_expect_1", "orders_expect_2", "spend_not_negative", "few_null_spends"
    ]  # fmt: skip
    spend = [c for c in checks if c.feature == "spend"]
    results = evaluate_checks(spend, [5.0, -1.0, None, None])
    assert [(r.check.name, r.passed, r.failed_run) for r in results] == [
        ("spend_not_negative", False, True),  # -1.0 is negative
        ("few_null_spends", False, False),  # half the values are NULL: warn only
    ]


# -- errors ------------------------------------------------------------------------------------


def test_an_unknown_feature_is_reported_where_it_is_named() -> None:
    text = BASE + "CREATE CHECK c ON\n  spnd EXPECT (value >= 0);\n"
    problem = _problem(text)
    assert (problem.location.file, problem.location.line, problem.location.col) == (
        "checks.sql", *_position(text, "spnd")
    )  # fmt: skip
    assert problem.location.highlight == "spnd"
    assert "unknown feature spnd" in problem.message and "did you mean spend?" in problem.message


def test_a_check_on_an_entity_is_reported() -> None:
    text = BASE + "CREATE CHECK c ON user EXPECT (rows > 0);"
    problem = _problem(text)
    assert "user is a entity, not a feature" in problem.message
    assert (problem.location.line, problem.location.col) == _position(text, "user EXPECT")


@pytest.mark.parametrize(
    ("text", "needle", "words"),
    [
        ("CREATE CHECK c ON spend EXPECT (value >= 0 AND\n  nul_fraction < 0.1);",
         "nul_fraction", ["check c reads nul_fraction", "did you mean null_fraction?",
                          "value (each written value) or the run statistics rows, "
                          "null_fraction, min, max, mean, distinct_count"]),
        ("CREATE FEATURE f ENTITY user EXPECT (value > 0, amount < 5 WARN)\n"
         "  AS SELECT user_id, SUM(amount) FROM purchases;",
         "amount", ["check f_expect_2 reads amount"]),
        ("CREATE CHECK c ON spend EXPECT (value >= 0 AND rows > 10);", "value",
         ["check c mixes value with run statistics (rows)", "split it"]),
        ("CREATE CHECK c ON spend EXPECT (value >= 0) FATAL;", "FATAL",
         ["'FATAL' is not a severity", "WARN", "ERROR"]),
        ("CREATE FEATURE f ENTITY user EXPECT (value > 0 INFO)\n"
         "  AS SELECT user_id, SUM(amount) FROM purchases;", "INFO",
         ["'INFO' is not a severity in CREATE FEATURE f"]),
        ("CREATE CHECK c ON spend EXPECT (value >= 0) WARN ERROR;", "ERROR",
         ["a severity is given twice"]),
        ("CREATE CHECK c ON spend (value >= 0);", "(", ["needs EXPECT (expression)"]),
        ("CREATE CHECK c EXPECT (value >= 0);", "EXPECT", ["needs ON <feature>"]),
    ],
)  # fmt: skip
def test_bad_checks_are_reported_at_the_offending_text(text, needle, words) -> None:
    with pytest.raises(DefinitionError) as info:
        parse(text, "checks.sql")
    (problem,) = info.value.problems
    for word in words:
        assert word in problem.message
    assert problem.location.file == "checks.sql"
    assert (problem.location.line, problem.location.col) == _position(text, needle)


def test_a_checked_feature_cannot_be_dropped_alone() -> None:
    text = BASE + CHECKS + "DROP FEATURE spend;"
    problem = _problem(text.replace("avg_order ENTITY user\n  AS SELECT user_id, spend /",
                                    "avg_order ENTITY user\n  AS SELECT user_id, 1.0 /"))  # fmt: skip
    assert problem.code == "dropped-dependency"
    assert "cannot drop spend: check spend_not_negative and check few_null_spends" in (
        problem.message
    )
    assert (problem.location.line, problem.location.col) == _position(text, "DROP FEATURE")


def test_a_check_is_lineage_of_its_feature_and_can_be_dropped() -> None:
    analysis = _analyze(BASE + CHECKS)
    assert analysis.dependencies("spend_not_negative") == ("spend",)
    assert analysis.dependents("spend") == ("avg_order", "few_null_spends", "spend_not_negative")
    after = _analyze(BASE + CHECKS + "DROP CHECK few_null_spends;")
    assert "few_null_spends" not in after.definitions


def test_a_check_may_not_take_an_inline_checks_name() -> None:
    problem = _problem(BASE + "CREATE CHECK orders_expect_2 ON orders EXPECT (rows > 0);")
    assert "inline check of feature orders" in problem.message


def test_definitions_built_in_python_are_validated_too() -> None:
    bad = CheckDef(name="c", feature="spend", expression="amount > 0")
    with pytest.raises(DefinitionError, match="check c on spend reads amount"):
        analyze([*parse(BASE), bad])


# -- registry (SQLite and PostgreSQL) ------------------------------------------------------------


def _apply(reg: Registry, text: str) -> list[tuple]:
    definitions, drops = desired_state(parse(text))
    analysis = analyze(definitions, drops=drops)
    plan = reg.plan(analysis, drops)
    reg.apply(plan, analysis, actor="tester")
    return [(c.action, c.kind, c.name, c.new_version, c.reason) for c in plan.changes]


def test_checks_version_and_round_trip_in_the_registry(registry: Registry) -> None:  # noqa: F811
    _apply(registry, BASE + CHECKS)
    current = registry.current()
    expected = {d.name: d for d in parse(BASE + CHECKS)}
    for name in ("spend_not_negative", "few_null_spends", "orders"):
        assert current[name].definition == expected[name]
        assert current[name].kind == expected[name].kind
    assert current["spend_not_negative"].dependencies[0][0] == "spend"
    checks = checks_from_definitions(r.definition for r in current.values())
    assert sorted(c.name for c in checks) == [
        "few_null_spends", "orders_expect_1", "orders_expect_2", "spend_not_negative"
    ]  # fmt: skip

    changed = CHECKS.replace("value >= 0", "value > 0").replace(
        "EXPECT (value >= 0, null_fraction < 0.01 WARN)", "EXPECT (value >= 0)"
    )
    text = BASE.replace("EXPECT (value >= 0, null_fraction < 0.01 WARN)", "EXPECT (value >= 0)")
    changes = _apply(registry, text + changed)
    # an inline check change is a new version of its feature, but not of what reads the feature
    assert changes == [
        ("change", "feature", "orders", 2, "checks changed"),
        ("change", "check", "spend_not_negative", 2, "definition changed"),
    ]
    assert registry.current()["orders"].definition.expect == (("value >= 0", "error"),)

    changes = _apply(registry, text + changed + "DROP CHECK spend_not_negative;")
    assert changes == [("drop", "check", "spend_not_negative", None, "dropped")]
    assert "spend_not_negative" not in registry.current()
    assert registry.get("spend_not_negative", 2).definition.expression == "value > 0"


# -- runs -------------------------------------------------------------------------------------


def test_declared_checks_fail_or_warn_materialization_runs(tmp_path) -> None:
    from fsql.compute.jobs import materialize_and_record
    from fsql.compute.runs import RunLog
    from fsql.errors import CheckFailed
    from fsql.registry import open_registry
    from tests.pipelines._repo import DEFINITIONS, D, make_repo, reference

    definitions = (
        DEFINITIONS.replace(
            "CREATE FEATURE orders_2d ENTITY user WINDOW '2 days'",
            "CREATE FEATURE orders_2d ENTITY user WINDOW '2 days' EXPECT (rows > 1000 WARN)",
        )
        + "CREATE CHECK spend_is_huge ON spend_2d EXPECT (value >= 1000000);\n"
    )
    config = make_repo(tmp_path / "repo", definitions)
    start, end = D + timedelta(days=3), D + timedelta(days=4)
    with pytest.raises(CheckFailed, match="check spend_is_huge on spend_2d") as raised:
        materialize_and_record(Workspace(config), ["spend_2d", "orders_2d"], start, end)

    reg = open_registry(config)
    try:
        log = RunLog(reg)
        runs = {r.feature: r for r in log.runs()}
        spend = {c.name: c for c in log.check_results([runs["spend_2d"].id])}
        orders = {c.name: c for c in log.check_results([runs["orders_2d"].id])}
        # the refused interval is committed nowhere; the independent feature is
        assert reg.ledger_intervals("spend_2d", 1) == []
        assert reg.ledger_intervals("orders_2d", 1) == [(start, end)]
    finally:
        reg.close()
    assert "_quarantine/feature=spend_2d/version=1/" in (raised.value.quarantine or "")
    from fsql.stores.online import open_online_store
    from fsql.stores.online.base import FeatureRef

    online = open_online_store(config)
    try:  # nothing reached serving: the run stopped before the online push
        assert online.read("user", [FeatureRef("spend_2d")], ["u1"]) == [[None]]
    finally:
        online.close()
    assert runs["spend_2d"].status == "failed" and "CheckFailed" in (runs["spend_2d"].error or "")
    # every written (non-NULL) value of tick 01-04 is far below a million
    values = [reference("spend_2d", user, start) for user in ("u1", "u2", "u3")]
    below = sum(1 for v in values if v is not None and v < 1_000_000)
    assert below == 2
    failed = spend["spend_is_huge"]
    assert (failed.passed, failed.severity) == (False, "error")
    assert failed.observed["failing_rows"] == below
    assert runs["orders_2d"].status == "success"  # a failed WARN check is only recorded
    warned = orders["orders_2d_expect_1"]
    assert (warned.passed, warned.severity, warned.expression) == (False, "warn", "rows > 1000")


def test_two_refused_features_are_both_reported_and_recorded(tmp_path) -> None:
    """Independent features are computed side by side; each refusal is recorded as its own
    failed run, the error names both, and neither interval nor their reader is committed."""
    from fsql.compute.jobs import materialize_and_record
    from fsql.compute.runs import RunLog
    from fsql.errors import CheckFailed
    from fsql.registry import open_registry
    from tests.pipelines._repo import DEFINITIONS, D, make_repo

    config = make_repo(
        tmp_path / "repo",
        DEFINITIONS
        + "CREATE CHECK spend_is_huge ON spend_2d EXPECT (value >= 1000000);\n"
        + "CREATE CHECK many_orders ON orders_2d EXPECT (value >= 1000);\n",
    )
    start, end = D + timedelta(days=3), D + timedelta(days=4)
    with pytest.raises(CheckFailed) as raised:
        materialize_and_record(Workspace(config), ["avg_order_2d"], start, end)
    assert "check spend_is_huge on spend_2d" in str(raised.value)
    assert "check many_orders on orders_2d" in str(raised.value)
    kept = (raised.value.quarantine or "").split(", ")
    assert sorted(k.split("/_quarantine/")[1].split("/")[0] for k in kept) == [
        "feature=orders_2d", "feature=spend_2d"]  # fmt: skip
    reg = open_registry(config)
    try:
        runs = {r.feature: r for r in RunLog(reg).runs()}
        for name in ("spend_2d", "orders_2d", "avg_order_2d"):
            assert reg.ledger_intervals(name, 1) == [], name
    finally:
        reg.close()
    assert {name: r.status for name, r in runs.items()} == {
        "spend_2d": "failed", "orders_2d": "failed", "avg_order_2d": "failed"}  # fmt: skip
    assert "CheckFailed" in (runs["avg_order_2d"].error or "")  # its inputs were refused


def test_a_deployed_pipeline_pins_the_registry_checks(tmp_path) -> None:
    from fsql.errors import CheckFailed
    from fsql.pipelines.artifact import load_artifact
    from fsql.pipelines.manager import FeaturePipelineManager
    from fsql.pipelines.tasks import run_feature_interval
    from tests.pipelines._repo import DEFINITIONS, D, make_repo

    config = make_repo(
        tmp_path / "repo",
        DEFINITIONS + "CREATE CHECK spend_is_huge ON spend_2d EXPECT (value >= 1000000);\n",
    )
    deployment = FeaturePipelineManager(Workspace(config)).deploy_pipeline(
        dags_folder=str(tmp_path / "dags"), start=D, name="all"
    )
    plan = load_artifact(deployment.plan_file)
    assert plan.task("spend_2d").checks == (
        Check(name="spend_is_huge", feature="spend_2d", expression="value >= 1000000"),
    )
    with pytest.raises(CheckFailed, match="spend_is_huge"):
        run_feature_interval(plan, "spend_2d", D + timedelta(days=3), D + timedelta(days=4))


# -- CLI ----------------------------------------------------------------------------------------


def test_cli_plans_lists_and_describes_checks(tmp_path, monkeypatch) -> None:
    import shutil

    from tests.cli.conftest import EXAMPLE, as_json

    repo = tmp_path / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("data", ".fsql", "__pycache__"))
    (repo / "checks.sql").write_text(
        "CREATE CHECK sum_not_negative ON user_purchase_sum_30d EXPECT (value >= 0)\n"
        "  DESCRIPTION 'no refunds in the sum';\n"
        "CREATE CHECK mostly_known ON user_purchase_sum_30d EXPECT (null_fraction < 0.1) WARN;\n"
    )
    for var in ("FSQL_REPO", "FSQL_DEBUG", "FSQL_REGISTRY_URL", "FSQL_ENGINE"):
        monkeypatch.delenv(var, raising=False)
    from click.testing import CliRunner

    from fsql.cli import cli

    def run(*args: str):
        result = CliRunner().invoke(cli, ["--repo", str(repo), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    plan = as_json(run("plan", "--json"))
    added = [(c["kind"], c["name"]) for c in plan["changes"] if c["kind"] == "check"]
    assert sorted(added) == [("check", "mostly_known"), ("check", "sum_not_negative")]
    run("apply", "--yes")
    listed = as_json(run("ls", "--json", "--kind", "check"))["objects"]
    assert [(o["name"], o["feature"], o["expression"], o["severity"]) for o in listed] == [
        ("mostly_known", "user_purchase_sum_30d", "null_fraction < 0.1", "warn"),
        ("sum_not_negative", "user_purchase_sum_30d", "value >= 0", "error"),
    ]
    described = as_json(run("describe", "sum_not_negative", "--json"))
    assert described["kind"] == "check" and described["description"] == "no refunds in the sum"
    assert described["options"] == {
        "feature": "user_purchase_sum_30d", "expression": "value >= 0", "severity": "error"
    }  # fmt: skip
    assert [(d["kind"], d["name"]) for d in described["depends_on"]] == [
        ("feature", "user_purchase_sum_30d")
    ]
    text = run("describe", "user_purchase_sum_30d").stdout
    assert "check sum_not_negative v1" in text  # listed under "Used by"
