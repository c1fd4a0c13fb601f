"""fsql init: a new repo that plans, applies and lists out of the box."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.dataset as ds

from fsql.examples import SCHEMAS
from fsql.language.project import load_project
from tests.cli.conftest import Run, as_json

TEMPLATE = resources.files("fsql") / "templates" / "repo"


def template_files() -> set[str]:
    """Relative paths the template holds (gitignore is written as .gitignore)."""
    found = set()

    def walk(node, prefix: str) -> None:  # type: ignore[no-untyped-def]
        for entry in node.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            else:
                name = ".gitignore" if entry.name == "gitignore" else entry.name
                found.add(prefix + name)

    walk(TEMPLATE, "")
    return found


def test_init_scaffolds_a_working_repo(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "new"
    result = run("init", str(target), "--rows", "200")
    files = {
        p.relative_to(target).as_posix()
        for p in target.rglob("*")
        if p.is_file() and p.relative_to(target).parts[0] != "data"
    }
    assert files == template_files()
    assert {"fsql.toml", ".gitignore", "entities.sql"} <= files
    for name in files:
        assert f"  {name}" in result.stdout
    assert "Generated data/ (users" in result.stderr

    # the data matches the sources the template declares
    purchases = ds.dataset(target / "data" / "purchases", format="parquet").to_table()
    assert purchases.num_rows == 200
    assert purchases.schema.names == [n for n, _ in SCHEMAS["purchases"]]
    users = pacsv.read_csv(next((target / "data" / "users").glob("*.csv")))
    assert users.schema.names == [n for n, _ in SCHEMAS["users"]]

    definitions = load_project(target).definitions
    plan = as_json(run("plan", "--json", repo=target))
    assert plan["summary"]["add"] == len(definitions) > 5
    run("apply", repo=target)
    listing = as_json(run("ls", "--json", repo=target))
    assert {o["name"] for o in listing["objects"]} == set(definitions)
    described = as_json(run("describe", "user_avg_purchase_30d", "--json", repo=target))
    assert described["kind"] == "feature" and described["version"] == 1


def test_init_refuses_a_non_empty_folder(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result = run("init", str(target), ok=False)
    assert result.stderr.startswith(f"Error: {target} is not empty;")
    assert "--force" in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]

    run("init", str(target), "--force", "--no-data")
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "fsql.toml").exists() and not (target / "data").exists()


def test_init_into_existing_empty_folder(run: Run, tmp_path: Path) -> None:
    target = tmp_path / "empty"
    target.mkdir()
    run("init", str(target), "--no-data")
    assert (target / "entities.sql").exists()


def test_example_data_ends_today_and_is_the_reference_moved(tmp_path: Path) -> None:
    """``fsql init``/``make demo`` data ends at today's midnight (fresh online values); it is
    the reference window's rows (what tests use, ``end=None``) moved by whole days."""
    from datetime import datetime, timedelta

    import pyarrow.parquet as pq

    from fsql.examples import END, generate_example_data, today_end

    generate_example_data(tmp_path / "ref", rows=300)
    day = datetime(2026, 12, 7)
    generate_example_data(tmp_path / "moved", rows=300, end=day)
    ref = pq.read_table(tmp_path / "ref" / "purchases").to_pylist()
    moved = pq.read_table(tmp_path / "moved" / "purchases").to_pylist()
    delta = day - END
    assert delta == timedelta(days=981)
    assert [{**r, "ts": r["ts"] + delta, "loaded_at": r["loaded_at"] + delta} for r in ref] == moved
    assert max(r["ts"] for r in moved) < day <= max(r["ts"] for r in moved) + timedelta(days=1)
    assert min(r["ts"] for r in moved) >= day - timedelta(days=90)
    assert today_end(datetime(2026, 12, 7, 19, 5)) == day


def test_init_generates_data_up_to_today(run: Run, tmp_path: Path) -> None:
    from datetime import timedelta

    import pyarrow.parquet as pq

    from fsql.examples import today_end

    target = tmp_path / "fresh"
    run("init", str(target), "--rows", "200")
    times = pq.read_table(target / "data" / "purchases").column("ts").to_pylist()
    end = today_end()
    assert max(times) < end and max(times) >= end - timedelta(days=2)
