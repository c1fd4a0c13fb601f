"""Which version of each feature a Redis reader reads: the active-version policy.

A feature's active version lives in the ``fsql:active`` hash (:mod:`fsql.stores.online.redis`).
Resolving it costs a round trip (or a Lua script), so a reader — the online store's
(:class:`~fsql.stores.online.redis.RedisOnlineStore`) and the server's lookup reader
(:class:`~fsql.stores.online.reader.RedisLookupReader`) alike — keeps what it read in one
:class:`ActiveVersions` and follows its rule:

- an active version read from Redis is reused for ``seconds`` (:data:`CACHE_SECONDS`, 1 s)
  after it was read; ``seconds <= 0`` resolves on every read. A switch made by another process
  therefore reaches a reader within that time, all at once;
- "not active yet" is never cached, so a feature's first push is visible to every reader at once;
- a switch made through the reader's own store (:meth:`ActiveVersions.switched`), a deleted
  version and :meth:`ActiveVersions.forget` apply at once;
- a *plan* (whatever a reader derives from the versions of one list of features: packed field
  names, say) is kept per list object and holds until the first of its features' cached
  versions expires or any cached version changes (:attr:`ActiveVersions.generation`), so a
  reader never serves two versions of one feature side by side.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from fsql.stores.online.base import FeatureRef

__all__ = ["CACHE_SECONDS", "ActiveVersions", "CacheSeconds"]

#: how long a reader reuses the active versions it read, by default
CACHE_SECONDS = 1.0
#: plans kept at most (callers building a new feature list per read must not grow the cache)
_MAX_PLANS = 256


class ActiveVersions:
    """A reader's cached active versions and the plans derived from them (module docstring)."""

    __slots__ = ("generation", "plans", "seconds", "versions")

    def __init__(self, seconds: float = CACHE_SECONDS):
        #: how long a version read from Redis is reused (0: resolve on every read)
        self.seconds = seconds
        #: feature → (active version, monotonic time it was read)
        self.versions: dict[str, tuple[str, float]] = {}
        #: bumped whenever a cached version changes or is dropped (plans made before are void)
        self.generation = 0
        #: id(features) → (features, generation, fresh until, plan)
        self.plans: dict[int, tuple[Sequence[FeatureRef], int, float, Any]] = {}

    def cached(self, features: Sequence[FeatureRef]) -> list[str | None] | None:
        """The version to read of each feature (pinned ones as pinned) when every unpinned
        feature's active version is cached and fresh; else None: resolve them all."""
        if self.seconds <= 0:
            return None
        now = time.monotonic()
        keep = self.seconds
        cache = self.versions
        out: list[str | None] = []
        for f in features:
            version = f.version
            if version is None:
                found = cache.get(f.name)
                if found is None or now - found[1] >= keep:
                    return None
                version = found[0]
            out.append(version)
        return out

    def lookup(self, features: Sequence[FeatureRef]) -> tuple[list[str | None], list[str]]:
        """The version of each feature when known (pinned, or cached and fresh; None where
        not) and the names of the features whose active version must be read."""
        now = time.monotonic()
        keep = self.seconds
        cache = self.versions
        versions: list[str | None] = []
        missing: list[str] = []
        for f in features:
            if f.version is not None:
                versions.append(f.version)
                continue
            found = cache.get(f.name)
            if found is not None and now - found[1] < keep:
                versions.append(found[0])
            else:
                versions.append(None)
                missing.append(f.name)
        return versions, missing

    def learned(self, names: Sequence[str], active: Sequence[bytes | None]) -> None:
        """Remember the active versions just read from ``fsql:active`` (``None`` or empty: not
        active yet, never cached)."""
        now = time.monotonic()
        cache = self.versions
        for name, value in zip(names, active, strict=True):
            if value:
                version = value.decode()
                old = cache.get(name)
                if old is None or old[0] != version:
                    self.generation += 1
                cache[name] = (version, now)

    def switched(self, feature: str, version: str) -> None:
        """This reader's own store made ``version`` active: read it from now on."""
        self.versions[feature] = (version, time.monotonic())
        self.generation += 1

    def forget(self, feature: str | None = None) -> None:
        """Resolve ``feature`` (every feature when None) again on the next read."""
        if feature is None:
            self.versions.clear()
            self.plans.clear()
        else:
            self.versions.pop(feature, None)
        self.generation += 1

    def plan(self, features: Sequence[FeatureRef]) -> tuple[Any, float] | None:
        """The plan kept for this very ``features`` list and the monotonic time until which
        it holds, or None (none kept, expired, or a cached version changed since)."""
        entry = self.plans.get(id(features))
        if (
            entry is None
            or entry[0] is not features
            or entry[1] != self.generation
            or self.seconds <= 0
            or time.monotonic() >= entry[2]
        ):
            return None
        return entry[3], entry[2]

    def keep(
        self, features: Sequence[FeatureRef], versions: Sequence[str | None], plan: Any
    ) -> float:
        """Keep ``plan``, derived from ``versions`` (the versions of ``features`` taken from
        this cache or just learned), for ``features``; returns until when it holds (0.0: not
        kept, because caching is off or a feature is not active yet)."""
        if self.seconds <= 0 or not all(versions):
            return 0.0
        cache = self.versions
        # a forget() while the versions were being read leaves the plan already expired
        seen = [cache.get(f.name, ("", 0.0))[1] for f in features if f.version is None]
        fresh_until = min(seen, default=time.monotonic()) + self.seconds
        if len(self.plans) >= _MAX_PLANS:
            self.plans.clear()
        self.plans[id(features)] = (features, self.generation, fresh_until, plan)
        return fresh_until


class CacheSeconds:
    """The ``version_cache_seconds`` attribute of a reader class: on the class, the default
    (:data:`CACHE_SECONDS`); on an instance, its :class:`ActiveVersions`' ``seconds`` (setting
    it changes the policy the instance reads with)."""

    def __get__(self, obj: Any, owner: type | None = None) -> float:
        if obj is None:
            return CACHE_SECONDS
        seconds: float = obj.active.seconds
        return seconds

    def __set__(self, obj: Any, value: float) -> None:
        obj.active.seconds = value
