"""The active-version policy (:class:`fsql.stores.online.versions.ActiveVersions`) that the
Redis online store and the server's lookup reader both follow, on a clock the test moves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from fsql.stores.online import versions as versions_module
from fsql.stores.online.base import FeatureRef
from fsql.stores.online.reader import RedisLookupReader
from fsql.stores.online.redis import RedisOnlineStore
from fsql.stores.online.versions import CACHE_SECONDS, ActiveVersions


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(versions_module, "time", SimpleNamespace(monotonic=clock))
    return clock


def test_versions_are_reused_for_their_seconds_and_not_active_is_never_cached(clock: Clock) -> None:
    active = ActiveVersions(1.0)
    a, b, pinned = FeatureRef("a"), FeatureRef("b"), FeatureRef("a", "7")
    assert active.cached([a]) is None
    assert active.lookup([a, pinned]) == ([None, "7"], ["a"])
    active.learned(["a", "b"], [b"2", None])  # b is not active yet
    assert active.cached([a, pinned]) == ["2", "7"]
    assert active.cached([a, b]) is None
    assert active.lookup([a, b]) == (["2", None], ["b"])
    clock.now += 0.999
    assert active.cached([a]) == ["2"]
    clock.now += 0.001  # read 1 s ago: resolve again
    assert active.cached([a]) is None
    assert active.lookup([a]) == ([None], ["a"])
    active.seconds = 0  # resolve on every read
    active.learned(["a"], [b"3"])
    assert active.cached([a]) is None
    assert active.lookup([a]) == ([None], ["a"])


def test_plans_hold_until_a_version_expires_or_changes(clock: Clock) -> None:
    active = ActiveVersions(1.0)
    just_a, both = [FeatureRef("a")], [FeatureRef("a"), FeatureRef("b")]
    active.learned(["a"], [b"1"])
    clock.now += 0.5
    active.learned(["b"], [b"1"])
    assert active.keep(just_a, ["1"], "plan a") == 101.0
    assert active.keep(both, ["1", "1"], "plan ab") == 101.0  # a's version expires first
    assert active.plan(just_a) == ("plan a", 101.0)
    assert active.plan(list(just_a)) is None  # kept per list object
    # b's version read again, unchanged: plans stay; changed: every plan is void
    active.learned(["b"], [b"1"])
    assert active.plan(both) == ("plan ab", 101.0)
    active.learned(["b"], [b"2"])
    assert active.plan(both) is None and active.plan(just_a) is None
    assert active.keep(just_a, ["1"], "plan a") == 101.0
    clock.now = 101.0
    assert active.plan(just_a) is None
    # a list with a feature not active yet is never kept
    assert active.keep([FeatureRef("c")], [None], "plan c") == 0.0
    assert active.plan([FeatureRef("c")]) is None


def test_own_switches_and_forgetting_apply_at_once(clock: Clock) -> None:
    active = ActiveVersions(60.0)
    refs = [FeatureRef("a")]
    active.learned(["a"], [b"1"])
    active.keep(refs, ["1"], "plan")
    active.switched("a", "2")
    assert active.plan(refs) is None
    assert active.cached(refs) == ["2"]
    active.forget("a")
    assert active.cached(refs) is None
    active.learned(["a"], [b"2"])
    active.forget()
    assert active.cached(refs) is None and active.plans == {}


def test_version_cache_seconds_is_the_policys() -> None:
    assert RedisOnlineStore.version_cache_seconds == CACHE_SECONDS
    assert RedisLookupReader.version_cache_seconds == CACHE_SECONDS
    reader = RedisLookupReader("redis://h:1/0", version_cache_seconds=5)
    assert reader.version_cache_seconds == reader.active.seconds == 5
    reader.version_cache_seconds = 0
    assert reader.active.seconds == 0
