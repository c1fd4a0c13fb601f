"""The Python API applies the same source-location rule as ``fsql apply`` and DDL over the
wire (issue 15, finding 3): a source reads inside the repo or ``[sources] roots`` only."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsql.api import SyncFeatureStore
from fsql.errors import DefinitionError

SOURCE = ("CREATE SOURCE {name} (user_id BIGINT, ts TIMESTAMP) FROM '{path}' FORMAT CSV "
          "EVENT TIME ts")


def test_register_refuses_a_source_outside_the_repo(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "fsql.toml").write_text("")
    store = SyncFeatureStore(repo)
    for path in ("/etc/passwd", "../elsewhere/x.csv"):
        with pytest.raises(DefinitionError) as caught:
            store.register(SOURCE.format(name="stolen", path=path))
        assert [p.code for p in caught.value.problems] == ["source-location"]
    assert store.registry.current() == {}
    store.register(SOURCE.format(name="inside", path="data/events.csv"))
    assert set(store.registry.current()) == {"inside"}


def test_register_accepts_a_source_under_a_configured_root(tmp_path: Path) -> None:
    repo, lake = tmp_path / "repo", tmp_path / "lake"
    repo.mkdir()
    lake.mkdir()
    (repo / "fsql.toml").write_text(f'[sources]\nroots = ["{lake}"]\n')
    store = SyncFeatureStore(repo)
    store.register(SOURCE.format(name="events", path=lake / "events.csv"))
    assert set(store.registry.current()) == {"events"}
