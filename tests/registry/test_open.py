"""Opening registries from the config, and lineage of the current state (both backends)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsql.config import Config, RegistryConfig
from fsql.errors import ConfigError, RegistryError
from fsql.registry import Registry, open_registry, open_registry_url
from tests.registry._world import BASE, desired, replace_statement


def test_embedded_default_is_created_under_dot_fsql(tmp_path: Path) -> None:
    registry = open_registry(Config(repo=tmp_path))
    try:
        assert (tmp_path / ".fsql" / "registry.db").is_file()
        assert registry.url == f"sqlite:///{tmp_path}/.fsql/registry.db"
        state = desired(BASE)
        registry.apply(registry.plan(state), state)
    finally:
        registry.close()
    # reopening finds what was applied
    with open_registry(Config(repo=tmp_path)) as again:
        assert again.revision() == 1 and len(again.current()) == 10


def test_postgres_from_config(postgres_db_url: str, tmp_path: Path) -> None:
    config = Config(repo=tmp_path, registry=RegistryConfig(url=postgres_db_url))
    with open_registry(config) as registry:
        assert registry.revision() == 0
    assert not (tmp_path / ".fsql").exists()


test_postgres_from_config = pytest.mark.postgres(test_postgres_from_config)


def test_bad_urls_say_what_would_work(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="use sqlite:///path/to/registry.db or postgresql://"):
        open_registry(Config(repo=tmp_path, registry=RegistryConfig(url="mysql://x")))
    with pytest.raises(RegistryError, match="cannot connect to the registry "
                       r"postgresql://fsql:\*\*\*@127.0.0.1:1/x"):  # fmt: skip
        open_registry(Config(repo=tmp_path, registry=RegistryConfig(
            url="postgresql://fsql:secret@127.0.0.1:1/x")))  # fmt: skip
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(RegistryError, match="cannot open the registry"):
        open_registry(Config(repo=tmp_path, registry=RegistryConfig(url="sqlite:///file/r.db")))


def test_lineage_of_current_state_matches_the_analysis(registry: Registry) -> None:
    state = desired(BASE)
    registry.apply(registry.plan(state), state)
    assert set(registry.lineage()) == set(state.lineage())
    assert len(registry.lineage()) == len(set(state.lineage()))
    edges = [(e.from_name, e.to_name, e.column) for e in registry.lineage()]
    assert ("purchase_sum_30d", "purchases", "amount") in edges
    assert ("avg_purchase_30d", "purchase_sum_30d", None) in edges
    assert ("fraud_model_v1", "avg_purchase_30d", None) in edges
    # a changed definition's lineage replaces the old one; the old version keeps its own
    changed = replace_statement(
        BASE, "purchase_count_30d",
        "CREATE FEATURE purchase_count_30d ENTITY user WINDOW '30 days' "
        "AS SELECT user_id, COUNT(item_id) FROM purchases",
    )  # fmt: skip
    state = desired(changed)
    registry.apply(registry.plan(state), state)
    assert set(registry.lineage()) == set(state.lineage())
    columns = {e.column for e in registry.lineage() if e.from_name == "purchase_count_30d"}
    assert columns == {None, "user_id", "item_id"}
    old = {e.column for e in registry.version_lineage("purchase_count_30d", 1)}
    assert old == {None, "user_id"}
    # dropping removes its edges from the current lineage
    state = desired(replace_statement(BASE, "country", ""))
    registry.apply(registry.plan(state), state)
    assert not [e for e in registry.lineage() if "country" in (e.from_name, e.to_name)]


def test_analysis_of_the_current_state(registry: Registry) -> None:
    state = desired(BASE)
    registry.apply(registry.plan(state), state)
    analysis = registry.analysis()
    assert dict(analysis.definitions) == dict(state.definitions)
    assert analysis.features["avg_purchase_30d"].kind == "derived"
    assert analysis.topological_order() == state.topological_order()


@pytest.mark.postgres
def test_postgres_registry_reconnects_after_losing_its_connection(postgres_db_url: str) -> None:
    import psycopg

    with open_registry(Config(registry=RegistryConfig(url=postgres_db_url))) as registry:
        state = desired(BASE)
        registry.apply(registry.plan(state), state)
        pid = registry._db.conn.info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(postgres_db_url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
        assert registry.revision() == 1
        assert registry._db.conn.info.backend_pid != pid  # type: ignore[attr-defined]
        assert len(registry.current()) == 10


def test_a_registry_from_a_newer_fsql_is_refused(registry_url: str) -> None:
    with open_registry_url(registry_url) as registry:
        with registry._db.transaction(write=True):
            registry._db.execute("UPDATE fsql_state SET schema_version = 99")
    with pytest.raises(RegistryError, match="has schema version 99, newer than this fsql "
                       r"understands \(1\); upgrade fsql"):  # fmt: skip
        open_registry_url(registry_url)
