"""Loading a feature repo from disk: file discovery, DROPs, duplicates, errors across files."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsql.errors import DefinitionError
from fsql.language.definitions import DropDef, FeatureDef
from fsql.language.project import desired_state, load_project, load_statements, sql_files

ENTITIES = "CREATE ENTITY user KEY (user_id VARCHAR);\n"
SOURCES = (
    "CREATE SOURCE purchases (user_id VARCHAR, amount DOUBLE, ts TIMESTAMP)\n"
    "  FROM 'data/purchases' EVENT TIME ts;\n"
)
FEATURES = (
    "CREATE FEATURE user_sum ENTITY user WINDOW '30 days' AS\n"
    "  SELECT user_id, SUM(amount) FROM purchases;\n"
    "CREATE FEATURE user_count ENTITY user AS SELECT user_id, COUNT(*) FROM purchases;\n"
    "CREATE FEATURE user_avg ENTITY user AS\n"
    "  SELECT user_id, user_sum / NULLIF(user_count, 0) FROM user;\n"
)


def make_repo(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(
        tmp_path,
        {
            "entities.sql": ENTITIES,
            "sources/purchases.sql": SOURCES,
            "features/user.sql": FEATURES,
            "feature_sets.sql": "CREATE FEATURE SET model (user_avg, user_sum);\n",
            ".fsql/ignored.sql": "this is not SQL",
            "data/ignored.sql": "neither is this",
            "notes.txt": "not a .sql file",
        },
    )


def test_sql_files_are_found_recursively_in_path_order(repo: Path):
    names = [p.relative_to(repo).as_posix() for p in sql_files(repo)]
    assert names == [
        "entities.sql",
        "feature_sets.sql",
        "features/user.sql",
        "sources/purchases.sql",
    ]


def test_load_project_analyses_the_repo(repo: Path):
    analysis = load_project(repo)
    assert sorted(analysis.features) == ["user_avg", "user_count", "user_sum"]
    assert analysis.features["user_avg"].kind == "derived"
    assert analysis.expand(["model"]) == ["user_avg", "user_sum"]
    feature = analysis.definitions["user_sum"]
    assert isinstance(feature, FeatureDef)
    assert (feature.location.file, feature.location.line, feature.location.col) == (
        "features/user.sql",
        1,
        1,
    )


def test_problems_from_every_file_are_collected(repo: Path):
    make_repo(
        repo,
        {
            "broken/a.sql": "CREATE ENTITY x KEY (id JSON);\n",
            "broken/b.sql": "\n\nCREATE FEATURE f ENTITY user WINDOW 'soon' AS SELECT user_id, 1 FROM purchases;\n",
        },
    )
    with pytest.raises(DefinitionError) as caught:
        load_statements(repo)
    found = [(p.location.file, p.location.line) for p in caught.value.problems]
    assert found == [("broken/a.sql", 1), ("broken/b.sql", 3)]


def test_analysis_problems_name_the_file_relative_to_the_repo(repo: Path):
    text = "-- a typo\nCREATE FEATURE g ENTITY user AS SELECT user_id, MAX(amout) FROM purchases;\n"
    make_repo(repo, {"features/bad.sql": text})
    column = text.splitlines()[1].index("amout") + 1
    with pytest.raises(DefinitionError) as caught:
        load_project(repo)
    (problem,) = caught.value.problems
    location = problem.location
    assert (location.file, location.line, location.col) == ("features/bad.sql", 2, column)
    assert location.highlight == "amout"
    assert problem.message == "unknown column amout in source purchases; did you mean amount?"


def test_duplicate_definitions_across_files_are_reported_at_both(repo: Path):
    make_repo(
        repo,
        {
            "zz.sql": "CREATE FEATURE user_sum ENTITY user AS SELECT user_id, MAX(amount) FROM purchases;\n"
        },
    )
    with pytest.raises(DefinitionError) as caught:
        load_project(repo)
    places = [(p.location.file, p.location.line) for p in caught.value.problems]
    assert places == [("features/user.sql", 1), ("zz.sql", 1)]
    assert all("user_sum is defined twice" in p.message for p in caught.value.problems)


def test_desired_state_applies_drops_in_order(repo: Path):
    statements = load_statements(repo)
    extra = [
        DropDef(target_kind="feature_set", name="model"),
        DropDef(target_kind="feature", name="gone"),
    ]
    definitions, drops = desired_state([*statements, *extra])
    assert "model" not in {d.name for d in definitions}
    assert drops == extra


def test_dropping_a_used_definition_is_reported_at_the_drop(repo: Path):
    make_repo(repo, {"zz_drop.sql": "-- retire it\nDROP FEATURE user_sum;\n"})
    with pytest.raises(DefinitionError) as caught:
        load_project(repo)
    messages = [(p.location.file, p.location.line, p.message) for p in caught.value.problems]
    assert messages == [
        (
            "zz_drop.sql",
            2,
            "cannot drop user_sum: feature user_avg and feature set model still depend on it; "
            "drop or change them in the same change, or keep user_sum",
        )
    ]


def test_missing_repo_is_an_error(tmp_path: Path):
    with pytest.raises(DefinitionError, match="is not a directory"):
        load_statements(tmp_path / "nope")


def test_example_repo_analyses_cleanly():
    """The example repo sql_features/ (the end-to-end fixture) is valid as written."""
    repo = Path(__file__).resolve().parents[2] / "sql_features"
    analysis = load_project(repo)
    kinds = {f.kind for f in analysis.features.values()}
    assert kinds == {"aggregate", "latest", "derived"}
    assert len(analysis.features) >= 10
    assert any(f.definition.window is not None for f in analysis.features.values())
    assert any(
        f.definition.window is None and f.kind == "aggregate" for f in analysis.features.values()
    )
    sets = [d for d in analysis.definitions.values() if d.kind == "feature_set"]
    assert sets and all(analysis.expand([s.name]) for s in sets)
