"""A throwaway feature repo for compute tests: definitions, source files, a registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fsql.config import Config, config_from_mapping
from fsql.language.analysis import analyze
from fsql.language.parser import parse
from fsql.registry import open_registry


def make_repo(
    root: Path,
    definitions: str,
    tables: dict[str, pa.Table],
    *,
    offline_uri: str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> tuple[Config, Any]:
    """Write ``tables`` (``data/<name>/part-0.parquet``), apply ``definitions`` to a fresh SQLite
    registry under ``root`` and return (config, registry)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "features.sql").write_text(definitions)
    for name, table in tables.items():
        write_source(root, name, table)
    data: dict[str, dict[str, Any]] = {
        "online_store": {"url": f"sqlite:///{root}/.fsql/online.db"},
    }
    if offline_uri:
        data["offline_store"] = {"uri": offline_uri}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    config = config_from_mapping(data, root, "test")
    registry = open_registry(config)
    apply(registry, definitions)
    return config, registry


def apply(registry: Any, definitions: str) -> None:
    analysis = analyze(parse(definitions))
    registry.apply(registry.plan(analysis), analysis)


def write_source(root: Path, name: str, table: pa.Table) -> None:
    folder = root / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.parquet"):
        old.unlink()
    pq.write_table(table, folder / "part-0.parquet")
