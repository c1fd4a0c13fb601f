"""Shared test setup. Real services (PostgreSQL, Redis, S3, Spark, Airflow) are started by
session fixtures in tests/services/, one module per service, loaded here automatically."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = sorted(
    f"tests.services.{p.stem}"
    for p in (Path(__file__).parent / "services").glob("*.py")
    if not p.stem.startswith("_")
)
