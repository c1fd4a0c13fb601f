"""The workspace: the one place that wires fsql's core together.

A :class:`Workspace` owns what every front end needs, each opened once and on first use: the
configuration, the registry (and its cached :class:`~fsql.registry.catalog.Catalog` of resolved
definitions), the offline store, the online store and the engine factory. The Python API
(:class:`fsql.api.SyncFeatureStore`), the CLI's context and the server's services each hold
one; the compute functions (:mod:`fsql.compute`) and the serving path (:mod:`fsql.serving`) are
handed one. Nothing else opens a registry, a store or an engine (SQLMesh's ``Context`` plays
the same part).

>>> ws = Workspace.open("sql_features")                       # doctest: +SKIP
>>> ws.registry.current()["user_purchase_sum_30d"].version     # doctest: +SKIP
1

A workspace is safe to share between threads: each collaborator is opened under a lock. A
closed workspace reopens what it is asked for again.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fsql.config import (
    DESIGN_KEYS,
    Config,
    config_from_design_dict,
    config_from_mapping,
    load_config,
)
from fsql.engines import Engine, open_engine
from fsql.errors import ConfigError
from fsql.registry import Registry, open_registry
from fsql.registry.catalog import Catalog
from fsql.stores.offline import OfflineStore
from fsql.stores.online import OnlineStore, open_online_store

ConfigLike = Config | Mapping[str, Any] | str | os.PathLike[str] | None


def resolve_config(config: ConfigLike = None) -> Config:
    """``None``: the repo in the current directory (its ``fsql.toml``, else the embedded
    defaults); a path: that repo; the original design's dict (``metadata_config``, ...) or an
    ``fsql.toml``-shaped dict; or a :class:`Config`."""
    if config is None:
        return load_config()
    if isinstance(config, Config):
        return config
    if isinstance(config, str | os.PathLike):
        path = Path(config)
        if path.is_file():
            path = path.parent
        if not path.is_dir():
            raise ConfigError(f"{config} is not a feature repo directory (or its fsql.toml)")
        return load_config(path)
    if isinstance(config, Mapping):
        if set(config) & DESIGN_KEYS:
            return config_from_design_dict(config)
        return config_from_mapping(config)
    raise ConfigError(
        f"FeatureStore(config): expected None, a repo path, a dict or a Config, not "
        f"{type(config).__name__}"
    )


class Workspace:
    """Config, registry, catalog, stores and engine factory of one feature repo.

    ``engine`` names the default engine (else ``[compute] engine``). ``registry`` hands in an
    already open registry (the workspace then does not close it). ``create_registry=False``
    refuses to create a missing embedded registry (read-only commands).
    ``catalog_refresh_seconds``: how often the catalog re-checks the registry's revision.
    """

    def __init__(
        self,
        config: Config,
        *,
        engine: str | None = None,
        registry: Registry | None = None,
        create_registry: bool = True,
        catalog_refresh_seconds: float = 1.0,
    ):
        self.config = config
        self.engine_name = engine
        self.create_registry = create_registry
        self.catalog_refresh_seconds = catalog_refresh_seconds
        self._registry = registry
        self._owns_registry = registry is None
        self._catalog: Catalog | None = None
        self._offline: OfflineStore | None = None
        self._online: OnlineStore | None = None
        self._lock = threading.RLock()

    @classmethod
    def open(cls, config: ConfigLike = None, **options: Any) -> Workspace:
        """A workspace over ``config`` (see :func:`resolve_config` for what it may be)."""
        return cls(resolve_config(config), **options)

    # --- collaborators, opened on first use ---------------------------------------------------

    @property
    def registry(self) -> Registry:
        registry = self._registry
        if registry is not None:
            return registry
        with self._lock:
            if self._registry is None:
                self._registry = open_registry(self.config, create=self.create_registry)
                self._owns_registry = True
            return self._registry

    def open_registry(self) -> Registry:
        """A registry connection of its own (the caller closes it): for readers that must not
        share the workspace's connection, e.g. a monitoring thread reading the run log."""
        return open_registry(self.config, create=self.create_registry)

    @property
    def catalog(self) -> Catalog:
        catalog = self._catalog
        if catalog is not None:  # set once: every lookup asks, without taking the lock
            return catalog
        registry = self.registry
        with self._lock:
            if self._catalog is None:
                self._catalog = Catalog(registry, refresh_seconds=self.catalog_refresh_seconds)
            return self._catalog

    @property
    def offline_store(self) -> OfflineStore:
        store = self._offline
        if store is not None:
            return store
        with self._lock:
            if self._offline is None:
                self._offline = OfflineStore.from_config(self.config)
            return self._offline

    @property
    def online_store(self) -> OnlineStore:
        store = self._online
        if store is not None:
            return store
        with self._lock:
            if self._online is None:
                self._online = open_online_store(self.config)
            return self._online

    def open_engine(self, name: str | None = None) -> Engine:
        """A new engine (``name``, else the workspace's, else ``[compute] engine``); the caller
        closes it."""
        return open_engine(self.config, name or self.engine_name)

    # --- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close what was opened (a later use opens it again)."""
        with self._lock:
            if self._online is not None:
                self._online.close()
                self._online = None
            if self._registry is not None and self._owns_registry:
                self._registry.close()
                self._registry = None
            self._catalog = None
            self._offline = None

    async def aclose(self) -> None:
        """Close the online store's asyncio connections (on the loop that made them), then
        everything else (off the loop: closing a registry may block)."""
        if self._online is not None:
            await self._online.aclose()
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ConfigLike", "Workspace", "resolve_config"]
