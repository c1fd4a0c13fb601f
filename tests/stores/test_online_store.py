"""One test suite for every online store backend (SQLite and a real redis-server)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fsql.config import Config, OnlineStoreConfig
from fsql.errors import ConfigError, OnlineStoreUnavailable
from fsql.stores.online import (
    FeatureRef,
    OnlineStore,
    open_online_store,
    open_online_store_url,
    serve,
)
from fsql.stores.online.codec import StoredValue, encode_records

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def store(online_store: OnlineStore) -> OnlineStore:
    """Each test here runs on SQLite and on Redis (tests/services/online_store.py)."""
    return online_store


def put(
    store: OnlineStore, feature: str, version: str, rows: dict[str, float | None], at: datetime = T0
) -> None:
    keys = list(rows)
    store.write(
        "user",
        feature,
        version,
        keys,
        encode_records("DOUBLE", list(rows.values()), [at] * len(keys)),
    )


def values(rows: list[list[StoredValue | None]]) -> list[list[object]]:
    return [[None if s is None else (s.value, s.version) for s in row] for row in rows]


def test_write_activate_read(store: OnlineStore) -> None:
    put(store, "spend", "1", {"u1": 10.0, "u2": None})
    put(store, "visits", "1", {"u1": 3.0})
    refs = [FeatureRef("spend"), FeatureRef("visits")]
    # Nothing is visible before the versions are activated...
    assert values(store.read("user", refs, ["u1"])) == [[None, None]]
    # ...but a pinned version is readable while it is being written.
    assert values(store.read("user", [FeatureRef("spend", "1")], ["u1"])) == [[(10.0, "1")]]
    store.activate("spend", "1")
    store.activate("visits", "1")
    got = store.read("user", refs, ["u1", "u2", "nobody", "u1"])
    assert values(got) == [
        [(10.0, "1"), (3.0, "1")],
        [(None, "1"), None],  # a stored NULL (tombstone) is not the same as absent
        [None, None],
        [(10.0, "1"), (3.0, "1")],
    ]
    assert got[0][0] is not None and got[0][0].feature_time == T0
    assert store.active_versions() == {"spend": "1", "visits": "1"}
    assert store.active_versions(["spend", "other"]) == {"spend": "1"}


def test_versions_coexist_and_switch(store: OnlineStore) -> None:
    put(store, "spend", "1", {"u1": 1.0, "u2": 2.0})
    store.activate("spend", "1")
    put(store, "spend", "2", {"u1": 100.0})
    assert values(store.read("user", [FeatureRef("spend")], ["u1", "u2"])) == [
        [(1.0, "1")],
        [(2.0, "1")],
    ]
    store.activate("spend", "2")
    both = [FeatureRef("spend"), FeatureRef("spend", "1")]
    assert values(store.read("user", both, ["u1", "u2"])) == [
        [(100.0, "2"), (1.0, "1")],
        [None, (2.0, "1")],
    ]
    assert store.delete_version("user", "spend", "1") == 2
    assert values(store.read("user", both, ["u1", "u2"])) == [[(100.0, "2"), None], [None, None]]
    assert store.delete_version("user", "spend", "2") == 1
    assert store.active_versions() == {}


def test_overwrite_replaces_per_key(store: OnlineStore) -> None:
    put(store, "spend", "1", {"u1": 1.0, "u2": 2.0})
    put(store, "spend", "1", {"u1": 5.0}, at=T0 + timedelta(days=1))
    store.activate("spend", "1")
    got = store.read("user", [FeatureRef("spend")], ["u1", "u2"])
    assert [(r[0].value, r[0].feature_time) for r in got if r[0]] == [
        (5.0, T0 + timedelta(days=1)),
        (2.0, T0),
    ]


def test_entities_are_separate(store: OnlineStore) -> None:
    store.write("user", "spend", "1", ["k"], encode_records("DOUBLE", [1.0], [T0]))
    store.write("merchant", "spend", "1", ["k"], encode_records("DOUBLE", [2.0], [T0]))
    store.activate("spend", "1")
    assert values(store.read("merchant", [FeatureRef("spend")], ["k"])) == [[(2.0, "1")]]


def test_existing_keys_are_those_holding_a_value(store: OnlineStore) -> None:
    """``existing_keys``: the given keys that hold a value of the entity (of any feature or
    version, active or not, a stored NULL too), in the order given; what ``entity_keys``
    lists among them."""
    put(store, "spend", "1", {"u1": 1.0, "u|2": None})
    put(store, "visits", "2", {"u3": 3.0})
    store.write("item", "views", "1", ["u4"], encode_records("DOUBLE", [1.0], [T0]))
    asked = ["u3", "nobody", "u|2", "u4", "u1", ""]
    assert store.existing_keys("user", asked) == ["u3", "u|2", "u1"]
    assert store.existing_keys("user", []) == []
    listed = {k for batch in store.entity_keys("user", 2) for k in batch}
    assert listed == {"u1", "u|2", "u3"}
    many = [f"k{i}" for i in range(1200)]  # more than one SQL statement's worth
    put(store, "spend", "1", {k: 1.0 for k in many[::3]})
    assert store.existing_keys("user", many) == many[::3]


def test_async_twins(store: OnlineStore) -> None:
    async def main() -> list[list[object]]:
        await store.write_async(
            "user", "spend", "3", ["a", "b"], encode_records("BIGINT", [7, 8], [T0, T0])
        )
        store.activate("spend", "3")
        got = await store.read_async("user", [FeatureRef("spend")], ["b", "a", "c"])
        await store.aclose()
        return values(got)

    assert asyncio.run(main()) == [[(8, "3")], [(7, "3")], [None]]
    # a second event loop gets its own connections
    assert asyncio.run(store.read_async("user", [FeatureRef("spend")], ["a"]))[0][0] is not None


def test_version_switch_is_atomic_for_concurrent_readers(store: OnlineStore) -> None:
    keys = [f"u{i}" for i in range(300)]
    put(store, "spend", "1", dict.fromkeys(keys, 1.0))
    store.activate("spend", "1")
    seen: set[frozenset[str]] = set()
    stop = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            rows = store.read("user", [FeatureRef("spend")], keys)
            if any(r[0] is None for r in rows):
                problems.append("a key read as missing during the switch")
            seen.add(frozenset(r[0].version for r in rows if r[0]))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for start in range(0, len(keys), 50):  # version 2 written in batches, then switched
            put(store, "spend", "2", dict.fromkeys(keys[start : start + 50], 2.0))
        store.activate("spend", "2")
        final = store.read("user", [FeatureRef("spend")], keys)
    finally:
        stop.set()
        thread.join()
    assert problems == []
    assert seen <= {frozenset({"1"}), frozenset({"2"})}
    assert {r[0].value for r in final if r[0]} == {2.0}


def test_serve_applies_ttl_and_cache_expiry() -> None:
    stored = StoredValue(5.0, T0, "1")
    assert serve(stored, None, T0 + timedelta(days=400)) == 5.0
    assert serve(stored, timedelta(days=1), T0 + timedelta(days=1)) == 5.0
    assert serve(stored, timedelta(days=1), T0 + timedelta(days=1, microseconds=1)) is None
    cached = StoredValue(5.0, T0, "1", expires_at=T0 + timedelta(hours=1))
    assert serve(cached, None, T0 + timedelta(minutes=59)) == 5.0
    assert serve(cached, None, T0 + timedelta(hours=1)) is None
    assert serve(None, None, T0) is None


def test_open_from_config(tmp_path: Path) -> None:
    store = open_online_store(Config(repo=tmp_path))
    assert store.url == f"sqlite:///{tmp_path}/.fsql/online.db"
    assert (tmp_path / ".fsql" / "online.db").exists()
    store.close()
    with pytest.raises(ConfigError, match="redis://host:6379/0"):
        open_online_store(
            Config(repo=tmp_path, online_store=OnlineStoreConfig(url="memcached://x"))
        )


_READER = """
import sys
from fsql.stores.online import FeatureRef, open_online_store_url
store = open_online_store_url(sys.argv[1], timeout=5)
keys = [f"u{i}" for i in range(2000)]
print("ready", flush=True)
versions = set()
for _ in range(int(sys.argv[2])):
    rows = store.read("user", [FeatureRef("spend")], keys)
    versions.add(tuple(sorted({r[0].version for r in rows})))
print(sorted(versions), flush=True)
"""


def test_sqlite_is_readable_by_another_process_while_writing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/online.db"
    store = open_online_store_url(url, timeout=5)
    keys = [f"u{i}" for i in range(2000)]
    put(store, "spend", "1", dict.fromkeys(keys, 1.0))
    store.activate("spend", "1")
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, url, "200"], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
    for start in range(0, len(keys), 100):
        put(store, "spend", "2", dict.fromkeys(keys[start : start + 100], 2.0))
    store.activate("spend", "2")
    out, _ = reader.communicate(timeout=120)
    assert reader.returncode == 0
    # every read saw one complete version: never a mix, never a failure
    assert set(eval(out.strip())) <= {("1",), ("2",)}  # noqa: S307 - our own subprocess output
    store.close()


@pytest.mark.redis
def test_redis_down_fails_fast_and_recovers(redis_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    redis_server.flush()
    store = open_online_store_url(redis_server.url, timeout=0.5)
    put(store, "spend", "1", {"u1": 1.0})
    store.activate("spend", "1")
    redis_server.stop()
    try:
        with pytest.raises(
            OnlineStoreUnavailable, match=r"did not answer within 0.5s.*redis-server is running"
        ):
            store.read("user", [FeatureRef("spend")], ["u1"])
        with pytest.raises(OnlineStoreUnavailable):
            asyncio.run(store.read_async("user", [FeatureRef("spend")], ["u1"]))
        with pytest.raises(OnlineStoreUnavailable, match="could not write spend"):
            put(store, "spend", "1", {"u1": 2.0})
    finally:
        redis_server.start()
    # The same store object recovers by itself (the restarted server is empty: no persistence).
    assert store.read("user", [FeatureRef("spend")], ["u1"]) == [[None]]
    put(store, "spend", "1", {"u1": 3.0})
    store.activate("spend", "1")
    assert values(store.read("user", [FeatureRef("spend")], ["u1"])) == [[(3.0, "1")]]
    assert values(asyncio.run(store.read_async("user", [FeatureRef("spend")], ["u1"]))) == [
        [(3.0, "1")]
    ]
    store.close()


@pytest.mark.redis
def test_redis_hung_times_out_then_recovers(redis_server) -> None:  # type: ignore[no-untyped-def]
    """A Redis that accepts connections but never answers (SIGSTOP) fails the read with the
    configured timeout instead of hanging; after SIGCONT the same store answers correctly."""
    import signal

    redis_server.flush()
    store = open_online_store_url(redis_server.url, timeout=0.3)
    put(store, "spend", "1", {"u1": 1.0})
    store.activate("spend", "1")
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(OnlineStoreUnavailable, match="did not answer within 0.3s"):
            store.read("user", [FeatureRef("spend")], ["u1"])
        with pytest.raises(OnlineStoreUnavailable, match="did not answer within 0.3s"):
            asyncio.run(store.read_async("user", [FeatureRef("spend")], ["u1"]))
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    # no stale reply from the timed-out request leaks into the next one
    for _ in range(3):
        assert values(store.read("user", [FeatureRef("spend"), FeatureRef("spend")], ["u1"])) == [
            [(1.0, "1"), (1.0, "1")]
        ]
    assert store.active_versions() == {"spend": "1"}
    store.close()


@pytest.mark.redis
def test_redis_readers_reuse_active_versions_briefly(redis_server) -> None:  # type: ignore[no-untyped-def]
    """A Redis reader reuses the active versions it read for version_cache_seconds (plain
    HMGETs, no script): another process's switch reaches it within that time, and until
    then it reads the old version — complete, never a mix."""
    redis_server.flush()
    writer = open_online_store_url(redis_server.url)
    reader = open_online_store_url(redis_server.url)
    keys = ["u1", "u2", "u3"]
    put(writer, "spend", "1", dict.fromkeys(keys, 1.0))
    writer.activate("spend", "1")
    assert values(reader.read("user", [FeatureRef("spend")], keys)) == [[(1.0, "1")]] * 3
    put(writer, "spend", "2", dict.fromkeys(keys, 2.0))
    writer.activate("spend", "2")
    # still within the cache window: the old version, whole
    assert values(reader.read("user", [FeatureRef("spend")], keys)) == [[(1.0, "1")]] * 3
    assert (
        values(asyncio.run(reader.read_async("user", [FeatureRef("spend")], keys)))
        == [[(1.0, "1")]] * 3
    )
    reader.version_cache_seconds = 0  # the window has passed: resolve again
    assert values(reader.read("user", [FeatureRef("spend")], keys)) == [[(2.0, "2")]] * 3
    # the writer's own switch is visible to itself at once
    assert values(writer.read("user", [FeatureRef("spend")], keys)) == [[(2.0, "2")]] * 3
    writer.close()
    reader.close()


@pytest.mark.redis
def test_redis_error_replies_are_store_errors_and_the_connection_stays_usable(redis_server) -> None:  # type: ignore[no-untyped-def]
    """A key of the wrong type makes Redis answer with an error reply mid-batch: writes and
    reads (sync and asyncio) raise StoreError naming the action, and the next call on the
    same store is answered correctly (no reply of the failed batch is left behind)."""
    import redis

    from fsql.errors import StoreError

    redis_server.flush()
    redis.Redis.from_url(redis_server.url).set("fsql:e:user:bad", "not a hash")
    store = open_online_store_url(redis_server.url, timeout=2)
    with pytest.raises(StoreError, match=r"could not write spend \(version 1\).*WRONGTYPE"):
        put(store, "spend", "1", {"u1": 1.0, "bad": 2.0, "u2": 3.0})
    put(store, "spend", "1", {"u1": 1.0, "u2": 3.0})
    store.activate("spend", "1")
    for _ in range(2):  # the script path first, then the cached-versions path
        with pytest.raises(StoreError, match="could not read from the online store.*WRONGTYPE"):
            store.read("user", [FeatureRef("spend")], ["u1", "bad"])
        with pytest.raises(StoreError, match="could not read from the online store.*WRONGTYPE"):
            asyncio.run(store.read_async("user", [FeatureRef("spend")], ["bad", "u2"]))
        assert values(store.read("user", [FeatureRef("spend")], ["u1", "u2"])) == [
            [(1.0, "1")],
            [(3.0, "1")],
        ]
    store.close()


@pytest.mark.redis
def test_redis_reads_reload_a_flushed_read_script(redis_server) -> None:  # type: ignore[no-untyped-def]
    """After SCRIPT FLUSH (or a restart) the read script is loaded again transparently."""
    import redis

    redis_server.flush()
    store = open_online_store_url(redis_server.url, timeout=2)
    store.version_cache_seconds = 0  # every read resolves versions through the script
    put(store, "spend", "1", {"u1": 1.0})
    store.activate("spend", "1")

    async def twice() -> list[object]:
        first = await store.read_async("user", [FeatureRef("spend")], ["u1"])
        redis.Redis.from_url(redis_server.url).script_flush()
        return [
            values(first),
            values(await store.read_async("user", [FeatureRef("spend")], ["u1"])),
        ]

    for _ in range(2):
        assert values(store.read("user", [FeatureRef("spend")], ["u1"])) == [[(1.0, "1")]]
        redis.Redis.from_url(redis_server.url).script_flush()
        assert asyncio.run(twice()) == [[[(1.0, "1")]]] * 2
    store.close()


@pytest.mark.redis
def test_redis_database_number_from_the_url(redis_server) -> None:  # type: ignore[no-untyped-def]
    """``redis://host:port/3`` reads and writes database 3, sync and asyncio alike."""
    import redis

    redis_server.flush()
    url = redis_server.url.rsplit("/", 1)[0] + "/3"
    store = open_online_store_url(url, timeout=2)
    put(store, "spend", "1", {"u1": 4.0})
    store.activate("spend", "1")
    assert values(store.read("user", [FeatureRef("spend")], ["u1"])) == [[(4.0, "1")]]
    assert values(asyncio.run(store.read_async("user", [FeatureRef("spend")], ["u1"]))) == [
        [(4.0, "1")]
    ]
    store.close()
    assert redis.Redis.from_url(url).hget("fsql:e:user:u1", "spend@1") is not None
    assert redis.Redis.from_url(redis_server.url).exists("fsql:e:user:u1") == 0


def test_write_many_streams_batches(store: OnlineStore) -> None:
    """Batches of keys and records of every length (Redis sends one batch before reading the
    previous one's replies) land exactly; an empty batch is skipped."""
    keys = [f"k{'x' * (i % 13)}|{i}" for i in range(2500)]
    texts = ["é" * (i % 37) for i in range(2500)]
    records = encode_records("VARCHAR", texts, [T0] * len(keys))
    batches = [(keys[i : i + 700], records[i : i + 700]) for i in range(0, len(keys), 700)]
    assert store.write_many("user", "name", "1", [([], []), *batches]) == len(keys)
    store.activate("name", "1")
    got = store.read("user", [FeatureRef("name")], keys)
    assert [row[0].value if row[0] else None for row in got] == texts


@pytest.mark.redis
def test_redis_reader_sees_one_version_per_feature_across_feature_lists(redis_server) -> None:  # type: ignore[no-untyped-def]
    """When a script read (of another list of features) learns that a feature switched
    versions, every later read of that feature uses the new version, whatever list it comes
    in: a reader never serves two versions of one feature side by side."""
    redis_server.flush()
    writer = open_online_store_url(redis_server.url)
    reader = open_online_store_url(redis_server.url)
    put(writer, "spend", "1", {"u1": 1.0})
    writer.activate("spend", "1")
    just_spend = [FeatureRef("spend")]
    for _ in range(2):  # the second read comes from the reader's cache
        assert values(reader.read("user", just_spend, ["u1"])) == [[(1.0, "1")]]
    put(writer, "spend", "2", {"u1": 2.0})
    writer.activate("spend", "2")
    put(writer, "visits", "1", {"u1": 5.0})
    writer.activate("visits", "1")
    # visits was never seen: this list goes through the script and learns spend@2
    both = [FeatureRef("spend"), FeatureRef("visits")]
    assert values(reader.read("user", both, ["u1"])) == [[(2.0, "2"), (5.0, "1")]]
    assert values(reader.read("user", just_spend, ["u1"])) == [[(2.0, "2")]]
    got = asyncio.run(reader.read_async("user", just_spend, ["u1"]))
    assert values(got) == [[(2.0, "2")]]
    writer.close()
    reader.close()


@pytest.mark.redis
def test_redis_async_reads_from_successive_event_loops_do_not_pile_up_connections(
    redis_server,  # type: ignore[no-untyped-def]
) -> None:
    """Notebooks call ``asyncio.run`` again and again: each new loop's read closes the
    previous loop's connections, so Redis does not accumulate clients."""
    import gc

    import redis

    from tests.services._util import wait_until

    redis_server.flush()
    admin = redis.Redis.from_url(redis_server.url)
    store = open_online_store_url(redis_server.url, timeout=2)
    put(store, "spend", "1", {"u1": 1.0})
    store.activate("spend", "1")
    gc.disable()  # closed explicitly, not whenever the collector happens to run
    try:
        for _ in range(6):
            got = asyncio.run(store.read_async("user", [FeatureRef("spend")], ["u1"]))
            assert values(got) == [[(1.0, "1")]]
        # admin, the store's sync client and held connection, the last loop's connection
        wait_until(lambda: len(admin.client_list()) <= 4, timeout=5, what="stale clients to go")
    finally:
        gc.enable()
    store.close()
    admin.close()
