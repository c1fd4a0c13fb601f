"""The example repo ``sql_features/`` as an end-to-end fixture: copied with freshly generated
data, applied to its own registry, materialized, and compared across engines and storages."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fsql.compute.timelines import dense_timeline
from fsql.config import Config, config_from_mapping
from fsql.examples import generate_example_data
from fsql.language.analysis import analyze
from fsql.language.project import desired_state, load_statements
from fsql.registry import open_registry
from fsql.workspace import Workspace
from tests.compute.properties import same

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "sql_features"
#: a week of February 2024: windows reach back into January, the data spans the quarter
START, END = datetime(2024, 2, 1), datetime(2024, 2, 8)
ROWS = 600


@dataclass
class ExampleRepo:
    root: Path
    config: Config
    registry: Any
    #: the local copy of the generated source data (also when the repo reads it from S3)
    data: Path

    def features(self) -> list[str]:
        return sorted(self.registry.analysis().features)

    def timeline(self, feature: str) -> list[dict[str, Any]]:
        """The committed timeline of the feature's current version: its values at every
        materialized tick (the stored changes expanded), sorted."""
        table = dense_timeline(Workspace(self.config, registry=self.registry), feature)
        return table.to_pylist()

    def spine(self) -> pa.Table:
        """Purchases as labelled events: user and item keys, the order time, the amount."""
        purchases = pq.read_table(self.data / "purchases")
        return pa.table(
            {
                "user_id": purchases.column("user_id"),
                "item_id": purchases.column("item_id"),
                "event_time": purchases.column("ts"),
                "label": purchases.column("amount"),
            }
        )


def make_example_repo(
    root: Path,
    data: Path,
    *,
    sources_uri: str | None = None,
    offline: dict[str, Any] | None = None,
    compute: dict[str, Any] | None = None,
) -> ExampleRepo:
    """A copy of sql_features/ under ``root`` reading ``data`` (or ``sources_uri``, e.g.
    ``s3://bucket/data``, in place of the repo's ``data/`` folder), applied to a new registry."""
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("data", ".fsql", "__pycache__"))
    if sources_uri is None:
        shutil.copytree(data, root / "data")
    else:
        for path in (root / "sources").glob("*.sql"):
            text = path.read_text()
            path.write_text(text.replace("FROM 'data/", f"FROM '{sources_uri}/"))
    (root / "fsql.toml").unlink()
    settings: dict[str, Any] = {"online_store": {"url": f"sqlite:///{root}/.fsql/online.db"}}
    if offline:
        settings["offline_store"] = offline
    if compute:
        settings["compute"] = compute
    config = config_from_mapping(settings, root, "test")
    registry = open_registry(config)
    definitions, drops = desired_state(load_statements(root))
    desired = analyze(definitions, drops=drops)
    registry.apply(registry.plan(desired, drops=drops), desired)
    return ExampleRepo(root, config, registry, data)


def generate_data(path: Path) -> Path:
    generate_example_data(path, rows=ROWS)
    return path


def assert_same_rows(actual: list[dict], expected: list[dict], what: str) -> None:
    """Row-by-row equality; floats compared with a tolerance (sums in another order)."""
    assert len(actual) == len(expected), f"{what}: {len(actual)} rows, expected {len(expected)}"
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert got.keys() == want.keys(), f"{what}: columns {list(got)} vs {list(want)}"
        for column in want:
            assert same(got[column], want[column]), (
                f"{what} row {i}: {column} = {got[column]!r}, expected {want[column]!r}\n"
                f"got {got}\nexpected {want}"
            )
