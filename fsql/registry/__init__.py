"""The registry: versioned storage of definitions, lineage and the materialization ledger.

>>> from fsql.config import Config
>>> registry = open_registry(Config(repo=Path("/tmp/repo")))   # doctest: +SKIP
>>> plan = registry.plan(load_project(repo))                   # doctest: +SKIP
>>> registry.apply(plan, load_project(repo))                   # doctest: +SKIP

Backends: ``sqlite:///path`` (embedded default, ``.fsql/registry.db`` in the repo, created on
first use) and ``postgresql://...`` (psycopg 3, for teams). Both share one implementation,
:class:`Registry`; see ``docs/architecture.md`` ("Registry") for the versioning rules.
"""

from __future__ import annotations

from pathlib import Path

from fsql.config import Config
from fsql.errors import ConfigError, RegistryNotFound
from fsql.registry.base import Registry, VersionRecord, default_actor
from fsql.registry.ledger import (
    InputFile,
    Inputs,
    LedgerEntry,
    StaleMark,
    merge_intervals,
    subtract_intervals,
)
from fsql.registry.plan import Change, Plan
from fsql.registry.postgres import PostgresBackend
from fsql.registry.sqlite import SqliteBackend

__all__ = [
    "Change",
    "InputFile",
    "Inputs",
    "LedgerEntry",
    "Plan",
    "Registry",
    "StaleMark",
    "VersionRecord",
    "default_actor",
    "merge_intervals",
    "open_registry",
    "open_registry_url",
    "subtract_intervals",
]


def open_registry_url(url: str, *, create: bool = True) -> Registry:
    """Open the registry at an absolute ``sqlite:///`` or ``postgresql://`` URL.

    A SQLite registry file is created on first use, unless ``create`` is false: read-only
    commands (``fsql ls``, ``describe``) then raise :class:`~fsql.errors.RegistryNotFound`
    instead of leaving an empty ``.fsql/registry.db`` behind in whatever folder they ran in.
    """
    if url.startswith("sqlite:///"):

        path = Path(url[len("sqlite:///") :])
        if not create and not path.exists():
            raise RegistryNotFound(
                f"no registry at {path}: nothing has been applied here yet; run `fsql plan` "
                "and `fsql apply` in the feature repo, or point FSQL_REGISTRY_URL (or "
                "[registry] url in fsql.toml) at an existing registry"
            )
        return Registry(SqliteBackend(path))
    if url.startswith(("postgresql://", "postgres://")):

        return Registry(PostgresBackend(url))
    raise ConfigError(
        f"registry url {url!r} is not supported; use sqlite:///path/to/registry.db or "
        "postgresql://user@host:port/database"
    )


def open_registry(config: Config, *, create: bool = True) -> Registry:
    """Open the registry ``config`` names (relative SQLite paths are relative to the repo);
    ``create=False`` refuses to create a missing SQLite file (see :func:`open_registry_url`)."""
    return open_registry_url(config.resolve_url(config.registry.url), create=create)
