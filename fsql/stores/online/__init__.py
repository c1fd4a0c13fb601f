"""Online stores: the latest value of each online feature per entity key, for serving.

``open_online_store(config)`` picks the backend from ``[online_store] url``:
``sqlite:///path`` (the embedded default, ``.fsql/online.db``) or ``redis://host:port/db``.
Both implement :class:`~fsql.stores.online.base.OnlineStore` and pass the same test suite.
"""

from __future__ import annotations

from fsql.config import Config
from fsql.errors import ConfigError
from fsql.stores.online.base import (
    FeatureRef,
    OnlineStore,
    StoredValue,
    field_name,
    serve,
    serve_micros,
)
from fsql.stores.online.redis import RedisOnlineStore
from fsql.stores.online.sqlite import SqliteOnlineStore

__all__ = [
    "FeatureRef",
    "OnlineStore",
    "StoredValue",
    "field_name",
    "open_online_store",
    "open_online_store_url",
    "serve",
    "serve_micros",
]


def open_online_store(config: Config) -> OnlineStore:
    """The online store ``config`` names (relative SQLite paths resolve against the repo)."""
    return open_online_store_url(
        config.resolve_url(config.online_store.url), timeout=config.online_store.timeout
    )


def open_online_store_url(url: str, timeout: float = 1.0) -> OnlineStore:
    """An online store from its URL: ``sqlite:///abs/path.db`` or ``redis[s]://host:port/db``."""
    if url.startswith("sqlite:///"):
        return SqliteOnlineStore(url[len("sqlite:///") :], timeout=timeout)
    if url.startswith(("redis://", "rediss://", "unix://")):
        # redis-py and hiredis are imported when the store is made (fsql.extras.require)
        return RedisOnlineStore(url, timeout=timeout)
    raise ConfigError(
        f"[online_store] url {url!r} is not supported; use sqlite:///path/online.db "
        "(embedded, the default) or redis://host:6379/0"
    )
