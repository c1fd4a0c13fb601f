"""Large results through portals, cursors and COPY stay bounded in memory and in time
(issue 15, finding 4), against the real server process.

The server runs with ``[compute] memory_limit = "100MB"`` and a 3 s statement timeout. A
result of a million 1 KB rows (about 1 GB) must stream from DuckDB chunk by chunk: the
server's resident memory (``VmRSS`` of its process) stays far below the result's size. A
statement that outlives the timeout while rows are fetched gets 57014, and its work stops
(the server's CPU time stops growing), as it does after a CancelRequest.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psycopg
import pytest

from tests.server.conftest import FsqlServer, cancelling, write_config

pytestmark = pytest.mark.server

#: about a gigabyte of rows (a million rows of ~1 KB)
WIDE = "SELECT repeat('x', 1000) || i AS v FROM range(1000000) t(i)"
#: about 300 MB of rows, sent within one statement (and its timeout)
WIDE_300K = "SELECT repeat('x', 1000) || i AS v FROM range(300000) t(i)"
#: a few rows at once, then the next ones only after scanning ~1e12 rows: fetching past the
#: first chunk outlives any timeout
SLOW_TAIL = ("SELECT i FROM range(1000000000000) t(i) "
             "WHERE i < 300 OR i % 999999999989 = 999999999988")
TIMEOUT = 3
#: growth of the server's resident memory allowed while a 1 GB result streams through it
RSS_BUDGET_MB = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FsqlServer]:
    repo = tmp_path_factory.mktemp("streaming_repo")
    write_config(repo, f'[compute]\nmemory_limit = "100MB"\n\n'
                       f"[server]\nstatement_timeout = {TIMEOUT}\n")
    started = FsqlServer(repo).start()
    yield started
    started.stop()


def status_mb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no {field} for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ)


class PeakRss:
    """Samples the process's VmRSS every 20 ms while the block runs."""

    def __init__(self, pid: int):
        self.pid = pid
        self.start = status_mb(pid)
        self.peak = self.start
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample)

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, status_mb(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def pid_of(server: FsqlServer) -> int:
    assert server.process is not None
    return server.process.pid


def assert_work_stops(server: FsqlServer, seconds: float = 2, budget: float = 0.5) -> None:
    """After a statement ended with 57014, the server's CPU time stops growing: at most
    ``budget`` CPU seconds in the next ``seconds`` (a scan left running burns ~2 a second)."""
    time.sleep(0.5)  # DuckDB notices the interrupt between vectors
    before = cpu_seconds(pid_of(server))
    time.sleep(seconds)
    used = cpu_seconds(pid_of(server)) - before
    assert used < budget, f"the server used {used:.2f} CPU seconds after the statement ended"


def test_portal_read_in_pieces_streams(server: FsqlServer) -> None:
    """asyncpg's cursor reads through one portal with Execute row limits."""

    async def read() -> int:
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="tester",
                                     database="fsql")
        try:
            count = 0
            async with conn.transaction():
                async for row in conn.cursor(WIDE, prefetch=2000, timeout=30):
                    assert row["v"] == "x" * 1000 + str(count)
                    count += 1
                    if count == 300_000:
                        break
            return count
        finally:
            await conn.close()

    with PeakRss(pid_of(server)) as rss:
        assert asyncio.run(read()) == 300_000
    print(f"server grew by {rss.growth} MB")
    assert rss.growth < RSS_BUDGET_MB, f"server grew by {rss.growth} MB"


def test_server_side_cursor_streams_every_row(server: FsqlServer) -> None:
    """psycopg's named cursor: DECLARE ... CURSOR, then FETCH FORWARD n until the end."""
    with PeakRss(pid_of(server)) as rss, psycopg.connect(server.dsn()) as conn:
        count = 0
        with conn.cursor(name="wide") as cursor:
            cursor.itersize = 5000
            cursor.execute(WIDE)
            for (value,) in cursor:
                count += 1
                assert value.startswith("xxx")
        assert count == 1_000_000
    print(f"server grew by {rss.growth} MB")
    assert rss.growth < RSS_BUDGET_MB, f"server grew by {rss.growth} MB"


def test_fetch_all_from_a_cursor_streams(server: FsqlServer) -> None:
    with PeakRss(pid_of(server)) as rss, psycopg.connect(server.dsn()) as conn:
        conn.execute(f"DECLARE c CURSOR FOR {WIDE_300K} LIMIT 150000")
        count = 0
        with conn.cursor() as cursor:
            cursor.execute("FETCH ALL FROM c")
            while rows := cursor.fetchmany(10_000):
                count += len(rows)
        assert count == 150_000
    # psycopg holds the whole FETCH ALL result (~160 MB) in the client; the server a chunk
    print(f"server grew by {rss.growth} MB")
    assert rss.growth < 150, f"server grew by {rss.growth} MB"


def test_copy_to_stdout_streams(server: FsqlServer) -> None:
    with PeakRss(pid_of(server)) as rss, psycopg.connect(server.dsn()) as conn:
        size = 0
        with conn.cursor() as cursor, cursor.copy(f"COPY ({WIDE_300K} LIMIT 100000) TO STDOUT") as copy:
            for data in copy:
                size += len(data)
        assert size > 100_000_000
    print(f"server grew by {rss.growth} MB")
    assert rss.growth < RSS_BUDGET_MB, f"server grew by {rss.growth} MB"


def test_statement_timeout_stops_a_portal_fetching_rows(server: FsqlServer) -> None:
    """The first rows come at once; the next Execute has to scan on: the timeout ends it."""

    async def read() -> tuple[int, str]:
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="tester",
                                     database="fsql")
        count = 0
        try:
            async with conn.transaction():
                async for _ in conn.cursor(SLOW_TAIL, prefetch=1000, timeout=30):
                    count += 1
        except asyncpg.QueryCanceledError as error:
            return count, str(error)
        finally:
            await conn.close()
        raise AssertionError("the portal was not cancelled")

    started = time.monotonic()
    count, message = asyncio.run(read())
    elapsed = time.monotonic() - started
    assert message == "canceling statement due to statement timeout"
    assert count == 0  # asyncpg gets no row of a prefetch that did not complete
    assert elapsed < TIMEOUT + 5, elapsed
    assert_work_stops(server)


def test_statement_timeout_stops_a_cursor_fetch(server: FsqlServer) -> None:
    with psycopg.connect(server.dsn()) as conn:
        conn.execute(f"DECLARE c CURSOR FOR {SLOW_TAIL}")
        assert len(conn.execute("FETCH 100 FROM c").fetchall()) == 100
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            conn.execute("FETCH 1000 FROM c")
        assert time.monotonic() - started < TIMEOUT + 5
    assert_work_stops(server)


def test_statement_timeout_stops_copy_to_stdout(server: FsqlServer) -> None:
    with psycopg.connect(server.dsn()) as conn, conn.cursor() as cursor:
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"), \
                cursor.copy(f"COPY ({SLOW_TAIL}) TO STDOUT") as copy:
            for _ in copy:
                pass
        assert time.monotonic() - started < TIMEOUT + 5
    assert_work_stops(server)


def test_cancel_request_stops_a_cursor_fetch(server: FsqlServer) -> None:
    with psycopg.connect(server.dsn()) as conn:
        conn.execute(f"DECLARE c CURSOR FOR {SLOW_TAIL}")
        conn.execute("FETCH 100 FROM c")
        with cancelling(conn), pytest.raises(psycopg.errors.QueryCanceled,
                                             match="user request"):
            conn.execute("FETCH 1000 FROM c")
    assert_work_stops(server)


def test_cursor_survives_other_statements(server: FsqlServer) -> None:
    """A statement run between two FETCHes parks the cursor's remaining rows: every row
    still arrives once, in order."""
    with psycopg.connect(server.dsn()) as conn:
        conn.execute("DECLARE c CURSOR FOR SELECT i FROM range(50000) t(i) ORDER BY i")
        first = [r[0] for r in conn.execute("FETCH 10 FROM c").fetchall()]
        assert conn.execute("SELECT count(*) FROM range(7)").fetchone() == (7,)
        rest = [r[0] for r in conn.execute("FETCH ALL FROM c").fetchall()]
        assert first + rest == list(range(50000))


def test_parked_cursor_over_the_memory_limit_is_53200(server: FsqlServer) -> None:
    """A cursor over a 1 GB result cannot be parked within the session's 100 MB: its next
    FETCH fails with 53200; the session and the other statement go on."""
    with PeakRss(pid_of(server)) as rss, psycopg.connect(server.dsn()) as conn:
        conn.execute(f"DECLARE c CURSOR FOR {WIDE}")
        assert len(conn.execute("FETCH 10 FROM c").fetchall()) == 10
        assert conn.execute("SELECT count(*) FROM range(7)").fetchone() == (7,)
        # the rows of the chunk in hand come first, then the parked rest fails
        with pytest.raises(psycopg.errors.OutOfMemory) as caught:
            conn.execute("FETCH 1000 FROM c")
        diag = caught.value.diag
        assert diag.sqlstate == "53200"
        assert "open cursor" in (diag.message_detail or "")
        assert "memory_limit" in (diag.message_hint or "")
        conn.rollback()
        assert conn.execute("SELECT 1").fetchone() == (1,)
    print(f"server grew by {rss.growth} MB")
    assert rss.growth < RSS_BUDGET_MB, f"server grew by {rss.growth} MB"


@pytest.fixture(scope="module")
def shop_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FsqlServer]:
    """A server over a materialized repo (tests.api's shop), 30 s statement timeout."""
    from fsql import SyncFeatureStore
    from tests.api._shop import DAY, make_shop, today, write_shop
    from tests.api.test_feature_store import PURCHASE_30D

    root = tmp_path_factory.mktemp("training_repo")
    shop = make_shop()
    write_shop(shop, root)
    write_config(root, "[server]\nstatement_timeout = 30\n")
    store = SyncFeatureStore(root)
    try:
        store.register(shop.sql("data/orders", "data/profiles"))
        store.register_feature(PURCHASE_30D)
        store.materialize(today() - 3 * DAY, today() + DAY)
    finally:
        store.close()
    started = FsqlServer(root).start()
    yield started
    started.stop()


def test_statement_timeout_stops_a_training_set(shop_server: FsqlServer) -> None:
    """``training_set(...)`` answers 57014 at the (lowered) statement timeout and the session
    goes on. (That the join's work then stops — the server's CPU time stops growing — is
    asserted in tests/server/test_training_streaming.py, where training sets stream.)"""
    with psycopg.connect(shop_server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE spine AS SELECT 'user_' || (i % 997) AS user_id, "
                     "TIMESTAMP '2026-01-01' + to_seconds(i) AS event_time "
                     "FROM range(3000000) t(i)")
        # the join takes about a second for 3M rows on this machine (an ASOF join per
        # feature): a timeout well below that must stop it
        conn.execute("SET statement_timeout = '100ms'")
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
            conn.execute("SELECT count(*) FROM training_set('spine', 'user_purchase_30d')")
        assert time.monotonic() - started < 0.1 + 5
        conn.execute("RESET statement_timeout")
        assert conn.execute("SELECT count(*) FROM spine").fetchone() == (3_000_000,)
