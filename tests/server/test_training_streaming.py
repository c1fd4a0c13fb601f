"""Training sets over the wire stream (issue 15, finding 4), against the real server process.

The server runs with ``[compute] memory_limit = "100MB"`` over a materialized repo (tests.api's
shop). ``training_set(...)`` over a spine of millions of rows sends its rows as the join's
engine produces them, in spine order: the server's resident memory (``VmRSS``) stays far below
the training set's size. A statement timeout or a CancelRequest stops the join (the server's
CPU time stops growing) and the session answers the next statement. A training set that the
statement reads twice (a CTE referenced twice) is materialized in the session first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.api._shop import make_shop
from tests.server._differential import make_shop_repo
from tests.server.conftest import FsqlServer, cancelling
from tests.server.test_streaming import PeakRss, assert_work_stops, pid_of

pytestmark = pytest.mark.server

#: 2.5M spine rows with a 40-byte label: ~250 MB as Python rows, ~150 MB as Arrow
BIG_SPINE = ("CREATE TEMP TABLE big AS SELECT 'user_' || (i % 997) AS user_id, "
             "TIMESTAMP '2026-01-01' + to_seconds(i) AS event_time, "
             "repeat('l', 32) || lpad(i::VARCHAR, 8, '0') AS label FROM range(2500000) t(i)")
BIG_ROWS = 2_500_000
#: growth of the server's resident memory allowed while the training set streams (the spine's
#: copy and the join live in two DuckDBs of 100 MB each, plus a batch in flight)
RSS_BUDGET_MB = 260


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FsqlServer]:
    root = make_shop_repo(
        tmp_path_factory.mktemp("training_streaming_repo"), make_shop(),
        '[compute]\nmemory_limit = "100MB"\n\n[server]\nstatement_timeout = 60\n')
    started = FsqlServer(root).start()
    yield started
    started.stop()


def test_a_big_training_set_streams_in_bounded_memory(server: FsqlServer) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(BIG_SPINE)
        count = 0
        with PeakRss(pid_of(server)) as rss, conn.cursor() as cursor:
            for row in cursor.stream(
                    "SELECT user_id, label, user_purchase_30d, user_country "
                    "FROM training_set('big', 'user_purchase_30d', 'user_country')"):
                # spine order, every spine column as it was
                assert row[1] == "l" * 32 + f"{count:08d}", (count, row)
                assert row[0] == f"user_{count % 997}"
                count += 1
        assert count == BIG_ROWS
        # the session goes on, and its spine copies are dropped when the next one is planned
        assert conn.execute("SELECT count(*) FROM training_set('big', 'user_country') "
                            "WHERE user_country IS NOT NULL").fetchone() is not None
    print(f"server grew by {rss.growth} MB")
    assert rss.growth < RSS_BUDGET_MB, f"server grew by {rss.growth} MB"
