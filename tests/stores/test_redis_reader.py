"""The lookup path's own Redis reader (:mod:`fsql.stores.online.reader`) against a real
redis-server: same records and versions as the online store, one write for the lookups of many
sessions, the active-version rules, and failing fast / recovering when Redis goes away."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fsql.errors import OnlineStoreUnavailable
from fsql.stores.online.base import FeatureRef
from fsql.stores.online.codec import encode_records
from fsql.stores.online.reader import RedisLookupReader
from fsql.stores.online.redis import RedisOnlineStore
from fsql.stores.online.resp import RedisAddress
from tests.services.redis import RedisServer

pytestmark = [pytest.mark.redis]

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _db_url(redis_server: Any, db: int) -> str:
    return redis_server.url.rsplit("/", 1)[0] + f"/{db}"


def _push(store: RedisOnlineStore, entity: str, feature: str, version: str,
          values: dict[str, float]) -> None:
    keys = list(values)
    store.write(entity, feature, version, keys,
                encode_records("DOUBLE", [values[k] for k in keys], [NOW] * len(keys)))


def test_reads_what_the_store_reads_and_batches_concurrent_lookups(redis_server: Any) -> None:
    url = _db_url(redis_server, 12)
    store = RedisOnlineStore(url)
    entity = "reader_batch"
    keys = [f"k{i}" for i in range(20)]
    _push(store, entity, "a", "1", {k: float(i) for i, k in enumerate(keys)})
    _push(store, entity, "b", "3", {k: i / 4 for i, k in enumerate(keys[:10])})
    store.activate("a", "1")
    store.activate("b", "3")
    refs = [FeatureRef("a"), FeatureRef("b"), FeatureRef("a", "1"), FeatureRef("missing")]
    asked = [*keys, "nobody"]
    want = [store.read_records(entity, refs, [k]) for k in asked]

    async def run() -> None:
        reader = RedisLookupReader(url, timeout=5)
        try:
            # the first read connects and resolves the active versions
            assert await reader.read_records_async(entity, refs, asked[:1]) == want[0]
            connection = reader._connection
            assert connection is not None
            writes = connection.writes
            got = await asyncio.gather(
                *(reader.read_records_async(entity, refs, [k]) for k in asked))
            assert got == want
            # twenty-one sessions' lookups in one event-loop iteration: one write resolving
            # the version of "missing" (not active, so never cached), one reading the records
            assert connection.writes == writes + 2
            active = refs[:3]
            got = await asyncio.gather(
                *(reader.read_records_async(entity, active, [k]) for k in asked))
            assert got == [(v[:3], [r[:3] for r in rows]) for v, rows in want]
            assert connection.writes == writes + 3  # versions cached: one write in all
            # several keys in one lookup, decoded like the store's read
            assert await reader.read(entity, refs, keys[:3]) == store.read(entity, refs, keys[:3])
        finally:
            reader.close()

    try:
        asyncio.run(run())
    finally:
        store.close()


def test_versions_not_active_yet_are_never_cached_and_switches_arrive(redis_server: Any) -> None:
    url = _db_url(redis_server, 13)
    store = RedisOnlineStore(url)
    entity = "reader_switch"
    _push(store, entity, "f", "1", {"u": 1.0})
    _push(store, entity, "f", "2", {"u": 2.0})
    refs = [FeatureRef("f")]

    async def run() -> None:
        cached = RedisLookupReader(url, timeout=5, version_cache_seconds=60)
        uncached = RedisLookupReader(url, timeout=5, version_cache_seconds=0)
        try:
            assert await cached.read_records_async(entity, refs, ["u"]) == ([None], [[None]])
            store.activate("f", "1")  # another process's first push: visible at once
            assert (await cached.read_records_async(entity, refs, ["u"]))[0] == ["1"]
            assert (await uncached.read_records_async(entity, refs, ["u"]))[0] == ["1"]
            store.activate("f", "2")
            # the uncached reader sees the switch at once; the cached one keeps the version
            # it read until its cache time ends (60 s here) or it is told to forget
            assert (await uncached.read_records_async(entity, refs, ["u"]))[0] == ["2"]
            assert (await cached.read_records_async(entity, refs, ["u"]))[0] == ["1"]
            cached.forget_versions()
            versions, rows = await cached.read_records_async(entity, refs, ["u"])
            assert versions == ["2"]
            assert rows == store.read_records(entity, [FeatureRef("f", "2")], ["u"])[1]
        finally:
            cached.close()
            uncached.close()

    try:
        asyncio.run(run())
    finally:
        store.close()


def test_redis_down_fails_fast_with_unavailable_and_reads_recover(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    store = RedisOnlineStore(redis.url)
    refs = [FeatureRef("f")]

    async def run() -> None:
        reader = RedisLookupReader(redis.url, timeout=1)
        try:
            _push(store, "reader_down", "f", "1", {"u": 5.0})
            store.activate("f", "1")
            assert (await reader.read("reader_down", refs, ["u"]))[0][0].value == 5.0
            redis.stop()
            for _ in range(2):  # the dropped connection, then a refused reconnect
                with pytest.raises(OnlineStoreUnavailable, match=r"Redis at redis://.*did not"):
                    await reader.read_records_async("reader_down", refs, ["u"])
            redis.start()  # back, empty (the version read before may still be cached)
            assert (await reader.read_records_async("reader_down", refs, ["u"]))[1] == [[None]]
            _push(store, "reader_down", "f", "1", {"u": 6.0})
            store.activate("f", "1")
            assert (await reader.read("reader_down", refs, ["u"]))[0][0].value == 6.0
        finally:
            reader.close()

    try:
        asyncio.run(run())
    finally:
        store.close()
        redis.stop()


def test_a_redis_that_never_answers_times_out() -> None:
    # a listening socket nobody reads from: the kernel accepts the connection, no reply comes
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"

    async def run() -> None:
        reader = RedisLookupReader(url, timeout=0.3)
        try:
            for _ in range(2):
                with pytest.raises(OnlineStoreUnavailable, match="did not answer within 0.3s"):
                    await reader.read_records_async("e", [FeatureRef("f", "1")], ["k"])
        finally:
            reader.close()

    try:
        asyncio.run(run())
    finally:
        hung.close()


def test_urls() -> None:
    address = RedisAddress("redis://user:p%40ss@db.example:6380/4")
    assert (address.host, address.port, address.db) == ("db.example", 6380, 4)
    assert (address.username, address.password) == ("user", "p@ss")
    unix = RedisAddress("unix:///run/redis.sock?db=2")
    assert (unix.unix_path, unix.db) == ("/run/redis.sock", 2)
    assert not RedisAddress.supported("rediss://secure:6379/0")
    assert RedisLookupReader.for_store(object()) is None


def test_reader_from_config(tmp_path: Path) -> None:
    from fsql.config import Config, OnlineStoreConfig

    redis = Config(repo=tmp_path, online_store=OnlineStoreConfig(url="redis://h:7/3", timeout=2))
    reader = RedisLookupReader.for_config(redis)
    assert reader is not None
    assert (reader.address.host, reader.address.port, reader.address.db) == ("h", 7, 3)
    assert reader.timeout == 2
    assert reader.version_cache_seconds == RedisOnlineStore.version_cache_seconds
    # SQLite and Redis over TLS are read through the store's own client
    assert RedisLookupReader.for_config(Config(repo=tmp_path)) is None
    tls = Config(repo=tmp_path, online_store=OnlineStoreConfig(url="rediss://h:7/0"))
    assert RedisLookupReader.for_config(tls) is None
