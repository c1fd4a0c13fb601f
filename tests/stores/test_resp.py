"""fsql's one RESP client (:mod:`fsql.stores.online.resp`): URLs, packing, and logging in.

The online store's sync and asyncio connections and the server's lookup reader all connect
through it, so a password, an ACL user, a database number and a Unix socket from the URL must
work for each of them, and a refused login must fail with a StoreError naming Redis."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fsql.errors import StoreError
from fsql.stores.online import FeatureRef, open_online_store_url
from fsql.stores.online.codec import StoredValue, encode_records
from fsql.stores.online.reader import RedisLookupReader
from fsql.stores.online.resp import (
    HsetPacker,
    RedisAddress,
    hmget_head,
    pack_bulks,
    pack_command,
    pack_hmgets,
)
from tests.services._util import free_port, wait_until

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_urls() -> None:
    plain = RedisAddress("redis://localhost")
    assert (plain.host, plain.port, plain.db, plain.password) == ("localhost", 6379, 0, None)
    assert plain.setup() == []
    secret = RedisAddress("redis://:s%3Acret@h:1/2")
    assert (secret.username, secret.password, secret.db) == (None, "s:cret", 2)
    assert secret.setup() == [pack_command("AUTH", "s:cret"), pack_command("SELECT", "2")]
    user = RedisAddress("redis://alice:pw@h:1?db=5")
    assert user.setup() == [pack_command("AUTH", "alice", "pw"), pack_command("SELECT", "5")]
    unix = RedisAddress("unix://:pw@/run/redis.sock?db=3")
    assert (unix.unix_path, unix.password, unix.db, unix.where) == (
        "/run/redis.sock", "pw", 3, "/run/redis.sock"
    )
    assert RedisAddress.supported("unix:///x.sock") and RedisAddress.supported("redis://h")
    assert not RedisAddress.supported("rediss://h:6379/0")


def test_packing_matches_hiredis() -> None:
    hiredis = pytest.importorskip("hiredis")
    assert pack_command("HMGET", "k", b"f\r\n", "é") == hiredis.pack_command(
        ("HMGET", "k", b"f\r\n", "é")
    )
    fields = [b"a@1", b"b@2"]
    one = hmget_head(4, "fsql:e:user:u1") + pack_bulks(fields)
    assert one == hiredis.pack_command(("HMGET", "fsql:e:user:u1", *fields))
    assert pack_hmgets(b"fsql:e:user:", ["u1", "u2"], 2, pack_bulks(fields)) == one + (
        hiredis.pack_command(("HMGET", "fsql:e:user:u2", *fields))
    )
    packer = HsetPacker(b"p:", b"f@1")
    for _ in range(2):  # the second time from the packer's kept pieces
        assert packer.pack(["k", "kk"], [b"r", b""]) == hiredis.pack_command(
            ("HSET", "p:k", "f@1", b"r")
        ) + hiredis.pack_command(("HSET", "p:kk", "f@1", b""))


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A redis-server with a password (``pw``), an ACL user (``alice``/``alice-pw``) and a Unix
    socket: (its port, the socket's path)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    workdir = tmp_path_factory.mktemp("locked_redis")
    port, sock = free_port(), workdir / "redis.sock"
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(workdir), "--unixsocket", str(sock), "--requirepass", "pw"],
        stdout=(workdir / "redis.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until(sock.exists, timeout=20, what="redis-server with a password")
        redis = pytest.importorskip("redis")
        admin = redis.Redis(port=port, password="pw")
        wait_until(admin.ping, timeout=20, what="redis-server with a password")
        admin.acl_setuser("alice", enabled=True, passwords=["+alice-pw"], keys=["*"],
                          commands=["+@all"])
        admin.close()
        yield port, sock
    finally:
        process.kill()
        process.wait(timeout=20)


async def _lookup(
    url: str, refs: list[FeatureRef], keys: list[str]
) -> list[list[StoredValue | None]]:
    """What the server's lookup reader reads from ``url`` (on a reader of its own)."""
    reader = RedisLookupReader(url, timeout=5)
    try:
        return await reader.read("user", refs, keys)
    finally:
        reader.close()


@pytest.mark.redis
def test_every_connection_logs_in_and_selects_the_database(
    locked_redis: tuple[int, Path],
) -> None:
    port, sock = locked_redis
    urls = [f"redis://:pw@127.0.0.1:{port}/2", f"redis://alice:alice-pw@127.0.0.1:{port}/3",
            f"unix://:pw@{sock}?db=4"]
    for n, url in enumerate(urls):
        store = open_online_store_url(url, timeout=5)
        feature = f"f{n}"
        store.write("user", feature, "1", ["u"], encode_records("DOUBLE", [float(n)], [NOW]))
        asyncio.run(store.write_async(
            "user", feature, "1", ["v"], encode_records("DOUBLE", [n + 0.5], [NOW])
        ))
        store.activate(feature, "1")
        refs = [FeatureRef(feature)]
        want = [[(float(n), "1")], [(n + 0.5, "1")]]

        def values(rows: list[list[StoredValue | None]]) -> list[list[tuple[Any, str] | None]]:
            return [[(v.value, v.version) if v else None for v in row] for row in rows]

        assert values(store.read("user", refs, ["u", "v"])) == want
        assert values(asyncio.run(store.read_async("user", refs, ["u", "v"]))) == want

        assert values(asyncio.run(_lookup(url, refs, ["u", "v"]))) == want
        store.close()
    # each URL wrote to its own database only
    redis = pytest.importorskip("redis")
    admin = redis.Redis(port=port, password="pw")
    for db, n in ((2, 0), (3, 1), (4, 2)):
        admin.execute_command("SELECT", db)
        assert admin.hkeys("fsql:e:user:u") == [f"f{n}@1".encode()]
    admin.close()


@pytest.mark.redis
def test_a_refused_login_is_a_store_error(locked_redis: tuple[int, Path]) -> None:
    port, _sock = locked_redis
    url = f"redis://:wrong@127.0.0.1:{port}/0"
    store = open_online_store_url(url, timeout=5)
    with pytest.raises(StoreError, match="WRONGPASS|invalid password"):
        store.read("user", [FeatureRef("f", "1")], ["u"])
    with pytest.raises(StoreError, match="WRONGPASS|invalid password"):
        asyncio.run(store.read_async("user", [FeatureRef("f", "1")], ["u"]))
    with pytest.raises(StoreError, match="WRONGPASS|invalid password"):
        store.write("user", "f", "1", ["u"], encode_records("DOUBLE", [1.0], [NOW]))
    store.close()
    with pytest.raises(StoreError, match="could not log in to Redis"):
        asyncio.run(_lookup(url, [FeatureRef("f", "1")], ["u"]))
