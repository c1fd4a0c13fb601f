"""The parser (fsql.language.parser and its grammar): golden parse → canonical SQL files,
round trips, fingerprints, and one test per syntax-level rejection (message, file, line,
column). Expected positions are found by searching the test's own input text."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp

from fsql.errors import DefinitionError, Problem
from fsql.language.definitions import DropDef, EntityDef, FeatureDef, FeatureSetDef, SourceDef
from fsql.language.dialect import FSQL
from fsql.language.grammar import canonical_type
from fsql.language.parser import parse, parse_sql

FIXTURES = Path(__file__).parents[1] / "fixtures" / "parse"
GOLDEN = sorted(
    p.name.removesuffix(".sql") for p in FIXTURES.glob("*.sql") if ".canonical" not in p.name
)


def position(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    start = -1
    for _ in range(occurrence):
        start = text.index(needle, start + 1)
    return text.count("\n", 0, start) + 1, start - (text.rfind("\n", 0, start) + 1) + 1


def problems_of(text: str, file: str = "defs.sql") -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse(text, file)
    return caught.value.problems


def one_problem(text: str, needle: str, occurrence: int = 1) -> Problem:
    (problem,) = problems_of(text)
    assert problem.location is not None
    line, col = position(text, needle, occurrence)
    assert (problem.location.file, problem.location.line, problem.location.col) == (
        "defs.sql",
        line,
        col,
    ), problem
    assert problem.location.highlight and needle.startswith(problem.location.highlight[:3]), problem
    return problem


# -- golden files ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_canonical_rendering(name: str):
    source = (FIXTURES / f"{name}.sql").read_text()
    expected = (FIXTURES / f"{name}.canonical.sql").read_text()
    statements = parse(source, f"{name}.sql")
    assert "".join(s.canonical_sql() + ";\n" for s in statements) == expected


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_round_trip(name: str):
    """Parsing the canonical text gives equal dataclasses, and renders to itself."""
    original = parse((FIXTURES / f"{name}.sql").read_text())
    canonical = (FIXTURES / f"{name}.canonical.sql").read_text()
    reparsed = parse(canonical)
    assert reparsed == original
    assert [s.canonical_sql() for s in reparsed] == [s.canonical_sql() for s in original]


def test_golden_fixtures_exist():
    assert {"entities", "sources", "features", "sets_and_drops"} <= set(GOLDEN)


# -- the dataclasses ---------------------------------------------------------------------------


def test_statements_become_dataclasses_with_options():
    text = (FIXTURES / "features.sql").read_text()
    first, clicks, share, *_ = parse(text, "features.sql")
    assert isinstance(first, FeatureDef)
    assert (first.name, first.entity, first.type) == ("user_purchase_sum_30d", "user", "DOUBLE")
    assert (first.window, first.every, first.ttl, first.online) == (
        timedelta(days=30),
        timedelta(days=1),
        timedelta(days=2),
        True,
    )
    assert first.description == "Sum of purchases over 30 days"
    assert (clicks.window, clicks.every, clicks.ttl, clicks.online) == (
        timedelta(hours=12),
        timedelta(hours=1),
        timedelta(days=1),
        False,
    )
    assert share.window == timedelta(minutes=90) and share.type is None


def test_every_statement_kind():
    entity, source, feature_set, drop = parse(
        "CREATE ENTITY u KEY (a BIGINT, b VARCHAR);"
        "CREATE SOURCE s (a BIGINT, ts DATE) FROM 'x.csv' FORMAT CSV EVENT TIME ts;"
        "CREATE FEATURE SET fs (f1, f2);"
        "DROP FEATURE SET IF EXISTS old;"
    )
    assert isinstance(entity, EntityDef) and entity.key_names == ("a", "b")
    assert isinstance(source, SourceDef) and (source.format, source.path, source.event_time) == (
        "csv",
        "x.csv",
        "ts",
    )
    assert isinstance(feature_set, FeatureSetDef) and feature_set.features == ("f1", "f2")
    assert drop == DropDef(target_kind="feature_set", name="old", if_exists=True)


def test_locations_and_source_text():
    text = (
        "-- header\n\nCREATE ENTITY u KEY (a BIGINT);\n  CREATE FEATURE SET s (f);\nDROP FEATURE f;"
    )
    entity, feature_set, drop = parse(text, "dir/x.sql")
    assert (entity.location.file, entity.location.line, entity.location.col) == ("dir/x.sql", 3, 1)
    assert (feature_set.location.line, feature_set.location.col) == (4, 3)
    assert (drop.location.line, drop.location.col) == (5, 1)
    assert entity.source_text == "CREATE ENTITY u KEY (a BIGINT)"
    assert feature_set.source_text == "CREATE FEATURE SET s (f)"


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("TEXT", "VARCHAR"), ("STRING", "VARCHAR"), ("VARCHAR(10)", "VARCHAR"), ("CHAR(2)", "VARCHAR"),
        ("INT8", "BIGINT"), ("BIGINT", "BIGINT"), ("INT", "INTEGER"), ("INT4", "INTEGER"),
        ("SMALLINT", "SMALLINT"), ("FLOAT8", "DOUBLE"), ("DOUBLE PRECISION", "DOUBLE"),
        ("FLOAT", "DOUBLE"), ("REAL", "REAL"), ("FLOAT4", "REAL"), ("BOOL", "BOOLEAN"),
        ("NUMERIC(12, 3)", "DECIMAL(12,3)"), ("DECIMAL(5)", "DECIMAL(5,0)"), ("DATE", "DATE"),
        ("TIMESTAMP", "TIMESTAMP"), ("TIMESTAMPTZ", "TIMESTAMPTZ"),
        ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"), ("BYTEA", "BLOB"),
    ],
)  # fmt: skip
def test_column_types_are_canonical(written: str, canonical: str):
    (entity,) = parse(f"CREATE ENTITY e KEY (k {written});")
    assert entity.keys[0].type == canonical
    assert canonical_type(exp.DataType.build(written, dialect=FSQL)) == canonical


# -- fingerprints ------------------------------------------------------------------------------

ORIGINAL = """
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE FEATURE user_sum ENTITY user WINDOW '30 days' AS
  SELECT user_id, SUM(amount) FROM purchases WHERE amount > 0;
CREATE FEATURE SET s (user_sum);
"""

REFORMATTED = """
/* the same definitions, reformatted and re-commented */
create entity USER
   key (User_Id text);   -- TEXT is VARCHAR
create feature User_Sum
   window interval '720 hours'   -- 30 days
   entity user
as select
   user_id,
   sum(Amount)          -- the value
from Purchases
where AMOUNT > 0;
create feature set S (USER_SUM);
"""


def fingerprints(text: str) -> list[str]:
    return [d.fingerprint for d in parse(text)]


def test_reformatting_and_recommenting_keeps_fingerprints():
    assert fingerprints(REFORMATTED) == fingerprints(ORIGINAL)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("amount > 0", "amount >= 0"),
        ("SUM(amount)", "MAX(amount)"),
        ("'30 days'", "'7 days'"),
        ("FROM purchases", "FROM purchases2"),
        ("ENTITY user WINDOW", "ENTITY user TTL '1 day' WINDOW"),
        ("ENTITY user WINDOW", "ENTITY user ONLINE FALSE WINDOW"),
        ("ENTITY user WINDOW", "ENTITY user TYPE DOUBLE WINDOW"),
        ("ENTITY user WINDOW", "ENTITY user DESCRIPTION 'x' WINDOW"),
        ("SUM(amount)", 'SUM("Amount")'),
    ],
)
def test_any_change_in_meaning_changes_the_fingerprint(old: str, new: str):
    changed = ORIGINAL.replace(old, new)
    assert changed != ORIGINAL
    before, after = fingerprints(ORIGINAL)[1], fingerprints(changed)[1]
    assert before != after


# -- rejected input: one test per case ---------------------------------------------------------


def test_syntax_error_in_the_query():
    problem = one_problem("CREATE FEATURE f ENTITY u AS SELECT u, SUM(a FROM s;", "FROM")
    assert problem.message == "syntax error: expecting )"
    assert problem.code == "syntax"


def test_unknown_create_is_an_error_not_a_command():
    problem = one_problem("CREATE FEATUER f ENTITY u AS SELECT u, 1 FROM s;", "FEATUER")
    assert problem.message == (
        "CREATE FEATUER is not a statement fsql understands; did you mean FEATURE (CREATE FEATURE ...)?"
    )


def test_unknown_drop_is_an_error_not_a_command():
    problem = one_problem("DROP FEATURES f;", "FEATURES")
    assert problem.message == (
        "DROP FEATURES is not a statement fsql understands; did you mean FEATURE (DROP FEATURE ...)?"
    )


def test_non_definition_sql_is_rejected_in_definition_files():
    problem = one_problem("CREATE ENTITY u KEY (a BIGINT);\nSELECT 1;", "SELECT")
    assert problem.message.startswith(
        "SELECT 1 ... is not a definition; definition files hold only CREATE ENTITY"
    )
    problem = one_problem("CREATE TABLE t (a INT);", "CREATE")
    assert problem.message.startswith("CREATE TABLE ... is not a definition")


def test_unparseable_interval():
    problem = one_problem(
        "CREATE FEATURE f ENTITY u WINDOW '30 dayz' AS SELECT u, SUM(a) FROM s;", "'30 dayz'"
    )
    assert (
        problem.message
        == "WINDOW '30 dayz' is not a duration; write e.g. '30 days', '12 hours' or '90 minutes'"
    )


def test_source_lateness_is_an_interval_kept_in_the_canonical_sql():
    (source,) = parse(
        "CREATE SOURCE s (a BIGINT, ts TIMESTAMP) FROM 'x' EVENT TIME ts LATENESS '90 minutes';"
    )
    assert source.lateness == timedelta(minutes=90)
    assert source.canonical_sql().endswith("EVENT TIME ts LATENESS '90 minutes'")
    (again,) = parse(source.canonical_sql() + ";")
    assert again == source
    problem = one_problem(
        "CREATE SOURCE s (a BIGINT, ts TIMESTAMP) FROM 'x' EVENT TIME ts LATENESS 'soon';",
        "'soon'",
    )
    assert problem.message.startswith("LATENESS 'soon' is not a duration")


def test_unparseable_cadence():
    problem = one_problem(
        "CREATE FEATURE f ENTITY u EVERY '1 month' AS SELECT u, SUM(a) FROM s;", "'1 month'"
    )
    assert (
        problem.message
        == "EVERY '1 month' uses months or years, whose length varies; use days or weeks"
    )


def test_unparseable_ttl():
    problem = one_problem(
        "CREATE FEATURE f ENTITY u TTL 'soon' AS SELECT u, MAX(a) FROM s;", "'soon'"
    )
    assert problem.message.startswith("TTL 'soon' is not a duration")


def test_window_not_a_multiple_of_every():
    problem = one_problem(
        "CREATE FEATURE f ENTITY u\n  WINDOW '10 days'\n  EVERY '7 days'\nAS SELECT u, SUM(a) FROM s;",
        "'10 days'",
    )
    assert problem.message == (
        "WINDOW '10 days' is not a whole multiple of EVERY '7 days'; use a window that is "
        "(e.g. '7 days') or a finer EVERY"
    )


def test_window_after_the_select_is_not_swallowed():
    problem = one_problem(
        "CREATE FEATURE f ENTITY u AS SELECT u, SUM(a) FROM s WINDOW '30 days';", "WINDOW"
    )
    assert problem.message.startswith(
        "WINDOW with a duration is a CREATE FEATURE option and goes before AS"
    )


def test_option_after_the_select_is_not_a_table_alias():
    problem = one_problem(
        "CREATE FEATURE f ENTITY u AS SELECT u, SUM(a) FROM s TTL '1 day';", "TTL"
    )
    assert (
        problem.message
        == "TTL after the query is read as a table alias; put TTL ... before AS in CREATE FEATURE f"
    )


def test_feature_without_entity():
    problem = one_problem("CREATE FEATURE f AS SELECT u, SUM(a) FROM s;", "SELECT")
    assert (
        problem.message
        == "CREATE FEATURE f needs ENTITY <name> before AS: the entity whose keys it is computed for"
    )


def test_option_given_twice():
    problem = one_problem(
        "CREATE FEATURE f ENTITY u TTL '1 day' TTL '2 days' AS SELECT u, MAX(a) FROM s;", "TTL '2"
    )
    assert problem.message == "TTL is given twice in CREATE FEATURE f; keep one"


def test_unsupported_column_type():
    problem = one_problem("CREATE ENTITY u KEY (a JSON);", "JSON")
    assert problem.message.startswith(
        "type JSON is not supported in fsql; use one of VARCHAR, BIGINT"
    )


def test_decimal_needs_precision():
    problem = one_problem("CREATE SOURCE s (a NUMERIC, ts DATE) FROM 'x' EVENT TIME ts;", "NUMERIC")
    assert problem.message.endswith("give DECIMAL a precision and scale, e.g. DECIMAL(18, 2)")


def test_source_without_event_time():
    problem = one_problem("CREATE SOURCE s (a BIGINT, ts DATE) FROM 'x';", "s (")
    assert problem.message == "CREATE SOURCE s needs EVENT TIME <column>: when each row happened"


def test_event_time_naming_an_unknown_column():
    problem = one_problem(
        "CREATE SOURCE s (a BIGINT, ts TIMESTAMP) FROM 'x' EVENT TIME tss;", "tss"
    )
    assert (
        problem.message
        == "EVENT TIME names column tss, which CREATE SOURCE s does not declare; did you mean ts?"
    )


def test_created_time_that_is_not_a_timestamp():
    problem = one_problem(
        "CREATE SOURCE s (a BIGINT, ts TIMESTAMP, v VARCHAR) FROM 'x' EVENT TIME ts CREATED TIME v;",
        "v;",
    )
    assert (
        problem.message
        == "CREATED TIME column v is VARCHAR; it must be TIMESTAMP, TIMESTAMPTZ or DATE"
    )


def test_bad_format():
    problem = one_problem("CREATE SOURCE s (ts DATE) FROM 'x' FORMAT ORC EVENT TIME ts;", "ORC")
    assert problem.message == "FORMAT must be PARQUET or CSV"


def test_unterminated_string_is_reported_with_its_line():
    (problem,) = problems_of(
        "CREATE ENTITY u KEY (a BIGINT);\nCREATE ENTITY v KEY (a BIGINT) DESCRIPTION 'oops;"
    )
    assert (problem.location.line, problem.location.col) == (2, 44)
    assert problem.message == "this string is never closed; end it with '"


def test_several_errors_are_all_reported_with_good_statements_in_between():
    text = (
        "CREATE ENTITY u KEY (a BIGINT);\n"
        "CREATE FEATURE f ENTITY u WINDOW 'x' AS SELECT a, SUM(b) FROM s;\n"
        "CREATE ENTITY ok KEY (a BIGINT);\n"
        "CREATE FEATUER g ENTITY u AS SELECT a, 1 FROM s;\n"
        "CREATE SOURCE s (a BIGINT) FROM 'x' EVENT TIME ts;\n"
        "SELECT 1;\n"
    )
    found = problems_of(text)
    assert [p.location.line for p in found] == [2, 4, 5, 6]
    assert [p.location.file for p in found] == ["defs.sql"] * 4


# -- parse_sql ---------------------------------------------------------------------------------


def test_parse_sql_mixes_definitions_and_postgres_sql():
    entity, select, show = parse_sql(
        "CREATE ENTITY u KEY (a BIGINT); SELECT a::int8 FROM t; SHOW search_path"
    )
    assert isinstance(entity, EntityDef)
    assert (
        isinstance(select, exp.Select)
        and select.sql(dialect="postgres") == "SELECT CAST(a AS BIGINT) FROM t"
    )
    assert isinstance(show, exp.Expression)


def test_parse_sql_never_returns_a_command_for_create_or_drop():
    with pytest.raises(DefinitionError, match="CREATE FEATUER is not a statement fsql understands"):
        parse_sql("CREATE FEATUER x ENTITY u AS SELECT 1")
    with pytest.raises(DefinitionError) as caught:
        parse_sql("SELECT 1;\nSELECT FROM WHERE (")
    assert caught.value.problems[0].location.line == 2


# -- docs/language.md is tested ----------------------------------------------------------------

LANGUAGE_DOC = Path(__file__).resolve().parents[2] / "docs" / "language.md"

#: the seven lines the error examples of docs/language.md are written against
DOC_BASE = """\
CREATE ENTITY user KEY (user_id VARCHAR);
CREATE ENTITY item KEY (item_id BIGINT);
CREATE SOURCE purchases (user_id VARCHAR, item_id BIGINT, amount DOUBLE, country VARCHAR, ts TIMESTAMP)
  FROM 'data/purchases' EVENT TIME ts;
CREATE FEATURE user_sum ENTITY user AS SELECT user_id, SUM(amount) FROM purchases;
CREATE FEATURE user_count ENTITY user AS SELECT user_id, COUNT(*) FROM purchases;
CREATE FEATURE item_count ENTITY item AS SELECT item_id, COUNT(*) FROM purchases;
"""


def doc_blocks(language: str) -> list[str]:
    text = LANGUAGE_DOC.read_text()
    blocks = text.split(f"```{language}\n")[1:]
    return [b.split("```")[0] for b in blocks]


def test_every_sql_example_in_the_language_doc_parses():
    blocks = doc_blocks("sql")
    assert len(blocks) >= 15
    for block in blocks:
        assert parse(block, "language.md"), block


def test_every_clause_is_documented():
    text = LANGUAGE_DOC.read_text()
    for clause in (
        "CREATE ENTITY", "KEY (", "CREATE SOURCE", "FROM '", "FORMAT PARQUET", "CSV",
        "EVENT TIME", "CREATED TIME", "DESCRIPTION", "CREATE FEATURE", "ENTITY user", "TYPE",
        "WINDOW '", "EVERY '", "TTL '", "ONLINE FALSE", "CREATE FEATURE SET", "DROP FEATURE",
        "DROP FEATURE SET", "DROP ENTITY", "DROP SOURCE", "IF EXISTS", "CREATE OR REPLACE",
        "INTERVAL '", "COUNT(DISTINCT", "FILTER (WHERE", "AS user_id", "GROUP BY",
    ):  # fmt: skip
        assert clause in text, clause


def test_error_examples_in_the_language_doc_are_real_output():
    """Each error example (input line(s), then the problems printed) matches fsql's output."""
    from fsql.language.analysis import analyze
    from fsql.language.project import desired_state

    section = LANGUAGE_DOC.read_text().split("## Errors")[1]
    examples = 0
    for block in section.split("```text\n")[1:]:
        for group in block.split("```")[0].strip().split("\n\n"):
            lines = group.splitlines()
            split = next(i for i, line in enumerate(lines) if line.startswith("features/"))
            statements, expected = "\n".join(lines[:split]), "\n".join(lines[split:])
            with pytest.raises(DefinitionError) as caught:
                definitions, drops = desired_state(
                    parse(DOC_BASE + statements + "\n", "features/example.sql")
                )
                analyze(definitions, drops=drops)
            assert "\n".join(str(p) for p in caught.value.problems) == expected
            examples += 1
    assert examples >= 30


# -- property: layout, comments and keyword case never change a fingerprint --------------------


def _respell(text: str, seed: int) -> str:
    """``text`` with every gap between tokens replaced by random whitespace or comments and
    every keyword / unquoted name in random case: the same definitions, laid out differently."""
    import random

    from sqlglot.tokens import TokenType

    rng = random.Random(seed)
    gaps = [" ", "  ", "\n", "\n\t ", " /* note */ ", " -- note\n", "\n-- x\n  "]
    pieces: list[str] = []
    for token in FSQL().tokenize(text):
        if token.token_type == TokenType.STRING:
            written = "'" + token.text.replace("'", "''") + "'"
        elif token.token_type == TokenType.IDENTIFIER:
            written = '"' + token.text.replace('"', '""') + '"'
        else:
            written = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in token.text)
        pieces.append(written)
        pieces.append(rng.choice(gaps))
    return "".join(pieces)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32), name=st.sampled_from(GOLDEN))
def test_respelled_files_have_the_same_fingerprints(seed: int, name: str):
    source = (FIXTURES / f"{name}.sql").read_text()
    respelled = _respell(source, seed)
    assert [s.canonical_sql() for s in parse(respelled)] == [
        s.canonical_sql() for s in parse(source)
    ]
    definitions = [s for s in parse(respelled) if not isinstance(s, DropDef)]
    assert [d.fingerprint for d in definitions] == [
        d.fingerprint for d in parse(source) if not isinstance(d, DropDef)
    ]


def test_names_that_are_sql_keywords_round_trip():
    """Canonical SQL writes lower-case names bare, so bare keywords must parse back as names."""
    text = (
        'CREATE ENTITY "select" KEY ("from" VARCHAR, "Mixed Case" BIGINT);\n'
        'CREATE SOURCE "table" ("from" VARCHAR, "Mixed Case" BIGINT, "order" TIMESTAMP)\n'
        "  FROM 'x' EVENT TIME \"order\";\n"
        'CREATE FEATURE "where" ENTITY "select" AS SELECT "from", "Mixed Case", COUNT(*) FROM "table";\n'
        'CREATE FEATURE "set" ENTITY "select" AS SELECT "from", "Mixed Case", MAX("order") FROM "table";\n'
        'CREATE FEATURE SET "group" ("where", "set");\n'
        "DROP FEATURE set;\n"
        "DROP FEATURE SET IF EXISTS set;\n"
    )
    statements = parse(text)
    canonical = "".join(s.canonical_sql() + ";\n" for s in statements)
    assert parse(canonical) == statements
    assert [type(s).__name__ for s in statements] == [
        "EntityDef", "SourceDef", "FeatureDef", "FeatureDef", "FeatureSetDef", "DropDef", "DropDef",
    ]  # fmt: skip
    assert statements[-2] == DropDef(target_kind="feature", name="set")
    assert statements[-1] == DropDef(target_kind="feature_set", name="set", if_exists=True)


def test_unicode_names_fold_like_postgresql():
    """PostgreSQL folds only ASCII letters of unquoted names; fsql does the same for names
    and inside queries, so a name means the same thing in both places."""
    entity, feature = parse(
        "CREATE ENTITY Café KEY (ÜserId VARCHAR);\n"
        "CREATE FEATURE f ENTITY Café AS SELECT ÜserId, COUNT(*) FROM Käufe;"
    )
    assert entity.name == "café" and entity.keys[0].name == "Üserid"
    assert feature.entity == "café"
    assert feature.query == "SELECT Üserid, COUNT(*) FROM käufe"
    canonical = entity.canonical_sql() + ";" + feature.canonical_sql()
    assert parse(canonical) == [entity, feature]


def test_independent_problems_in_one_statement_are_all_reported():
    text = "CREATE SOURCE s (a JSON, b BIGINT) EVENT TIME b FORMAT ORC;"
    found = [(p.location.col, p.code, p.message) for p in problems_of(text)]
    assert found == [
        (position(text, "JSON")[1], "invalid-type", found[0][2]),
        (position(text, "ORC")[1], "syntax", "FORMAT must be PARQUET or CSV"),
        (
            position(text, "s (")[1],
            "syntax",
            "CREATE SOURCE s needs FROM 'path' (a repo-relative path or s3:// URI)",
        ),
        (
            position(text, "b FORMAT")[1],
            "invalid-type",
            "EVENT TIME column b is BIGINT; it must be TIMESTAMP, TIMESTAMPTZ or DATE",
        ),
    ]
