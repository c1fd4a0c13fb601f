"""Registry fixtures: every registry test runs against both backends, SQLite and a real
PostgreSQL server (started once per session by tests/services/postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fsql.registry import Registry, open_registry_url
from tests.registry._world import BASE, desired

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URL for a new, empty registry on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/registry/registry.db"
    return request.getfixturevalue("postgres_db_url")


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    reg = open_registry_url(registry_url)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def applied(registry: Registry) -> Registry:
    """The registry with tests/registry/_world.py's BASE definitions applied."""
    state = desired(BASE)
    registry.apply(registry.plan(state), state)
    return registry
