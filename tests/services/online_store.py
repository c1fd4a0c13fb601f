"""``online_store``: an empty online store, once on SQLite and once on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsql.stores.online import OnlineStore, open_online_store_url


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def online_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        backend = open_online_store_url(f"sqlite:///{tmp_path}/online.db", timeout=2)
    else:
        server = request.getfixturevalue("redis_server")
        server.flush()
        backend = open_online_store_url(server.url, timeout=2)
    yield backend
    backend.close()
